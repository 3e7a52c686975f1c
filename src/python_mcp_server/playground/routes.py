"""Serving the playground's files: the page at `/`, its assets under `/playground/`.

The set of files is fixed when the package is built, so a request names one of them or gets a
404: no user path reaches the filesystem. Each file is read once, and gzipped once for clients
that accept it (the editor bundle shrinks to about a third). Every answer carries a Content
Security Policy that lets the page load only its own scripts and styles and talk only to its own
origin, so nothing it shows (a cell's output, a file name) can run as script. The one exception
is for the editor, which writes its styles into `<style>` elements: the page is sent with a fresh
nonce for them each time, and only elements carrying it apply.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import secrets
from dataclasses import dataclass
from functools import cache
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

PAGE_PATH: Final = "/"
ASSET_PREFIX: Final = "/playground/"
_PAGE_FILE: Final = "index.html"
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_NONCE_MARK: Final = b"__STYLE_NONCE__"
_HEADERS: Final = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    # the page changes with the package: check each time, reuse while the ETag matches
    "cache-control": "no-cache",
}
_GZIP_MIN_BYTES: Final = 1024


def content_security_policy(style_nonce: str | None = None) -> str:
    """The policy of every playground answer: scripts, styles, images and calls from this
    origin only; styles also from `<style>` elements carrying `style_nonce`."""
    styles = "'self'" + (f" 'nonce-{style_nonce}'" if style_nonce else "")
    return (
        f"default-src 'none'; script-src 'self'; style-src {styles}; img-src 'self' data: blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True)
class _Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


@cache
def _assets() -> dict[str, _Asset]:
    """Every file of the page by its URL path, read from the installed package."""
    assets: dict[str, _Asset] = {}
    static = importlib.resources.files(__package__ or "python_mcp_server.playground") / "static"
    for entry in static.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        packed = gzip.compress(body, 9, mtime=0) if len(body) >= _GZIP_MIN_BYTES else None
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        url = PAGE_PATH if entry.name == _PAGE_FILE else ASSET_PREFIX + entry.name
        assets[url] = _Asset(body, packed, _TYPES[suffix], etag)
    return assets


def asset_paths() -> frozenset[str]:
    """The URL paths the playground serves: the page and each of its files."""
    return frozenset(_assets())


def _accepts_gzip(request: Request) -> bool:
    """Whether the client takes gzip (named, and not with `q=0`)."""
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, *params = (p.strip().lower() for p in part.split(";"))
        if coding == "gzip":
            return not any(
                p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params
            )
    return False


async def serve_asset(request: Request) -> Response:
    """The playground file at the request's path (GET and HEAD), gzipped when accepted."""
    path = request.scope["path"]
    asset = _assets().get(path)
    if asset is None:
        return Response("Not found: the playground has no such file.", 404, media_type="text/plain")
    if path == PAGE_PATH:
        nonce = secrets.token_urlsafe(18)
        page = asset.body.replace(_NONCE_MARK, nonce.encode())
        headers = {**_HEADERS, "content-security-policy": content_security_policy(nonce)}
        return Response(page, headers=headers, media_type=asset.media_type)
    headers = {
        **_HEADERS,
        "content-security-policy": content_security_policy(),
        "etag": asset.etag,
        "vary": "accept-encoding",
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if asset.gzipped is not None and _accepts_gzip(request):
        headers["content-encoding"] = "gzip"
        return Response(asset.gzipped, headers=headers, media_type=asset.media_type)
    return Response(asset.body, headers=headers, media_type=asset.media_type)
