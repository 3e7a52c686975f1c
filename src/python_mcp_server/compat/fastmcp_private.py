"""FastMCP internals we use, each with what it replaces and why.

FastMCP's only public stdio runner, `FastMCP.run_stdio_async`, always serves through the SDK's
`stdio_server`, which a desktop client can stop answering (see `middleware/stdio_transport.py`).
To run FastMCP's server on our own transport we do what `run_stdio_async` does
(`fastmcp/server/mixins/transport.py`) with our streams: mark the transport as stdio, enter the
server's lifespan, and run its low-level server. `tests/test_compat.py` checks each name below.
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from typing import Any, SupportsFloat

import fastmcp
import fastmcp.server.low_level as fastmcp_low_level
import fastmcp.server.providers.aggregate as fastmcp_aggregate
import fastmcp.server.server as fastmcp_server
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from fastmcp.server.low_level import LowLevelServer
from fastmcp.server.server import StateValue
from fastmcp.utilities.json_schema import dereference_refs
from opentelemetry.trace import INVALID_SPAN


def runs_on_our_stdio(mcp: FastMCP[Any]) -> bool:
    """Whether `mcp` has the internals `lifespan` and `low_level_server` reach for; without them
    the server falls back to FastMCP's own stdio runner."""
    return hasattr(mcp, "_lifespan_manager") and hasattr(mcp, "_mcp_server")


def lifespan(mcp: FastMCP[Any]) -> AbstractAsyncContextManager[None]:
    """The server's lifespan, entered as `run_stdio_async` enters it.

    Replaces `FastMCP._lifespan_manager()`: FastMCP enters it only inside its own runners and
    `http_app`'s lifespan; no public call opens it around other streams.
    """
    return mcp._lifespan_manager()


def low_level_server(mcp: FastMCP[Any]) -> LowLevelServer[Any]:
    """The SDK server FastMCP builds; its public `run(read, write, options)` serves any streams.

    Replaces `FastMCP._mcp_server`: FastMCP exposes no public handle on it.
    """
    return mcp._mcp_server


