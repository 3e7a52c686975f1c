"""Plots, HTML/markdown/JSON displays and plotly figures come back usable, with real libraries."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.client import CallToolResult
from mcp.types import BlobResourceContents, ImageContent, ResourceLink, TextContent
from PIL import Image

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.services.displays import make_preview
from tests.helpers import wait_for_file

pytestmark = pytest.mark.anyio

PLOTLY = "application/vnd.plotly.v1+json"


async def run(client: Client[Any], code: str) -> CallToolResult:
    res = await client.call_tool("run_python_code", {"code": code})
    assert res.structured_content is not None
    assert res.structured_content["status"] == "ok", res.structured_content
    return res


def data(res: CallToolResult) -> dict[str, Any]:
    assert res.structured_content is not None
    return res.structured_content


def images(res: CallToolResult) -> list[ImageContent]:
    return [c for c in res.content if isinstance(c, ImageContent)]


def links(res: CallToolResult) -> list[str]:
    return [str(c.uri) for c in res.content if isinstance(c, ResourceLink)]


def text(res: CallToolResult) -> str:
    first = res.content[0]
    assert isinstance(first, TextContent)
    return first.text


def decoded(image: ImageContent) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(image.data)))


def saved(workspace: Path, uri: str) -> Path:
    """The file behind a kernel:// URI: in its session's one folder, `outputs/<session>/<run>/`
    (which the session's end deletes)."""
    session, name = uri.removeprefix("kernel://").split("/")
    (path,) = (workspace / "outputs" / session).glob(f"*/{name}")
    return path


async def test_plt_show_returns_an_image_preview_and_a_link_to_the_full_png(
    config: ServerConfig, workspace: Path
) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('rise')\nplt.show()"
    async with Client(create_server(config)) as client:
        res = await run(client, code)
        info = data(res)["images"][0]
        blob = (await client.read_resource(info["uri"]))[0]
        full = saved(workspace, info["uri"]).read_bytes()  # while the session lives
    assert len(images(res)) == 1
    assert images(res)[0].mime_type == "image/png"
    assert decoded(images(res)[0]).size == (info["width"], info["height"])
    assert links(res) == [info["uri"]]
    assert info["uri"].startswith("kernel://default/image-")
    assert info["uri"].endswith(".png")
    assert isinstance(blob, BlobResourceContents)
    assert blob.mime_type == "image/png"
    assert base64.b64decode(blob.blob) == full
    assert f"full resolution: {info['uri']}" in text(res)


async def test_a_figure_as_the_last_expression_comes_back_once(config: ServerConfig) -> None:
    code = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\nfig"
    async with Client(create_server(config)) as client:
        res = await run(client, code)
    assert len(images(res)) == 1
    assert len(data(res)["images"]) == 1
    assert data(res)["result"].startswith("<Figure size")


async def test_a_figure_without_the_inline_backend_says_how_to_get_images_back(
    config: ServerConfig,
) -> None:
    code = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2])\nplt.gcf()"
    )
    async with Client(create_server(config)) as client:
        res = await run(client, code)
        back = await run(client, "%matplotlib inline\nplt.plot([1, 2])\nplt.gcf()")
    data, again = res.structured_content, back.structured_content
    assert data is not None
    assert again is not None
    assert data["images"] == []
    assert str(data["message"]).startswith(
        "The result is a matplotlib figure but no image was captured: the inline backend was "
        "switched off (matplotlib.use('Agg') does that). Run `%matplotlib inline`"
    )
    assert (len(again["images"]), again["message"]) == (1, None)


