"""Streaming statistics of per-row scores: mergeable and exact.

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

Quantiles are not here: `logitdiv.scoring.summary` takes them from the full per-row scores or from
a `logitdiv.scoring.sketch.QuantileState`. The conventions (finite rows only, the threshold, the
worst rows) are stated in `logitdiv.scoring.summary`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .metrics import AGREEMENT, DIVERGENCE

__all__ = ["PartialStats", "merge_tree", "EXACT_SCALE", "EXACT_SCALE_SQ"]

# A float64 x = m · 2^k with an integer |m| < 2^53 and k ≥ -1126 (subnormals included), so
# x · 2^EXACT_SCALE and x² · 2^EXACT_SCALE_SQ are integers.
EXACT_SCALE = 1126
EXACT_SCALE_SQ = 2 * EXACT_SCALE
_LIMB = 18
_MASK = (1 << _LIMB) - 1
_BLOCK = 1 << 20  # rows per vectorised pass: keeps every int64 limb sum far from overflow


def _exact_sums(x: np.ndarray) -> Tuple[int, int]:
    """(Σx · 2^EXACT_SCALE, Σx² · 2^EXACT_SCALE_SQ) as exact Python integers, for finite float64 values `x`.

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
            s1 += a << (k + EXACT_SCALE)
            s2 += b << (2 * k + EXACT_SCALE_SQ)
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
        return float(Fraction(self.sum, self.count << EXACT_SCALE))

    def var(self) -> Optional[float]:
        """Sample variance (ddof = 1) of the finite values."""
        n = self.count
        if n < 2:
            return None
        return _to_float(Fraction(n * self.sumsq - self.sum * self.sum, (n * (n - 1)) << EXACT_SCALE_SQ))

    def std(self) -> Optional[float]:
        """Sample standard deviation (ddof = 1): the square root of the exact variance."""
        n = self.count
        if n < 2:
            return None
        return _sqrt(Fraction(n * self.sumsq - self.sum * self.sum, (n * (n - 1)) << EXACT_SCALE_SQ))

    def sem(self) -> Optional[float]:
        """Standard error of the mean, sqrt(var / n)."""
        n = self.count
        if n < 2:
            return None
        return _sqrt(Fraction(n * self.sumsq - self.sum * self.sum, (n * n * (n - 1)) << EXACT_SCALE_SQ))

    def __getstate__(self) -> Dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for s, v in state.items():
            setattr(self, s, v)

    def __repr__(self) -> str:
        return f"PartialStats(kind={self.kind!r}, rows={self.rows}, finite={self.count}, mean={self.mean()})"


def merge_tree(parts: Sequence[Mapping[str, PartialStats]]) -> Dict[str, PartialStats]:
    """Merges a sequence of {metric: PartialStats} maps (any order gives the same result)."""
    if not parts:
        raise ValueError("nothing to merge")
    return {name: PartialStats.merge_all(p[name] for p in parts) for name in parts[0]}
