"""The code that runs inside each kernel, loaded as an IPython extension.

The server loads this package from its directory under the private module name `__pmcp__`
(see `python_mcp_server.services._kernel_ext`), so it works in a kernel whose interpreter cannot
import `python_mcp_server`, and adds no names to the user's namespace. It therefore imports only
the standard library and its own modules (relatively: its package name is not fixed), and treats
the IPython objects it is handed defensively.

- `install(...)`: once per kernel, the changed-file audit hook, the reply-metadata report, safe
  message packing and stream splitting, previews of large images (`images`), interrupts that land only in the user's code, and the
  repair of a sys.stdout / sys.stderr the code broke; in a sandbox with an egress proxy
  (`PYTHON_MCP_SERVER_PROXY_SOCKET` set), the loopback relay to it and `HTTP(S)_PROXY`.
- `drain()`: the changed-file report (JSON) for the cell that just ran.
- `probe(name, args_json, user_ns)`: one of `PROBES` as a JSON string, for silent probes.
- `save_state(folder, limit)`, `load_state(folder)`: variables across a restart, through a
  folder both kernels see; `dump_state`, `state_piece`, `state_add`, `restore_state`: the same
  through the server, in pieces (kernels on a gateway share no folder with it).
- `workspace(op, args_json)`: the workspace's files, for a server on another machine
  (`workspace_files`).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from . import files, images, interrupts, packages, relay, sessions, snapshot, streams, variables

LIMIT = 200
CHUNK = 1 << 19
METADATA_KEY = "python_mcp_server_files"
CELL_KEY = "python_mcp_server_cell"  # {"interrupt": ..., "repaired": [...]} in each execute reply

_tracker: files.ChangeTracker | None = None
_state_out = b""  # the pickled globals on their way out, through the server
_state_in = bytearray()  # ... and on their way in


def _shell() -> Any:
    """The running IPython shell, or None outside IPython."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if get_ipython is not None else None


def _hidden(shell: Any) -> Mapping[str, Any]:
    hidden = getattr(shell, "user_ns_hidden", None)
    return hidden if isinstance(hidden, Mapping) else {}


def _plotlyjs_version() -> str | None:
    plotly = sys.modules.get("plotly.offline")
    if plotly is None:
        return None
    # plotly is the user's package, of any version: whatever it raises must not cost the report
    try:
        return str(plotly.get_plotlyjs_version())
    except Exception:  # noqa: BLE001
        return None


def drain() -> str:
    """The workspace files written since the last drain, as JSON; the list starts again."""
    paths, more = _tracker.take() if _tracker is not None else ([], 0)
    return json.dumps({"files": paths, "plotlyjs": _plotlyjs_version(), "more": more})


def _cell_report(guard: interrupts.Guard | None, repair: streams.Repair) -> dict[str, Any]:
    """What happened around the cell: where an interrupt landed, which streams were repaired."""
    return {"interrupt": guard.report() if guard is not None else None, "repaired": repair.take()}


def _report_in_reply(kernel: Any, metadata_key: str, report: Callable[[], dict[str, Any]]) -> None:
    """Hand the changed-file report and the cell report back in each execute reply's metadata:
    no extra request."""
    finish = getattr(kernel, "finish_metadata", None)
    if finish is None:
        return

    def finish_metadata(parent: Any, metadata: Any, reply_content: Any) -> Any:
        md = finish(parent, metadata, reply_content)
        # this runs while the kernel builds the reply: an exception here would lose the reply
        # to the user's cell, so any failure only costs the report (the server then asks for it)
        try:
            if not parent.get("content", {}).get("silent"):
                sessions.mark_used()
                md[metadata_key] = drain()
                md[CELL_KEY] = report()
        except Exception:  # noqa: BLE001, S110
            pass
        return md

    kernel.finish_metadata = finish_metadata


