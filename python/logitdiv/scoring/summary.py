"""The summary of a scoring run: per metric, the statistics of its per-row scores, and the worst rows.

The counts, mean, standard error, min, max and worst rows come merged from
`logitdiv.scoring.stats.PartialStats` (exact and independent of chunking). Quantiles come from the
full per-row score array (O(rows), small beside the logits), as NumPy's
``np.quantile(finite_values, q, method="linear")`` over the finite values converted to float64 —
Hyndman & Fan's definition 7, the NumPy/R default — exact and independent of chunking too; or, for
a `logitdiv.Scorer` that keeps no per-row scores, from its
`logitdiv.scoring.sketch.QuantileState` (the same values while within its exact-rows budget, else a
sketch whose guaranteed rank-error bound the summary reports).
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
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .metrics import AGREEMENT, DIVERGENCE
from .stats import PartialStats
from .text import fmt, json_number, table

__all__ = ["MetricSummary", "Summary", "finalize", "format_summary", "QUANTILES", "QUANTILE_METHOD", "SCHEMA"]

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
    #: "linear" (exact) or "sketch" (`logitdiv.scoring.sketch`, within `quantile_rank_error` in rank)
    quantile_method: str = QUANTILE_METHOD
    #: guaranteed bound on |rank of the reported quantile − target rank| / count (0 when exact)
    quantile_rank_error: float = 0.0
    #: every reported percentile, QUANTILES and EXTRA_QUANTILES, by name (p0_1 … p99_9)
    percentiles: Optional[Dict[str, Optional[float]]] = None

    def to_dict(self, extended: bool = False) -> Dict[str, Any]:
        d: Dict[str, Any] = {"kind": self.kind, "rows": self.rows, "count": self.count,
                             "nonfinite": self.nonfinite, "nan": self.nan, "inf": self.inf}
        for f in ("mean", "sem", "std", "min", "median", "p90", "p99", "p99_9", "max"):
            d[f] = json_number(getattr(self, f))
        d["above_threshold"] = self.above_threshold
        d["share_above_threshold"] = json_number(self.share_above_threshold)
        d["worst"] = [{"row": r, "value": json_number(v)} for r, v in self.worst]
        if extended:  # schema 1.1
            d["quantile_method"] = self.quantile_method
            d["quantile_rank_error"] = self.quantile_rank_error
            d["percentiles"] = {k: json_number(v) for k, v in (self.percentiles or {}).items()}
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
    #: token-aware statistics (`logitdiv.scoring.tokens.TokenSummary`) when tokens were given
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
            "temperature": json_number(self.temperature),
            "threshold": json_number(self.threshold),
            "top_k_worst": self.top_k_worst,
            "quantile_method": self.quantile_method,
            "primary": self.primary,
            "metrics": {name: m.to_dict(self.schema != SCHEMA) for name, m in self.metrics.items()},
            "worst_rows": [{k: (v if k == "row" else json_number(v)) for k, v in r.items()} for r in self.worst_rows],
            **({} if self.tokens is None else {"tokens": self.tokens.to_dict()}),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def format(self, **kwargs: Any) -> str:
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
    without them, a `logitdiv.scoring.sketch.QuantileState` of its finite values."""
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
    `logitdiv.scoring.sketch.QuantileState` in `quantiles` and the values of every metric at the primary
    metric's worst rows in `worst_values` (row → {metric: value})."""
    metrics = {
        name: metric_summary(name, stats[name], None if scores is None else scores[name],
                             None if quantiles is None else quantiles[name])
        for name in stats
    }
    worst_rows: Tuple[Dict[str, Any], ...] = ()
    if primary is not None:
        worst_table = []
        for r, _ in metrics[primary].worst:
            entry: Dict[str, Any] = {"row": r}
            for name in metrics:
                if scores is None:
                    entry[name] = float(worst_values[r][name])
                else:
                    entry[name] = float(np.asarray(scores[name]).reshape(-1)[r])
            worst_table.append(entry)
        worst_rows = tuple(worst_table)
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


