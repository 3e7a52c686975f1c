"""The little HTTP/1.x the egress proxy speaks: parsing a request or response head, and replies.

Pure functions over bytes. The parser is strict on purpose, since whatever it lets through reaches
an upstream server that may read the bytes differently: one request line of three parts, CRLF line
ends only, no folded headers, token header names, no control characters, one Host header, and not
both Content-Length and Transfer-Encoding (the classic request-smuggling pair).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from python_mcp_server.sandbox.allowlist import (
    HostSyntaxError,
    IPAddress,
    parse_host,
    parse_port,
    split_authority,
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)\Z", re.DOTALL)
_VISIBLE = re.compile(r"[\x21-\x7e]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# hop-by-hop headers a proxy must not pass on (RFC 9110 7.6.1), plus the proxy's own
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)
_RESPONSE_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate"})

REASONS = {
    200: "Connection established",
    400: "Bad Request",
    403: "Forbidden",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class BadRequestError(ValueError):
    """A request head the proxy will not interpret; the message goes back in the 400 body."""


@dataclass(frozen=True)
class Target:
    """Where a request asks to go: the host as `parse_host` returns it, its text, and the port."""

    host: str | IPAddress
    host_text: str
    port: int


@dataclass(frozen=True)
class Request:
    """A parsed proxy request: CONNECT (`path` is None) or absolute-form plain HTTP."""

    method: str
    target: Target
    path: str | None
    version: str
    headers: tuple[tuple[str, str], ...]
    host_header: Target | None


def parse_target(authority: str, default_port: int | None) -> Target:
    """`host[:port]` of a CONNECT line, URL or Host header; userinfo (`user@host`) is refused."""
    if "@" in authority:
        raise BadRequestError(f"{authority!r}: user@host authorities are not accepted")
    try:
        host_text, port_text = split_authority(authority)
        if port_text is None and default_port is None:
            raise HostSyntaxError(f"{authority!r} needs a port (CONNECT host:port)")
        port = parse_port(port_text) if port_text is not None else default_port
        assert port is not None
        return Target(parse_host(host_text), host_text, port)
    except HostSyntaxError as exc:
        raise BadRequestError(str(exc)) from None


def _lines(head: bytes) -> list[str]:
    text = head.removesuffix(b"\r\n\r\n").decode("latin-1")
    lines = text.split("\r\n")
    if any("\n" in line or "\r" in line for line in lines):
        raise BadRequestError("bare CR or LF in the head; lines end with CRLF")
    return lines


def parse_headers(lines: list[str]) -> tuple[tuple[str, str], ...]:
    """Header lines as (name, value) pairs, names as sent; strict (see the module docstring)."""
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name):
            raise BadRequestError(f"malformed header line {line[:80]!r}")
        value = value.strip(" \t")
        if _BAD_VALUE.search(value):
            raise BadRequestError(f"control character in header {name!r}")
        headers.append((name, value))
    return tuple(headers)


def _one(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    values = [v for n, v in headers if n.lower() == name]
    if len(values) > 1:
        raise BadRequestError(f"{len(values)} {name} headers; send one")
    return values[0] if values else None


def parse_request(head: bytes) -> Request:
    """Parse a request head (up to and including the blank line).

    Raises:
        BadRequestError: not a CONNECT or absolute-form `http://` request, or malformed.
    """
    lines = _lines(head)
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not _VISIBLE.match(parts[1]):
        raise BadRequestError(f"malformed request line {lines[0][:100]!r}")
    method, target_text, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequestError(f"unsupported version {version[:20]!r}; use HTTP/1.1")
    headers = parse_headers(lines[1:])
    if _one(headers, "content-length") is not None and any(
        n.lower() == "transfer-encoding" for n, _ in headers
    ):
        raise BadRequestError("both Content-Length and Transfer-Encoding; send one")
    host_value = _one(headers, "host")
    if method == "CONNECT":
        return Request(method, parse_target(target_text, None), None, version, headers, None)
    url = _URL.match(target_text)
    if url is None:
        raise BadRequestError("this is a proxy: send CONNECT host:port, or an absolute http:// URL")
    scheme, authority, rest = url.groups()
    if scheme.lower() != "http":
        raise BadRequestError(
            f"{scheme}:// is not proxied; only http:// URLs, and https through CONNECT"
        )
    if "#" in rest or (rest and rest[0] not in "/?"):
        raise BadRequestError(f"malformed path {rest[:100]!r}")
    path = rest if rest.startswith("/") else "/" + rest
    host_header = parse_target(host_value, 80) if host_value is not None else None
    return Request(method, parse_target(authority, 80), path, version, headers, host_header)


def _connection_tokens(headers: tuple[tuple[str, str], ...]) -> set[str]:
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }


def _authority(target: Target) -> str:
    host = f"[{target.host_text}]" if ":" in target.host_text else target.host_text
    return host if target.port == 80 else f"{host}:{target.port}"


def forward_head(request: Request) -> bytes:
    """The head sent upstream: origin-form path, hop-by-hop headers dropped, `Connection: close`
    (one request per connection, so a client cannot reuse it for another host)."""
    assert request.path is not None
    drop = _HOP_BY_HOP | _connection_tokens(request.headers) | {"host"}
    lines = [f"{request.method} {request.path} {request.version}"]
    lines.append(f"Host: {_authority(request.target)}")
    lines += [f"{n}: {v}" for n, v in request.headers if n.lower() not in drop]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response_status(head: bytes) -> int:
    """The status code of a response head. Raises `BadRequestError` if it is not HTTP/1.x."""
    first = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = first.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not re.fullmatch(r"\d{3}", parts[1]):
        raise BadRequestError(f"upstream sent {first[:80]!r}, not an HTTP/1.x status line")
    return int(parts[1])


def rewrite_response_head(head: bytes) -> bytes:
    """A response head with its hop-by-hop headers dropped and `Connection: close` added."""
    lines = _lines(head)
    headers = parse_headers(lines[1:])
    drop = _RESPONSE_HOP | _connection_tokens(headers)
    kept = [f"{n}: {v}" for n, v in headers if n.lower() not in drop]
    return ("\r\n".join([lines[0], *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


def reply(status: int, body: str = "") -> bytes:
    """A complete response from the proxy itself; a body ends with a newline."""
    data = (body + "\n").encode("ascii", "backslashreplace") if body else b""
    head = f"HTTP/1.1 {status} {REASONS[status]}\r\n"
    if status != 200:
        head += (
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n"
        )
    return head.encode("ascii") + b"\r\n" + data
