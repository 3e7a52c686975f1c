"""The benchmarks' figures as PNG: one function per figure, each taking the measured samples.

matplotlib's Agg canvas on a `Figure` of its own (no pyplot, no global state), fixed size,
colours and fonts, no timestamp in the file; the title names the machine's cores and load average
(or the `machine` line given), since on a shared machine a figure means little without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench.common import machine as current_machine
from bench.common import pct

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 100  # 800 x 450 pixels
SIZE_PX = (round(WIDTH_IN * DPI), round(HEIGHT_IN * DPI))
COLOURS = ("#4c4c4c", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
STYLE: dict[Any, Any] = {  # rcParams names, checked by matplotlib
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "svg.hashsalt": "bench",
}
DEFAULT_PATHS = {
    "latency": Path("docs/images/bench-latency.png"),
    "scale": Path("docs/images/bench-scale.png"),
    "cold_start": Path("docs/images/bench-cold-start.png"),
}


@dataclass(frozen=True)
class ScalePoint:
    """One point of the scale curve: `sessions` running cells at once."""

    sessions: int
    cells_per_s: float
    p50_ms: float
    p95_ms: float


def _figure(ncols: int) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def _title(fig: Figure, title: str, machine: str | None) -> None:
    fig.suptitle(f"{title}\n{machine or current_machine()}", fontsize=10)


def _check(samples: Mapping[str, Sequence[float]]) -> None:
    if not samples or any(len(v) == 0 for v in samples.values()):
        raise ValueError("every path needs at least one sample to plot")


def latency(
    samples: Mapping[str, Sequence[float]],
    path: Path,
    *,
    title: str = "x = 1 round trip",
    machine: str | None = None,
) -> Path:
    """Latency distributions (ms), the first path the baseline: the ECDF of each (left) and a
    box plot with each path's p50 and its ratio to the baseline's (right)."""
    _check(samples)
    names = list(samples)
    base = pct(list(samples[names[0]]), 0.5)
    with mpl.rc_context(STYLE):
        fig, (ecdf, box) = _figure(2)
        everything = sorted(x for values in samples.values() for x in values)
        right = pct(everything, 0.99) * 1.1
        for i, name in enumerate(names):
            ordered = sorted(samples[name])
            ys = [(k + 1) / len(ordered) for k in range(len(ordered))]
            ecdf.step(ordered, ys, where="post", color=COLOURS[i % len(COLOURS)], label=name)
        ecdf.set_xlim(0, right)
        ecdf.set_ylim(0, 1.01)
        ecdf.set_xlabel("ms per call")
        ecdf.set_ylabel("fraction of calls at or under")
        ecdf.legend(loc="lower right")
        data = [list(samples[name]) for name in reversed(names)]
        parts = box.boxplot(
            data,
            orientation="horizontal",
            showfliers=False,
            widths=0.6,
            patch_artist=True,
            whis=(5, 95),
            medianprops={"color": "black"},
        )
        for i, patch in enumerate(parts["boxes"]):
            patch.set_facecolor(COLOURS[(len(names) - 1 - i) % len(COLOURS)])
            patch.set_alpha(0.5)
        labels = []
        for name in reversed(names):
            p50 = pct(list(samples[name]), 0.5)
            ratio = "" if name == names[0] else f", {p50 / base:.2f}x"
            labels.append(f"{name}\np50 {p50:.1f} ms{ratio}")
        box.set_yticks(range(1, len(names) + 1), labels)
        box.set_xlim(0, right)
        box.set_xlabel("ms per call (box: p25-p75, whiskers: p5-p95)")
        _title(fig, f"{title}, n={len(samples[names[0]])} per path", machine)
        return _save(fig, path)


def scale(
    points: Sequence[ScalePoint],
    path: Path,
    *,
    title: str = "x = 1 across concurrent sessions",
    budget_cells_per_s: float | None = 150.0,
    machine: str | None = None,
) -> Path:
    """The scale curve: cells/s (left) and p50/p95 latency (right) against sessions, log2 x."""
    if not points:
        raise ValueError("no point to plot")
    ordered = sorted(points, key=lambda p: p.sessions)
    xs = [p.sessions for p in ordered]
    with mpl.rc_context(STYLE):
        fig, (rate, lat) = _figure(2)
        rate.plot(xs, [p.cells_per_s for p in ordered], "o-", color=COLOURS[1], label="cells/s")
        if budget_cells_per_s is not None:
            rate.axhline(
                budget_cells_per_s,
                color=COLOURS[4],
                linestyle="--",
                linewidth=1,
                label=f"budget {budget_cells_per_s:g} cells/s",
            )
        rate.set_ylim(bottom=0)
        rate.set_ylabel("cells per second, all sessions")
        lat.plot(xs, [p.p50_ms for p in ordered], "o-", color=COLOURS[2], label="p50")
        lat.plot(xs, [p.p95_ms for p in ordered], "s--", color=COLOURS[3], label="p95")
        highest = max(p.p95_ms for p in ordered)
        if highest > 20 * min(p.p50_ms for p in ordered):  # spans decades: read it on a log scale
            lat.set_yscale("log")
            lat.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            lat.set_ylabel("ms per call (log scale)")
        else:
            lat.set_ylim(bottom=0)
            lat.set_ylabel("ms per call")
        for ax in (rate, lat):
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(FixedLocator(xs))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(x) for x in xs])
            ax.set_xlabel("concurrent sessions")
            ax.legend(loc="best")
        _title(fig, title, machine)
        return _save(fig, path)


def cold_start(
    samples: Mapping[str, Sequence[float]],
    path: Path,
    *,
    title: str = "launch to first result",
    machine: str | None = None,
) -> Path:
    """Cold starts (s), the first path the baseline: a box plot with every run as a dot, each
    path's p50 and its ratio to the baseline's."""
    _check(samples)
    names = list(samples)
    base = pct(list(samples[names[0]]), 0.5)
    with mpl.rc_context(STYLE):
        fig, (ax,) = _figure(1)
        data = [list(samples[name]) for name in names]
        parts = ax.boxplot(
            data, showfliers=False, widths=0.5, patch_artist=True, medianprops={"color": "black"}
        )
        for i, patch in enumerate(parts["boxes"]):
            patch.set_facecolor(COLOURS[i % len(COLOURS)])
            patch.set_alpha(0.4)
        for i, values in enumerate(data):
            # spread the dots by their rank, not at random: the same samples, the same picture
            offsets = [((k % 7) - 3) * 0.03 for k in range(len(values))]
            ax.plot(
                [i + 1 + o for o in offsets],
                values,
                "o",
                color=COLOURS[i % len(COLOURS)],
                markersize=4,
            )
        labels = []
        for name in names:
            p50 = pct(list(samples[name]), 0.5)
            ratio = "" if name == names[0] else f", {p50 / base:.2f}x"
            labels.append(f"{name}\np50 {p50:.2f} s{ratio}")
        ax.set_xticks(range(1, len(names) + 1), labels)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("seconds")
        _title(fig, f"{title}, n={len(data[0])} per path", machine)
        return _save(fig, path)