def _agreement_line(m: MetricSummary) -> str:
    label = "top-1 agreement" if m.name == "top1" else f"top-{m.name[3:]} overlap"
    if m.count == 0:
        return f"{label:<17} —"
    pct = 100.0 * (m.mean or 0.0)
    se = "" if m.sem is None else f" ± {100.0 * m.sem:.2f}%"
    if m.name == "top1":
        agree = int(round((m.mean or 0.0) * m.count))
        line = f"{label:<17} {pct:.2f}%{se}  ({agree:,} of {m.count:,} rows)"
    else:
        line = f"{label:<17} {pct:.2f}%{se}  (mean share of the top {m.name[3:]} in common)"
    if m.nonfinite:
        line += f"; {m.nonfinite:,} row{'' if m.nonfinite == 1 else 's'} with NaN left out"
    return line


def format_summary(s: Summary, *, title: str = "logitdiv score", color: bool = False) -> str:
    """The report: a header, a table of statistics per divergence, the agreement rates, the
    worst rows by the primary metric."""
    lines: List[str] = []
    dt = s.dtypes[0] if s.dtypes[0] == s.dtypes[1] else f"base {s.dtypes[0]}, candidate {s.dtypes[1]}"
    lines.append(f"{title}: {s.rows:,} rows × {s.classes:,} classes ({dt}), temperature {fmt(s.temperature)}")
    divs = [m for m in s.metrics.values() if m.kind == DIVERGENCE]
    agrees = [m for m in s.metrics.values() if m.kind == AGREEMENT]
    if divs:
        lines.append("")
        cells_of: List[List[str]] = [[""] + [m.name for m in divs]]

        def row(label: str, f: Any) -> None:
            cells_of.append([label] + [f(m) for m in divs])

        row("mean ± SE", lambda m: f"{fmt(m.mean)} ± {fmt(m.sem, 2)}" if m.mean is not None else "—")
        row("median", lambda m: fmt(m.median))
        row("p90", lambda m: fmt(m.p90))
        row("p99", lambda m: fmt(m.p99))
        row("p99.9", lambda m: fmt(m.p99_9))
        row("max", lambda m: fmt(m.max))
        if s.threshold is not None:
            row(f"> {fmt(s.threshold)}", lambda m: f"{m.above_threshold:,} ({fmt(100.0 * (m.share_above_threshold or 0.0), 3)}%)")
        row("non-finite rows", lambda m: f"{m.nonfinite:,}")
        lines += table(cells_of)
    if agrees:
        lines.append("")
        lines += ["  " + _agreement_line(m) for m in agrees]
    if s.tokens is not None:
        lines.append("")
        lines.append(s.tokens.format())
        kl = s.metrics.get("kl")
        if kl is not None and kl.percentiles:
            lines.append("  kl percentiles       " + ", ".join(
                f"{k.replace('_', '.')} {fmt(v)}" for k, v in kl.percentiles.items()))
    if s.worst_rows and s.primary is not None:
        names = list(s.metrics)
        order = "largest" if s.metrics[s.primary].kind == DIVERGENCE else "lowest"
        lines.append("")
        lines.append(f"worst {len(s.worst_rows)} rows by {s.primary} ({order} first):")
        cells_of = [["row"] + names]
        for r in s.worst_rows:
            cells = [f"{r['row']}"]
            for n in names:
                v = r[n]
                cells.append(("agree" if v == 1.0 else "differ") if n == "top1" and not math.isnan(v) else fmt(v))
            cells_of.append(cells)
        lines += table(cells_of, first_right=True)
    if s.rows:
        lines.append("")
        if s.quantile_method == "linear":
            lines.append(f"statistics over finite rows; quantiles: numpy {s.quantile_method!r} method")
        else:
            errs = ", ".join(f"{m.name} {fmt(100.0 * m.quantile_rank_error, 2)}%" for m in s.metrics.values()
                             if m.quantile_method != "linear")
            lines.append("statistics over finite rows; quantiles: from a sketch beyond the exact-rows budget, "
                         f"rank error at most {errs} of the rows")
    return "\n".join(lines)
