"""PNG plots: the task x language heatmap of one run, the per-language deltas of a comparison
(matplotlib is imported only when drawing)."""
from __future__ import annotations

import io
from typing import Mapping, Sequence

from xtreme_jax.files import write_atomic
from xtreme_jax.report.metrics import MetricArg, lang_order, metric_label, task_table


def _save_png(path, fig, dpi: int) -> str:
    # No pyplot: an Agg canvas per figure leaves global matplotlib state (and any
    # interactive backend of the caller) alone, and is safe from threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return write_atomic(path, buf.getvalue())


def _axes(fig, left: float, right: float, bottom: float, top: float):
    """Axes with fixed margins in inches. Cheaper than constrained layout (which measures every
    text twice), and the image keeps exactly the size asked for."""
    w, h = fig.get_size_inches()
    l, r, b, t = left / w, right / w, bottom / h, top / h
    return fig.add_axes((l, b, max(0.05, 1 - l - r), max(0.05, 1 - b - t)))


def plot_heatmap(path, results, metric: MetricArg = None, *, title: str | None = None,
                 figsize: tuple[float, float] | None = None, dpi: int = 100) -> str:
    """Task x language heatmap of the primary metric; missing cells grey. Returns path.

    The image is exactly figsize * dpi pixels (default: grows with the number of languages).
    """
    import numpy as np
    from matplotlib.figure import Figure
    import matplotlib

    table = task_table(results, metric)
    tasks = list(table)
    langs = lang_order({lg for r in table.values() for lg in r["langs"]})
    grid = np.array([[table[t]["langs"].get(lg, np.nan) for lg in langs] for t in tasks], float)
    grid[~np.isfinite(grid)] = np.nan
    ylabels = [f"{t}\n{metric_label(table[t]['metric'])}" for t in tasks]
    rotate = len(langs) > 12
    left = 0.2 + 0.065 * max(len(line) for y in ylabels for line in y.split("\n"))
    bottom = 0.25 + (0.09 * max(map(len, langs)) if rotate else 0.2)
    right, top = 1.1, 0.4
    figsize = figsize or (max(5.0, left + right + 0.42 * len(langs)), bottom + top + 0.5 * len(tasks))
    fig = Figure(figsize=figsize)
    ax = _axes(fig, left, right, bottom, top)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    finite = grid[np.isfinite(grid)]
    # Percent scale when the values are percentages, so runs are comparable by eye.
    lo, hi = (0.0, 100.0) if finite.size and finite.min() >= 0 and finite.max() <= 100 else (
        (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(langs)), langs, rotation=90 if rotate else 0)
    ax.set_yticks(range(len(tasks)), ylabels, fontsize=8)
    if len(langs) <= 60:
        for i, j in zip(*np.nonzero(np.isfinite(grid))):
            v = grid[i, j]
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                    color="black" if v > lo + 0.6 * (hi - lo) else "white")
    w, h = fig.get_size_inches()
    cax = fig.add_axes((1 - 0.85 / w, bottom / h, 0.15 / w, max(0.05, 1 - (bottom + top) / h)))
    fig.colorbar(im, cax=cax)
    ax.set_title(title or "Zero-shot results by task and language", fontsize=10)
    return _save_png(path, fig, dpi)


def plot_comparison(path, task: str, comparison: Mapping, names: Sequence[str] = ("X-STILTs", "XLM-R"),
                    *, figsize: tuple[float, float] | None = None, dpi: int = 100, note: str = "",
                    zero_shot: Mapping | None = None) -> str:
    """Bar plot of the per-language delta of one task from compare_runs(), average bar last (then
    the zero-shot average, when given); `note` is printed under the axes."""
    from matplotlib.figure import Figure

    entry = comparison[task]
    langs = list(entry["languages"])
    deltas = [entry["languages"][lg]["delta"] for lg in langs]
    if entry["average"] is not None:
        langs, deltas = langs + ["avg"], deltas + [entry["average"]["delta"]]
    if zero_shot:
        langs, deltas = langs + ["zero-shot"], deltas + [zero_shot["delta"]]
    rotate = len(langs) > 15
    bottom = 0.25 + (0.09 * max(map(len, langs), default=1) if rotate else 0.2) + (0.3 if note else 0.0)
    fig = Figure(figsize=figsize or (max(4.0, 1.2 + 0.38 * len(langs)), 3.6))
    ax = _axes(fig, 0.8, 0.15, bottom, 0.35)
    colors = ["tab:green" if d >= 0 else "tab:red" for d in deltas]
    for i, lg in enumerate(langs):
        if lg in ("avg", "zero-shot"):
            colors[i] = "tab:blue"
    ax.bar(range(len(langs)), deltas, color=colors)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(langs)), langs, rotation=90 if rotate else 0)
    ax.set_ylabel(f"Δ {metric_label(entry['metric'])}")
    ax.set_title(f"{task}: {names[0]} − {names[1]}", fontsize=10)
    if note:
        import textwrap
        fig.text(0.01, 0.01, "\n".join(textwrap.wrap(note, 110)), fontsize=6, va="bottom")
    return _save_png(path, fig, dpi)
