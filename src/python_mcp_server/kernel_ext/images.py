"""Previews of large images, made in the kernel where the pixels already are.

A 4000x3000 figure is a PNG of a few hundred kilobytes but 48 MB of pixels: decoding it in the
server to make the model's preview costs seconds and a peak of several full-size copies. So each
display whose PNG or JPEG is larger than the preview bound gets its preview here, before the
message is sent, in the display's metadata under `PREVIEW_KEY` (the server keeps the full image as
a file and shows the model the preview):

- a matplotlib figure is drawn again at the dpi that fits the bound (no decoding at all);
- any other image is scaled with Pillow when the kernel has it;
- otherwise nothing is added, and the server makes the preview itself.

The preview fits within `max_side` pixels (the server still fits it to its byte bound). Nothing
here may cost the user's display: every failure only costs the preview.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import struct
import sys
from collections.abc import Callable
from typing import Any

PREVIEW_KEY = "python_mcp_server_preview"
SOURCES = ("image/png", "image/jpeg")


def png_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first 24 bytes of a PNG (its IHDR chunk), or None."""
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _raw(value: Any) -> bytes | None:
    """The bytes of an image value as IPython's formatters give it (base64 text or bytes)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value)
        except (binascii.Error, ValueError):
            return None
    return None


def _figure_preview(obj: Any, printer: Any, full_side: int, max_side: int) -> bytes | None:
    """The matplotlib figure `obj` drawn again through the inline backend's own printer (same
    options: tight box, colours, retina) at the dpi that brings the longest side of the image
    it printed, `full_side` pixels, to `max_side`."""
    figure = sys.modules.get("matplotlib.figure")
    if figure is None or not isinstance(obj, figure.Figure) or printer is None:
        return None
    keywords = getattr(printer, "keywords", None) or {}
    dpi = float(keywords.get("dpi") or obj.dpi)
    if getattr(getattr(printer, "func", None), "__name__", "") == "retina_figure":
        dpi *= 2
    if full_side <= 0 or dpi <= 0:
        return None
    # a pixel or two of margin: the tight box is measured again at the new dpi
    data = printer(obj, dpi=dpi * (max_side - 2) / full_side)
    if isinstance(data, tuple):  # the retina printer answers (data, metadata)
        data = data[0]
    return _raw(data)


def _pillow_preview(raw: bytes, mime: str, max_side: int) -> bytes | None:
    """`raw` scaled to fit `max_side` with Pillow, when the kernel has it."""
    try:
        from PIL import Image
    except ImportError:
        return None

    with Image.open(io.BytesIO(raw)) as img:
        if img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))  # decode at a fraction of the size
        img.thumbnail((max_side, max_side))  # reduces first, then resamples the small one
        out = io.BytesIO()
        if mime == "image/jpeg" and img.mode in ("RGB", "L"):
            img.save(out, "JPEG", quality=90)
        else:
            img.save(out, "PNG")
        return out.getvalue()


def preview(
    obj: Any, data: dict[str, Any], printer: Any, max_side: int, max_bytes: int
) -> dict[str, str] | None:
    """The preview entry for one display's `data`, or None when its image already fits."""
    mime = next((m for m in SOURCES if m in data), None)
    if mime is None:
        return None
    raw = _raw(data[mime])
    if raw is None:
        return None
    size = png_size(raw[:24])
    if size is not None and max(size) <= max_side and len(raw) <= max_bytes:
        return None
    small = None
    if mime == "image/png" and size is not None:
        small = _figure_preview(obj, printer, max(size), max_side)
    if small is None:
        small = _pillow_preview(raw, mime, max_side)
    if small is None:
        return None
    kind = "image/png" if small[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return {"source": mime, "mime_type": kind, "data": base64.b64encode(small).decode("ascii")}


def _large(data: dict[str, Any]) -> bool:
    """Whether `data` holds a PNG or JPEG (the cheap test every display goes through)."""
    return "image/png" in data or "image/jpeg" in data


def _printer(formatters: Any, obj: Any) -> Any:
    """The PNG formatter's printer for `obj`'s type, or None."""
    png = formatters.get("image/png") if isinstance(formatters, dict) else None
    try:
        return png.lookup(obj) if png is not None else None
    except KeyError:
        return None


def wrap_format(
    fmt: Callable[..., Any], formatters: Any, max_side: int, max_bytes: int
) -> Callable[..., Any]:
    """`DisplayFormatter.format` that adds the preview to a large image's metadata."""

    @functools.wraps(fmt)
    def format_with_preview(obj: Any, *args: Any, **kwargs: Any) -> Any:
        result = fmt(obj, *args, **kwargs)
        # the user's display must go out whatever happens here: a failure costs the preview
        try:
            data, metadata = result
            if isinstance(metadata, dict) and isinstance(data, dict) and _large(data):
                entry = preview(obj, data, _printer(formatters, obj), max_side, max_bytes)
                if entry is not None:
                    metadata[PREVIEW_KEY] = entry
        except Exception:  # noqa: BLE001, S110
            pass
        return result

    return format_with_preview


def install(shell: Any, max_side: int, max_bytes: int) -> None:
    """Make `shell`'s display formatter add previews (displays and cell results alike)."""
    formatter = getattr(shell, "display_formatter", None)
    fmt = getattr(formatter, "format", None)
    if formatter is None or fmt is None or max_side <= 0:
        return
    formatters = getattr(formatter, "formatters", None)
    formatter.format = wrap_format(fmt, formatters, max_side, max_bytes)
