"""Which server session this kernel serves, kept in the kernel itself.

Servers that share a kernel gateway have no database in common: the gateway's kernels are the
shared state. The server that gives a kernel to a session publishes the session's description
here; any server can read it back (`describe`) to find, list and use that session. `last_used`
moves whenever the kernel runs a cell for any server, so a server only expires a session that
no server has used.
"""

from __future__ import annotations

import json
import time
from typing import Any

_meta: dict[str, Any] = {}
_last_used = time.time()


def publish(meta_json: str) -> str:
    """Record the session this kernel serves (a JSON object); returns `describe()`."""
    global _last_used
    meta = json.loads(meta_json)
    if isinstance(meta, dict):
        _meta.clear()
        _meta.update(meta)
        _last_used = time.time()
    return describe()


def mark_used() -> None:
    global _last_used
    _last_used = time.time()


def describe() -> str:
    """The published session as JSON (`null` when none was), with `last_used`; a kernel that
    serves no session but a role (`{"role": "workspace"}`) says that."""
    if not _meta:
        return "null"
    return json.dumps({**_meta, "last_used": _last_used})
