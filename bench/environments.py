"""One-command benchmark: `uv run python bench/environments.py [--n 5] [--repeat 3]`.

Measures, in one run, through the FastMCP in-memory client (kernels sandboxed where the host
allows it, no warm pool), the time until a session is ready and its first import has run:
  0. at start, on a fresh `--env-dir`, the server builds the kernel runtime layer in the
     background (`--env-prebuild`): how long that takes, and bare sessions started meanwhile;
     then the first own environment ever made in that folder (its packages layer is new);
     and, on another fresh folder with `--no-env-prebuild`, the same first environment, which
     builds the runtime layer itself;
  1. bare: `create_session()` in the base environment, then `import json`;
  2. env, shared layer: `create_session(dependencies=PACKAGES)` when another session already
     built that layer, then the first import of each package;
  3. env, new layer: the same packages, cached by uv, under a requirement spelled differently
     each time (`six>=1.0`, `six>=1.1`, ...), so every session builds a layer of its own.
Modes 1-3 are interleaved, so a load change on the machine hits them alike, in `--repeat` runs of
`--n` sessions per mode, each run printed with the load average. Then the disk each
extra environment takes beyond the hard links into uv's cache.

Then, outside the server, the two ways to make an environment, for the same packages:
  a. one full venv per environment (`uv venv` + `uv pip install --link-mode hardlink` of the
     kernel runtime and the packages), without and with `--compile-bytecode`;
  b. layers: `uv venv` + a `.pth` over the shared runtime layer and a package layer.
For each: build time, a first `import ipykernel.kernelapp` plus the packages with no bytecode
writes (as in a sandbox, where the kernel cannot write its environment), and disk of its own.
Budget: an env session ready with its first import within 3x a bare one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.services._envbuild import (
    layer_argv,
    link_layers,
    own_bytes,
    runtime_requirements,
    venv_argv,
)
from python_mcp_server.services._installer import uv_binary
from python_mcp_server.services._pythons import choose

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import load

BUDGET = 3.0


async def _ready(client: Client[Any], args: dict[str, Any], code: str) -> float:
    started = time.perf_counter()
    res = await client.call_tool("create_session", args)
    assert res.structured_content is not None, res
    sid = res.structured_content["session_id"]
    out = await client.call_tool("run_python_code", {"session_id": sid, "code": code})
    assert out.structured_content is not None
    assert out.structured_content["status"] == "ok", out.structured_content
    elapsed = (time.perf_counter() - started) * 1000
    await client.call_tool("delete_session", {"session_id": sid})
    return elapsed


def _runtime_ready(envs: Path) -> bool:
    for manifest in envs.glob("layers/*/manifest.json"):
        try:
            if json.loads(manifest.read_text()).get("kind") == "runtime":
                return True
        except (OSError, ValueError):
            continue
    return False


async def _prebuilt(envs: Path, started: float, limit_s: float = 900.0) -> float:
    """Seconds from `started` until the runtime layer is on disk."""
    while not _runtime_ready(envs):
        if time.perf_counter() - started > limit_s:
            raise TimeoutError(f"no runtime layer in {envs} after {limit_s:g} s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def first_without_prebuild(packages: list[str], imports: str, folder: Path) -> float:
    """The first own environment on a fresh folder when nothing was built at start."""
    config = ServerConfig(
        workspace_dir=folder / "workspace-cold",
        kernel_pool_size=0,
        env_dir=folder / "envs-cold",
        env_prebuild=False,
    )
    async with Client(create_server(config)) as client:
        return await _ready(client, {"dependencies": packages}, imports)


async def through_server(
    n: int, repeat: int, packages: list[str], modules: list[str], folder: Path
) -> dict[str, Any]:
    envs = folder / "envs"
    config = ServerConfig(workspace_dir=folder / "workspace", kernel_pool_size=0, env_dir=envs)
    imports = "import " + ", ".join(modules)
    runs: list[tuple[dict[str, list[float]], str, str]] = []
    during: list[float] = []
    async with Client(create_server(config)) as client:
        prebuild = asyncio.create_task(_prebuilt(envs, time.perf_counter()))
        while not prebuild.done():
            during.append(await _ready(client, {}, "import json"))
        runtime_s = await prebuild
        first = await _ready(client, {"dependencies": packages}, imports)  # the shared layer
        spelling = 0
        for _ in range(repeat):
            times: dict[str, list[float]] = {"bare": [], "env, shared layer": []}
            times["env, new layer"] = []
            before = load()
            for _ in range(n):
                times["bare"].append(await _ready(client, {}, "import json"))
                shared = {"dependencies": packages}
                times["env, shared layer"].append(await _ready(client, shared, imports))
                fresh = {"dependencies": [f"{packages[0]}>=0.{spelling}", *packages[1:]]}
                spelling += 1
                times["env, new layer"].append(await _ready(client, fresh, imports))
            runs.append((times, before, load()))
        usage = (await client.call_tool("get_environment_info", {})).structured_content
    layers = sorted((folder / "envs" / "layers").iterdir())
    sizes = [own_bytes(p) for p in layers]
    cold = await first_without_prebuild(packages, imports, folder)
    pooled: dict[str, list[float]] = {mode: [] for mode in runs[0][0]}
    for times, _, _ in runs:
        for mode, values in times.items():
            pooled[mode].extend(values)
    return {
        "runs": runs,
        "times": pooled,
        "runtime_s": runtime_s,
        "during": during,
        "first": first,
        "cold": cold,
        "layer_sizes": sizes,
        "info": usage,
    }


def _run(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def approaches(packages: list[str], modules: list[str], folder: Path) -> list[tuple[str, ...]]:
    """Build time, first import time and own disk of a full venv vs the layered venv."""
    uv = uv_binary()
    assert uv is not None
    interp = choose(None, sys.executable)
    runtime = runtime_requirements(interp)
    code = "import ipykernel.kernelapp, " + ", ".join(modules)
    rows: list[tuple[str, ...]] = []
    for compile_ in (False, True):
        venv = folder / f"full-{compile_}"
        build = _run(venv_argv(uv, interp, venv))
        argv = [uv, "pip", "install", "--python", str(venv / "bin/python"), "--link-mode"]
        argv += ["hardlink", *(["--compile-bytecode"] if compile_ else []), *runtime, *packages]
        build += _run(argv)
        first = _run([str(venv / "bin/python"), "-B", "-c", code])
        name = "full venv" + (" + bytecode" if compile_ else "")
        rows.append((name, f"{build:.2f}", f"{first:.2f}", f"{own_bytes(venv) / 2**20:.1f}"))
    runtime_layer = folder / "runtime"
    _run(layer_argv(uv, interp, runtime_layer, runtime, source_builds=False))
    pkg_layer, venv = folder / "pkgs", folder / "layered"
    build = _run(layer_argv(uv, interp, pkg_layer, packages, source_builds=False))
    build += _run(venv_argv(uv, interp, venv))
    link_layers(venv, [pkg_layer, runtime_layer])
    first = _run([str(venv / "bin/python"), "-B", "-c", code])
    disk = (own_bytes(venv) + own_bytes(pkg_layer)) / 2**20
    rows.append(("layers (venv + .pth)", f"{build:.2f}", f"{first:.2f}", f"{disk:.1f}"))
    return rows


def _p50(values: list[float]) -> float:
    return statistics.median(values)


def _modes(times: dict[str, list[float]]) -> None:
    bare = _p50(times["bare"])
    print(f"{'mode':<22}{'p50 ms':>9}{'max ms':>9}{'x bare':>8}")
    for mode, values in times.items():
        ratio = _p50(values) / bare
        print(f"{mode:<22}{_p50(values):>9.0f}{max(values):>9.0f}{ratio:>8.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="sessions per mode in each run")
    parser.add_argument("--repeat", type=int, default=3, help="runs, each printed with its load")
    parser.add_argument("--packages", nargs="+", default=["six", "attrs"])
    parser.add_argument("--modules", nargs="+", default=None, help="what to import")
    args = parser.parse_args()
    modules = args.modules or [p.replace("-", "_") for p in args.packages]
    folder = Path(tempfile.mkdtemp(prefix="bench-envs-"))
    try:
        found = await through_server(args.n, args.repeat, args.packages, modules, folder)
        rows = approaches(args.packages, modules, folder / "approaches")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    times = found["times"]
    bare = _p50(times["bare"])
    during = found["during"]
    print(f"packages: {' '.join(args.packages)}; {args.n} sessions per mode, interleaved")
    print(
        f"kernel runtime layer prebuilt at start (background, nice 19): {found['runtime_s']:.1f} s;"
        f" {len(during)} bare sessions meanwhile, p50 {_p50(during):.0f} ms "
        f"({_p50(during) / bare:.2f}x a bare session after)"
    )
    for label, key in (("prebuild done", "first"), ("no prebuild", "cold")):
        value = found[key]
        print(
            f"first own environment on a fresh --env-dir, {label}: {value:.0f} ms "
            f"({value / bare:.2f}x bare)"
        )
    for run, (run_times, before, after) in enumerate(found["runs"], 1):
        print(f"run {run}/{args.repeat}   [before {before}, after {after}]")
        _modes(run_times)
    print(f"all {args.repeat} runs together")
    _modes(times)
    sizes = sorted(found["layer_sizes"])
    print(
        f"disk of its own per package layer: {sizes[0] / 1024:.0f} KB (smallest), runtime layer "
        f"{sizes[-1] / 2**20:.1f} MB (once per Python)"
    )
    print(f"\n{'approach':<24}{'build s':>9}{'first import s':>16}{'own disk MB':>13}")
    for name, build, first, disk in rows:
        print(f"{name:<24}{build:>9}{first:>16}{disk:>13}")
    worst = max([found["first"], *(_p50(v) for k, v in times.items() if k != "bare")]) / bare
    verdict = "within" if worst <= BUDGET else "OVER"
    print(f"\nbudget: env ready within {BUDGET:g}x bare: {worst:.2f}x ({verdict})")


if __name__ == "__main__":
    asyncio.run(main())
