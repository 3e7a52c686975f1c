"""The pure parts of `services/displays.py`: plotly summaries and pages, image previews, and
`DisplayRenderer` over hand-made display outputs, writing to a real folder under `tmp_path`.
No kernel, no server."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import random
import re
from pathlib import Path

import pytest
from PIL import Image

from python_mcp_server.config import ServerConfig
from python_mcp_server.kernels.messages import DisplayOutput
from python_mcp_server.services.artifacts import ArtifactStore
from python_mcp_server.services.displays import (
    MAX_INLINE_IMAGES,
    PLOTLY_MIME,
    DisplayRenderer,
    make_preview,
    plotly_page,
    plotly_summary,
)
from python_mcp_server.services.models import DisplayInfo

SID = "s1"


def png(width: int, height: int, colour: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, "PNG")
    return buf.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG of random pixels: it compresses badly, so that byte limits bite."""
    img = Image.frombytes("RGB", (side, side), random.Random(0).randbytes(side * side * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> ServerConfig:
    return ServerConfig(workspace_dir=tmp_path, max_output_chars=10)


def renderer(settings: ServerConfig) -> DisplayRenderer:
    store = ArtifactStore(settings)
    store.begin(SID)
    return DisplayRenderer(settings, store, SID, None)


def saved(settings: ServerConfig, uri: str) -> Path:
    """The file behind a kernel:// URI: in its session's one folder, `outputs/<session>/<run>/`."""
    session, name = uri.removeprefix("kernel://").split("/")
    (path,) = (settings.workspace_root / "outputs" / session).glob(f"*/{name}")
    return path


# plotly


def test_a_plotly_summary_counts_traces_by_type_and_names_the_title() -> None:
    fig = {
        "data": [{"type": "bar"}, {"type": "bar"}, {"x": [1]}],
        "layout": {"title": {"text": "Sales"}},
    }
    assert plotly_summary(fig) == "Plotly figure: 3 trace(s) (2 bar, 1 scatter), title 'Sales'"


def test_a_plotly_summary_of_an_empty_figure() -> None:
    assert plotly_summary({}) == "Plotly figure: 0 trace(s)"


def test_a_plotly_summary_takes_a_plain_string_title() -> None:
    assert plotly_summary({"data": [], "layout": {"title": "T"}}) == (
        "Plotly figure: 0 trace(s), title 'T'"
    )


def test_a_plotly_page_cannot_be_broken_out_of_by_the_figure() -> None:
    fig = {"data": [{"type": "bar", "name": "</script><script>alert(1)</script>"}], "layout": {}}
    page = plotly_page(fig, "3.0.1")
    assert page.count("</script>") == 2  # the library tag and the page's own script
    assert '<script src="https://cdn.plot.ly/plotly-3.0.1.min.js"' in page
    assert '"name": "<\\/script><script>alert(1)<\\/script>"' in page


def test_a_plotly_page_escapes_the_title() -> None:
    page = plotly_page({"layout": {"title": "<b>x</b>"}}, "3.0.1")
    assert "<title>Plotly figure: 0 trace(s), title '&lt;b>x&lt;/b>'</title>" in page


# make_preview


def test_a_small_png_is_its_own_preview() -> None:
    raw = png(20, 10)
    preview, size = make_preview(raw, max_side=100, max_bytes=100_000)
    assert (preview.data, preview.mime_type, preview.width, preview.height) == (
        raw,
        "image/png",
        20,
        10,
    )
    assert size == (20, 10)


def test_a_large_image_is_scaled_to_the_maximum_side() -> None:
    preview, size = make_preview(png(400, 200), max_side=100, max_bytes=100_000)
    assert (preview.mime_type, preview.width, preview.height, size) == (
        "image/png",
        100,
        50,
        (400, 200),
    )


def test_a_gif_is_converted_even_when_it_is_small() -> None:
    buf = io.BytesIO()
    Image.new("P", (8, 8)).save(buf, "GIF")
    preview, _ = make_preview(buf.getvalue(), max_side=100, max_bytes=100_000)
    assert (preview.mime_type, preview.width, preview.height) == ("image/png", 8, 8)


def test_an_image_no_png_can_hold_within_the_byte_limit_falls_back_to_jpeg() -> None:
    raw = noise_png(64)
    preview, size = make_preview(raw, max_side=64, max_bytes=len(raw) // 3)
    assert (preview.mime_type, preview.width, preview.height, size) == (
        "image/jpeg",
        64,
        64,
        (64, 64),
    )
    assert len(preview.data) <= len(raw) // 3


def test_an_image_nothing_can_hold_at_full_size_is_halved() -> None:
    raw = noise_png(64)
    preview, _ = make_preview(raw, max_side=64, max_bytes=len(raw) // 8)
    assert (preview.width, preview.height) == (32, 32)
    assert len(preview.data) <= len(raw) // 8


# DisplayRenderer


def test_short_html_is_kept_inline_and_its_repr_dropped(settings: ServerConfig) -> None:
    out = DisplayOutput({"text/html": "<b>hi</b>", "text/plain": "<IPython.core.display.HTML>"})
    rich = renderer(settings).render([out])
    assert rich.displays == [DisplayInfo(mime_type="text/html", content="<b>hi</b>", output=0)]
    assert (rich.images, rich.notes) == ([], [])


def test_a_plain_text_display_that_says_something_is_kept(settings: ServerConfig) -> None:
    out = DisplayOutput({"text/markdown": "# T", "text/plain": "T\nmore"})
    rich = renderer(settings).render([out])
    assert rich.displays == [
        DisplayInfo(mime_type="text/markdown", content="# T", output=0),
        DisplayInfo(mime_type="text/plain", content="T\nmore", output=0),
    ]


def test_the_plain_text_of_a_result_is_left_to_the_result(settings: ServerConfig) -> None:
    out = DisplayOutput({"text/html": "<table/>", "text/plain": "df"}, is_result=True)
    rich = renderer(settings).render([out])
    assert rich.displays == [
        DisplayInfo(mime_type="text/html", content="<table/>", output=0, is_result=True)
    ]


def test_json_data_is_shown_as_indented_json(settings: ServerConfig) -> None:
    roomy = dataclasses.replace(settings, max_output_chars=100)
    rich = renderer(roomy).render([DisplayOutput({"application/json": {"a": [1]}})])
    assert [d.content for d in rich.displays] == ['{\n "a": [\n  1\n ]\n}']


def test_long_text_is_cut_to_the_budget_and_saved_whole(settings: ServerConfig) -> None:
    html = "<p>" + "x" * 20 + "</p>"
    rich = renderer(settings).render([DisplayOutput({"text/html": html})])
    (info,) = rich.displays
    (uri,) = info.uris
    assert re.fullmatch(r"kernel://s1/display-[0-9a-f]{8}\.html", uri)
    assert info == DisplayInfo(
        mime_type="text/html", content=html[:10], truncated=True, uris=[uri], output=0
    )
    assert saved(settings, uri).read_text() == html


def test_displays_of_one_cell_share_twice_the_budget(settings: ServerConfig) -> None:
    outs = [DisplayOutput({"text/markdown": c * 10}) for c in "abc"]
    rich = renderer(settings).render(outs)
    assert [(d.content, d.truncated) for d in rich.displays] == [
        ("a" * 10, False),
        ("b" * 10, False),
        ("", True),
    ]


def test_an_image_is_saved_with_an_inline_preview(settings: ServerConfig) -> None:
    raw = png(30, 20)
    out = DisplayOutput({"image/png": base64.b64encode(raw).decode(), "text/plain": "<Figure>"})
    rich = renderer(settings).render([out])
    (image,) = rich.images
    assert image.uri is not None
    assert saved(settings, image.uri).read_bytes() == raw
    assert image.model_dump() == {
        "mime_type": "image/png",
        "uri": image.uri,
        "width": 30,
        "height": 20,
        "preview_mime_type": "image/png",
        "preview_width": 30,
        "preview_height": 20,
        "preview_bytes": len(raw),
    }
    assert (image.preview, rich.displays, rich.notes) == (raw, [], [])


def test_the_same_image_twice_in_a_cell_is_kept_once(settings: ServerConfig) -> None:
    b64 = base64.b64encode(png(4, 4)).decode()
    outs = [DisplayOutput({"image/png": b64}), DisplayOutput({"image/png": b64}, is_result=True)]
    assert len(renderer(settings).render(outs).images) == 1


def test_images_past_the_inline_limit_are_saved_without_a_preview(settings: ServerConfig) -> None:
    colours = [f"#{i:02x}0000" for i in range(MAX_INLINE_IMAGES + 2)]
    outs = [DisplayOutput({"image/png": base64.b64encode(png(4, 3, c)).decode()}) for c in colours]
    rich = renderer(settings).render(outs)
    assert [i.preview_mime_type for i in rich.images] == ["image/png"] * MAX_INLINE_IMAGES + [
        None,
        None,
    ]
    assert [(i.width, i.height) for i in rich.images] == [(4, 3)] * (MAX_INLINE_IMAGES + 2)
    note = (
        "2 image(s) beyond the first 8 were saved without an inline preview; read them through "
        "their kernel:// links."
    )
    assert rich.notes == [note]


def test_an_svg_is_saved_as_a_file(settings: ServerConfig) -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg"/>'
    rich = renderer(settings).render([DisplayOutput({"image/svg+xml": svg, "text/plain": "<S>"})])
    (image,) = rich.images
    assert image.mime_type == "image/svg+xml"
    assert image.uri is not None
    assert saved(settings, image.uri).read_text() == svg
    assert rich.displays == []
    # no preview because it is a vector image, not because eight images came first
    note = (
        "1 SVG image(s) have no inline preview (vector images are not sent as pictures); read "
        "them through their kernel:// links."
    )
    assert rich.notes == [note]


def test_a_plotly_figure_becomes_a_page_and_its_json(settings: ServerConfig) -> None:
    fig = {"data": [{"type": "bar", "y": [1, 2]}], "layout": {}}
    out = DisplayOutput({PLOTLY_MIME: fig, "text/plain": "<Figure>"})
    rich = renderer(settings).render([out])
    (info,) = rich.displays
    page, spec = info.uris
    token = page.removeprefix("kernel://s1/plotly-").removesuffix(".html")
    assert spec == f"kernel://s1/plotly-{token}.json"
    assert info == DisplayInfo(
        mime_type=PLOTLY_MIME,
        content=(
            f"Plotly figure: 1 trace(s) (1 bar). Interactive page: {page}; figure JSON: {spec}"
        ),
        uris=[page, spec],
        output=0,
    )
    assert json.loads(saved(settings, spec).read_text()) == fig
    assert saved(settings, page).read_text() == plotly_page(fig, "3.0.1")


# previews made in the kernel


def kernel_preview(
    raw: bytes, source: str = "image/png", kind: str = "image/png"
) -> dict[str, str]:
    return {"source": source, "mime_type": kind, "data": base64.b64encode(raw).decode()}


def test_the_kernels_preview_is_shown_and_the_full_image_is_never_decoded(
    settings: ServerConfig,
) -> None:
    full = png(4000, 3000)[:100]  # its header and the start of its pixels: decoding would fail
    out = DisplayOutput(
        {"image/png": base64.b64encode(full).decode()}, preview=kernel_preview(png(1024, 768))
    )
    (image,) = renderer(settings).render([out]).images
    assert image.uri is not None
    assert saved(settings, image.uri).read_bytes() == full
    assert (image.width, image.height) == (4000, 3000)
    assert (image.preview_width, image.preview_height, image.preview_mime_type) == (
        1024,
        768,
        "image/png",
    )
    assert image.preview == png(1024, 768)


def test_a_kernel_preview_that_is_too_large_or_of_another_image_is_not_used(
    settings: ServerConfig,
) -> None:
    fulls = [base64.b64encode(png(3000, 2000 + i, "blue")).decode() for i in range(3)]
    outs = [
        DisplayOutput({"image/png": fulls[0]}, preview=kernel_preview(png(5000, 10))),
        DisplayOutput(
            {"image/jpeg": fulls[1], "text/plain": "x"}, preview=kernel_preview(png(10, 10))
        ),
        DisplayOutput({"image/png": fulls[2]}, preview=kernel_preview(b"not an image")),
    ]
    rich = renderer(settings).render(outs)
    assert [i.preview_width for i in rich.images] == [1024] * 3
    for image in rich.images:
        assert image.preview is not None
        with Image.open(io.BytesIO(image.preview)) as shown:
            assert shown.convert("RGB").getpixel((5, 5)) == (0, 0, 255)


def test_a_kernel_preview_over_the_byte_bound_is_squeezed_here(settings: ServerConfig) -> None:
    full = base64.b64encode(png(4000, 3000)).decode()
    big = noise_png(900)
    out = DisplayOutput({"image/png": full}, preview=kernel_preview(big))
    (image,) = renderer(settings).render([out]).images
    assert len(big) > settings.image_max_bytes
    assert image.preview_bytes is not None
    assert image.preview_bytes <= settings.image_max_bytes
    assert (image.width, image.height) == (4000, 3000)
