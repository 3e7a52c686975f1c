"""matplotlib's font list, built once by the server and given read-only to sandboxed kernels."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anyio
import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.sandbox.host import plan_sandbox
from python_mcp_server.server import create_server
from tests.helpers import call

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.kernel,
    pytest.mark.local_kernels,
    pytest.mark.skipif(
        not plan_sandbox(ServerConfig(sandbox="auto")).enabled,
        reason="this host cannot sandbox kernels (bubblewrap)",
    ),
]

FOUND = "import glob, json\nprint(json.dumps(glob.glob('/tmp/.matplotlib/fontlist-v*.json')))"
IMPORT = (
    "import io, logging, os\n"
    "log = io.StringIO()\n"
    "logging.getLogger('matplotlib.font_manager').addHandler(logging.StreamHandler(log))\n"
    "logging.getLogger('matplotlib.font_manager').setLevel(logging.INFO)\n"
    "import matplotlib.font_manager\n"
    "(os.environ['MPLCONFIGDIR'], log.getvalue())"
)
OVERWRITE = (
    "import json\n"
    "try:\n"
    "    open({path!r}, 'w').write('{{}}')\n"
    "except OSError as e:\n"
    "    print(json.dumps(['OSError', e.errno]))\n"
    "else:\n"
    "    print(json.dumps(['written']))"
)


async def run(client: Client[Any], sid: str, code: str) -> dict[str, Any]:
    res = await call(client, "run_python_code", code=code, session_id=sid)
    assert res["status"] == "ok", res
    return res


async def test_a_sandboxed_kernel_finds_fonts_without_a_rescan_and_cannot_change_the_list(
    config: ServerConfig,
) -> None:
    config = dataclasses.replace(config, sandbox="on")
    async with Client(create_server(config)) as client:
        # the server builds the list in the background as its first kernel starts: kernels
        # started before it is ready go without; one started after has it
        with anyio.fail_after(120):
            for n in range(1000):
                sid = f"k{n}"
                await call(client, "create_session", session_id=sid)
                found = json.loads((await run(client, sid, FOUND))["stdout"])
                if found:
                    break
                await call(client, "delete_session", session_id=sid)
        loaded = await run(client, sid, IMPORT)
        assert loaded["result"] == repr(("/tmp/.matplotlib", "")), loaded  # no "generated new"
        tried = await run(client, sid, OVERWRITE.format(path=found[0]))
        assert json.loads(tried["stdout"])[0] == "OSError", tried
        # the plot works, and a later session still gets the list unchanged
        plotted = await run(
            client, sid, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
        )
        assert plotted["images"], plotted
        await call(client, "create_session", session_id="later")
        assert (await run(client, "later", IMPORT))["result"] == loaded["result"]
