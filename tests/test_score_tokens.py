"""Token-aware statistics (PPL of each model, their ratio and correlation, Δp, top-1 = token)
against an independent float64 NumPy re-derivation of llama.cpp's definitions; the extra KLD
percentiles; tokens through ld.score, the Scorer's merge and the command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import logitdiv as ld
from logitdiv.scoring.cli import main

from _score_ref import pair


def _reference(a, b, t):
    """llama.cpp's --kl-divergence statistics, re-derived in float64 from the definitions."""
    def nll(x):
        x = x.astype(np.float64)
        m = x.max(1, keepdims=True)
        lse = (m + np.log(np.exp(x - m).sum(1, keepdims=True)))[:, 0]
        return lse - x[np.arange(len(t)), t]

    na, nb = nll(a), nll(b)
    n = len(t)
    mean = lambda x: x.mean()
    se = lambda x: math.sqrt(((x - x.mean()) ** 2).sum() / (n * (n - 1)))
    cov = ((na * nb).mean() - na.mean() * nb.mean()) / (n - 1)
    ppl_a, ppl_b = math.exp(mean(na)), math.exp(mean(nb))
    lnr = mean(nb) - mean(na)
    lnr_unc = math.sqrt(se(na) ** 2 + se(nb) ** 2 - 2 * cov)
    dp = np.exp(-nb) - np.exp(-na)
    rms = math.sqrt((dp ** 2).mean())
    top_b = (b.astype(np.float64).argmax(1) == t).mean()
    return {
        "ppl_base": ppl_a, "ppl_base_unc": ppl_a * se(na), "ppl_candidate": ppl_b, "ppl_candidate_unc": ppl_b * se(nb),
        "cor_ln_ppl": np.corrcoef(na, nb)[0, 1], "ln_ppl_ratio": lnr, "ln_ppl_ratio_unc": lnr_unc,
        "ppl_ratio": math.exp(lnr), "ppl_ratio_unc": math.exp(lnr) * lnr_unc,
        "ppl_diff": ppl_b - ppl_a,
        "ppl_diff_unc": math.sqrt((ppl_a * se(na)) ** 2 + (ppl_b * se(nb)) ** 2 - 2 * ppl_a * ppl_b * cov),
        "dp_mean": dp.mean(), "dp_unc": se(dp), "dp_rms": rms, "dp_rms_unc": se(dp ** 2) / (2 * rms),
        "dp_min": dp.min(), "dp_max": dp.max(),
        "top1_token_candidate": top_b, "top1_token_candidate_unc": math.sqrt(top_b * (1 - top_b) / (n - 1)),
        "dp_quantiles": dict(zip(["p0_1", "p1", "p5", "p10", "p25", "median", "p75", "p90", "p95", "p99", "p99_9"],
                                 np.quantile(dp, [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]))),
    }


def _close(got, want):
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_token_statistics_match_reference(dtype):
    a, b = pair(rows=3000, classes=50, seed=11, dtype=dtype, noise=0.5)
    t = np.random.default_rng(1).integers(0, 50, 3000)
    res = ld.score(a, b, tokens=t, chunk_rows=700)
    tok = res.summary.tokens
    ref = _reference(a, b, t)
    for k, v in ref.items():
        if k == "dp_quantiles":
            for q, x in v.items():
                _close(tok.dp_quantiles[q], x)
        else:
            _close(getattr(tok, k), v)
    assert tok.count == 3000
    d = res.summary.to_dict()
    assert d["schema"] == "logitdiv.score/1.1" and d["tokens"]["ppl_base"] == tok.ppl_base
    kl = np.sort(ld.kl(a, b).astype(np.float64))
    for name, q in (("p0_1", 0.001), ("p1", 0.01), ("p5", 0.05), ("p10", 0.1), ("p95", 0.95)):
        assert d["metrics"]["kl"]["percentiles"][name] == float(np.quantile(kl, q))


def test_tokens_merge_and_stream():
    a, b = pair(rows=2000, classes=20, seed=12)
    t = np.random.default_rng(2).integers(0, 20, 2000)
    whole = ld.Scorer().update(a, b, tokens=t).summary()
    p = ld.Scorer(keep_scores=False).update(a[:900], b[:900], tokens=t[:900])
    q = ld.Scorer(keep_scores=False).update(a[900:], b[900:], tokens=t[900:])
    assert p.merge(q).summary().to_dict() == whole.to_dict()
    with pytest.raises(ValueError, match="every batch or with none"):
        p.update(a[:5], b[:5])
    with pytest.raises(ValueError, match=r"class indices in \[0, 20\)"):
        ld.Scorer().update(a[:5], b[:5], tokens=np.array([0, 1, 2, 3, 20]))
    with pytest.raises(ValueError, match="one per row"):
        ld.Scorer().update(a[:5], b[:5], tokens=np.arange(4))


def test_cli_tokens(tmp_path, capsys):
    a, b = pair(rows=500, classes=16, seed=13)
    t = np.random.default_rng(3).integers(0, 16, 500)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "t.npy", t)
    rc = main(["score", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--tokens", str(tmp_path / "t.npy"), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["tokens"] == ld.score(a, b, tokens=t).summary.to_dict()["tokens"]
    rc = main(["score", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--tokens", str(tmp_path / "t.npy")])
    out, _ = capsys.readouterr()
    assert rc == 0 and "PPL(base)" in out and "RMS Δp" in out
    np.save(tmp_path / "short.npy", t[:10])
    rc = main(["score", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--tokens", str(tmp_path / "short.npy")])
    _, err = capsys.readouterr()
    assert rc == 1 and "short.npy" in err and "expected 500, got 10" in err
