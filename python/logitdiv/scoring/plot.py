"""A histogram of per-row divergences on a log scale (``logitdiv score --plot hist.png``).
Needs matplotlib: ``pip install 'logitdiv[plot]'``. Draws without pyplot (no GUI backend)."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from .metrics import DIVERGENCE
from .summary import Summary

__all__ = ["need_matplotlib", "histogram"]


def need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'logitdiv[plot]'") from None


def histogram(scores: Mapping[str, np.ndarray], summary: Summary, path: str, *, title: Optional[str] = None, bins: int = 60) -> str:
    """Writes a PNG histogram of each divergence's per-row values, log-spaced bins on a log x
    axis (zero rows, which a log axis cannot show, are counted in the legend), with the threshold
    marked. Returns `path`."""
    need_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n, m in summary.metrics.items() if m.kind == DIVERGENCE]
    if not names:
        raise ValueError("--plot draws divergences; add one with --metric (kl, sym_kl, js, ...)")
    positive = {}
    for n in names:
        v = np.asarray(scores[n], dtype=np.float64)
        positive[n] = v[np.isfinite(v) & (v > 0)]
    allpos = np.concatenate(list(positive.values()))
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if allpos.size:
        lo, hi = float(allpos.min()), float(allpos.max())
        if lo == hi:
            lo, hi = lo / 2, hi * 2
        edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1)
        for n in names:
            v = positive[n]
            m = summary.metrics[n]
            zeros = m.count - v.size
            label = f"{n}: mean {m.mean:.3g}, p99 {m.p99:.3g}" if m.mean is not None and m.p99 is not None else n
            if zeros:
                label += f" ({zeros:,} zero rows not shown)"
            ax.hist(v, bins=edges, histtype="step", linewidth=1.5, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if summary.threshold is not None and summary.threshold > 0:
            ax.axvline(summary.threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {summary.threshold:g}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "every row scored 0 (or non-finite)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("per-row divergence (nats, log scale)")
    ax.set_ylabel("rows")
    ax.set_title(title or f"{summary.rows:,} rows × {summary.classes:,} classes")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