async def test_a_figure_from_one_cell_does_not_reappear_in_the_next(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        await run(client, "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
        res = await run(client, "import matplotlib.pyplot as plt\nprint(len(plt.get_fignums()))")
    assert data(res)["images"] == []
    assert images(res) == []
    assert data(res)["stdout"] == "0\n"


async def test_seaborn_and_dataframe_plot_each_come_back_as_images(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        sns = await run(
            client,
            "import seaborn as sns, pandas as pd\n"
            "df = pd.DataFrame({'x': range(20), 'y': [i * i for i in range(20)]})\n"
            "sns.scatterplot(data=df, x='x', y='y')",
        )
        pdplot = await run(client, "ax = df.plot(x='x', y='y')")
    assert len(images(sns)) == 1
    assert len(data(sns)["images"]) == 1
    assert len(images(pdplot)) == 1
    assert len(data(pdplot)["images"]) == 1


async def test_a_large_figure_is_previewed_within_the_image_budget(
    config: ServerConfig, workspace: Path
) -> None:
    code = (
        "import matplotlib.pyplot as plt, numpy as np\n"
        "rng = np.random.default_rng(0)\n"
        "fig = plt.figure(figsize=(30, 20), dpi=100)\n"
        "plt.imshow(rng.random((400, 600)), cmap='viridis')\n"
        "plt.show()"
    )
    async with Client(create_server(config)) as client:
        res = await run(client, code)
        info = data(res)["images"][0]
        with Image.open(saved(workspace, info["uri"])) as full:
            full_size = full.size
    preview = decoded(images(res)[0])
    assert max(preview.size) <= config.image_max_side_px
    assert len(base64.b64decode(images(res)[0].data)) <= config.image_max_bytes
    assert info["preview_bytes"] <= config.image_max_bytes
    assert max(info["width"], info["height"]) > config.image_max_side_px
    assert full_size == (info["width"], info["height"])


BIG_FIGURE = (
    "import matplotlib.pyplot as plt\n"
    "fig = plt.figure(figsize=(40, 30), dpi=100)\n"
    "plt.plot(range(10))\n"
)
KERNEL_PREVIEW = "python_mcp_server_preview"  # where the kernel puts it (kernel_ext/images.py)


async def test_a_4000x3000_figure_gives_a_bounded_preview_and_keeps_the_full_png(
    config: ServerConfig, workspace: Path
) -> None:
    untrimmed = "%config InlineBackend.print_figure_kwargs = {'bbox_inches': None}\n"
    async with Client(create_server(config)) as client:
        res = await run(client, untrimmed + BIG_FIGURE + "plt.show()")
        info = data(res)["images"][0]
        blob = (await client.read_resource(info["uri"]))[0]
        with Image.open(saved(workspace, info["uri"])) as full:
            full_size = full.size
    assert isinstance(blob, BlobResourceContents)
    with Image.open(io.BytesIO(base64.b64decode(blob.blob))) as served:
        assert served.size == (4000, 3000)
    assert full_size == (4000, 3000)
    assert (info["width"], info["height"]) == (4000, 3000)
    (shown,) = images(res)
    preview = decoded(shown)
    assert preview.size == (info["preview_width"], info["preview_height"])
    assert max(preview.size) <= config.image_max_side_px
    assert max(preview.size) >= config.image_max_side_px // 2
    assert len(base64.b64decode(shown.data)) <= config.image_max_bytes


async def test_the_kernel_previews_a_large_figure_where_its_pixels_are(
    config: ServerConfig,
) -> None:
    """The preview is drawn in the kernel, so the server never decodes the full image."""
    code = (
        BIG_FIGURE + "import base64, io\nfrom PIL import Image\n"
        "data, md = get_ipython().display_formatter.format(fig)\nplt.close(fig)\n"
        f"entry = md[{KERNEL_PREVIEW!r}]\n"
        "small = Image.open(io.BytesIO(base64.b64decode(entry['data'])))\n"
        "print(entry['source'], entry['mime_type'], max(small.size))"
    )
    async with Client(create_server(config)) as client:
        res = await run(client, code)
    source, kind, side = data(res)["stdout"].split()
    assert (source, kind) == ("image/png", "image/png")
    assert config.image_max_side_px // 2 <= int(side) <= config.image_max_side_px


async def test_without_pillow_in_the_kernel_the_server_previews_a_large_image(
    config: ServerConfig, workspace: Path
) -> None:
    Image.new("RGB", (4000, 3000), "teal").save(workspace / "big.png")
    shown = "from IPython.display import Image as Picture, display\npicture = Picture('big.png')\n"
    with_pillow = (
        shown + f"print({KERNEL_PREVIEW!r} in get_ipython().display_formatter.format(picture)[1])"
    )
    without = (
        "import sys\nsys.modules['PIL'] = None\n" + shown + f"print({KERNEL_PREVIEW!r} in "
        "get_ipython().display_formatter.format(picture)[1])\ndisplay(picture)"
    )
    async with Client(create_server(config)) as client:
        kernel_made = await run(client, with_pillow)
        res = await run(client, without)
    assert data(kernel_made)["stdout"] == "True\n"
    assert data(res)["stdout"] == "False\n"
    info = data(res)["images"][0]
    assert (info["width"], info["height"]) == (4000, 3000)
    assert max(decoded(images(res)[0]).size) <= config.image_max_side_px


async def test_a_dataframe_result_keeps_its_html_in_displays(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await run(client, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    html = [d for d in data(res)["displays"] if d["mime_type"] == "text/html"]
    assert data(res)["result"] == "   a  b\n0  1  3\n1  2  4"
    assert len(html) == 1
    assert "<table" in html[0]["content"]
    assert html[0]["is_result"]
    assert "text/html: " in text(res)
    assert "<table" not in text(res)


async def test_a_long_html_display_is_cut_to_the_budget_and_saved_in_full(
    config: ServerConfig, workspace: Path
) -> None:
    small = dataclasses.replace(config, max_output_chars=1000)
    code = "from IPython.display import HTML, display\ndisplay(HTML('<p>' + 'y' * 5000 + '</p>'))"
    async with Client(create_server(small)) as client:
        res = await run(client, code)
        (html,) = data(res)["displays"]
        full = saved(workspace, html["uris"][0]).read_text()
    assert (html["mime_type"], html["truncated"], len(html["content"])) == ("text/html", True, 1000)
    assert full == "<p>" + "y" * 5000 + "</p>"
    assert links(res) == html["uris"]


async def test_markdown_and_json_displays_are_kept(config: ServerConfig) -> None:
    code = (
        "from IPython.display import JSON, Markdown, display\n"
        "display(Markdown('# Title'))\n"
        "display(JSON({'k': [1, 2]}))"
    )
    async with Client(create_server(config)) as client:
        res = await run(client, code)
    kept = {d["mime_type"]: d["content"] for d in data(res)["displays"]}
    assert kept["text/markdown"] == "# Title"
    assert json.loads(kept["application/json"]) == {"k": [1, 2]}
    assert "text/markdown:\n# Title" in text(res)


async def test_a_plotly_figure_is_saved_as_html_and_json_and_linked(
    config: ServerConfig, workspace: Path
) -> None:
    code = "import plotly.express as px\npx.bar(x=['a', 'b'], y=[1, 3], title='Counts')"
    async with Client(create_server(config)) as client:
        res = await run(client, code)
        (fig,) = [d for d in data(res)["displays"] if d["mime_type"] == PLOTLY]
        page, spec = fig["uris"]
        figure = json.loads(saved(workspace, spec).read_text())
        html = saved(workspace, page).read_text()
    assert page.endswith(".html")
    assert spec.endswith(".json")
    assert links(res) == [page, spec]
    assert figure["data"][0]["type"] == "bar"
    assert "Plotly.newPlot" in html
    assert "cdn.plot.ly/plotly-" in html
    assert '"bar"' in html
    assert fig["content"].startswith("Plotly figure: 1 trace(s) (1 bar), title 'Counts'")


async def test_an_updated_display_replaces_the_earlier_one(config: ServerConfig) -> None:
    code = (
        "from IPython.display import Markdown, display\n"
        "handle = display(Markdown('step 1'), display_id=True)\n"
        "handle.update(Markdown('step 2'))"
    )
    async with Client(create_server(config)) as client:
        res = await run(client, code)
    assert [(d["mime_type"], d["content"]) for d in data(res)["displays"]] == [
        ("text/markdown", "step 2")
    ]


def test_a_noisy_photo_sized_image_is_squeezed_under_the_byte_budget() -> None:
    noise = Image.effect_noise((3000, 2000), 120).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    preview, size = make_preview(buf.getvalue(), max_side=1024, max_bytes=150_000)
    assert size == (3000, 2000)
    assert max(preview.width, preview.height) <= 1024
    assert len(preview.data) <= 150_000
    with Image.open(io.BytesIO(preview.data)) as shown:
        assert shown.size == (preview.width, preview.height)
        assert f"image/{(shown.format or '').lower()}" == preview.mime_type


# On a gateway the gateway's own connection to the kernel has ZMQ's default queue limit.
@pytest.mark.local_kernels
async def test_no_message_is_lost_while_the_server_is_busy_and_a_cell_floods_displays(
    config: ServerConfig,
) -> None:
    # at ZMQ's default limit (1000 queued messages) this lost displays and the idle status that
    # ends the cell: it ran into its time limit and the kernel was restarted
    code = (
        "import os, time\nfrom IPython.display import display, HTML\n"
        "open('go', 'w').close()\n"
        "while not os.path.exists('busy'):\n    time.sleep(0.001)\n"
        "for i in range(5000):\n    display(HTML(f'<b>{i}</b>'))"
    )
    async with Client(create_server(config)) as client:
        await client.call_tool("run_python_code", {"code": "kept = 1"})
        call = asyncio.create_task(client.call_tool("run_python_code", {"code": code}))
        await wait_for_file(config.workspace_root / "go")
        (config.workspace_root / "busy").touch()
        time.sleep(3)  # the server's event loop (this one) is busy: nothing reads the kernel
        data = (await asyncio.wait_for(call, 60)).structured_content
    assert data is not None
    assert (data["status"], data["state_kept"]) == ("ok", True), data["message"]
    assert "The code displayed 4900 more output(s) beyond the first 100" in data["message"]


async def test_thousands_of_displays_are_cut_with_a_note_and_the_result_stays_small(
    config: ServerConfig,
) -> None:
    code = "from IPython.display import display, HTML\nfor i in range(3000):\n    display(HTML(f'<b>{i}</b>'))"
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": code})
    data = res.structured_content
    assert data is not None
    assert len(data["displays"]) <= 100
    assert (
        "The code displayed 2900 more output(s) beyond the first 100; they were left out of this "
        "result."
    ) in data["message"]
    assert len(json.dumps(data)) < 200_000
