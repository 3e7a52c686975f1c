"""The floor of any HTTP server here: `python bench/asgi_floor.py --port N --workspace-dir DIR`.

A bare ASGI callable on uvicorn (httptools, as the server uses), with no Starlette, no MCP SDK and
no FastMCP: it reads a `tools/call` JSON-RPC body, runs its `arguments.code` through this
project's execution service (the same as the server's, with the same default configuration) and
answers with the result as JSON-RPC. `GET` answers 200 once the services are open. Nothing else
is checked: it is a measuring stick, not a server. `bench/layers.py` reads its process's CPU per
call beside the real server's; the difference is what the MCP layers add.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from python_mcp_server.config import ServerConfig
from python_mcp_server.services import Services


class FloorApp:
    """`tools/call` with `{"code": ...}` -> the execution service -> JSON."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._services: Services | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with AsyncExitStack() as stack:
            await receive()  # lifespan.startup
            self._services = await stack.enter_async_context(Services.open(self._config))
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._services is not None
        if scope["method"] != "POST":
            await _answer(send, b"ok")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request: dict[str, Any] = json.loads(body)
        code = request["params"]["arguments"]["code"]
        result = await self._services.execution.run("default", code)
        payload = {
            "jsonrpc": "2.0",
            "id": request["id"],
            "result": {
                "content": [{"type": "text", "text": f"[{result.status}]"}],
                "isError": False,
                "structuredContent": result.model_dump(mode="json"),
            },
        }
        await _answer(send, json.dumps(payload, separators=(",", ":")).encode())


async def _answer(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def floor_server(
    workspace: Path, port: int, ready_timeout_s: float = 60.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """This app in a subprocess on 127.0.0.1:`port`: its URL and process, once it answers."""
    cmd = [sys.executable, __file__, "--port", str(port), "--workspace-dir", str(workspace)]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the floor app did not start on port {port}")
            time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workspace-dir", type=Path, required=True)
    args = parser.parse_args()
    config = ServerConfig(workspace_dir=args.workspace_dir, kernel_pool_size=0)
    uvicorn.run(
        FloorApp(config),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="asyncio",
        lifespan="on",
        log_level="warning",
    )


if __name__ == "__main__":
    main()
