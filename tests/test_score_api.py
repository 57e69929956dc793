"""ld.score over in-memory arrays: per-row values (the library's own, and a float64 reference),
chunking invariance, the summary's definitions, non-finite rows, options and errors."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import logitdiv as ld
from logitdiv.scoring.stats import PartialStats
from logitdiv.scoring.summary import QUANTILES

from _score_ref import pair, reference, summary_equal

DIVERGENCES = ("kl", "rkl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl")
LIBRARY = {
    "kl": lambda a, b, **k: ld.kl(a, b, **k),
    "rkl": lambda a, b, **k: ld.kl(b, a, **k),
    "sym_kl": ld.sym_kl,
    "js": ld.js,
    "sigmoid_kl": ld.sigmoid_kl,
    "sigmoid_sym_kl": ld.sigmoid_sym_kl,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_values_are_the_librarys_and_match_a_float64_reference(dtype, temperature):
    a, b = pair(rows=700, classes=48, dtype=dtype)
    scores, summary = ld.score(a, b, metrics=DIVERGENCES + ("top1", "top5"), temperature=temperature, chunk_rows=64)
    assert list(scores) == list(DIVERGENCES) + ["top1", "top5"]
    for name in DIVERGENCES:
        whole = LIBRARY[name](a, b, temperature=temperature)
        assert scores[name].dtype == whole.dtype == (np.float64 if dtype == np.float64 else np.float32)
        assert np.array_equal(scores[name], whole), name  # bit for bit: the values come from the core
        ref = reference(name, a, b, temperature)
        rtol = 1e-10 if dtype == np.float64 else 2e-5
        np.testing.assert_allclose(scores[name], ref, rtol=rtol, atol=1e-12, err_msg=name)
    for name in ("top1", "top5"):
        assert scores[name].dtype == np.float32
        np.testing.assert_array_equal(scores[name], reference(name, a, b))
    assert summary.rows == 700 and summary.classes == 48


def test_topk_ties_go_to_the_lower_class_index():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, size=(500, 20)).astype(np.float32)  # many ties
    b = rng.integers(0, 4, size=(500, 20)).astype(np.float32)
    scores, _ = ld.score(a, b, metrics="top1,top2,top3,top7,top20,top25", chunk_rows=33)
    for name in ("top1", "top2", "top3", "top7", "top20"):
        np.testing.assert_array_equal(scores[name], reference(name, a, b), err_msg=name)
    np.testing.assert_array_equal(scores["top1"], (a.argmax(1) == b.argmax(1)).astype(np.float32))
    assert np.all(scores["top25"] == 1.0)  # k ≥ classes: every class is in both sets


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 1199, 1200, 5000, None])
def test_results_do_not_depend_on_chunking(chunk_rows):
    a, b = pair(rows=1200, classes=40, seed=1)
    a[5, 3] = np.nan
    b[9, :] = -np.inf
    b[9, 0] = 0.0  # support mismatch: kl(a, b) = +inf on row 9
    metrics = ("kl", "rkl", "sym_kl", "js", "top1", "top3")
    ref_scores, ref_summary = ld.score(a, b, metrics=metrics, threshold=0.5, top_k_worst=7, chunk_rows=1200)
    seen = []
    scores, summary = ld.score(a, b, metrics=metrics, threshold=0.5, top_k_worst=7, chunk_rows=chunk_rows,
                               progress=lambda done, total: seen.append((done, total)))
    for name in metrics:
        assert np.array_equal(scores[name], ref_scores[name], equal_nan=True), name
    assert summary_equal(summary, ref_summary)
    assert summary == summary  # a plain dataclass
    assert seen and seen[-1] == (1200, 1200) and all(x[0] < y[0] for x, y in zip(seen, seen[1:]))
    if chunk_rows:
        assert len(seen) == math.ceil(1200 / min(chunk_rows, 1200))


def test_leading_axes_are_rows_in_c_order():
    a, b = pair(rows=360, classes=16, seed=2)
    s3, sum3 = ld.score(a.reshape(10, 36, 16), b.reshape(10, 36, 16), chunk_rows=50)
    s2, sum2 = ld.score(a, b)
    for name in s2:
        assert s3[name].shape == (360,)
        assert np.array_equal(s3[name], s2[name])
    assert summary_equal(sum3, sum2)
    # a non-contiguous 3-D view takes the slab-by-slab path
    big_a = np.ascontiguousarray(np.swapaxes(a.reshape(36, 10, 16), 0, 1))
    big_b = np.ascontiguousarray(np.swapaxes(b.reshape(36, 10, 16), 0, 1))
    view_a, view_b = np.swapaxes(big_a, 0, 1), np.swapaxes(big_b, 0, 1)  # shape (36, 10, 16), not C-contiguous
    s, _ = ld.score(view_a, view_b, metrics="kl", chunk_rows=17)
    assert np.array_equal(s["kl"], ld.kl(np.ascontiguousarray(view_a), np.ascontiguousarray(view_b)).reshape(-1))


def test_summary_definitions():
    a, b = pair(rows=2001, classes=30, seed=4)
    a[10, 0] = np.nan                    # NaN row
    b[20, :] = -np.inf
    b[20, 1] = 0.0                       # +inf row for kl
    threshold = 0.2
    scores, s = ld.score(a, b, metrics="kl,js,top1", threshold=threshold, top_k_worst=6, chunk_rows=97)
    kl = scores["kl"].astype(np.float64)
    fin = kl[np.isfinite(kl)]
    m = s["kl"]
    assert (m.rows, m.count, m.nonfinite, m.nan, m.inf) == (2001, 1999, 2, 1, 1)
    assert m.mean == float(sum(Fraction(x) for x in fin.tolist()) / fin.size)  # exact, rounded once
    assert m.sem == pytest.approx(np.std(fin, ddof=1) / math.sqrt(fin.size), rel=1e-12)
    assert m.std == pytest.approx(np.std(fin, ddof=1), rel=1e-12)
    for field, q in QUANTILES:
        assert getattr(m, field) == float(np.quantile(fin, q, method="linear")), field
    assert (m.min, m.max) == (fin.min(), fin.max())
    assert m.above_threshold == int(np.count_nonzero(kl > threshold))  # +inf counts, NaN does not
    assert m.share_above_threshold == m.above_threshold / 2001
    # worst rows: NaN ranks as +inf, ties by row index, then largest values first
    bad = np.where(np.isnan(kl), np.inf, kl)
    order = sorted(range(2001), key=lambda i: (-bad[i], i))[:6]
    assert [r for r, _ in m.worst] == order == [10, 20] + order[2:]
    assert [r["row"] for r in s.worst_rows] == order
    assert s.worst_rows[2]["js"] == float(scores["js"][order[2]])
    # agreement metric: lowest first, NaN rows left out of the rate
    t = s["top1"]
    top = scores["top1"]
    assert t.kind == "agreement" and t.nan == 1 and t.count == 2000
    assert s.top1_agreement == t.mean == float(np.nanmean(top.astype(np.float64)))
    assert t.above_threshold is None and t.share_above_threshold is None
    assert [r for r, _ in t.worst][1:] == [int(i) for i in np.flatnonzero(top == 0)[:5]]
    d = s.to_dict()
    assert d["metrics"]["kl"]["worst"][0] == {"row": 10, "value": "nan"}
    assert d["metrics"]["kl"]["worst"][1] == {"row": 20, "value": "inf"}


def test_text_report_mentions_every_figure():
    a, b = pair(rows=500, classes=20, seed=5)
    _, s = ld.score(a, b, threshold=0.1, top_k_worst=3)
    text = str(s)
    for word in ("500 rows × 20 classes", "mean ± SE", "median", "p90", "p99", "p99.9", "max", "> 0.1",
                 "non-finite rows", "top-1 agreement", "worst 3 rows by kl"):
        assert word in text, word
    assert f"{100 * s.top1_agreement:.2f}%" in text


def test_identical_inputs_score_zero_and_agree():
    a, _ = pair(rows=300, classes=25, seed=6)
    scores, s = ld.score(a, a.copy(), metrics=DIVERGENCES + ("top1", "top4"))
    for name in DIVERGENCES:
        assert np.all(scores[name] == 0), name
        assert s[name].mean == 0 and s[name].max == 0 and s[name].p99_9 == 0
    assert s.top1_agreement == 1.0 and s["top4"].mean == 1.0


def test_mixed_and_half_precision_inputs():
    a, b = pair(rows=400, classes=32, seed=7)
    b16 = b.astype(np.float16)
    scores, s = ld.score(a, b16, metrics="kl,top1", chunk_rows=33)
    assert np.array_equal(scores["kl"], ld.kl(a, b16))
    assert s.dtypes == ("float32", "float16")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    abf, bbf = a.astype(ml_dtypes.bfloat16), b.astype(ml_dtypes.bfloat16)
    scores, s = ld.score(abf, bbf, metrics="kl,sym_kl,top1,top3", chunk_rows=50)
    assert np.array_equal(scores["kl"], ld.kl(abf, bbf))
    np.testing.assert_array_equal(scores["top3"], reference("top3", abf.astype(np.float32), bbf.astype(np.float32)))
    assert s.dtypes == ("bfloat16", "bfloat16")


def test_empty_input():
    scores, s = ld.score(np.zeros((0, 8), np.float32), np.zeros((0, 8), np.float32))
    assert all(v.shape == (0,) for v in scores.values())
    assert s.rows == 0 and s["kl"].mean is None and s["kl"].median is None and s.worst_rows == ()
    assert s.to_dict()["metrics"]["kl"]["mean"] is None


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(metrics="kl,bogus"), ValueError, "unknown metric 'bogus'"),
        (dict(metrics=()), ValueError, "no metric"),
        (dict(metrics="top0"), ValueError, "unknown metric 'top0'"),
        (dict(temperature=0.0), ValueError, "temperature"),
        (dict(temperature="1"), TypeError, "temperature"),
        (dict(chunk_rows=0), ValueError, "chunk_rows"),
        (dict(top_k_worst=-1), ValueError, "top_k_worst"),
        (dict(threshold=float("nan")), ValueError, "threshold"),
        (dict(progress="yes"), TypeError, "progress"),
        (dict(key=3), TypeError, "key"),
    ],
)
def test_bad_options(kwargs, exc, words):
    a, b = pair(rows=10, classes=5)
    with pytest.raises(exc, match=words):
        ld.score(a, b, **kwargs)


def test_mismatched_shapes_and_dtypes():
    a, b = pair(rows=10, classes=5)
    with pytest.raises(ValueError, match=r"class counts differ"):
        ld.score(a, b[:, :4])
    with pytest.raises(ValueError, match=r"row counts differ"):
        ld.score(a, b[:9])
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        ld.score(a.astype(np.int32), b)


def test_partial_stats_merge_exactly_in_any_order():
    rng = np.random.default_rng(8)
    v = np.concatenate([rng.exponential(size=5000) * 10.0 ** rng.integers(-12, 3, 5000), [0.0, np.nan, np.inf, 5e-324]])
    rng.shuffle(v)
    whole = PartialStats.of(v, kind="divergence", threshold=1.0, k=9)
    for trial in range(5):
        cuts = np.sort(rng.choice(np.arange(1, v.size), size=trial * 7 + 1, replace=False))
        bounds = np.concatenate([[0], cuts, [v.size]])
        parts = [PartialStats.of(v[lo:hi], offset=int(lo), kind="divergence", threshold=1.0, k=9)
                 for lo, hi in zip(bounds[:-1], bounds[1:])]
        rng.shuffle(parts)
        parts = [pickle.loads(pickle.dumps(p)) for p in parts]  # as Dask ships them
        merged = PartialStats.merge_all(parts)
        for f in ("rows", "count", "nan", "posinf", "above", "sum", "sumsq", "min", "max"):
            assert getattr(merged, f) == getattr(whole, f), f
        assert np.array_equal(merged.worst_idx, whole.worst_idx)
        assert (merged.mean(), merged.sem(), merged.var()) == (whole.mean(), whole.sem(), whole.var())
    fin = v[np.isfinite(v)]
    exact_sum = sum(Fraction(x) for x in fin.tolist())
    exact_sq = sum(Fraction(x) ** 2 for x in fin.tolist())
    assert whole.mean() == float(exact_sum / fin.size)
    n = fin.size
    assert whole.var() == float((exact_sq - exact_sum ** 2 / n) / (n - 1))


def test_importing_logitdiv_imports_no_optional_package():
    code = (
        "import sys, logitdiv, logitdiv.scoring\n"
        "from logitdiv.scoring import readers, writers, stats, summary, metrics, cli, text, demo, plot, tokens, llama\n"
        "import logitdiv as ld, numpy as np\n"
        "ld.score(np.zeros((3, 4)), np.ones((3, 4)))\n"
        "bad = [m for m in ('dask', 'distributed', 'pyarrow', 'safetensors', 'matplotlib', 'tqdm', 'rich', 'torch') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
