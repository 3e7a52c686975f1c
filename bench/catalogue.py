"""What a model reads of the tool list: `uv run python bench/catalogue.py`.

Every connection puts each tool's name, description and input schema before the model. This
prints their size as compact JSON in UTF-8 (`[{name, description, inputSchema}, ...]`, as
`tests/test_catalogue.py` measures and pins it), tool by tool, biggest first, with an estimate of
tokens (bytes / 4), and the budget (issue 17: at or under 15 KB).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from python_mcp_server.config import ServerConfig
from tests.test_catalogue import MODEL_VIEW_BUDGET, catalogue, compact_bytes, model_view


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        listed = await catalogue(ServerConfig(workspace_dir=Path(tmp), kernel_pool_size=0))
    view = model_view(listed)
    rows = sorted(
        (
            (
                compact_bytes(t),
                len(t["description"].encode()),
                compact_bytes(t["inputSchema"]),
                len(t["inputSchema"].get("properties", {})),
                t["name"],
            )
            for t in view
        ),
        reverse=True,
    )
    out = sys.stdout
    out.write(f"{'tool':<28} {'bytes':>6} {'~tokens':>7} {'description':>11} {'schema':>6} args\n")
    for size, described, schema, args, name in rows:
        out.write(f"{name:<28} {size:>6} {size // 4:>7} {described:>11} {schema:>6} {args:>4}\n")
    total = compact_bytes(view)
    out.write(
        f"{len(view)} tools, {sum(r[3] for r in rows)} arguments: {total} bytes, ~{total // 4} "
        f"tokens (budget {MODEL_VIEW_BUDGET} bytes)\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
