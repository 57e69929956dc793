"""Consistency scoring over dask arrays, on one machine or many (``pip install 'logitdiv[dask]'``).

>>> import numpy as np, dask.array as da, logitdiv.scoring.dask as ldd
>>> base = da.from_array(np.random.default_rng(0).standard_normal((1000, 50)), chunks=(250, 50))
>>> res = ldd.score(base, base * 1.01)          # or da.from_zarr(...), da.from_npy_stack(...)
>>> res.scores["kl"].shape                      # a lazy dask array of per-row KL
(1000,)
>>> scores, summary = res.compute()             # numpy arrays and a Summary, one pass
>>> summary.rows
1000

Rows are chunked as the inputs are (the classes axis is brought to a single chunk, and the
second input is rechunked to the first's rows). Each block is scored by the library's kernels and
summarised by a `logitdiv.Scorer`; the scorers merge exactly, in row order (integer sums, a total
order for the worst rows), so the summary equals ``ld.score``'s on the same data —
field for field, whatever the chunking, the worker count or the merge order. Quantiles are taken
from the gathered per-row scores (O(rows)), by the same definition.
"""

from __future__ import annotations

import operator
from typing import Any, Dict, Iterable, NamedTuple, Optional, Tuple, Union

import numpy as np

try:
    import dask
    import dask.array as da
    from dask import delayed
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("logitdiv.scoring.dask needs dask: pip install 'logitdiv[dask]'") from e

from .readers import logits_dtype
from .metrics import DEFAULT_METRICS
from .scorer import Scorer, ScoreOptions, value_dtypes
from .batch import ScoreResult, default_chunk_rows
from .summary import Summary

__all__ = ["score", "DaskScoreResult"]

_FAN_IN = 8


class DaskScoreResult(NamedTuple):
    """``scores``: metric → lazy 1-D dask array of per-row values; ``summary``: a dask Delayed
    that computes the `Summary`. ``compute()`` computes both in one pass → `ScoreResult`."""

    scores: Dict[str, Any]
    summary: Any

    def compute(self, **kwargs: Any) -> ScoreResult:
        scores, summary = dask.compute(self.scores, self.summary, **kwargs)
        return ScoreResult(dict(scores), summary)


def _score_block(a: Any, b: Any, options: ScoreOptions, offset: int) -> Tuple[Dict[str, np.ndarray], Scorer]:
    """Per-row scores and a `Scorer` of one block of rows (the first being row `offset`)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"blocks out of step at row {offset}: {a.shape} and {b.shape}")
    n, c = a.shape
    scorer = Scorer.of(options)
    scorer._layout(c, a.dtype, b.dtype)
    scorer._reserve(n)
    step = default_chunk_rows(c, max(a.dtype.itemsize, b.dtype.itemsize))
    for lo in range(0, n, step):
        scorer._add_block(a[lo : lo + step], b[lo : lo + step])
    return scorer.scores, scorer


def _merge(*parts: Scorer) -> Scorer:
    """Merges scorers of consecutive blocks, in row order."""
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def _finalize(merged: Scorer, classes: int, dtypes: Tuple[str, str]) -> Summary:
    return merged.summary(classes=classes, dtypes=dtypes)


def _as_rows(x: Any, name: str) -> Any:
    x = da.asarray(x)
    logits_dtype(x, name)  # a floating-point type, or TypeError
    if x.ndim == 0:
        raise ValueError(f"{name} is a scalar; logits need at least one axis (the classes)")
    if any(d != d for d in x.shape):  # NaN: chunk sizes dask does not know yet (e.g. after x[mask])
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {tuple(x.shape)}, e.g. after boolean indexing); "
            f"compute them first: {name}.compute_chunk_sizes()"
        )
    c = x.shape[-1]
    if x.ndim == 1:
        x = x.reshape(1, c)
    elif x.ndim > 2:
        x = x.rechunk({x.ndim - 1: -1}).reshape(-1, c)
    if len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    return x


def score(
    a: Any,
    b: Any,
    *,
    metrics: Union[str, Iterable[str]] = DEFAULT_METRICS,
    temperature: float = 1.0,
    top_k_worst: int = 10,
    threshold: Optional[float] = None,
) -> DaskScoreResult:
    """`logitdiv.score` over dask arrays (or anything ``dask.array.asarray`` takes), lazily.

    Same metrics, options and definitions as `logitdiv.score`; returns a `DaskScoreResult` whose
    ``scores`` are dask arrays chunked like the inputs' rows and whose ``summary`` is a Delayed
    merged from per-block partial statistics. Nothing is computed until you ask.
    """
    options = ScoreOptions.checked(metrics, temperature, threshold, top_k_worst)
    a2 = _as_rows(a, "a")
    b2 = _as_rows(b, "b")
    if a2.shape != b2.shape:
        what = "class counts" if a2.shape[1] != b2.shape[1] else "row counts"
        raise ValueError(
            f"a and b must hold logits for the same rows and classes; got {a2.shape[0]} rows × {a2.shape[1]} classes "
            f"and {b2.shape[0]} rows × {b2.shape[1]} classes: the {what} differ"
        )
    if b2.chunks != a2.chunks:
        b2 = b2.rechunk(a2.chunks)
    rows, classes = (int(d) for d in a2.shape)
    dtypes = value_dtypes(options.metrics, a2.dtype, b2.dtype)
    names = tuple(m.name for m in options.metrics)

    blocks_a = a2.to_delayed().ravel().tolist()
    blocks_b = b2.to_delayed().ravel().tolist()
    offsets = np.concatenate([[0], np.cumsum(a2.chunks[0])]).tolist()
    parts = [
        delayed(_score_block, pure=True, nout=2)(ba, bb, options, offsets[i])
        for i, (ba, bb) in enumerate(zip(blocks_a, blocks_b))
    ]
    scores: Dict[str, Any] = {}
    for n in names:
        pieces = [
            da.from_delayed(delayed(operator.getitem, pure=True)(p[0], n), shape=(size,), dtype=dtypes[n])
            for p, size in zip(parts, a2.chunks[0])
        ]
        scores[n] = da.concatenate(pieces) if pieces else da.zeros((0,), dtype=dtypes[n])

    level = [p[1] for p in parts]
    while len(level) > 1:
        level = [delayed(_merge, pure=True)(*level[i : i + _FAN_IN]) for i in range(0, len(level), _FAN_IN)]
    merged = level[0] if level else Scorer.of(options)
    summary = delayed(_finalize, pure=True)(merged, classes, (a2.dtype.name, b2.dtype.name))
    return DaskScoreResult(scores, summary)
