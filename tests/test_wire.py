"""The lean wire codec agrees with jupyter_client's Session both ways and refuses what it should."""

from __future__ import annotations

import pytest
from jupyter_client.session import Session

from python_mcp_server.kernels.wire import DELIMITER, Wire, WireError


def pair() -> tuple[Session, Wire]:
    session = Session(key=b"a-shared-secret", signature_scheme="hmac-sha256")
    return session, Wire(session)


def test_reads_what_jupyter_client_sends() -> None:
    session, wire = pair()
    request = session.msg("execute_request", {"code": "x = 1"})
    reply = session.msg("execute_reply", {"status": "ok", "é": "ü"}, parent=request["header"])
    frames = session.serialize(reply, ident=[b"routing-id"])
    msg = wire.parse(frames)
    assert msg["msg_type"] == "execute_reply"
    assert msg["parent_header"]["msg_id"] == request["header"]["msg_id"]
    assert msg["content"] == {"status": "ok", "é": "ü"}


def test_reads_a_message_whose_text_is_not_utf8_instead_of_dropping_it() -> None:
    # jupyter_client packs U+DC80-U+DCFF (undecodable file names) as raw bytes
    session, wire = pair()
    stream = session.msg("stream", {"name": "stdout", "text": "before caf\udce9 after"})
    msg = wire.parse(session.serialize(stream))
    assert msg["content"]["text"] == "before caf\ufffd after"


def test_jupyter_client_reads_what_it_sends() -> None:
    session, wire = pair()
    msg_id, frames = wire.request("execute_request", {"code": "print('\ud800 lone surrogate')"})
    _, signed = session.feed_identities(frames)
    msg = session.deserialize(signed)
    assert msg["header"]["msg_id"] == msg_id
    assert msg["header"]["session"] == session.session
    assert msg["content"]["code"] == "print('\ud800 lone surrogate')"
    second_id, _ = wire.request("kernel_info_request", {})
    assert second_id != msg_id


def test_refuses_a_tampered_message() -> None:
    session, wire = pair()
    frames = session.serialize(session.msg("status", {"execution_state": "idle"}))
    at = frames.index(DELIMITER)
    frames[at + 5] = b'{"execution_state": "busy"}'
    with pytest.raises(WireError, match="invalid signature"):
        wire.parse(frames)


def test_refuses_unsigned_replayed_and_malformed_messages() -> None:
    session, wire = pair()
    frames = session.serialize(session.msg("status", {"execution_state": "idle"}))
    wire.parse(list(frames))
    with pytest.raises(WireError, match="replayed"):
        wire.parse(list(frames))
    unsigned = list(frames)
    unsigned[unsigned.index(DELIMITER) + 1] = b""
    with pytest.raises(WireError, match="unsigned"):
        wire.parse(unsigned)
    with pytest.raises(WireError, match="delimiter"):
        wire.parse(frames[frames.index(DELIMITER) + 1 :])
    with pytest.raises(WireError, match="frames"):
        wire.parse(frames[:3])