def install(
    limit: int = LIMIT,
    chunk: int = CHUNK,
    metadata_key: str = METADATA_KEY,
    shell: Any = None,
    layout: tuple[str, ...] = (),
    preview_side: int = 0,
    preview_bytes: int = 0,
) -> None:
    """Install the kernel-side hooks into `shell` (default: the running one); once per process.
    The `layout` folders are made in the workspace when missing (a server elsewhere cannot).
    With `preview_side`, an image larger than `preview_side` pixels or `preview_bytes` bytes
    gets its preview made here (`images`)."""
    global _tracker  # one tracker per kernel process, as audit hooks cannot be removed
    root = files.workspace_root()
    for name in layout:
        os.makedirs(os.path.join(root, name), exist_ok=True)
    if _tracker is not None:
        return
    tracker = _tracker = files.ChangeTracker(root, limit)
    sys.addaudithook(tracker.hook)
    shell = shell if shell is not None else _shell()
    repair = streams.Repair(sys.stdout, sys.stderr)
    if shell is not None:
        shell.events.register("pre_run_cell", lambda *_: tracker.clear())
        # after every cell, before ipykernel flushes the streams and sends the reply
        shell.events.register("post_execute", repair.check)
        guard = interrupts.install(shell, before_request=repair.check)
        report = functools.partial(_cell_report, guard, repair)
        _report_in_reply(getattr(shell, "kernel", None), metadata_key, report)
        images.install(shell, preview_side, preview_bytes)
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")
    relay.install_from_env(os.environ)
    streams.install(shell, chunk)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext` entry point: install into `ipython` with the default settings."""
    install(shell=ipython)


PROBES: dict[str, Callable[[Mapping[str, Any], Any], Any]] = {
    "variables": lambda ns, args: variables.summarise(
        ns, _hidden(_shell()), args["limit"], args["width"]
    ),
    "versions": lambda ns, args: packages.versions(),
    "refresh": lambda ns, args: packages.refresh(args),
    "install": lambda ns, args: packages.install(args),
}


def probe(name: str, args_json: str, user_ns: Mapping[str, Any]) -> str:
    """Run the probe `name` with JSON arguments over the user's namespace; its value as JSON."""
    result = PROBES[name](user_ns, json.loads(args_json))
    return json.dumps(result, ensure_ascii=True, default=str)


def save_state(folder: str, limit: int) -> None:
    """Pickle the user's globals into `folder` (see `snapshot.save`)."""
    shell = _shell()
    snapshot.save(shell.user_ns, _hidden(shell), folder, limit)


def load_state(folder: str) -> None:
    """Restore the globals saved in `folder` into the user's namespace."""
    snapshot.load(_shell().user_ns, folder)


def dump_state(limit: int) -> str:
    """Pickle the user's globals into memory, for the server to fetch with `state_piece`: JSON
    with the names saved, the names dropped (and why) and the size in bytes."""
    global _state_out
    shell = _shell()
    _state_out, saved, dropped = snapshot.dump(shell.user_ns, _hidden(shell), limit)
    return json.dumps({"saved": saved, "dropped": dropped, "size": len(_state_out)})


def state_piece(offset: int, size: int) -> str:
    """`size` bytes of the pickled globals from `offset`, base64; the last piece frees them."""
    global _state_out
    piece = _state_out[offset : offset + size]
    if offset + size >= len(_state_out):
        _state_out = b""
    return base64.b64encode(piece).decode()


def state_add(piece: str) -> int:
    """Add a base64 piece of the pickled globals on their way in; their size so far."""
    _state_in.extend(base64.b64decode(piece))
    return len(_state_in)


def restore_state() -> str:
    """Unpickle what `state_add` received into the user's namespace: JSON with the names
    restored and the names dropped (and why)."""
    blob = bytes(_state_in)
    _state_in.clear()
    restored, dropped = snapshot.restore(_shell().user_ns, blob)
    return json.dumps({"restored": restored, "dropped": dropped})


def workspace(op: str, args_json: str) -> str:
    """A workspace file operation (`workspace_files.OPS`) as JSON. Imported on first use: only
    the kernel that serves the workspace to a server elsewhere needs it."""
    from . import workspace_files

    return workspace_files.call(op, args_json)
