"""The streaming consistency scorer: ``ld.Scorer``.

Feed it batches of two models' logits as they come (NumPy arrays, torch tensors, CuPy arrays),
merge scorers that saw different rows, pickle them, and ask for the `Summary` at any time:

>>> import numpy as np, logitdiv as ld
>>> rng = np.random.default_rng(0)
>>> sc = ld.Scorer(metrics=("kl", "top1"))
>>> for _ in range(3):
...     a = rng.standard_normal((100, 20)); _ = sc.update(a, a + 0.01 * rng.standard_normal(a.shape))
>>> sc.summary().rows
300

`ld.score` (files, arrays) and `logitdiv.scoring.dask.score` are built on it. Everything a scorer holds
merges exactly (see `logitdiv.scoring.summary`): the summary of rows scored in one scorer, or in several
merged in row order, is the same field for field. Rows are numbered in the order they were given:
``s.merge(t)`` is a scorer that saw s's rows, then t's (associative, not commutative).

With ``keep_scores=False`` no per-row scores are kept: quantiles stay exact (bit-identical to
``keep_scores=True``) while a metric has at most `exact_rows` finite values, and come from a
mergeable quantile sketch with a stated, guaranteed rank-error bound beyond (`logitdiv.scoring.sketch`);
the worst rows are a bounded selection. Memory is then O(exact_rows) per metric, whatever the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _arrays as A
from .metrics import DEFAULT_METRICS, Metric, parse_metrics, primary_metric, score_block
from .sketch import DEFAULT_EXACT_ROWS, DEFAULT_SKETCH_K, QuantileState
from .stats import PartialStats
from .summary import Summary, finalize
from .tokens import TokenStats, check_tokens, token_values

__all__ = ["Scorer", "ScoreOptions", "value_dtypes"]


def check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int ≥ {minimum}; got {repr(value):.40}")
    return int(value)


@dataclass(frozen=True)
class ScoreOptions:
    """A scoring run's options, checked once (`ScoreOptions.checked`): what every `Scorer` of the
    run is built from (`Scorer.of`), so the command line, `ld.score` and the Dask blocks pass them
    down typed instead of checking them again."""

    metrics: Tuple[Metric, ...]
    temperature: float
    threshold: Optional[float]
    top_k_worst: int
    keep_scores: bool
    exact_rows: int
    sketch_k: int

    @classmethod
    def checked(
        cls,
        metrics: Union[str, Iterable[Union[str, Metric]]] = DEFAULT_METRICS,
        temperature: Any = 1.0,
        threshold: Any = None,
        top_k_worst: Any = 10,
        keep_scores: Any = True,
        exact_rows: Any = DEFAULT_EXACT_ROWS,
        sketch_k: Any = DEFAULT_SKETCH_K,
        *,
        names: Optional[Dict[str, str]] = None,
    ) -> "ScoreOptions":
        """The options, checked: ValueError or TypeError naming the option and its value. `names`
        maps an option to what the caller calls it (the command line: ``{"top_k_worst": "--top"}``)."""
        said = {"temperature": "temperature", "threshold": "threshold", "top_k_worst": "top_k_worst",
                "exact_rows": "exact_rows", **(names or {})}
        t = A.check_number(temperature, said["temperature"])
        if not (np.isfinite(t) and t > 0):
            raise ValueError(f"{said['temperature']} must be finite and > 0; got {repr(temperature):.40}")
        if threshold is not None:
            threshold = A.check_number(threshold, said["threshold"])
            if np.isnan(threshold):
                raise ValueError(f"{said['threshold']} must be a number, not NaN")
        return cls(
            metrics=parse_metrics(metrics),
            temperature=t,
            threshold=threshold,
            top_k_worst=check_count(top_k_worst, said["top_k_worst"], 0),
            keep_scores=A.check_flag(keep_scores, "keep_scores"),
            exact_rows=check_count(exact_rows, said["exact_rows"], 0),
            sketch_k=check_count(sketch_k, "sketch_k", 2),
        )


def value_dtypes(metrics: Sequence[Metric], da: np.dtype, db: np.dtype) -> Dict[str, np.dtype]:
    common = A.common_dtype(np.empty(0, da), np.empty(0, db))
    return {m.name: m.value_dtype(common) for m in metrics}


def to_host(x: Any, name: str) -> Any:
    """A torch tensor (any device) or a CuPy array as a NumPy array; anything else as it is."""
    mod = (type(x).__module__ or "").split(".")[0]
    if mod == "torch":
        return A.torch_to_numpy(x)
    if mod == "cupy":
        import cupy

        return cupy.asnumpy(x)
    return x


class Scorer:
    """Streaming consistency scorer (see the module docstring).

    Parameters
    ----------
    metrics, temperature, threshold, top_k_worst
        As `logitdiv.score`.
    keep_scores : bool, default True
        Keep every row's scores (``scorer.scores``). False keeps none: memory bounded by
        `exact_rows` per metric.
    exact_rows : int, default 2**22
        With ``keep_scores=False``: finite values per metric kept for exact quantiles; beyond it
        the quantiles come from a sketch (``summary[m].quantile_method == "sketch"``, with its
        ``quantile_rank_error``).
    sketch_k : int, default 8192
        The sketch's values per level (rank error at most about log2(n / k) / k).
    """

    def __init__(
        self,
        metrics: Union[str, Iterable[Union[str, Metric]]] = DEFAULT_METRICS,
        temperature: float = 1.0,
        threshold: Optional[float] = None,
        top_k_worst: int = 10,
        keep_scores: bool = True,
        *,
        exact_rows: int = DEFAULT_EXACT_ROWS,
        sketch_k: int = DEFAULT_SKETCH_K,
    ) -> None:
        self._init(ScoreOptions.checked(metrics, temperature, threshold, top_k_worst, keep_scores, exact_rows, sketch_k))

    @classmethod
    def of(cls, options: ScoreOptions) -> "Scorer":
        """A scorer of options already checked."""
        scorer = cls.__new__(cls)
        scorer._init(options)
        return scorer

    def _init(self, options: ScoreOptions) -> None:
        self.options = options
        self._specs = options.metrics
        self._temperature, self._k, self._threshold = options.temperature, options.top_k_worst, options.threshold
        self._keep, self._exact_rows, self._sketch_k = options.keep_scores, options.exact_rows, options.sketch_k
        self._primary = primary_metric(self._specs)
        self.rows = 0
        self.classes: Optional[int] = None
        self.dtypes: Optional[Tuple[str, str]] = None
        self._vdt: Dict[str, np.dtype] = {}
        self._stats = {m.name: PartialStats(m.kind, self._threshold, self._k) for m in self._specs}
        self._blocks: List[Dict[str, np.ndarray]] = []  # kept scores, in row order
        self._buf: Optional[Dict[str, np.ndarray]] = None  # or one preallocated array per metric
        self._quant = None if self._keep else {m.name: QuantileState(self._exact_rows, self._sketch_k) for m in self._specs}
        self._worst_values: Dict[int, Dict[str, float]] = {}
        self._tokens: Optional[TokenStats] = None

    # -- settings ---------------------------------------------------------------------------------
    @property
    def metrics(self) -> Tuple[str, ...]:
        return tuple(m.name for m in self._specs)

    # -- feeding ----------------------------------------------------------------------------------
    def update(self, base: Any, candidate: Any, tokens: Any = None, where: Any = None) -> "Scorer":
        """Scores a batch: `base` and `candidate` of the same shape (..., C), every leading axis a
        row. `tokens` (ints, the leading shape): the evaluated token of every row, for the
        token-aware statistics (`logitdiv.scoring.tokens`; give them with every batch or never).
        `where` (bool, the leading shape) keeps only the rows where it is True (e.g. the
        non-padding positions); skipped rows are not counted or numbered. Returns self."""
        a = A.as_float_array(to_host(base, "base"), "base")
        b = A.as_float_array(to_host(candidate, "candidate"), "candidate")
        if a.shape != b.shape:
            raise ValueError(f"base and candidate must have the same shape; got {a.shape} and {b.shape}")
        c = a.shape[-1]
        a2, b2 = a.reshape(-1, c), b.reshape(-1, c)
        t = None
        if tokens is not None:
            t = np.asarray(to_host(tokens, "tokens"))
            if t.shape != a.shape[:-1]:
                raise ValueError(f"tokens must have the leading shape {a.shape[:-1]} (one per row); got {t.shape}")
            t = check_tokens(t, a2.shape[0], c)
        if where is not None:
            w = np.asarray(to_host(where, "where"))
            if w.dtype != np.bool_ or w.shape != a.shape[:-1]:
                raise ValueError(f"where must be a bool array of the leading shape {a.shape[:-1]}; got {w.dtype} {w.shape}")
            keep = w.reshape(-1)
            a2, b2 = a2[keep], b2[keep]
            t = None if t is None else t[keep]
        self._layout(c, a2.dtype, b2.dtype)
        self._add_block(a2, b2, t)
        return self

    def _layout(self, classes: int, da: np.dtype, db: np.dtype) -> None:
        if self.classes is None:
            self.classes, self.dtypes = int(classes), (da.name, db.name)
            self._vdt = value_dtypes(self._specs, da, db)
            return
        if classes != self.classes:
            raise ValueError(f"this batch has {classes} classes; the earlier ones had {self.classes}")
        if (da.name, db.name) != self.dtypes:
            raise ValueError(f"this batch's dtypes are ({da.name}, {db.name}); the earlier ones were {self.dtypes} "
                             "(convert every batch to the same dtypes)")

    def _reserve(self, rows: int) -> None:
        """Preallocates the kept scores of `rows` more rows (ld.score knows them up front)."""
        if self._keep and not self._blocks and self._buf is None and self.rows == 0:
            self._buf = {n: np.empty(rows, dtype=d) for n, d in self._vdt.items()}

    def _add_block(self, a: np.ndarray, b: np.ndarray, tokens: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
        """Scores 2-D blocks already checked by `_layout` (and tokens by `check_tokens`); returns
        the per-row values."""
        n = a.shape[0]
        lo = self.rows
        if (tokens is None) != (self._tokens is None) and (self.rows or self._tokens is not None):
            raise ValueError("give tokens with every batch or with none: "
                             f"{'no' if tokens is None else ''} tokens with this batch, "
                             f"{'none' if self._tokens is None else 'tokens'} with the earlier ones")
        if tokens is not None and self._tokens is None:
            self._tokens = TokenStats(2**62 if self._keep else self._exact_rows, self._sketch_k)
        if self._buf is not None and lo + n <= next(iter(self._buf.values())).size:
            views = {name: arr[lo : lo + n] for name, arr in self._buf.items()}
        else:
            if self._buf is not None:  # more rows than reserved: fall back to blocks
                self._blocks = [{k: v[:lo] for k, v in self._buf.items()}]
                self._buf = None
            views = {name: np.empty(n, dtype=d) for name, d in self._vdt.items()}
        if n == 0:
            return views
        score_block(a, b, self._specs, self._temperature, views)
        if tokens is not None:
            self._tokens.update(token_values(a, b, tokens, self._temperature))
        for name, v in views.items():
            self._stats[name].update(v, offset=lo)
        if self._keep:
            if self._buf is None:
                self._blocks.append(views)
        else:
            for name, v in views.items():
                self._quant[name].add(v[np.isfinite(v)])
            if self._primary is not None:
                for r in self._stats[self._primary].worst_idx.tolist():
                    if r >= lo and r not in self._worst_values:
                        self._worst_values[r] = {name: float(v[r - lo]) for name, v in views.items()}
                self._prune_worst()
        self.rows = lo + n
        return views

    def _prune_worst(self) -> None:
        keep = set(self._stats[self._primary].worst_idx.tolist())
        self._worst_values = {r: v for r, v in self._worst_values.items() if r in keep}

    # -- combining --------------------------------------------------------------------------------
    def merge(self, other: "Scorer") -> "Scorer":
        """A new scorer that saw this scorer's rows followed by `other`'s (both are unchanged)."""
        if not isinstance(other, Scorer):
            raise TypeError(f"can only merge a Scorer; got {type(other).__name__}")
        if self.options != other.options:
            raise ValueError("cannot merge scorers with different settings (metrics, temperature, threshold, "
                             "top_k_worst, keep_scores, exact_rows, sketch_k)")
        if self.classes is not None and other.classes is not None and \
                (self.classes, self.dtypes) != (other.classes, other.dtypes):
            raise ValueError(f"cannot merge scorers of {self.classes} classes {self.dtypes} and "
                             f"{other.classes} classes {other.dtypes}")
        out = Scorer.__new__(Scorer)
        out.__dict__.update(self.__dict__)
        src = self if self.classes is not None else other
        out.classes, out.dtypes, out._vdt = src.classes, src.dtypes, src._vdt
        n = self.rows
        out.rows = n + other.rows
        out._stats = {k: self._stats[k].merge(other._stats[k].shifted(n)) for k in self._stats}
        out._buf = None
        out._blocks = self._kept_blocks() + other._kept_blocks()
        if (self._tokens is None) != (other._tokens is None) and self.rows and other.rows:
            raise ValueError("cannot merge a scorer given tokens with one given none")
        if self._tokens is not None and other._tokens is not None:
            out._tokens = self._tokens.merge(other._tokens)
        else:
            out._tokens = self._tokens if self._tokens is not None else other._tokens
        if not self._keep:
            out._quant = {k: self._quant[k].merge(other._quant[k]) for k in self._quant}
            out._worst_values = dict(self._worst_values)
            out._worst_values.update({r + n: v for r, v in other._worst_values.items()})
            if out._primary is not None:
                out._prune_worst()
        return out

    def _kept_blocks(self) -> List[Dict[str, np.ndarray]]:
        if self._buf is not None:
            return [{k: v[: self.rows] for k, v in self._buf.items()}]
        return list(self._blocks)

    # -- results ----------------------------------------------------------------------------------
    @property
    def scores(self) -> Optional[Dict[str, np.ndarray]]:
        """metric → 1-D per-row values of every row so far (None with ``keep_scores=False``)."""
        if not self._keep:
            return None
        if self._buf is not None:
            return {k: (v if v.size == self.rows else v[: self.rows]) for k, v in self._buf.items()}
        blocks = self._blocks
        if len(blocks) == 1:
            return dict(blocks[0])
        return {n: (np.concatenate([b[n] for b in blocks]) if blocks else np.empty(0, self._vdt.get(n, np.float32)))
                for n in self.metrics}

    def summary(self, *, classes: Optional[int] = None, dtypes: Optional[Tuple[str, str]] = None) -> Summary:
        """The `Summary` of every row so far (`classes`, `dtypes` label a scorer that saw none)."""
        meta = dict(
            rows=self.rows,
            classes=self.classes if self.classes is not None else (classes or 0),
            dtypes=self.dtypes if self.dtypes is not None else (dtypes or ("none", "none")),
            temperature=self._temperature,
            threshold=self._threshold,
            top_k_worst=self._k,
            primary=self._primary,
            tokens=None if self._tokens is None else self._tokens.summary(),
        )
        if self._keep:
            return finalize(self._stats, self.scores, **meta)
        return finalize(self._stats, None, quantiles=self._quant, worst_values=self._worst_values, **meta)

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        if self._buf is not None:  # only the rows filled so far
            state["_buf"] = None
            state["_blocks"] = self._kept_blocks()
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"Scorer(metrics={self.metrics}, rows={self.rows}, keep_scores={self._keep})"
