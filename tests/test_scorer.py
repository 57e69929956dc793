"""The streaming scorer `ld.Scorer`: batch by batch equals `ld.score` field for field; merges are
exact and associative; pickles; keep_scores=False keeps quantiles exact up to exact_rows and within
the sketch's stated rank error beyond; --out streams to disk."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import logitdiv as ld
from logitdiv.scoring.sketch import QuantileSketch
from logitdiv.scoring.writers import write_scores

from _score_ref import pair, reference


def _batches(a, b, cuts):
    lo = 0
    for hi in list(cuts) + [len(a)]:
        yield a[lo:hi], b[lo:hi]
        lo = hi


def test_batches_equal_score():
    a, b = pair(rows=1500, classes=40, seed=3)
    _, s = ld.score(a, b, threshold=0.05, top_k_worst=7)
    sc = ld.Scorer(threshold=0.05, top_k_worst=7)
    for x, y in _batches(a, b, [1, 400, 401, 1200]):
        sc.update(x, y)
    assert sc.summary().to_dict() == s.to_dict()
    np.testing.assert_allclose(sc.scores["kl"], reference("kl", a, b), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("keep", [True, False])
def test_merge_is_exact_and_associative(keep):
    a, b = pair(rows=900, classes=16, seed=4, dtype=np.float64)
    _, s = ld.score(a, b, metrics="kl,js,top1,top3", top_k_worst=5)
    parts = []
    for x, y in _batches(a, b, [100, 350, 600]):
        p = ld.Scorer(metrics="kl,js,top1,top3", top_k_worst=5, keep_scores=keep)
        parts.append(p.update(x, y))
    left = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    right = parts[0].merge(parts[1].merge(parts[2].merge(parts[3])))
    assert left.summary().to_dict() == right.summary().to_dict() == s.to_dict()
    empty = ld.Scorer(metrics="kl,js,top1,top3", top_k_worst=5, keep_scores=keep)
    assert empty.merge(left).summary().to_dict() == s.to_dict()


def test_pickle_round_trip_and_resume():
    a, b = pair(rows=600, classes=12, seed=5)
    sc = ld.Scorer(keep_scores=False).update(a[:250], b[:250])
    sc2 = pickle.loads(pickle.dumps(sc))
    sc2.update(a[250:], b[250:])
    _, s = ld.score(a, b)
    assert sc2.summary().to_dict() == s.to_dict()
    kept = ld.Scorer().update(a, b)
    assert pickle.loads(pickle.dumps(kept)).summary().to_dict() == s.to_dict()


def test_torch_tensors_and_where():
    torch = pytest.importorskip("torch")
    a, b = pair(rows=300, classes=10, seed=6)
    mask = np.random.default_rng(0).random(300) > 0.3
    sc = ld.Scorer().update(torch.from_numpy(a).reshape(3, 100, 10), torch.from_numpy(b).reshape(3, 100, 10),
                            where=torch.from_numpy(mask.reshape(3, 100)))
    _, s = ld.score(a[mask], b[mask])
    assert sc.summary().to_dict() == s.to_dict()


def test_errors():
    sc = ld.Scorer(metrics="kl").update(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="4 classes; the earlier ones had 3"):
        sc.update(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="same shape"):
        sc.update(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="dtypes"):
        sc.update(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="different settings"):
        sc.merge(ld.Scorer(metrics="js"))
    with pytest.raises(ValueError, match="exact_rows must be an int ≥ 0"):
        ld.Scorer(exact_rows=-1)


def test_no_scores_exact_up_to_budget_then_sketch():
    a, b = pair(rows=5000, classes=8, seed=7)
    _, s = ld.score(a, b, threshold=0.1)
    res = ld.score(a, b, threshold=0.1, keep_scores=False, exact_rows=5000, chunk_rows=700)
    assert res.scores is None and res.summary.to_dict() == s.to_dict()
    sk = ld.score(a, b, keep_scores=False, exact_rows=1000, chunk_rows=700).summary
    assert sk.quantile_method == "sketch" and sk.to_dict()["schema"] == "logitdiv.score/1.1"
    m = sk["kl"]
    assert m.quantile_method == "sketch" and m.mean == s["kl"].mean and m.worst == s["kl"].worst
    assert sk.worst_rows == s.worst_rows
    _check_rank(ld.kl(a, b), m, m.quantile_rank_error)
    assert "sketch" in str(sk)


def _check_rank(values, m, eps):
    x = np.sort(values[np.isfinite(values)].astype(np.float64))
    n = x.size
    for q, v in ((0.5, m.median), (0.9, m.p90), (0.99, m.p99), (0.999, m.p99_9)):
        r = np.floor((n - 1) * q)
        lo, hi = np.searchsorted(x, v, "left"), np.searchsorted(x, v, "right")
        assert lo - eps * n <= r <= hi - 1 + eps * n, (q, v, lo, hi, r, eps)


@pytest.mark.parametrize("k", [2, 16, 256])
def test_sketch_rank_error_bound_holds(k):
    rng = np.random.default_rng(k)
    data = np.concatenate([rng.lognormal(size=20000), rng.standard_normal(7000), np.full(3000, 1.5)])
    rng.shuffle(data)
    sketches = []
    for part in np.array_split(data, 13):
        s = QuantileSketch(k)
        for sub in np.array_split(part, 7):
            s.update(sub)
        sketches.append(s)
    s = sketches[0]
    for t in sketches[1:]:
        s = s.merge(t)
    assert s.n == data.size and s.nbytes() <= 8 * (k + 1) * (len(s.levels))
    x = np.sort(data)
    qs = np.linspace(0, 1, 101)
    for q, v in zip(qs, s.quantiles(qs)):
        r = np.floor((x.size - 1) * q)
        lo, hi = np.searchsorted(x, v, "left"), np.searchsorted(x, v, "right")
        assert lo - s.err <= r <= hi - 1 + s.err


@pytest.mark.parametrize("ext", [".npy", ".csv", ".parquet"])
def test_out_streams_the_same_file(tmp_path, ext):
    if ext == ".parquet":
        pytest.importorskip("pyarrow")
    a, b = pair(rows=1000, classes=8, seed=8)
    scores, _ = ld.score(a, b)
    write_scores(str(tmp_path / ("whole" + ext)), scores)
    res = ld.score(a, b, keep_scores=False, chunk_rows=77, out=str(tmp_path / ("stream" + ext)))
    assert res.scores is None
    assert (tmp_path / ("whole" + ext)).read_bytes() == (tmp_path / ("stream" + ext)).read_bytes() or ext == ".parquet"
    if ext == ".npy":
        rec = np.load(tmp_path / ("stream" + ext))
        assert np.array_equal(rec["kl"], scores["kl"]) and rec.shape == (1000,)
    if ext == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(tmp_path / ("stream" + ext))
        assert np.array_equal(t["kl"].to_numpy(), scores["kl"]) and t["row"].to_pylist() == list(range(1000))


def test_readme_streaming_example_runs():
    torch = pytest.importorskip("torch")
    import os
    import re

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    code = re.search(r"### Streaming: `ld.Scorer`.*?```python\n(.*?)```", readme, re.S).group(1)
    ns = {}
    exec(compile(code.replace("print(summary)", ""), "README", "exec"), ns)
    s = ns["summary"]
    assert s.rows == 20 * 512 and s.classes == 1000 and 0 < s["kl"].mean < 1
