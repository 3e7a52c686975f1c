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
            description="Where to write the notebook, relative to the workspace root, e.g. "
            "'notebooks/analysis.ipynb'. '.ipynb' is added when the name has no suffix."
        ),
    ],
    session_id: SessionArg = None,
    overwrite: Annotated[
        bool, Field(description="Replace an existing file at path; false refuses instead.")
    ] = False,
) -> ToolResult:
    """Save the code a session ran, with its outputs, as a Jupyter notebook (.ipynb).

    Use it to hand over or keep a record of the work: every executed cell in order, with
    printed output, results, images and errors, as a valid nbformat v4 notebook in the
    workspace. Returns the path, a workspace:// uri and the number of cells.
    """
    res = await services(ctx).notebooks.export(resolve_session(ctx, session_id), path, overwrite)
    return result(res, res.message)


TOOLS: Final[tuple[ToolFunction, ...]] = (export_notebook,)
