"""logitdiv.scoring.dask on a distributed.LocalCluster with two worker processes: per-row scores and the
summary equal ld.score's (in memory and from .npy files), whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest

import logitdiv as ld

from _score_ref import pair, reference, summary_equal

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
ldd = pytest.importorskip("logitdiv.scoring.dask")

METRICS = ("kl", "rkl", "sym_kl", "js", "sigmoid_kl", "top1", "top4")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def data():
    a, b = pair(rows=2400, classes=36, seed=21)
    a[100, 5] = np.nan
    b[200, :] = -np.inf
    b[200, 0] = 1.0  # kl = +inf on row 200
    return a, b


@pytest.mark.parametrize("chunks_a, chunks_b", [(400, 400), (333, 1000), (2400, 77), (120, 90)])
def test_dask_on_two_worker_processes_equals_in_memory(client, data, chunks_a, chunks_b):
    a, b = data
    assert len(client.scheduler_info()["workers"]) == 2
    ref_scores, ref_summary = ld.score(a, b, metrics=METRICS, threshold=0.25, top_k_worst=9, chunk_rows=500)
    res = ldd.score(da.from_array(a, chunks=(chunks_a, 36)), da.from_array(b, chunks=(chunks_b, 12)),
                    metrics=METRICS, threshold=0.25, top_k_worst=9)
    assert isinstance(res.scores["kl"], da.Array)
    assert res.scores["kl"].chunks[0] == da.from_array(a, chunks=(chunks_a, 36)).chunks[0]
    scores, summary = res.compute()  # runs on the cluster: the client is the default scheduler
    for name in METRICS:
        assert scores[name].dtype == ref_scores[name].dtype
        assert np.array_equal(scores[name], ref_scores[name], equal_nan=True), name
    assert summary_equal(summary, ref_summary)
    assert summary.worst_rows[0]["row"] in (100, 200)
    if chunks_a != 333:
        return
    # the pieces alone give the same
    assert np.array_equal(res.scores["js"].compute(), ref_scores["js"], equal_nan=True)
    assert summary_equal(res.summary.compute(), ref_summary)


def test_dask_values_match_the_reference_and_leading_axes(client):
    a, b = pair(rows=600, classes=20, seed=22, dtype=np.float64)
    a3, b3 = a.reshape(20, 30, 20), b.reshape(20, 30, 20)
    res = ldd.score(da.from_array(a3, chunks=(3, 30, 20)), da.from_array(b3, chunks=(5, 10, 20)), metrics="kl,sym_kl,top1")
    scores, summary = res.compute()
    np.testing.assert_allclose(scores["kl"], reference("kl", a, b), rtol=1e-10)
    np.testing.assert_allclose(scores["sym_kl"], reference("sym_kl", a, b), rtol=1e-10)
    assert np.array_equal(scores["kl"], ld.kl(a, b))
    assert summary_equal(summary, ld.score(a, b, metrics="kl,sym_kl,top1")[1])


def test_dask_from_npy_files_equals_ld_score_on_the_same_files(client, tmp_path, data):
    a, b = data
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b.astype(np.float16))
    ref_scores, ref_summary = ld.score(tmp_path / "a.npy", tmp_path / "b.npy", chunk_rows=256)
    xa = da.from_array(np.load(tmp_path / "a.npy", mmap_mode="r"), chunks=(300, 36))
    xb = da.from_array(np.load(tmp_path / "b.npy", mmap_mode="r"), chunks=(300, 36))
    scores, summary = ldd.score(xa, xb).compute()
    for name in ref_scores:
        assert np.array_equal(scores[name], ref_scores[name], equal_nan=True), name
    assert summary_equal(summary, ref_summary)
    assert summary.dtypes == ("float32", "float16")


def test_dask_errors():
    a, b = pair(rows=10, classes=4)
    with pytest.raises(ValueError, match="class counts differ"):
        ldd.score(da.from_array(a), da.from_array(b[:, :3]))
    with pytest.raises(ValueError, match="row counts differ"):
        ldd.score(da.from_array(a), da.from_array(b[:9]))
    with pytest.raises(ValueError, match="unknown metric"):
        ldd.score(da.from_array(a), da.from_array(b), metrics="kl,nope")
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        ldd.score(da.from_array(a.astype(np.int32)), da.from_array(b))
