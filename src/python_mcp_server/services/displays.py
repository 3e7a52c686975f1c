"""Rich display data of one cell -> images with inline previews, plotly pages, bounded text.

Runs after the cell, in a worker thread (Pillow and file writes), over the display outputs the
`OutputCollector` kept. Everything it writes goes to the session's output folder.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import OutputNotKeptError
from python_mcp_server.kernels.messages import DisplayOutput
from python_mcp_server.services.artifacts import ArtifactStore
from python_mcp_server.services.models import DisplayInfo, ImageInfo

logger = logging.getLogger(__name__)

PLOTLY_MIME = "application/vnd.plotly.v1+json"
RASTER_MIMES = ("image/png", "image/jpeg", "image/gif", "image/webp")
TEXT_MIMES = {
    "text/markdown": ".md",
    "text/html": ".html",
    "text/latex": ".tex",
    "application/json": ".json",
    "text/plain": ".txt",
}
MAX_INLINE_IMAGES = 8
_SVG = "image/svg+xml"
KERNEL_PREVIEW_MAX_CHARS = 16_000_000  # base64 of a kernel-made preview; a larger one is ignored
DEFAULT_PLOTLYJS = "3.0.1"

_PLOTLY_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<script src="https://cdn.plot.ly/plotly-{version}.min.js" charset="utf-8"></script></head>
<body style="margin:0"><div id="plot" style="width:100vw;height:100vh"></div>
<script>
const fig = {figure};
Plotly.newPlot("plot", fig.data || [], fig.layout || {{}},
               Object.assign({{responsive: true}}, fig.config || {{}}));
</script></body></html>
"""


@dataclass(frozen=True)
class Preview:
    data: bytes
    mime_type: str
    width: int
    height: int


def make_preview(raw: bytes, max_side: int, max_bytes: int) -> tuple[Preview, tuple[int, int]]:
    """A version of the image within `max_side` pixels and about `max_bytes`, and the original
    size. Tries, in order: the image as it is, PNG, a 256-colour PNG, JPEG at falling quality,
    then each again at half the size.

    A large image is decoded once and at once reduced (a box filter by a whole factor, or a
    JPEG's draft mode) before anything else, so at most one full-size copy is held, briefly."""
    with Image.open(io.BytesIO(raw)) as img:
        size = img.size
        fmt = (img.format or "").upper()
        if max(size) <= max_side and len(raw) <= max_bytes and fmt in ("PNG", "JPEG"):
            img.load()
            return Preview(raw, f"image/{fmt.lower()}", *size), size
        if fmt == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img.load()
        factor = max(1, max(img.size) // max_side)
        work = img.reduce(factor) if factor > 1 else img.copy()
    if work.mode not in ("RGB", "RGBA"):
        work = work.convert("RGBA")
    side = max_side
    for _ in range(6):
        scaled = work.copy()
        scaled.thumbnail((side, side), Image.Resampling.LANCZOS)
        for encoded, mime in _encodings(scaled):
            if len(encoded) <= max_bytes:
                return Preview(encoded, mime, *scaled.size), size
        side //= 2
    return Preview(encoded, mime, *scaled.size), size


def image_size(raw: bytes) -> tuple[int, int]:
    """An image's width and height from its header, without decoding its pixels."""
    with Image.open(io.BytesIO(raw)) as img:
        return img.size


def _encodings(img: Image.Image) -> Iterator[tuple[bytes, str]]:
    """Candidate encodings of `img`, best looking first (a generator: stops when one fits)."""
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    yield buf.getvalue(), "image/png"
    buf = io.BytesIO()
    img.quantize(256).save(buf, "PNG", optimize=True)
    yield buf.getvalue(), "image/png"
    flat = img
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, "white")
        flat.paste(img, mask=img.getchannel("A"))
    for quality in (85, 70, 50):
        buf = io.BytesIO()
        flat.save(buf, "JPEG", quality=quality, optimize=True)
        yield buf.getvalue(), "image/jpeg"