@contextmanager
def stdio_transport() -> Iterator[None]:
    """While inside, `Context.transport` reads "stdio", as under `run_stdio_async`.

    Replaces `fastmcp.server.context.set_transport` / `reset_transport`: helpers FastMCP's runners
    call that are not in its documented API. `runtime.caller_key` needs the transport to know a
    stdio client is one caller.
    """
    token = set_transport("stdio")
    try:
        yield
    finally:
        reset_transport(token)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$ref`s replaced by their `$defs`, as FastMCP sends schemas to clients.

    Replaces `fastmcp.utilities.json_schema.dereference_refs`, an internal FastMCP applies on
    every tools/list; inlining once when a tool is defined makes tools/list about 2x faster and
    sends the same schema. The schemas of our results (pydantic's: refs to `#/$defs/...` only,
    no cycles) are inlined here as FastMCP inlines them; any other goes to FastMCP's function,
    whose jsonref import (with requests) costs every start about 50 ms.
    """
    defs = schema.get("$defs", {})
    try:
        inlined = _inlined(schema, defs, frozenset())
    except _NotPlain:
        return dereference_refs(schema)
    return {k: v for k, v in inlined.items() if k != "$defs"}


class _NotPlain(Exception):
    """A schema `_inlined` leaves to FastMCP: a cycle, a ref elsewhere, a discriminator."""


def _inlined(node: Any, defs: dict[str, Any], seen: frozenset[str]) -> Any:
    """`node` with each `{"$ref": "#/$defs/X", ...siblings}` replaced by a copy of X (its own
    refs inlined) updated with the siblings, as FastMCP's `dereference_refs` does."""
    if isinstance(node, list):
        return [_inlined(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "discriminator" in node:
        raise _NotPlain
    ref = node.get("$ref")
    if ref is None:
        return {k: _inlined(v, defs, seen) for k, v in node.items()}
    name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else ""
    if not name or name == ref or "/" in name or "~" in name or name in seen:
        raise _NotPlain
    target = _inlined(defs.get(name), defs, seen | {name})
    if not isinstance(target, dict):
        raise _NotPlain
    siblings = {k: json.loads(json.dumps(v)) for k, v in node.items() if k not in ("$ref", "$defs")}
    return {**target, **siblings}


class SessionState:
    """FastMCP's session-state store, in this process's memory, as FastMCP's default keeps it.

    FastMCP builds its default store (`key_value`'s `PydanticAdapter` over a `MemoryStore`) on
    first use, and every `tools/call` uses it (to read the session's visibility rules): importing
    `key_value` and the `beartype` checks it applies cost the first call about 0.15 s, more
    than the cell. This store keeps the same contract (`get`, `put` with a TTL, `delete`; values
    are `StateValue`s stored as their JSON form, so a value that cannot be serialised fails on
    `put` as before and a value read back is a copy) without that import.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str | None, str], tuple[str, float | None]] = {}

    async def get(
        self, key: str, *, collection: str | None = None, default: StateValue | None = None
    ) -> StateValue | None:
        item = self._items.get((collection, key))
        if item is None:
            return default
        data, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._items[(collection, key)]
            return default
        return StateValue.model_validate_json(data)

    async def put(
        self,
        key: str,
        value: StateValue,
        *,
        collection: str | None = None,
        ttl: SupportsFloat | None = None,
    ) -> None:
        data = value.model_dump_json()
        now = time.monotonic()
        self._items = {k: v for k, v in self._items.items() if v[1] is None or v[1] > now}
        expires = now + float(ttl) if ttl is not None else None
        self._items[(collection, key)] = (data, expires)

    async def delete(self, key: str, *, collection: str | None = None) -> bool:
        return self._items.pop((collection, key), None) is not None


def keep_session_state_in_memory(mcp: FastMCP[Any]) -> None:
    """Give `mcp` a `SessionState` as its session-state store, unless it was given one.

    Replaces `FastMCP._state_store`'s lazily built default (the name-mangled
    `_FastMCP__state_store`): FastMCP's public `session_state_store=` takes a `key_value`
    store, which it wraps in the `PydanticAdapter` whose import is the cost avoided here.
    """
    attribute = "_FastMCP__state_store"
    if mcp._state_storage is None and getattr(mcp, attribute, None) is None:
        setattr(mcp, attribute, SessionState())


_NO_SPAN = nullcontext(INVALID_SPAN)


def spans_skipped_when_off() -> None:
    """With `fastmcp.settings.telemetry_mode` "off", FastMCP's per-request span helpers cost no
    more than a check: about 0.1 ms of CPU per tool call less.

    Replaces the names `server_span` in `fastmcp.server.server` and `seam_span` in
    `fastmcp.server.low_level`, which those modules call on every request. In "off" mode they
    still build each span's attributes (protocol, auth, session) before handing them to a tracer
    that drops them; the replacements return a no-op context with the invalid span, which is what
    that tracer yields. Any other mode goes to FastMCP's own helper. Idempotent.
    """
    for module, name in ((fastmcp_server, "server_span"), (fastmcp_low_level, "seam_span")):
        current = getattr(module, name)
        if getattr(current, "_skips_when_off", False):
            continue
        setattr(module, name, _skipping_when_off(current))


def _skipping_when_off(span_helper: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(span_helper)
    def helper(*args: Any, **kwargs: Any) -> Any:
        if fastmcp.settings.telemetry_mode == "off":
            return _NO_SPAN
        return span_helper(*args, **kwargs)

    helper._skips_when_off = True  # type: ignore[attr-defined]
    return helper


def one_provider_asked_inline() -> None:
    """A lookup that asks a single provider awaits it in place, without a task group and a task:
    about 0.1 ms of CPU per tool call less.

    Replaces the name `gather` in `fastmcp.server.providers.aggregate`, which
    `AggregateProvider` (and so `FastMCP`, one) calls on every tool lookup with one awaitable per
    provider, asking for errors to be returned (`return_exceptions`): ours has one. An error is
    returned in the list, as FastMCP's `gather` does; a cancellation is not swallowed. Two or
    more providers, or a caller that wants errors raised, get FastMCP's own `gather`. Idempotent.
    """
    current = getattr(fastmcp_aggregate, "gather")  # noqa: B009 - not in the module's exports
    if not getattr(current, "_inline_when_one", False):
        setattr(fastmcp_aggregate, "gather", _inline_when_one(current))  # noqa: B010


class _End:
    """No more awaitables."""


_END = _End()


def _inline_when_one(gather: Callable[..., Awaitable[list[Any]]]) -> Callable[..., Any]:
    @functools.wraps(gather)
    async def inline(
        awaitables: Iterable[Awaitable[Any]], *, return_exceptions: bool = False
    ) -> Any:
        pending = iter(awaitables)
        first = next(pending, _END)
        if first is _END:
            return []
        second = next(pending, _END) if return_exceptions else None
        if second is not _END:  # several, or errors raised in FastMCP's way (a group)
            rest = itertools.chain((first,) if second is None else (first, second), pending)
            return await gather(rest, return_exceptions=return_exceptions)
        assert not isinstance(first, _End)
        try:
            return [await first]
        except Exception as exc:  # noqa: BLE001 - returned, as `return_exceptions` asks
            return [exc]

    inline._inline_when_one = True  # type: ignore[attr-defined]
    return inline
