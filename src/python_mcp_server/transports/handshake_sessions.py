"""`HandshakeSessions`: the table of 2025-11-25 sessions stays small, and a newcomer still gets in.

On the handshake protocol era (2025-11-25 and before) each `initialize` opens a session that the
MCP SDK keeps (a transport, a server task and its streams, some tens of KB) until the client ends
it or it has been idle for 30 minutes; once 10,000 are open the SDK refuses every new one with a
bare 503. Without a token anyone may initialize, so a burst of `initialize` calls locked every new
client out for half an hour and grew the server by hundreds of MB. This wrapper on the MCP
endpoint keeps the table at `max_sessions`:

- a session that made no call (a request other than a notification) within `unused_timeout_s` of
  its `initialize` is ended;
- when the table is full, an `initialize` makes room by ending one session: the oldest that never
  made a call, else the one idle longest; never one that has a request being served (a running
  cell, say);
- only when every session is serving a request does an `initialize` get a 503, which says so.

A session is ended the way a client ends it, with a DELETE on the endpoint carrying its id; its
client gets 404 on its next request, which tells it to initialize again. Stateless (2026-07-28)
requests have no session and pass straight through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from python_mcp_server.middleware._responses import send_json
from python_mcp_server.middleware.body_limit import INVALID_REQUEST, replay
from python_mcp_server.transports.plain_json import handshake_era, header, method_of, read_body

logger = logging.getLogger(__name__)

SESSION_HEADER: Final = b"mcp-session-id"
_LOG_EVERY_S: Final = 10.0
_EMPTY_BODY: Final[Message] = {"type": "http.request", "body": b"", "more_body": False}


def full_message(max_sessions: int) -> str:
    return (
        f"The server holds its limit of {max_sessions} MCP sessions (protocol 2025-11-25) and "
        "every one is serving a request. Retry in a moment, end sessions you no longer need "
        "(DELETE with their Mcp-Session-Id), or use protocol 2026-07-28, which needs no session."
    )


@dataclass
class _Session:
    opened: float
    last_active: float
    user: Any  # the opening request's authenticated user, which the SDK checks on every request
    called: bool = False
    serving: int = 0  # POST requests being served
    timer: asyncio.TimerHandle | None = None


class HandshakeSessions:
    """Wraps the MCP endpoint (FastMCP's streamable-HTTP app, or what wraps it)."""

    def __init__(self, app: ASGIApp, *, max_sessions: int, unused_timeout_s: float) -> None:
        self.app = app
        self.max_sessions = max_sessions
        self.unused_timeout_s = unused_timeout_s
        self._sessions: dict[str, _Session] = {}
        self._opening = 0  # initialize requests admitted whose session is not recorded yet
        self._endings: set[asyncio.Task[None]] = set()
        self.ended_unused = 0
        self.ended_for_room = 0
        self.refused = 0
        self._logged = 0.0

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not handshake_era(scope):
            await self.app(scope, receive, send)
            return
        raw_id = header(scope, SESSION_HEADER)
        if raw_id is None:
            if scope.get("method") == "POST":
                await self._maybe_open(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        session_id = raw_id.decode("latin-1")
        session = self._sessions.get(session_id)
        if session is None:  # unknown or ended: the SDK answers 404
            await self.app(scope, receive, send)
            return
        await self._serve(session_id, session, scope, receive, send)

    # ------------------------------------------------------------ opening

    async def _maybe_open(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            return
        receive = replay(body, receive)
        if b'"initialize"' not in body or method_of(body) != "initialize":
            await self.app(scope, receive, send)
            return
        victim: tuple[str, _Session] | None = None
        if len(self._sessions) + self._opening >= self.max_sessions:
            victim = self._idlest()
            if victim is None:
                self.refused += 1
                self._note("refusing initialize: all %d sessions are serving", self.max_sessions)
                error = {"code": INVALID_REQUEST, "message": full_message(self.max_sessions)}
                payload = {"jsonrpc": "2.0", "id": None, "error": error}
                await send_json(send, 503, payload, ((b"retry-after", b"1"),))
                return
            self._forget(*victim)
            self.ended_for_room += 1
            self._note("at the limit of %d sessions: ending idle ones", self.max_sessions)
        # the check, the victim's removal and this reservation happen with no await between
        self._opening += 1
        reserved = True
        user = scope.get("user")

        async def watch(message: Message) -> None:
            nonlocal reserved
            if message["type"] == "http.response.start" and reserved:
                reserved = False
                self._opening -= 1
                opened = _response_header(message, SESSION_HEADER)
                if message["status"] < 400 and opened is not None:
                    self._record(opened.decode("latin-1"), user)
            await send(message)

        try:
            if victim is not None:
                await self._end(*victim)
            await self.app(scope, receive, watch)
        finally:
            if reserved:
                self._opening -= 1

    def _record(self, session_id: str, user: Any) -> None:
        now = time.monotonic()
        session = _Session(opened=now, last_active=now, user=user)
        self._sessions[session_id] = session
        self._arm(session_id, session, self.unused_timeout_s)

    # ------------------------------------------------------------ serving

    async def _serve(
        self, session_id: str, session: _Session, scope: Scope, receive: Receive, send: Send
    ) -> None:
        method = scope.get("method")
        post = method == "POST"
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if post and status == 200:  # a request answered (a notification gets 202)
                    session.called = True
            await send(message)

        session.last_active = time.monotonic()
        if post:
            session.serving += 1
        try:
            await self.app(scope, receive, watch)
        finally:
            if post:
                session.serving -= 1
            session.last_active = time.monotonic()
        if status == 404 or (method == "DELETE" and status < 300):
            self._forget(session_id, session)

    # ------------------------------------------------------------ ending

    def _arm(self, session_id: str, session: _Session, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        session.timer = loop.call_later(delay_s, self._check_unused, session_id, session)

    def _check_unused(self, session_id: str, session: _Session) -> None:
        session.timer = None
        if self._sessions.get(session_id) is not session or session.called:
            return
        if session.serving:  # a first call still being served: look again later
            self._arm(session_id, session, self.unused_timeout_s)
            return
        self._forget(session_id, session)
        self.ended_unused += 1
        logger.debug("MCP session %s made no call: ended", session_id[:16])
        task = asyncio.get_running_loop().create_task(self._end(session_id, session))
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    def _idlest(self) -> tuple[str, _Session] | None:
        """The session to end for room: the oldest that made no call, else the longest idle;
        None when every session is serving a request."""
        unused: tuple[str, _Session] | None = None
        idle: tuple[str, _Session] | None = None
        for session_id, session in self._sessions.items():
            if session.serving:
                continue
            if not session.called:
                if unused is None or session.opened < unused[1].opened:
                    unused = (session_id, session)
            elif idle is None or session.last_active < idle[1].last_active:
                idle = (session_id, session)
        return unused or idle

    def _forget(self, session_id: str, session: _Session) -> None:
        if self._sessions.get(session_id) is session:
            del self._sessions[session_id]
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None

    async def _end(self, session_id: str, session: _Session) -> None:
        """End the session in the SDK as its client would: DELETE with its id."""
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "DELETE",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "root_path": "",
            "headers": [(SESSION_HEADER, session_id.encode("latin-1"))],
            "client": None,
            "server": None,
            "state": {},
        }
        if session.user is not None:
            scope["user"] = session.user
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return _EMPTY_BODY

        async def discard(message: Message) -> None:
            pass

        try:
            await self.app(scope, receive, discard)
        except Exception:  # a background end: the server may be stopping; nothing to answer
            logger.debug("ending MCP session %s failed", session_id[:16], exc_info=True)

    def _note(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._logged >= _LOG_EVERY_S:
            self._logged = now
            logger.warning(
                message + " (so far: %d ended unused, %d ended for room, %d refused)",
                *args,
                self.ended_unused,
                self.ended_for_room,
                self.refused,
            )


def _response_header(message: Message, name: bytes) -> bytes | None:
    for key, value in message.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None