def _kernel_preview(mime: str, entry: dict[str, Any] | None, max_side: int) -> bytes | None:
    """The bytes of the preview the kernel sent for an image of type `mime`, when it is one to
    use: of that image, a PNG or JPEG, and small (the kernel runs the user's code, so its
    preview is checked like any display: a larger one is not decoded)."""
    if not entry or entry.get("source") != mime:
        return None
    data = entry.get("data")
    if not isinstance(data, str) or len(data) > KERNEL_PREVIEW_MAX_CHARS:
        return None
    try:
        small = base64.b64decode(data)
        with Image.open(io.BytesIO(small)) as img:
            if img.format not in ("PNG", "JPEG") or max(img.size) > 2 * max_side:
                return None
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        return None
    return small


def _looks_like_repr(text: str) -> bool:
    """`<Figure size 640x480 with 1 Axes>` and `<IPython.core.display.HTML object>` say nothing."""
    text = text.strip()
    return text.startswith("<") and text.endswith(">") and "\n" not in text


def plotly_summary(fig: dict[str, Any]) -> str:
    traces = fig.get("data") or []
    kinds = Counter(str(t.get("type", "scatter")) for t in traces if isinstance(t, dict))
    layout = fig.get("layout") or {}
    title = layout.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    text = f"Plotly figure: {len(traces)} trace(s)"
    if kinds:
        text += " (" + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + ")"
    if title:
        text += f", title {str(title)!r}"
    return text


def plotly_page(fig: dict[str, Any], version: str) -> str:
    title = plotly_summary(fig).replace("<", "&lt;")
    figure = json.dumps(fig, default=str).replace("</", "<\\/")
    return _PLOTLY_PAGE.format(title=title, version=version, figure=figure)


