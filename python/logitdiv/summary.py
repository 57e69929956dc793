"""Summary statistics of per-row scores: streaming, mergeable, and exact.

A `PartialStats` is built from one block of per-row values (``PartialStats.of(values, offset=...)``)
and two of them merge (``p.merge(q)``). Everything it holds merges *exactly*, so the summary of a
run does not depend on how its rows were cut into chunks, in which order the chunks were merged,
or on which machine (in-memory, chunked streaming and Dask give bit-identical summaries):

- counts (rows, finite rows, NaN, ±inf, rows above the threshold) are integers;
- the sum Σx and the sum of squares Σx² of the finite values are kept as exact integers (every
  float64 is an integer times a power of two, and so is its square), so the merge is integer
  addition. This is Chan et al.'s pairwise (count, mean, M2) merge carried out in exact arithmetic:
  the float64 form of that merge is exact only in exact arithmetic and drifts by a few ulps with the
  chunking, which is what made us keep the sums as integers. The mean, the sample variance
  (ddof = 1) and the standard error sqrt(var / n) are rounded to float64 once, at the end;
- min and max of the finite values;
- the K worst rows: a total order (badness, then row index) makes "keep the K first" associative.

Quantiles are not in `PartialStats`: `finalize` takes them from the full per-row score array
(O(rows), small beside the logits), as NumPy's ``np.quantile(finite_values, q, method="linear")``
over the finite values converted to float64 — Hyndman & Fan's definition 7, the NumPy/R default —
exact and independent of chunking too; or, for a `logitdiv.Scorer` that keeps no per-row scores,
from its `logitdiv.sketch.QuantileState` (the same values while within its exact-rows budget,
else a sketch whose guaranteed rank-error bound the summary reports).

Conventions (the same for every metric):
- statistics (mean, sem, std, min, quantiles, max) are over the *finite* rows; rows whose value is
  NaN or ±inf are counted in ``nonfinite`` and left out;
- ``above_threshold`` counts rows whose value is > threshold (+inf counts, NaN does not) and
  ``share_above_threshold`` divides it by all rows; only divergences have a threshold;
- worst rows: for a divergence the largest values, for an agreement metric (top-1, top-k overlap)
  the smallest; a NaN row ranks as the worst possible value; ties go to the lower row index.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .metrics import AGREEMENT, DIVERGENCE

__all__ = ["PartialStats", "MetricSummary", "Summary", "QUANTILES", "QUANTILE_METHOD", "SCHEMA"]

#: The JSON schema identifier written by `Summary.to_dict` (bumped on any incompatible change).
SCHEMA = "logitdiv.score/1"
#: The compatible extension written when a document uses a 1.1 field (sketch quantiles: a
#: top-level "quantile_method" of "sketch", and per metric "quantile_method" and
#: "quantile_rank_error"); a document without them stays "logitdiv.score/1".
SCHEMA_1_1 = "logitdiv.score/1.1"
#: Quantile levels reported, and the names of their fields.
QUANTILES: Tuple[Tuple[str, float], ...] = (("median", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99_9", 0.999))
#: NumPy's method name for the quantile definition used.
QUANTILE_METHOD = "linear"
#: The further percentiles llama.cpp reports (in the 1.1 schema's "percentiles", with the others).
EXTRA_QUANTILES: Tuple[Tuple[str, float], ...] = (("p0_1", 0.001), ("p1", 0.01), ("p5", 0.05), ("p10", 0.1), ("p95", 0.95))


# A float64 x = m · 2^k with an integer |m| < 2^53 and k ≥ -1126 (subnormals included), so
# x · 2^_S1 and x² · 2^_S2 are integers.
_S1 = 1126
_S2 = 2 * _S1
_LIMB = 18
_MASK = (1 << _LIMB) - 1
_BLOCK = 1 << 20  # rows per vectorised pass: keeps every int64 limb sum far from overflow


def _exact_sums(x: np.ndarray) -> Tuple[int, int]:
    """(Σx · 2^_S1, Σx² · 2^_S2) as exact Python integers, for finite float64 values `x`.

    Each value is read from its IEEE-754 bits as ±mant · 2^k (mant < 2^53); values are grouped by
    exponent, the mantissas split into three 18-bit limbs whose sums (and the sums of the limb
    products that make up mant²) stay exact in int64, and each group is added to the Python
    integers at its power of two."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    s1 = 0
    s2 = 0
    for lo in range(0, x.size, _BLOCK):
        bits = x[lo : lo + _BLOCK].view(np.uint64)
        expo = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.uint16)
        order = np.argsort(expo, kind="stable")  # a radix sort for 16-bit keys
        expo = expo[order]
        bits = bits[order]
        mag = (bits & np.uint64((1 << 52) - 1)).astype(np.int64)
        mag |= (expo != 0).astype(np.int64) << 52  # the implicit leading bit of normal numbers
        neg = (bits >> np.uint64(63)).astype(bool)
        starts = np.flatnonzero(np.r_[True, expo[1:] != expo[:-1]])
        l0 = mag & _MASK
        l1 = (mag >> _LIMB) & _MASK
        l2 = mag >> (2 * _LIMB)
        # |mant| = l0 + l1·2^18 + l2·2^36 (l2 < 2^17); every column stays < 2^38, so the sums of
        # 2^20 rows fit in int64.
        sq = [l0 * l0, 2 * l0 * l1, 2 * l0 * l2 + l1 * l1, 2 * l1 * l2, l2 * l2]
        lin = [np.where(neg, -l, l) for l in (l0, l1, l2)]
        lin_s = [np.add.reduceat(c, starts).tolist() for c in lin]
        sq_s = [np.add.reduceat(c, starts).tolist() for c in sq]
        for g, e in enumerate(expo[starts].tolist()):
            k = max(e, 1) - 1075  # value = ±mant · 2^k
            a = lin_s[0][g] + (lin_s[1][g] << _LIMB) + (lin_s[2][g] << (2 * _LIMB))
            b = sum(sq_s[j][g] << (j * _LIMB) for j in range(5))
            s1 += a << (k + _S1)
            s2 += b << (2 * k + _S2)
    return s1, s2


