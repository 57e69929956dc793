"""A mergeable quantile sketch with a deterministic, tracked rank-error bound, and the per-metric
quantile state of the streaming scorer (exact up to a row budget, then the sketch).

`QuantileSketch` is a hierarchy of compactors (Manku–Rajagopalan–Lindsay; the building block of
KLL): level h holds values of weight 2^h. When a level holds more than `k` values it is sorted and
*compacted*: every other value (alternately the even and the odd positions, level by level) moves
to level h + 1 with twice the weight; an odd one out stays. For any x, one compaction changes the
weighted count of values ≤ x by at most the weight 2^h of the compacted level. The sketch adds up
those weights in `err`, so at any time, for every x,

    | estimated #(values ≤ x) − true #(values ≤ x) |  ≤  err,

a guaranteed bound (no probability involved), reported as the rank error ``err / n``. Merging two
sketches concatenates their levels (errors add) and compacts again. Memory: at most k values per
level, about log2(n / k) levels — for k = 8192, ~1 MiB per metric at 10^9 values, where err / n
is at most log2(n / k) / k (≈ 0.2 %; in practice far less, since big batches compact in one go).

Results depend on how the values were batched and merged (the compaction schedule), not only on
the values — unlike the exact statistics. Everything is plain Python/NumPy state: picklable.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

__all__ = ["QuantileSketch", "QuantileState", "DEFAULT_SKETCH_K", "DEFAULT_EXACT_ROWS"]

#: Values a compactor level holds before it is compacted.
DEFAULT_SKETCH_K = 8192
#: Finite values per metric kept exactly (then the quantiles are exact) before switching to the sketch.
DEFAULT_EXACT_ROWS = 1 << 22


class QuantileSketch:
    """Mergeable quantile sketch over float64 values with a tracked rank-error bound `err`."""

    __slots__ = ("k", "levels", "n", "err", "parity")

    def __init__(self, k: int = DEFAULT_SKETCH_K) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise ValueError(f"sketch size k must be an int ≥ 2; got {k!r}")
        self.k = int(k)
        self.levels: List[np.ndarray] = []
        self.n = 0  # total weight: values seen
        self.err = 0  # Σ weights of the compactions: the rank-error bound
        self.parity: List[int] = []

    def update(self, values: np.ndarray) -> "QuantileSketch":
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size == 0:
            return self
        if np.isnan(v).any():
            raise ValueError("the quantile sketch takes no NaN values")
        self._level(0)
        self.levels[0] = np.concatenate([self.levels[0], v])
        self.n += int(v.size)
        self._compress()
        return self

    def _level(self, h: int) -> None:
        while len(self.levels) <= h:
            self.levels.append(np.zeros(0, np.float64))
            self.parity.append(0)

    def _compress(self) -> None:
        h = 0
        while h < len(self.levels):
            buf = self.levels[h]
            if buf.size > self.k:
                buf = np.sort(buf)
                m = buf.size - (buf.size & 1)
                off = self.parity[h] & 1
                self.parity[h] += 1
                up = buf[off:m:2]
                self.levels[h] = buf[m:]  # the odd one out, if any
                self._level(h + 1)
                self.levels[h + 1] = np.concatenate([self.levels[h + 1], up])
                self.err += 1 << h
            h += 1

    def merge(self, other: "QuantileSketch") -> "QuantileSketch":
        """A new sketch of the union of the two (the inputs are left as they are)."""
        if self.k != other.k:
            raise ValueError(f"cannot merge sketches of different sizes ({self.k} and {other.k})")
        out = QuantileSketch(self.k)
        out._level(max(len(self.levels), len(other.levels)) - 1)
        for h in range(len(out.levels)):
            parts = [s.levels[h] for s in (self, other) if h < len(s.levels)]
            out.levels[h] = np.concatenate(parts) if parts else out.levels[h]
            out.parity[h] = sum(s.parity[h] for s in (self, other) if h < len(s.parity))
        out.n = self.n + other.n
        out.err = self.err + other.err
        out._compress()
        return out

    @property
    def rank_error(self) -> float:
        """The guaranteed bound on |estimated rank − true rank| / n (0 before any compaction)."""
        return self.err / self.n if self.n else 0.0

    def quantiles(self, qs: Sequence[float]) -> List[Optional[float]]:
        """For each q, the retained value covering the 0-based rank floor((n − 1) q) of the
        weighted sorted values (None when empty). Its true rank is within `err` of that rank."""
        if self.n == 0:
            return [None] * len(qs)
        vals = np.concatenate(self.levels)
        wts = np.concatenate([np.full(lv.size, 1 << h, dtype=np.int64) for h, lv in enumerate(self.levels)])
        order = np.argsort(vals, kind="stable")
        vals, cw = vals[order], np.cumsum(wts[order])
        out: List[Optional[float]] = []
        for q in qs:
            r = int(np.floor((self.n - 1) * float(q)))
            i = int(np.searchsorted(cw, r + 1, side="left"))  # first value whose ranks reach r
            out.append(float(vals[min(i, vals.size - 1)]))
        return out

    def nbytes(self) -> int:
        return sum(lv.nbytes for lv in self.levels)

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for s, v in state.items():
            setattr(self, s, v)


class QuantileState:
    """The finite values of one metric for its quantiles: kept exactly while there are at most
    `exact_rows` of them (quantiles = NumPy's "linear" method, bit-identical to the in-memory
    scorer), then folded into a `QuantileSketch` of size `k`."""

    __slots__ = ("exact_rows", "k", "parts", "count", "sketch")

    def __init__(self, exact_rows: int = DEFAULT_EXACT_ROWS, k: int = DEFAULT_SKETCH_K) -> None:
        self.exact_rows = int(exact_rows)
        self.k = int(k)
        self.parts: List[np.ndarray] = []
        self.count = 0
        self.sketch: Optional[QuantileSketch] = None

    def add(self, finite: np.ndarray) -> None:
        n = int(finite.size)
        if n == 0:
            return
        self.count += n
        if self.sketch is None and self.count <= self.exact_rows:
            self.parts.append(np.array(finite, copy=True))
            return
        self._to_sketch()
        self.sketch.update(finite)

    def _to_sketch(self) -> None:
        if self.sketch is None:
            self.sketch = QuantileSketch(self.k)
            for p in self.parts:
                self.sketch.update(p)
            self.parts = []

    def merge(self, other: "QuantileState") -> "QuantileState":
        if (self.exact_rows, self.k) != (other.exact_rows, other.k):
            raise ValueError("cannot merge quantile states with different exact_rows or sketch sizes")
        out = QuantileState(self.exact_rows, self.k)
        out.count = self.count + other.count
        if self.sketch is None and other.sketch is None and out.count <= self.exact_rows:
            out.parts = self.parts + other.parts
            return out
        sk = []
        for s in (self, other):
            if s.sketch is not None:
                sk.append(s.sketch)
            else:
                t = QuantileSketch(self.k)
                for p in s.parts:
                    t.update(p)
                sk.append(t)
        out.sketch = sk[0].merge(sk[1])
        return out

    @property
    def method(self) -> str:
        return "linear" if self.sketch is None else "sketch"

    @property
    def rank_error(self) -> float:
        return 0.0 if self.sketch is None else self.sketch.rank_error

    def quantiles(self, qs: Sequence[float]) -> List[Optional[float]]:
        if self.sketch is not None:
            return self.sketch.quantiles(qs)
        if self.count == 0:
            return [None] * len(qs)
        v = np.concatenate(self.parts).astype(np.float64, copy=False)
        return [float(x) for x in np.quantile(v, list(qs), method="linear")]

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for s, v in state.items():
            setattr(self, s, v)
