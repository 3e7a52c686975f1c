"""Notebook tools: export_notebook."""

from __future__ import annotations

from typing import Annotated, Final

from fastmcp import Context
from fastmcp.tools import ToolResult, tool
from pydantic import Field

from python_mcp_server.runtime import services
from python_mcp_server.services import NotebookExport
from python_mcp_server.tools._common import (
    IDEMPOTENT_WRITE,
    SessionArg,
    ToolFunction,
    resolve_session,
    result,
    schema,
)


@tool(annotations=IDEMPOTENT_WRITE, output_schema=schema(NotebookExport))
async def export_notebook(
    ctx: Context,
    path: Annotated[
        str,
        Field(
            description="Workspace path, e.g. 'notebooks/analysis.ipynb' ('.ipynb' added if "
            "no suffix)."
        ),
    ],
    session_id: SessionArg = None,
    overwrite: Annotated[bool, Field(description="Replace an existing file.")] = False,
) -> ToolResult:
    """Save the cells a session ran, with their outputs, as a Jupyter notebook in the
    workspace, to hand over or keep the work. Returns its path and workspace:// uri."""
    res = await services(ctx).notebooks.export(resolve_session(ctx, session_id), path, overwrite)
    return result(res, res.message)


TOOLS: Final[tuple[ToolFunction, ...]] = (export_notebook,)
