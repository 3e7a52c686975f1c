"""What our output schemas cost a client on every call: `uv run python bench/client_schemas.py`.

A client checks each result against the tool's output schema. The MCP SDK validates
`structuredContent` with a compiled jsonschema validator; the FastMCP Client then looks the schema
up in its cache of types built from schemas (`json_schema_to_type_adapter`, which walks the whole
schema three times and hashes it on every call before finding the cached type) and validates the
result into that type. Both costs grow with the schema's nodes and unions.

1. Interleaved, CPU per call (this thread's clock), on run_python_code's output schema as we ship
   it (`tools._common.schema`) against the shape pydantic emits (`$defs` inlined, optional fields
   as `anyOf: [T, null]` with `default`, a title on every field: what we shipped before issue 17),
   for a real `x = 1` result and a real error result.
2. With `--before REV` (a git revision of this repository, e.g. `main`): the FastMCP Client's own
   CPU per `run_python_code("x = 1")` call against a server of this tree and one of REV (its
   source from `git archive`), interleaved call by call, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastmcp import Client
from fastmcp.utilities.json_schema_type import json_schema_to_type_adapter
from jsonschema import exceptions as jsonschema_exceptions  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from python_mcp_server.compat.fastmcp_private import inline_refs
from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.services import ExecutionResult
from python_mcp_server.tools._common import schema
from tests.servers import http_server


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def nodes(value: Any) -> int:
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def client_work(shape: dict[str, Any], result: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The per-call steps a client runs on `result` against `shape` (after the first call)."""
    adapter = json_schema_to_type_adapter(shape)
    validator = validator_for(shape)(shape)
    assert jsonschema_exceptions.best_match(validator.iter_errors(result)) is None
    adapter.validate_python(result)
    return {
        "FastMCP type lookup": lambda: json_schema_to_type_adapter(shape),
        "FastMCP validate": lambda: adapter.validate_python(result),
        "SDK jsonschema": lambda: jsonschema_exceptions.best_match(validator.iter_errors(result)),
    }


async def real_results() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(workspace_dir=Path(tmp), kernel_pool_size=0)
        async with Client(create_server(config)) as client:
            ok = await client.call_tool("run_python_code", {"code": "x = 1"})
            error = await client.call_tool("run_python_code", {"code": "print('a'); 1 / 0"})
    assert ok.structured_content is not None
    assert error.structured_content is not None
    return {"x = 1": ok.structured_content, "1 / 0": error.structured_content}


def micro(rounds: int, per_round: int) -> None:
    results = asyncio.run(real_results())
    shapes = {
        "shipped": schema(ExecutionResult),
        "pydantic's": inline_refs(ExecutionResult.model_json_schema()),
    }
    out = sys.stdout
    out.write(f"1. run_python_code's output schema, per call (median of {rounds} rounds)\n")
    for name, shape in shapes.items():
        out.write(f"   {name}: {len(json.dumps(shape))} bytes, {nodes(shape)} nodes\n")
    work = {
        (shape_name, result_name): client_work(shape, result)
        for result_name, result in results.items()
        for shape_name, shape in shapes.items()
    }
    samples: dict[tuple[str, str, str], list[float]] = {}
    out.write(f"   load average before: {load()}\n")
    for _ in range(rounds):
        for key, steps in work.items():
            for step, fn in steps.items():
                start = time.thread_time_ns()
                for _ in range(per_round):
                    fn()
                spent = (time.thread_time_ns() - start) / per_round / 1000
                samples.setdefault((*key, step), []).append(spent)
    out.write(f"   load average after: {load()}\n")
    names = list(next(iter(work.values())))
    out.write(
        f"   {'result':<8} {'schema':<11}" + "".join(f" {s:>20}" for s in names) + "   total\n"
    )
    for result_name in results:
        totals = {}
        for shape_name in shapes:
            cells = [statistics.median(samples[(shape_name, result_name, s)]) for s in names]
            totals[shape_name] = sum(cells)
            row = "".join(f" {c:>17.0f} us" for c in cells)
            out.write(f"   {result_name:<8} {shape_name:<11}{row} {sum(cells):>5.0f} us\n")
        ratio = totals["shipped"] / totals["pydantic's"]
        out.write(f"   {result_name}: shipped / pydantic's = {ratio:.2f}\n")


def source_of(rev: str, into: Path) -> Path:
    """The package source of `rev`, extracted under `into`; its `src` folder."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


async def end_to_end(rev: str, n: int, warmup: int) -> None:
    out = sys.stdout
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        before_src = source_of(rev, root / "before")
        for name in ("now", "before"):
            (root / name / "ws").mkdir(parents=True, exist_ok=True)
        with (
            http_server(root / "now" / "ws", "--log-level", "WARNING") as now,
            http_server(
                root / "before" / "ws",
                "--log-level",
                "WARNING",
                env={"PYTHONPATH": str(before_src)},
            ) as before,
        ):
            async with Client(now.url) as now_client, Client(before.url) as before_client:
                clients = {"this tree": now_client, rev: before_client}
                cpu: dict[str, list[float]] = {name: [] for name in clients}
                out.write(f"2. FastMCP Client CPU per run_python_code('x = 1'), n={n}\n")
                out.write(f"   load average before: {load()}\n")
                for i in range(warmup + n):
                    order = list(clients) if i % 2 else list(reversed(clients))
                    for name in order:
                        start = time.process_time()
                        res = await clients[name].call_tool("run_python_code", {"code": "x = 1"})
                        spent = time.process_time() - start
                        assert res.data.status == "ok", res.content
                        if i >= warmup:
                            cpu[name].append(spent * 1000)
                out.write(f"   load average after: {load()}\n")
    for name, values in cpu.items():
        out.write(
            f"   {name:<10} mean {statistics.fmean(values):.2f} ms, median "
            f"{statistics.median(values):.2f} ms\n"
        )
    ratio = statistics.fmean(cpu["this tree"]) / statistics.fmean(cpu[rev])
    out.write(f"   this tree / {rev} (means) = {ratio:.2f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--before", metavar="REV", help="also measure end to end against REV")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    micro(args.rounds, args.per_round)
    if args.before:
        asyncio.run(end_to_end(args.before, args.n, args.warmup))


if __name__ == "__main__":
    main()
