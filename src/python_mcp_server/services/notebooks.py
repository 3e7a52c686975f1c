"""`NotebookService`: a session's executed cells, with their outputs, as a validated .ipynb file."""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import anyio
from pydantic import BaseModel, Field

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError
from python_mcp_server.services.records import CellRecord, HistoryEntry, KernelReplaced, iso
from python_mcp_server.services.sessions import SessionManager
from python_mcp_server.workspace.access import WorkspaceFiles


def _nbformat() -> Any:
    """nbformat (untyped), imported on first use: with jsonschema it adds ~70 ms to server start."""
    return importlib.import_module("nbformat")


_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class NotebookExport(BaseModel):
    """The result of export_notebook."""

    session_id: str
    path: str = Field(description="The notebook, relative to the workspace root.")
    uri: str = Field(description="The notebook as a workspace:// resource.")
    cells: int = Field(description="Code cells written, in the order they ran.")
    bytes_written: int
    dropped_outputs: int = Field(
        default=0, description="Outputs left out because they were not valid nbformat."
    )
    message: str


def notebook_path(path: str) -> str:
    """`path` with the .ipynb suffix added when it has none; another suffix is refused."""
    pure = PurePosixPath(path)
    if pure.name.lower() == ".ipynb":
        raise InvalidArgumentError(
            f"{path!r} has no name before .ipynb; give the notebook a name such as "
            "'analysis.ipynb'."
        )
    suffix = pure.suffix
    if suffix.lower() == ".ipynb":
        return path
    if suffix == "":
        return f"{path}.ipynb"
    raise InvalidArgumentError(
        f"export_notebook writes a Jupyter notebook, so the path must end with .ipynb; got "
        f"{path!r}. Try {str(PurePosixPath(path).with_suffix('.ipynb'))!r}."
    )


def _cell(record: CellRecord, outputs: list[dict[str, Any]]) -> Any:
    cell = _nbformat().v4.new_code_cell(
        source=record.code,
        execution_count=record.execution_count,
        metadata={"python_mcp_server": {"status": record.status}},
    )
    cell.outputs = [_nbformat().from_dict(copy.deepcopy(o)) for o in outputs]  # validated later
    return cell


def _mark(replaced: KernelReplaced) -> Any:
    """A kernel replacement, as a markdown cell between the cells of the two kernels."""
    return _nbformat().v4.new_markdown_cell(
        source=f"*{replaced.text()}*",
        metadata={
            "python_mcp_server": {
                "kernel_restarted": {"at": iso(replaced.at), "reason": replaced.why}
            }
        },
    )


def _valid(nb: Any) -> bool:
    try:
        _nbformat().validate(nb)
    except _nbformat().ValidationError:
        return False
    return True


def build_notebook(
    history: Sequence[HistoryEntry], environment: dict[str, Any] | None = None
) -> tuple[Any, int]:
    """A validated nbformat v4 notebook of `history` (cells, and a markdown cell wherever the
    kernel was replaced), and the number of outputs left out; `environment` (the session's,
    with its lock) goes into the metadata."""
    nb = _nbformat().v4.new_notebook()
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    version = (environment or {}).get("python_version")
    nb.metadata["language_info"] = {
        "name": "python",
        "version": version or ".".join(map(str, sys.version_info[:3])),
    }
    if environment is not None:
        nb.metadata["python_mcp_server"] = {"environment": environment}
    nb.cells = [_cell(r, r.outputs) if isinstance(r, CellRecord) else _mark(r) for r in history]
    if _valid(nb):
        return nb, 0
    dropped = 0
    probe = _nbformat().v4.new_notebook()
    cells = []
    for record in history:
        if not isinstance(record, CellRecord):
            cells.append(_mark(record))
            continue
        kept = []
        for output in record.outputs:
            probe.cells = [_cell(record, [output])]
            if _valid(probe):
                kept.append(output)
            else:
                dropped += 1
        cells.append(_cell(record, kept))
    nb.cells = cells
    _nbformat().validate(nb)
    return nb, dropped


class NotebookService:
    def __init__(
        self, config: ServerConfig, sessions: SessionManager, workspace: WorkspaceFiles
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._workspace = workspace

    async def export(self, session_id: str, path: str, overwrite: bool = True) -> NotebookExport:
        """Write the session's executed cells to `path` inside the workspace."""
        session = self._sessions.get(session_id)
        target = notebook_path(path)
        history = session.history.entries
        count = sum(isinstance(e, CellRecord) for e in history)
        restarts = len(history) - count
        described = await self._sessions.environments.describe(
            session_id, session.environment, session.python, with_lock=True
        )
        environment = described.model_dump(mode="json", exclude={"session_id"})

        def build() -> tuple[bytes, int]:
            nb, dropped = build_notebook(history, environment)
            return _nbformat().writes(nb, version=4).encode(), dropped

        data, dropped = await anyio.to_thread.run_sync(build)
        written = await self._workspace.write_all(target, data, overwrite)
        note = f" {dropped} output(s) were not valid nbformat and were left out." if dropped else ""
        if session.history.dropped:
            note += (
                f" The {session.history.dropped} oldest cell(s) were no longer kept and are not "
                "in the notebook."
            )
        if restarts:
            note += (
                f" A markdown cell marks each of the {restarts} kernel restart(s) between them: "
                "the cells after one ran in a new kernel."
            )
        empty = " The session has run no cells yet, so the notebook is empty." if not count else ""
        return NotebookExport(
            session_id=session_id,
            path=written.path,
            uri=written.uri,
            cells=count,
            bytes_written=written.bytes_written,
            dropped_outputs=dropped,
            message=f"Wrote {count} cell(s) of session {session_id!r} to {written.path}."
            + note
            + empty,
        )
