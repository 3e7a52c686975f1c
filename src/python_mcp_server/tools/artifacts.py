"""The `kernel://{session_id}/{filename}` resource: files a session produced (full-resolution
images, plotly pages, full text of long outputs)."""

from __future__ import annotations

import logging
from typing import Final

import anyio
from fastmcp import Context
from fastmcp.exceptions import ResourceError
from fastmcp.resources import ResourceContent, ResourceResult, resource

from python_mcp_server.errors import ServerError
from python_mcp_server.runtime import services
from python_mcp_server.tools._common import ToolFunction

_TEXT_MIMES = ("text/", "application/json")


@resource(
    "kernel://{session_id}/{filename}",
    name="session_output",
    description="A file a session's code produced, by the kernel:// URI a run_python_code "
    "result gave: full-resolution images, plotly pages and figure JSON, and the full text of "
    "outputs too long to inline. Text as text, other files as a blob with their mime type. "
    "A session's files are deleted when it ends.",
)
async def session_output(session_id: str, filename: str, ctx: Context) -> ResourceResult:
    try:
        store = services(ctx).execution.artifacts
        data, mime = await anyio.to_thread.run_sync(store.read, session_id, filename)
    except ServerError as exc:
        # FastMCP logs resource errors with a traceback; a wrong URI is not worth one
        raise ResourceError(str(exc), log_level=logging.DEBUG) from exc
    if mime.startswith(_TEXT_MIMES):
        return ResourceResult([ResourceContent(data.decode("utf-8", "replace"), mime_type=mime)])
    return ResourceResult([ResourceContent(data, mime_type=mime)])


RESOURCES: Final[tuple[ToolFunction, ...]] = (session_output,)