def _badness(values: np.ndarray, kind: str) -> np.ndarray:
    """A float64 key where larger means worse: the value (divergence) or its negation (agreement),
    NaN mapped to +inf."""
    v = values.astype(np.float64, copy=True)
    if kind == AGREEMENT:
        np.negative(v, out=v)
    v[np.isnan(v)] = np.inf
    return v


def _select_worst(idx: np.ndarray, vals: np.ndarray, kind: str, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The `k` worst (row, value) pairs in rank order: badness descending, then row index ascending."""
    if k <= 0 or idx.size == 0:
        return idx[:0].astype(np.int64), vals[:0].astype(np.float64)
    bad = _badness(vals, kind)
    if idx.size > 4 * k:  # pre-select: everything strictly worse than the k-th key, plus ties
        kth = np.partition(bad, bad.size - k)[bad.size - k]
        keep = np.flatnonzero(bad >= kth)
        idx, vals, bad = idx[keep], vals[keep], bad[keep]
    order = np.lexsort((idx, -bad))[:k]
    return idx[order].astype(np.int64), vals[order].astype(np.float64)


def _to_float(x: Fraction) -> float:
    """`x` rounded to float64, ±inf beyond its range (float() would raise OverflowError)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _sqrt(x: Fraction) -> float:
    """sqrt of a non-negative rational, finite whenever the result is (x itself may overflow float64)."""
    m = max(0, (x.numerator.bit_length() - x.denominator.bit_length() - 1000) // 2)
    return math.ldexp(math.sqrt(float(x / (1 << (2 * m)))), m)


class PartialStats:
    """Mergeable statistics of one metric over some rows (see the module docstring)."""

    __slots__ = (
        "kind", "threshold", "k", "rows", "count", "nan", "posinf", "neginf", "above",
        "sum", "sumsq", "min", "max", "worst_idx", "worst_val",
    )

    def __init__(self, kind: str, threshold: Optional[float] = None, k: int = 10) -> None:
        if kind not in (DIVERGENCE, AGREEMENT):
            raise ValueError(f"kind must be {DIVERGENCE!r} or {AGREEMENT!r}; got {kind!r}")
        self.kind = kind
        self.threshold = None if threshold is None or kind != DIVERGENCE else float(threshold)
        self.k = int(k)
        self.rows = 0
        self.count = 0
        self.nan = 0
        self.posinf = 0
        self.neginf = 0
        self.above = 0
        self.sum = 0
        self.sumsq = 0
        self.min = math.inf
        self.max = -math.inf
        self.worst_idx = np.zeros(0, np.int64)
        self.worst_val = np.zeros(0, np.float64)

    @classmethod
    def of(cls, values: Any, *, offset: int = 0, kind: str = DIVERGENCE,
           threshold: Optional[float] = None, k: int = 10) -> "PartialStats":
        """Statistics of the 1-D per-row `values`, the first of which is row `offset`."""
        p = cls(kind, threshold, k)
        p.update(values, offset=offset)
        return p

    def update(self, values: Any, *, offset: int) -> "PartialStats":
        """Adds a block of per-row values (rows offset, offset + 1, …) in place; returns self."""
        v = np.asarray(values).reshape(-1)
        n = v.size
        if n == 0:
            return self
        v64 = v.astype(np.float64, copy=False)
        finite = np.isfinite(v64)
        nfin = int(np.count_nonzero(finite))
        self.rows += n
        self.count += nfin
        if nfin != n:
            bad = v64[~finite]
            n_nan = int(np.count_nonzero(np.isnan(bad)))
            n_pos = int(np.count_nonzero(bad > 0))
            self.nan += n_nan
            self.posinf += n_pos
            self.neginf += bad.size - n_nan - n_pos
            fin = v64[finite]
        else:
            fin = v64
        if nfin:
            s1, s2 = _exact_sums(fin)
            self.sum += s1
            self.sumsq += s2
            self.min = min(self.min, float(fin.min()))
            self.max = max(self.max, float(fin.max()))
        if self.threshold is not None:
            self.above += int(np.count_nonzero(v64 > self.threshold))
        idx = np.arange(offset, offset + n, dtype=np.int64)
        self._take_worst(np.concatenate([self.worst_idx, idx]), np.concatenate([self.worst_val, v64]))
        return self

    def _take_worst(self, idx: np.ndarray, vals: np.ndarray) -> None:
        self.worst_idx, self.worst_val = _select_worst(idx, vals, self.kind, self.k)

    def merge(self, other: "PartialStats") -> "PartialStats":
        """A new PartialStats for the union of the two sets of rows (the rows must not overlap)."""
        if (self.kind, self.threshold, self.k) != (other.kind, other.threshold, other.k):
            raise ValueError("cannot merge statistics gathered with different settings")
        m = PartialStats(self.kind, self.threshold, self.k)
        for name in ("rows", "count", "nan", "posinf", "neginf", "above", "sum", "sumsq"):
            setattr(m, name, getattr(self, name) + getattr(other, name))
        m.min = min(self.min, other.min)
        m.max = max(self.max, other.max)
        m._take_worst(np.concatenate([self.worst_idx, other.worst_idx]),
                      np.concatenate([self.worst_val, other.worst_val]))
        return m

    def shifted(self, n: int) -> "PartialStats":
        """A copy whose rows are numbered n later (for appending these rows after n others)."""
        m = PartialStats(self.kind, self.threshold, self.k)
        for name in self.__slots__:
            setattr(m, name, getattr(self, name))
        m.worst_idx = self.worst_idx + np.int64(n)
        return m

    @staticmethod
    def merge_all(parts: Iterable["PartialStats"]) -> "PartialStats":
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to merge")
        out = parts[0]
        for p in parts[1:]:
            out = out.merge(p)
        return out

    # -- the moments, rounded once ---------------------------------------------------------------
    # (the variance of finite float64 values can exceed the float64 range: it is then +inf, while
    # the standard error, its square root over n, stays finite)
    def mean(self) -> Optional[float]:
        if self.count == 0:
            return None
        return float(Fraction(self.sum, self.count << _S1))

    def var(self) -> Optional[float]:
        """Sample variance (ddof = 1) of the finite values."""
        n = self.count
        if n < 2:
            return None
        return _to_float(Fraction(n * self.sumsq - self.sum * self.sum, (n * (n - 1)) << _S2))

    def std(self) -> Optional[float]:
        """Sample standard deviation (ddof = 1): the square root of the exact variance."""
        n = self.count
        if n < 2:
            return None
        return _sqrt(Fraction(n * self.sumsq - self.sum * self.sum, (n * (n - 1)) << _S2))

    def sem(self) -> Optional[float]:
        """Standard error of the mean, sqrt(var / n)."""
        n = self.count
        if n < 2:
            return None
        return _sqrt(Fraction(n * self.sumsq - self.sum * self.sum, (n * n * (n - 1)) << _S2))

    def __getstate__(self) -> Dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for s, v in state.items():
            setattr(self, s, v)

    def __repr__(self) -> str:
        return f"PartialStats(kind={self.kind!r}, rows={self.rows}, finite={self.count}, mean={self.mean()})"


def _num(x: Optional[float]) -> Any:
    """A float for JSON: None stays null; NaN and ±inf become the strings "nan", "inf", "-inf"."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


@dataclass(frozen=True)
class MetricSummary:
    """The summary of one metric's per-row scores (see the module docstring for conventions)."""

    name: str
    kind: str  # "divergence" or "agreement"
    rows: int
    count: int  # finite rows
    nonfinite: int
    nan: int
    inf: int  # +inf or -inf
    mean: Optional[float]
    sem: Optional[float]
    std: Optional[float]
    min: Optional[float]
    median: Optional[float]
    p90: Optional[float]
    p99: Optional[float]
    p99_9: Optional[float]
    max: Optional[float]
    above_threshold: Optional[int]
    share_above_threshold: Optional[float]
    worst: Tuple[Tuple[int, float], ...]
    #: "linear" (exact) or "sketch" (`logitdiv.sketch`, within `quantile_rank_error` in rank)
    quantile_method: str = QUANTILE_METHOD
    #: guaranteed bound on |rank of the reported quantile − target rank| / count (0 when exact)
    quantile_rank_error: float = 0.0
    #: every reported percentile, QUANTILES and EXTRA_QUANTILES, by name (p0_1 … p99_9)
    percentiles: Optional[Dict[str, Optional[float]]] = None

    def to_dict(self, extended: bool = False) -> Dict[str, Any]:
        d: Dict[str, Any] = {"kind": self.kind, "rows": self.rows, "count": self.count,
                             "nonfinite": self.nonfinite, "nan": self.nan, "inf": self.inf}
        for f in ("mean", "sem", "std", "min", "median", "p90", "p99", "p99_9", "max"):
            d[f] = _num(getattr(self, f))
        d["above_threshold"] = self.above_threshold
        d["share_above_threshold"] = _num(self.share_above_threshold)
        d["worst"] = [{"row": r, "value": _num(v)} for r, v in self.worst]
        if extended:  # schema 1.1
            d["quantile_method"] = self.quantile_method
            d["quantile_rank_error"] = self.quantile_rank_error
            d["percentiles"] = {k: _num(v) for k, v in (self.percentiles or {}).items()}
        return d


@dataclass(frozen=True)
class Summary:
    """The summary of a scoring run: one `MetricSummary` per metric, and the worst rows.

    ``summary.metrics["kl"].mean``, ``summary["kl"].p99``, ``summary.top1_agreement``,
    ``summary.to_dict()`` / ``summary.to_json()`` (schema in the README and `to_dict`),
    ``str(summary)`` for the human report.
    """

    rows: int
    classes: int
    dtypes: Tuple[str, str]
    temperature: float
    threshold: Optional[float]
    top_k_worst: int
    metrics: Dict[str, MetricSummary]
    primary: Optional[str]
    worst_rows: Tuple[Dict[str, Any], ...] = field(default=())
    quantile_method: str = QUANTILE_METHOD
    #: token-aware statistics (`logitdiv.tokens.TokenSummary`) when tokens were given
    tokens: Optional[Any] = None

    @property
    def schema(self) -> str:
        """"logitdiv.score/1", or "logitdiv.score/1.1" when the document carries 1.1 fields."""
        return SCHEMA if self.quantile_method == QUANTILE_METHOD and self.tokens is None else SCHEMA_1_1

    def __getitem__(self, metric: str) -> MetricSummary:
        return self.metrics[metric]

    @property
    def top1_agreement(self) -> Optional[float]:
        """The share of rows whose top-1 classes agree (among rows without NaN), if top1 was scored."""
        m = self.metrics.get("top1")
        return None if m is None else m.mean

    def to_dict(self) -> Dict[str, Any]:
        """The stable JSON form (schema "logitdiv.score/1"):

        ``{"schema", "rows", "classes", "dtype": {"base", "candidate"}, "temperature", "threshold",
        "top_k_worst", "quantile_method", "primary", "metrics": {name: {"kind", "rows", "count",
        "nonfinite", "nan", "inf", "mean", "sem", "std", "min", "median", "p90", "p99", "p99_9",
        "max", "above_threshold", "share_above_threshold", "worst": [{"row", "value"}]}},
        "worst_rows": [{"row", <metric>: value, ...}]}``. Numbers that are NaN or infinite are
        written as the strings "nan", "inf", "-inf"; a statistic of no rows is null.
        """
        return {
            "schema": self.schema,
            "rows": self.rows,
            "classes": self.classes,
            "dtype": {"base": self.dtypes[0], "candidate": self.dtypes[1]},
            "temperature": _num(self.temperature),
            "threshold": _num(self.threshold),
            "top_k_worst": self.top_k_worst,
            "quantile_method": self.quantile_method,
            "primary": self.primary,
            "metrics": {name: m.to_dict(self.schema != SCHEMA) for name, m in self.metrics.items()},
            "worst_rows": [{k: (v if k == "row" else _num(v)) for k, v in r.items()} for r in self.worst_rows],
            **({} if self.tokens is None else {"tokens": self.tokens.to_dict()}),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def format(self, **kwargs: Any) -> str:
        from .report import format_summary

        return format_summary(self, **kwargs)

    def __str__(self) -> str:
        return self.format()


_ALL_Q = QUANTILES + EXTRA_QUANTILES


def _quantiles(values: np.ndarray) -> List[Optional[float]]:
    """QUANTILES then EXTRA_QUANTILES of the finite values."""
    v = np.asarray(values).reshape(-1).astype(np.float64, copy=False)
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        return [None] * len(_ALL_Q)
    qs = np.quantile(fin, [q for _, q in _ALL_Q], method=QUANTILE_METHOD)
    return [float(q) for q in qs]


def metric_summary(name: str, stats: PartialStats, values: Optional[np.ndarray],
                   quantiles: Optional[Any] = None) -> MetricSummary:
    """The summary of one metric from its merged statistics and its full per-row values, or,
    without them, a `logitdiv.sketch.QuantileState` of its finite values."""
    if values is not None:
        if stats.rows != np.asarray(values).size:
            raise ValueError(f"{name}: the statistics cover {stats.rows} rows but {np.asarray(values).size} values were given")
        qv = _quantiles(values)
        method, rank_error = QUANTILE_METHOD, 0.0
    else:
        qv = quantiles.quantiles([q for _, q in _ALL_Q])
        method, rank_error = quantiles.method, quantiles.rank_error
    med, p90, p99, p999 = qv[:4]
    pct = dict(zip([k for k, _ in _ALL_Q], qv))
    pct = {k: pct[k] for k in ("p0_1", "p1", "p5", "p10", "median", "p90", "p95", "p99", "p99_9")}
    above = stats.above if stats.threshold is not None else None
    return MetricSummary(
        name=name,
        kind=stats.kind,
        rows=stats.rows,
        count=stats.count,
        nonfinite=stats.rows - stats.count,
        nan=stats.nan,
        inf=stats.posinf + stats.neginf,
        mean=stats.mean(),
        sem=stats.sem(),
        std=stats.std(),
        min=stats.min if stats.count else None,
        median=med,
        p90=p90,
        p99=p99,
        p99_9=p999,
        max=stats.max if stats.count else None,
        above_threshold=above,
        share_above_threshold=None if above is None or stats.rows == 0 else above / stats.rows,
        worst=tuple(zip(stats.worst_idx.tolist(), stats.worst_val.tolist())),
        quantile_method=method,
        quantile_rank_error=rank_error,
        percentiles=pct,
    )


def finalize(
    stats: Mapping[str, PartialStats],
    scores: Optional[Mapping[str, np.ndarray]],
    *,
    rows: int,
    classes: int,
    dtypes: Tuple[str, str],
    temperature: float,
    threshold: Optional[float],
    top_k_worst: int,
    primary: Optional[str],
    quantiles: Optional[Mapping[str, Any]] = None,
    worst_values: Optional[Mapping[int, Mapping[str, float]]] = None,
    tokens: Optional[Any] = None,
) -> Summary:
    """The `Summary` of a run: merged statistics per metric plus the full per-row scores (for the
    quantiles and the worst-rows table) — or, without the scores (``scores=None``), each metric's
    `logitdiv.sketch.QuantileState` in `quantiles` and the values of every metric at the primary
    metric's worst rows in `worst_values` (row → {metric: value})."""
    metrics = {
        name: metric_summary(name, stats[name], None if scores is None else scores[name],
                             None if quantiles is None else quantiles[name])
        for name in stats
    }
    worst_rows: Tuple[Dict[str, Any], ...] = ()
    if primary is not None:
        table = []
        for r, _ in metrics[primary].worst:
            entry: Dict[str, Any] = {"row": r}
            for name in metrics:
                if scores is None:
                    entry[name] = float(worst_values[r][name])
                else:
                    entry[name] = float(np.asarray(scores[name]).reshape(-1)[r])
            table.append(entry)
        worst_rows = tuple(table)
    return Summary(
        rows=rows,
        classes=classes,
        dtypes=dtypes,
        temperature=float(temperature),
        threshold=None if threshold is None else float(threshold),
        top_k_worst=top_k_worst,
        metrics=metrics,
        primary=primary,
        worst_rows=worst_rows,
        tokens=tokens,
        quantile_method=QUANTILE_METHOD if all(m.quantile_method == QUANTILE_METHOD for m in metrics.values()) else "sketch",
    )


def merge_tree(parts: Sequence[Mapping[str, PartialStats]]) -> Dict[str, PartialStats]:
    """Merges a sequence of {metric: PartialStats} maps (any order gives the same result)."""
    if not parts:
        raise ValueError("nothing to merge")
    return {name: PartialStats.merge_all(p[name] for p in parts) for name in parts[0]}
