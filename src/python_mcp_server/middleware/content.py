"""`LinksAsTextMiddleware`: clients of protocols before 2025-06-18 get links as text blocks.

`resource_link` content blocks are new in MCP 2025-06-18. A client that negotiated an older
version validates a tool result against its own, older schema, and some reject the whole result
for one block type they do not know (the TypeScript SDK up to 1.12 and the Python `mcp` SDK up to
1.9 fail the call after the cell ran). For those sessions each link becomes a text block naming
its URI; the URIs stay in `structuredContent` as for every client.
"""

from __future__ import annotations

from typing import Any, Final

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp.types import ContentBlock, ResourceLink, TextContent

FIRST_WITH_LINKS: Final = "2025-06-18"


class LinksAsTextMiddleware(Middleware):
    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        result = await call_next(context)
        if not isinstance(result, ToolResult) or not any(
            isinstance(block, ResourceLink) for block in result.content
        ):
            return result
        if not _before_links(context):
            return result
        return result.model_copy(update={"content": [_as_text(b) for b in result.content]})


def _before_links(context: MiddlewareContext[Any]) -> bool:
    """Whether the calling client negotiated a protocol version that has no resource links."""
    ctx = context.fastmcp_context
    rc = ctx.request_context if ctx is not None else None
    version = str(rc.protocol_version) if rc is not None else ""
    return bool(version) and version < FIRST_WITH_LINKS


def _as_text(block: ContentBlock) -> ContentBlock:
    if not isinstance(block, ResourceLink):
        return block
    what = block.description or block.name
    mime = f" ({block.mime_type})" if block.mime_type else ""
    return TextContent(type="text", text=f"{what}: {block.uri}{mime}")
