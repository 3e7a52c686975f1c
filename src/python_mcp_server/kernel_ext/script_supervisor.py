"""The parent of a script run in the sandbox: `python script_supervisor.py REPORT_FD -- CMD...`.

It runs the script, and once the script has exited it ends every process the script left
running in the sandbox (daemons, detached children) and writes how many to REPORT_FD, before the
sandbox's own end would kill them uncounted. The server tells the model that number. Runs inside
the sandbox, by path, with the script's interpreter: the standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def left_running() -> list[int]:
    """The sandbox's processes other than its init (pid 1) and this one, not yet dead."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (1, me):
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if state not in ("Z", "X"):
            found.append(int(name))
    return found


def main(argv: list[str]) -> int:
    report = int(argv[0])
    command = argv[argv.index("--") + 1 :]
    child = subprocess.Popen(command)  # the report descriptor is not inherited (close_fds)
    code = child.wait()
    left = left_running()
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    os.write(report, f"{len(left)}\n".encode())
    os.close(report)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
