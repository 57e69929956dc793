"""The per-row metrics of consistency scoring, computed on one block of rows.

Divergences come from the library's own functions (the Rust core), written straight into the
caller's per-row buffer (``out=``); nothing here recomputes a divergence. Agreement metrics use
NumPy on the block:

=================  ===================================================================  =========
name               per-row value (a = base / first input, b = candidate / second)        kind
=================  ===================================================================  =========
``kl``             KL(softmax(a/τ) ‖ softmax(b/τ)) — ``ld.kl(a, b)``, llama.cpp's KLD     divergence
``rkl``            the reverse KL(softmax(b/τ) ‖ softmax(a/τ)) — ``ld.kl(b, a)``          divergence
``sym_kl``         KL both ways — ``ld.sym_kl(a, b)``                                     divergence
``js``             Jensen–Shannon divergence (β = ½) — ``ld.js(a, b)``                    divergence
``sigmoid_kl``     Σ_i KL(Bern(σ(a_i/τ)) ‖ Bern(σ(b_i/τ))) — ``ld.sigmoid_kl(a, b)``      divergence
``sigmoid_sym_kl`` GlobalPointer KL — ``ld.sigmoid_sym_kl(a, b)``                         divergence
``top1``           1.0 where argmax a = argmax b, else 0.0                                agreement
``topK`` (K ≥ 2)   |top-K(a) ∩ top-K(b)| / K, e.g. ``top5``                               agreement
=================  ===================================================================  =========

Divergence values are float64 for float64 logits and float32 otherwise (as the library's);
agreement values are float32. Top-k sets are the K largest logits of a row, ties going to the
lower class index (so ``top1`` is NumPy's argmax); a row holding a NaN in either input gets NaN
for the agreement metrics. Temperature does not change them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _arrays as A
from .. import _layout as L
from .. import _native

#: The two kinds of metric: a divergence per row (lower is closer) and an agreement share per row.
DIVERGENCE = "divergence"
AGREEMENT = "agreement"

__all__ = ["Metric", "parse_metrics", "score_block", "DEFAULT_METRICS", "METRIC_NAMES"]

DEFAULT_METRICS: Tuple[str, ...] = ("kl", "sym_kl", "js", "top1")
METRIC_NAMES: Tuple[str, ...] = ("kl", "rkl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl", "top1", "topK")

# the divergence metrics; "rkl" is kl with the inputs swapped
_DIVERGENCES = frozenset(("kl", "rkl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl"))
_TOPK = re.compile(r"^top(\d+)$")


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # DIVERGENCE or AGREEMENT
    k: int = 0  # top-k size for agreement metrics

    def value_dtype(self, logits_dtype: np.dtype) -> np.dtype:
        return A.value_dtype(logits_dtype) if self.kind == DIVERGENCE else np.dtype(np.float32)


def parse_metrics(metrics: Union[str, Iterable[Union[str, Metric]]]) -> Tuple[Metric, ...]:
    """Metric names (a sequence, or one string with commas) as `Metric`s, in order, duplicates
    dropped; `Metric`s already parsed (the CLI's, checked once) pass as they are."""
    if isinstance(metrics, str):
        names = [m.strip() for m in metrics.split(",")]
    else:
        try:
            names = [m.strip() if isinstance(m, str) else m for m in metrics]
        except TypeError:
            raise TypeError(f"metrics must be a sequence of names; got {metrics!r}") from None
    out: List[Metric] = []
    seen = set()
    for n in names:
        if isinstance(n, Metric):
            if n.name not in seen:
                out.append(n)
                seen.add(n.name)
            continue
        if not isinstance(n, str):
            raise TypeError(f"metric names must be strings; got {n!r}")
        n = n.lower()
        if n in seen:
            continue
        if n in _DIVERGENCES:
            out.append(Metric(n, DIVERGENCE))
        elif _TOPK.match(n) and int(_TOPK.match(n).group(1)) >= 1:
            out.append(Metric(n, AGREEMENT, int(_TOPK.match(n).group(1))))
        else:
            raise ValueError(
                f"unknown metric {n!r}; choose from kl, rkl, sym_kl, js, sigmoid_kl, sigmoid_sym_kl, top1, topK (e.g. top5)"
            )
        seen.add(n)
    if not out:
        raise ValueError("no metric given; choose from kl, rkl, sym_kl, js, sigmoid_kl, sigmoid_sym_kl, top1, topK")
    return tuple(out)


def _nan_rows(x: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Rows holding a NaN: NumPy's argmax stops at the first NaN, so the value at the argmax tells."""
    return np.isnan(x[np.arange(x.shape[0]), top])


def _comparable(x: np.ndarray) -> np.ndarray:
    """x, or a float32 copy where NumPy cannot order its dtype natively (bfloat16)."""
    return x if x.dtype.kind == "f" and x.dtype.name in ("float16", "float32", "float64") else x.astype(np.float32)


def _topk_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean (rows, C) mask of each row's k largest entries, ties to the lower class index."""
    n, c = x.shape
    kth = np.partition(x, c - k, axis=1)[:, c - k][:, None]
    gt = x > kth
    eq = x == kth
    need = k - gt.sum(axis=1)
    sel = gt | eq
    tied = np.flatnonzero(eq.sum(axis=1) > need)  # rows where the tie at the k-th value must be cut
    if tied.size:
        rank = np.cumsum(eq[tied], axis=1, dtype=np.int32)
        sel[tied] = gt[tied] | (eq[tied] & (rank <= need[tied, None]))
    return sel


def top1(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    a, b = _comparable(a), _comparable(b)
    ia = np.argmax(a, axis=1)
    ib = np.argmax(b, axis=1)
    np.equal(ia, ib, out=out, casting="unsafe")
    out[_nan_rows(a, ia) | _nan_rows(b, ib)] = np.nan
    return out


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int, out: np.ndarray) -> np.ndarray:
    a, b = _comparable(a), _comparable(b)
    c = a.shape[1]
    bad = _nan_rows(a, np.argmax(a, axis=1)) | _nan_rows(b, np.argmax(b, axis=1))
    if k >= c:
        out[...] = 1.0
    else:
        inter = np.count_nonzero(_topk_mask(a, k) & _topk_mask(b, k), axis=1)
        np.divide(inter, k, out=out, casting="unsafe")
    out[bad] = np.nan
    return out


def score_block(
    a: np.ndarray,
    b: np.ndarray,
    metrics: Sequence[Metric],
    temperature: float,
    out: Dict[str, np.ndarray],
) -> None:
    """Writes each metric's per-row values for the 2-D blocks `a`, `b` into ``out[name]`` (1-D
    buffers of len(a) rows and the metric's value dtype).

    The block is checked and brought to one dtype once, then each divergence is one native call on
    it (the scorer validated the options and the layout before; the public functions, which check
    everything per call, would convert a mixed-dtype block once per metric)."""
    divergences = [m for m in metrics if m.kind == DIVERGENCE]
    if divergences:
        L.check_mapped(a, "a")
        L.check_mapped(b, "b")
        dtype = A.common_dtype(a, b)
        a2 = L.rows_view(a.astype(dtype, copy=False))
        b2 = L.rows_view(b.astype(dtype, copy=False))
        for m in divergences:
            first, second = (b2, a2) if m.name == "rkl" else (a2, b2)
            _native.pair_divergence("kl" if m.name == "rkl" else m.name, first, second, temperature=temperature,
                                    reduction="none", out=out[m.name])
    for m in metrics:
        buf = out[m.name]
        if m.kind == DIVERGENCE:
            continue
        if m.k == 1:
            top1(a, b, buf)
        else:
            topk_overlap(a, b, m.k, buf)


def primary_metric(metrics: Sequence[Metric]) -> Optional[str]:
    """The metric the worst-rows table ranks by: the first divergence, else the first metric."""
    for m in metrics:
        if m.kind == DIVERGENCE:
            return m.name
    return metrics[0].name if metrics else None
