"""The human-readable report of a scoring run (``str(summary)``, ``logitdiv score``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from .metrics import AGREEMENT, DIVERGENCE

if TYPE_CHECKING:  # the summary formats itself through this module; only its types are named here
    from .summary import MetricSummary, Summary

__all__ = ["format_summary", "fmt"]


def fmt(x: Optional[float], digits: int = 5) -> str:
    """A number in `digits` significant digits ("—" for a statistic of no rows)."""
    if x is None:
        return "—"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def _table(rows: Sequence[Sequence[str]], indent: str = "  ", first_right: bool = False) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        first = r[0].rjust(widths[0]) if first_right else r[0].ljust(widths[0])
        cells = [first] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append((indent + "   ".join(cells)).rstrip())
    return out


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
        table: List[List[str]] = [[""] + [m.name for m in divs]]

        def row(label: str, f: Any) -> None:
            table.append([label] + [f(m) for m in divs])

        row("mean ± SE", lambda m: f"{fmt(m.mean)} ± {fmt(m.sem, 2)}" if m.mean is not None else "—")
        row("median", lambda m: fmt(m.median))
        row("p90", lambda m: fmt(m.p90))
        row("p99", lambda m: fmt(m.p99))
        row("p99.9", lambda m: fmt(m.p99_9))
        row("max", lambda m: fmt(m.max))
        if s.threshold is not None:
            row(f"> {fmt(s.threshold)}", lambda m: f"{m.above_threshold:,} ({fmt(100.0 * (m.share_above_threshold or 0.0), 3)}%)")
        row("non-finite rows", lambda m: f"{m.nonfinite:,}")
        lines += _table(table)
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
        table = [["row"] + names]
        for r in s.worst_rows:
            cells = [f"{r['row']}"]
            for n in names:
                v = r[n]
                cells.append(("agree" if v == 1.0 else "differ") if n == "top1" and not math.isnan(v) else fmt(v))
            table.append(cells)
        lines += _table(table, first_right=True)
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
