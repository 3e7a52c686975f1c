"""The Jupyter wire protocol on a handle's sockets, without jupyter_client's per-message extras.

jupyter_client's `Session` still owns the key and the session id; this module signs, sends,
receives and verifies with them. It skips what the server never reads: date parsing of every
header (`dateutil`), protocol adaptation (kernels speak 5.x) and message copies. About 25 µs
less per message, and a cell is at least four messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections import deque
from datetime import UTC, datetime
from typing import Any

from jupyter_client.session import Session

DELIMITER = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.3"
# signatures remembered to refuse a replayed message (jupyter_client keeps 65536, ~10 MB per kernel
# once full; the sockets are private to this server, so the recent ones are enough)
_REPLAY_WINDOW = 1 << 12


class WireError(ValueError):
    """A message that is malformed or not signed with this kernel's key."""


class Wire:
    """Builds and reads signed messages for one kernel connection."""

    def __init__(self, session: Session) -> None:
        self._key = bytes(session.key or b"")
        scheme = str(session.signature_scheme)
        name = scheme.split("-", 1)[1]
        if self._key and name not in hashlib.algorithms_available:
            raise ValueError(f"unknown signature scheme {scheme!r}")
        self._digest = name if self._key else None
        self._session = str(session.session)
        self._username = str(session.username)
        self._prefix = f"{self._session[:8]}-{os.getpid()}-"
        self._count = 0
        self._seen: set[bytes] = set()
        self._seen_order: deque[bytes] = deque()

    def _sign(self, parts: list[bytes]) -> bytes:
        if self._digest is None:
            return b""
        # one call into OpenSSL over the joined frames: the same digest as updating part by part
        return hmac.digest(self._key, b"".join(parts), self._digest).hex().encode()

    def request(
        self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any] | None = None
    ) -> tuple[str, list[bytes]]:
        """A new request's id and its frames, ready for `send_multipart` on shell or control."""
        self._count += 1
        msg_id = f"{self._prefix}{self._count}"
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": self._username,
            "session": self._session,
            "date": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "version": PROTOCOL_VERSION,
        }
        parts = [
            _dumps(header),
            b"{}",
            _dumps(metadata or {}),
            _dumps(content),
        ]
        return msg_id, [DELIMITER, self._sign(parts), *parts]

    def parse(self, frames: list[bytes]) -> dict[str, Any]:
        """A received message as a dict (header, parent_header, metadata, content, buffers)."""
        try:
            start = frames.index(DELIMITER) + 1
        except ValueError:
            raise WireError("message without the <IDS|MSG> delimiter") from None
        if len(frames) - start < 5:
            raise WireError(f"message with {len(frames) - start} frames, expected at least 5")
        signature, *parts = frames[start : start + 5]
        if self._digest is not None:
            if not signature:
                raise WireError("unsigned message")
            if not hmac.compare_digest(signature, self._sign(parts)):
                raise WireError("message with an invalid signature")
            self._remember(signature)
        header, parent, metadata, content = (_loads(part) for part in parts)
        return {
            "header": header,
            "msg_id": header.get("msg_id"),
            "msg_type": header.get("msg_type"),
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "buffers": frames[start + 5 :],
        }

    def _remember(self, signature: bytes) -> None:
        if signature in self._seen:
            raise WireError("replayed message (its signature was seen before)")
        self._seen.add(signature)
        self._seen_order.append(signature)
        if len(self._seen_order) > _REPLAY_WINDOW:
            self._seen.discard(self._seen_order.popleft())


def _dumps(value: dict[str, Any]) -> bytes:
    # ASCII escapes keep a lone surrogate in user code from failing the encode
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


_decode = json.JSONDecoder().decode


def _loads(part: bytes) -> Any:
    """JSON from a frame. A frame that is not UTF-8 (jupyter_client packs U+DC80-U+DCFF as raw
    bytes) is read with U+FFFD for the bad bytes rather than dropped with all it carries."""
    if part == b"{}":  # most metadata frames: no decoder call
        return {}
    try:
        text = part.decode()
    except UnicodeDecodeError:
        text = part.decode("utf-8", "replace")
    return _decode(text)
