"""A kernel backend without cgroups, in a process of its own, for a test that kills the process.

`python -m tests.backend_child <folder> <tag>` starts one plain kernel working in `folder`, has
it start two `sleep <tag>` processes that stay in its session (a child, and an orphan whose
parent exited), writes `ready` and waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from python_mcp_server.kernels import KernelSpec, LocalBackend

CHILDREN = (
    "import subprocess\n"
    "subprocess.Popen(['sleep', '{tag}'])\n"
    "subprocess.Popen(['sh', '-c', 'sleep {tag} &']).wait()\n"
)


async def main(folder: Path, tag: str) -> None:
    backend = LocalBackend(use_cgroups=False)
    handle = await backend.start(KernelSpec(python=sys.executable, cwd=folder, env={}))
    run = await handle.submit(CHILDREN.format(tag=tag))
    reply = await run.wait()
    sys.stdout.write(f"ready {reply.status}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
