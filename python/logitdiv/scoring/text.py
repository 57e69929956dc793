"""How the scoring report writes numbers and tables: `fmt` for the text report, `json_number` for
the JSON form, `table` for aligned columns. Imports nothing of the package."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence

__all__ = ["fmt", "json_number", "table"]


def fmt(x: Optional[float], digits: int = 5) -> str:
    """A number in `digits` significant digits ("—" for a statistic of no rows)."""
    if x is None:
        return "—"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def table(rows: Sequence[Sequence[str]], indent: str = "  ", first_right: bool = False) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        first = r[0].rjust(widths[0]) if first_right else r[0].ljust(widths[0])
        cells = [first] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append((indent + "   ".join(cells)).rstrip())
    return out


def json_number(x: Optional[float]) -> Any:
    """A float for JSON: None stays null; NaN and ±inf become the strings "nan", "inf", "-inf"."""
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x