@dataclass
class RichOutputs:
    images: list[ImageInfo] = field(default_factory=list)
    displays: list[DisplayInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class DisplayRenderer:
    """Turns one cell's display outputs into `RichOutputs`; one instance per cell."""

    def __init__(
        self, config: ServerConfig, store: ArtifactStore, session_id: str, plotlyjs: str | None
    ) -> None:
        self._config = config
        self._store = store
        self._sid = session_id
        self._plotlyjs = plotlyjs or DEFAULT_PLOTLYJS
        self._budget = config.max_output_chars
        self._room = 2 * config.max_output_chars
        self._seen: set[str] = set()
        self._inline = 0
        self._not_kept: list[str] = []  # why display files were not kept, one entry each
        self.out = RichOutputs()

    def render(self, outputs: list[DisplayOutput]) -> RichOutputs:
        for index, out in enumerate(outputs):
            try:
                self._one(index, out)
            except OSError as exc:
                logger.warning("could not save a display output: %s", exc)
                self.out.notes.append(f"A display output could not be saved: {exc}.")
        unseen = [i for i in self.out.images if i.preview_mime_type is None]
        svg = sum(1 for i in unseen if i.mime_type == _SVG)
        if len(unseen) > svg:
            self.out.notes.append(
                f"{len(unseen) - svg} image(s) beyond the first {MAX_INLINE_IMAGES} were saved "
                "without an inline preview; read them through their kernel:// links."
            )
        if svg:
            self.out.notes.append(
                f"{svg} SVG image(s) have no inline preview (vector images are not sent as "
                "pictures); read them through their kernel:// links."
            )
        if self._not_kept:
            self.out.notes.append(
                f"{len(self._not_kept)} display file(s) (full-size images, plotly pages, long "
                f"displays) were not kept and have no kernel:// link. {self._not_kept[-1]}"
            )
        return self.out

    def _save(self, name: str, data: bytes | str) -> str | None:
        """Save a session file; its URI, or None (counted for the note) when it is not kept."""
        try:
            return self._store.write(self._sid, name, data)
        except OutputNotKeptError as exc:
            self._not_kept.append(str(exc))
            return None

    def _one(self, index: int, out: DisplayOutput) -> None:
        data = out.data
        rich = False
        image_mime = next((m for m in RASTER_MIMES if m in data), None)
        if image_mime is not None:
            rich = self._image(image_mime, data[image_mime], out.preview)
        elif _SVG in data:
            rich = self._svg(str(data[_SVG]))
        if PLOTLY_MIME in data and isinstance(data[PLOTLY_MIME], dict):
            self._plotly(index, out, data[PLOTLY_MIME])
            rich = True
        for mime in TEXT_MIMES:
            if mime not in data:
                continue
            if mime == "text/plain":
                plain = str(data[mime])
                if out.is_result or ((rich or len(data) > 1) and _looks_like_repr(plain)):
                    continue
            value = data[mime]
            text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
            self._text(index, out, mime, text)

    def _digest(self, payload: str) -> bool:
        """False for an image already shown in this cell (a figure that is both the last
        expression and shown by the inline backend arrives twice)."""
        digest = hashlib.sha1(payload.encode(), usedforsecurity=False).hexdigest()
        if digest in self._seen:
            return False
        self._seen.add(digest)
        return True

    def _image(self, mime: str, payload: Any, kernel_preview: dict[str, Any] | None) -> bool:
        b64 = str(payload)
        if not self._digest(b64):
            return True
        try:
            raw = base64.b64decode(b64)
        except (binascii.Error, ValueError):
            return False
        ext = mime.split("/")[1].replace("jpeg", "jpg")
        name = self._store.new_name("image", f".{ext}")
        info = ImageInfo(mime_type=mime, uri=self._save(name, raw))
        try:
            if self._inline < MAX_INLINE_IMAGES:
                preview, (info.width, info.height) = self._preview(mime, raw, kernel_preview)
                info.preview = preview.data
                info.preview_mime_type = preview.mime_type
                info.preview_width, info.preview_height = preview.width, preview.height
                info.preview_bytes = len(preview.data)
                self._inline += 1
            else:
                info.width, info.height = image_size(raw)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            logger.warning("could not read an image the kernel displayed: %s", exc)
        self.out.images.append(info)
        return True

    def _preview(
        self, mime: str, raw: bytes, kernel_preview: dict[str, Any] | None
    ) -> tuple[Preview, tuple[int, int]]:
        """The image's preview and its full size: from the preview the kernel made when it sent
        a usable one (then the full image is never decoded here), else made here."""
        cfg = self._config
        small = _kernel_preview(mime, kernel_preview, cfg.image_max_side_px)
        if small is not None:
            try:
                preview, _ = make_preview(small, cfg.image_max_side_px, cfg.image_max_bytes)
                return preview, image_size(raw)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                logger.warning("the kernel's preview of an image is unusable: %s", exc)
        return make_preview(raw, cfg.image_max_side_px, cfg.image_max_bytes)

    def _svg(self, svg: str) -> bool:
        if not self._digest(svg):
            return True
        name = self._store.new_name("image", ".svg")
        uri = self._save(name, svg)
        self.out.images.append(ImageInfo(mime_type=_SVG, uri=uri))
        return True

    def _plotly(self, index: int, out: DisplayOutput, fig: dict[str, Any]) -> None:
        token = secrets.token_hex(4)
        page = self._store.new_name("plotly", ".html", token)
        spec = self._store.new_name("plotly", ".json", token)
        page_uri = self._save(page, plotly_page(fig, self._plotlyjs))
        spec_uri = self._save(spec, json.dumps(fig, default=str))
        content = plotly_summary(fig)
        if page_uri is not None and spec_uri is not None:
            content += f". Interactive page: {page_uri}; figure JSON: {spec_uri}"
        self.out.displays.append(
            DisplayInfo(
                mime_type=PLOTLY_MIME,
                content=content,
                uris=[u for u in (page_uri, spec_uri) if u is not None],
                output=index,
                is_result=out.is_result,
            )
        )

    def _text(self, index: int, out: DisplayOutput, mime: str, text: str) -> None:
        keep = max(0, min(self._budget, self._room))
        info = DisplayInfo(mime_type=mime, content=text, output=index, is_result=out.is_result)
        if len(text) > keep:
            name = self._store.new_name("display", TEXT_MIMES[mime])
            uri = self._save(name, text)
            info.uris = [uri] if uri is not None else []
            info.content = text[:keep]
            info.truncated = True
        self._room -= len(info.content)
        self.out.displays.append(info)
