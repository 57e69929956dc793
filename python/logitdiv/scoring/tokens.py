"""Token-aware statistics: given the evaluated token of every row, each model's per-row negative
log-likelihood and the perplexity statistics of llama.cpp's ``--kl-divergence`` mode.

Per row (a = base logits, b = candidate logits, t = the token, τ = temperature; τ = 1 is
llama.cpp's setting), in float64:

    NLL_a = logsumexp(a/τ) − a_t/τ          NLL_b likewise
    p_a   = exp(−NLL_a), p_b = exp(−NLL_b)   Δp = p_b − p_a

Over the n rows where both NLLs are finite (sums kept exactly, as `logitdiv.scoring.summary`; the cross
products NLL_a·NLL_b are rounded to float64 before being summed exactly):

- ``ppl_x = exp(mean NLL_x)`` ± ``ppl_x · se_x`` where ``se_x = sqrt(var(NLL_x) / n)`` (ddof 1);
- ``cov = (Σ NLL_a NLL_b / n − mean_a mean_b) / (n − 1)`` and ``cor_ln_ppl = cov / (se_a se_b)``
  (the Pearson correlation of the per-row NLLs, "Cor(ln(PPL(Q)), ln(PPL(base)))");
- ``ln_ppl_ratio = mean_b − mean_a`` ± ``sqrt(se_a² + se_b² − 2 cov)``; ``ppl_ratio`` = its exp,
  ± ``ppl_ratio · that``; ``ppl_diff = ppl_b − ppl_a`` ± ``sqrt(u_a² + u_b² − 2 ppl_a ppl_b cov)``;
- Δp: mean ± its standard error, percentiles (linear interpolation), min, max;
  ``rms_dp = sqrt(mean Δp²)`` ± ``se(Δp²) / (2 rms_dp)``;
- top-1 agreement with the token, for each model: share p ± ``sqrt(p (1 − p) / (n − 1))``.

llama.cpp reads the base model's log-probabilities from a file quantised to 16 bits; here both are
computed from the logits (see `logitdiv.scoring.llama` for that file format). llama.cpp also reports an
uncertainty of 0 below 11 rows; here it is given from 2 rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .sketch import QuantileState
from .metrics import AGREEMENT, DIVERGENCE
from .stats import EXACT_SCALE, EXACT_SCALE_SQ, PartialStats
from .text import fmt, json_number

__all__ = ["token_values", "TokenStats", "TokenSummary", "DP_QUANTILES", "check_tokens"]

#: Δp percentiles reported (llama.cpp's list), name → level.
DP_QUANTILES: Tuple[Tuple[str, float], ...] = (
    ("p0_1", 0.001), ("p1", 0.01), ("p5", 0.05), ("p10", 0.1), ("p25", 0.25), ("median", 0.5),
    ("p75", 0.75), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p99_9", 0.999),
)
_ROWS_PER_PASS = 4096


def check_tokens(tokens: Any, rows: int, classes: int, name: str = "tokens") -> np.ndarray:
    """`tokens` as a 1-D int64 array of `rows` class indices in [0, classes)."""
    t = np.asarray(tokens)
    if t.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids; got dtype {t.dtype}")
    t = t.reshape(-1).astype(np.int64, copy=False)
    if t.size != rows:
        raise ValueError(f"{name} must give one token per row: expected {rows}, got {t.size}")
    if t.size and (t.min() < 0 or t.max() >= classes):
        bad = int(t[(t < 0) | (t >= classes)][0])
        raise ValueError(f"{name} must be class indices in [0, {classes}); got {bad}")
    return t


def token_values(a: np.ndarray, b: np.ndarray, tokens: np.ndarray, temperature: float = 1.0) -> Dict[str, np.ndarray]:
    """Per-row float64 ``nll_base``, ``nll_candidate``, ``dp`` (p_b − p_a at the token) and the
    0/1 ``top1_token_base`` / ``top1_token_candidate`` (argmax = token; NaN on a NaN row)."""
    n = a.shape[0]
    out = {k: np.empty(n, np.float64) for k in ("nll_base", "nll_candidate", "dp", "top1_token_base", "top1_token_candidate")}
    idx = np.arange(n)
    for lo in range(0, n, _ROWS_PER_PASS):
        sl = slice(lo, lo + _ROWS_PER_PASS)
        t = tokens[sl]
        r = idx[: t.size]
        for x, nll_key, top_key in ((a, "nll_base", "top1_token_base"), (b, "nll_candidate", "top1_token_candidate")):
            x = np.asarray(x[sl], dtype=np.float64) / temperature
            m = x.max(axis=1)
            m = np.where(np.isfinite(m), m, 0.0)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                lse = m + np.log(np.exp(x - m[:, None]).sum(axis=1))
                out[nll_key][sl] = lse - x[r, t]
            top = np.argmax(x, axis=1)
            agree = (top == t).astype(np.float64)
            agree[np.isnan(x[r, top])] = np.nan
            out[top_key][sl] = agree
    with np.errstate(over="ignore", invalid="ignore"):
        out["dp"] = np.exp(-out["nll_candidate"]) - np.exp(-out["nll_base"])
    return out


_FIELDS = ("nll_base", "nll_candidate", "cross", "dp", "dp2", "top1_token_base", "top1_token_candidate")


class TokenStats:
    """Mergeable token statistics (exact sums) plus the Δp quantile state."""

    def __init__(self, exact_rows: int, sketch_k: int) -> None:
        self.rows = 0
        self.stats = {f: PartialStats(AGREEMENT if f.startswith("top1") else DIVERGENCE, None, 0) for f in _FIELDS}
        self.dp_quant = QuantileState(exact_rows, sketch_k)

    def update(self, v: Dict[str, np.ndarray]) -> None:
        ok = np.isfinite(v["nll_base"]) & np.isfinite(v["nll_candidate"])
        self.rows += int(ok.size)
        a, b, dp = v["nll_base"][ok], v["nll_candidate"][ok], v["dp"][ok]
        cols = {"nll_base": a, "nll_candidate": b, "cross": a * b, "dp": dp, "dp2": dp * dp,
                "top1_token_base": v["top1_token_base"][ok], "top1_token_candidate": v["top1_token_candidate"][ok]}
        for f in _FIELDS:
            self.stats[f].update(cols[f], offset=0)
        self.dp_quant.add(dp)

    def merge(self, other: "TokenStats") -> "TokenStats":
        out = TokenStats.__new__(TokenStats)
        out.rows = self.rows + other.rows
        out.stats = {f: self.stats[f].merge(other.stats[f]) for f in _FIELDS}
        out.dp_quant = self.dp_quant.merge(other.dp_quant)
        return out

    def summary(self) -> "TokenSummary":
        s = self.stats
        n = s["nll_base"].count
        if n < 2:
            return TokenSummary(rows=self.rows, count=n)

        def mean(f: str) -> Fraction:
            return Fraction(s[f].sum, n << EXACT_SCALE)

        def var_pop(f: str) -> Fraction:  # Σx²/n − mean²
            return Fraction(s[f].sumsq, n << EXACT_SCALE_SQ) - mean(f) ** 2

        def se(f: str) -> float:
            return math.sqrt(max(0.0, float(var_pop(f) / (n - 1))))

        ma, mb = mean("nll_base"), mean("nll_candidate")
        sa, sb = se("nll_base"), se("nll_candidate")
        cov = float((mean("cross") - ma * mb) / (n - 1))
        ppl_a, ppl_b = math.exp(float(ma)), math.exp(float(mb))
        lnr = float(mb - ma)
        lnr_unc = math.sqrt(max(0.0, sa * sa + sb * sb - 2.0 * cov))
        ua, ub = ppl_a * sa, ppl_b * sb
        ratio = math.exp(lnr)
        mse = float(mean("dp2"))
        rms = math.sqrt(mse)
        tops = {}
        for f in ("top1_token_base", "top1_token_candidate"):
            p = float(mean(f))
            tops[f] = (p, math.sqrt(max(0.0, p * (1.0 - p) / (n - 1))))
        qs = self.dp_quant.quantiles([q for _, q in DP_QUANTILES])
        return TokenSummary(
            rows=self.rows, count=n,
            ppl_base=ppl_a, ppl_base_unc=ua, ppl_candidate=ppl_b, ppl_candidate_unc=ub,
            cor_ln_ppl=cov / (sa * sb) if sa > 0 and sb > 0 else None,
            ln_ppl_ratio=lnr, ln_ppl_ratio_unc=lnr_unc, ppl_ratio=ratio, ppl_ratio_unc=ratio * lnr_unc,
            ppl_diff=ppl_b - ppl_a, ppl_diff_unc=math.sqrt(max(0.0, ua * ua + ub * ub - 2.0 * ppl_a * ppl_b * cov)),
            dp_mean=float(mean("dp")), dp_unc=se("dp"), dp_min=s["dp"].min, dp_max=s["dp"].max,
            dp_quantiles=dict(zip([k for k, _ in DP_QUANTILES], qs)),
            dp_rms=rms, dp_rms_unc=(0.5 / rms * se("dp2")) if rms > 0 else 0.0,
            top1_token_base=tops["top1_token_base"][0], top1_token_base_unc=tops["top1_token_base"][1],
            top1_token_candidate=tops["top1_token_candidate"][0], top1_token_candidate_unc=tops["top1_token_candidate"][1],
            quantile_method=self.dp_quant.method, quantile_rank_error=self.dp_quant.rank_error,
        )


@dataclass(frozen=True)
class TokenSummary:
    """Token-aware statistics of a run (see the module docstring for the definitions)."""

    rows: int
    count: int  # rows where both NLLs are finite
    ppl_base: Optional[float] = None
    ppl_base_unc: Optional[float] = None
    ppl_candidate: Optional[float] = None
    ppl_candidate_unc: Optional[float] = None
    cor_ln_ppl: Optional[float] = None
    ln_ppl_ratio: Optional[float] = None
    ln_ppl_ratio_unc: Optional[float] = None
    ppl_ratio: Optional[float] = None
    ppl_ratio_unc: Optional[float] = None
    ppl_diff: Optional[float] = None
    ppl_diff_unc: Optional[float] = None
    dp_mean: Optional[float] = None
    dp_unc: Optional[float] = None
    dp_min: Optional[float] = None
    dp_max: Optional[float] = None
    dp_quantiles: Optional[Dict[str, Optional[float]]] = None
    dp_rms: Optional[float] = None
    dp_rms_unc: Optional[float] = None
    top1_token_base: Optional[float] = None
    top1_token_base_unc: Optional[float] = None
    top1_token_candidate: Optional[float] = None
    top1_token_candidate_unc: Optional[float] = None
    quantile_method: str = "linear"
    quantile_rank_error: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        for f in self.__dataclass_fields__:
            v = getattr(self, f)
            if isinstance(v, dict):
                d[f] = {k: json_number(x) for k, x in v.items()}
            elif isinstance(v, float):
                d[f] = json_number(v)
            else:
                d[f] = v
        return d

    def format(self) -> str:
        if self.ppl_base is None:
            return f"token statistics: {self.count} row(s) with finite NLLs, too few"
        q = self.dp_quantiles or {}
        lines = [
            f"token statistics over {self.count:,} rows:",
            f"  PPL(base)            {fmt(self.ppl_base, 7)} ± {fmt(self.ppl_base_unc, 3)}",
            f"  PPL(candidate)       {fmt(self.ppl_candidate, 7)} ± {fmt(self.ppl_candidate_unc, 3)}",
            f"  Cor(ln PPL)          {100.0 * (self.cor_ln_ppl or 0.0):.2f}%",
            f"  ln(PPL ratio)        {fmt(self.ln_ppl_ratio)} ± {fmt(self.ln_ppl_ratio_unc, 3)}",
            f"  PPL ratio            {fmt(self.ppl_ratio, 7)} ± {fmt(self.ppl_ratio_unc, 3)}",
            f"  PPL difference       {fmt(self.ppl_diff)} ± {fmt(self.ppl_diff_unc, 3)}",
            f"  mean Δp              {100.0 * self.dp_mean:.3f} ± {100.0 * self.dp_unc:.3f} %",
            f"  RMS Δp               {100.0 * self.dp_rms:.3f} ± {100.0 * self.dp_rms_unc:.3f} %",
            "  Δp percentiles       " + ", ".join(f"{k.replace('_', '.')} {100.0 * v:.3f}%" for k, v in q.items() if v is not None),
            f"  top-1 = token        base {100.0 * self.top1_token_base:.3f} ± {100.0 * self.top1_token_base_unc:.3f} %, "
            f"candidate {100.0 * self.top1_token_candidate:.3f} ± {100.0 * self.top1_token_candidate_unc:.3f} %",
        ]
        return "\n".join(lines)
