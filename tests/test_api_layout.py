"""Memory layouts, output buffers and threads:

- non-contiguous, strided, negative-stride, transposed, broadcast and overlapping (sliding window)
  inputs, masks and weights give bit-identical results to contiguous copies;
- `out=` / `grad_out=` buffers are filled and returned (the same objects);
- results are bit-identical with 1 and 2 threads; LOGITDIV_NUM_THREADS is respected.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from conftest import BF16, DTYPES, KINDS, REDUCTIONS, SIGMOID_KINDS, call, value_dtype

import logitdiv as ld


def same(a, b):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def layouts(x):
    """Non-contiguous views of a (4, 6, 10) array, by name."""
    return {
        "class stride 2": x[:, ::2, ::2],
        "negative strides": x[::-1, ::-2, ::-2],
        "transposed": x.transpose(1, 0, 2)[:, :, :5],
        "fortran": np.asfortranarray(x[:, :3, :5]),
        "row stride": x[:, 1:4, 2:7],  # contiguous classes, rows 10 apart, blocks 60 apart
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("kind", KINDS)
def test_strided_inputs_match_contiguous_copies(kind, dtype, rng):
    base_s = rng.normal(0, 2, (4, 6, 10)).astype(dtype)
    base_t = rng.normal(0, 2, (4, 6, 10)).astype(dtype)
    for name, vs in layouts(base_s).items():
        vt = layouts(base_t)[name]
        assert not vs.flags.c_contiguous
        cs, ct = np.ascontiguousarray(vs), np.ascontiguousarray(vt)
        for reduction in REDUCTIONS:
            got = call(kind, vs, vt, grad=True, reduction=reduction, temperature=1.3)
            want = call(kind, cs, ct, grad=True, reduction=reduction, temperature=1.3)
            for g, w in zip(got, want):
                assert same(g, w), (name, reduction)


@pytest.mark.parametrize("kind", KINDS)
def test_broadcast_and_overlapping_rows(kind, rng):
    x = rng.normal(0, 2, 30)
    y = rng.normal(0, 2, 30)
    # rows that overlap in memory (sliding windows) and a row repeated by broadcasting
    sw, tw = sliding_window_view(x, 8), sliding_window_view(y, 8)
    for vs, vt in ((sw, tw), (sw[::3], tw[::-2][: len(sw[::3])]), (np.broadcast_to(x[:8], (5, 8)), tw[:5])):
        got = call(kind, vs, vt, grad=True)
        want = call(kind, np.ascontiguousarray(vs), np.ascontiguousarray(vt), grad=True)
        for g, w in zip(got, want):
            assert same(g, w)


@pytest.mark.parametrize("kind", KINDS)
def test_strided_where_and_weights(kind, rng):
    s = rng.normal(0, 2, (5, 8))
    t = rng.normal(0, 2, (5, 8))
    big = rng.random((10, 16)) < 0.6
    masks = [big[::2, ::2], big[::-2, 1::2], big[:5, :8].T.copy().T, np.broadcast_to(big[0, :8], (5, 8))]
    for m in masks:
        kw = {"where": m}
        if kind in SIGMOID_KINDS:
            w = rng.uniform(0, 2, (10, 16))[::2, ::-2]
            kw["weights"] = w
            want_kw = {"where": np.ascontiguousarray(m), "weights": np.ascontiguousarray(w)}
        else:
            want_kw = {"where": np.ascontiguousarray(m)}
        got = call(kind, s, t, grad=True, reduction="mean", **kw)
        want = call(kind, s, t, grad=True, reduction="mean", **want_kw)
        for g, w_ in zip(got, want):
            assert same(g, w_)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("kind", KINDS)
def test_out_and_grad_out_are_filled_and_returned(kind, dtype, rng):
    shape = (2, 3, 7)
    s = rng.normal(0, 2, shape).astype(dtype)
    t = rng.normal(0, 2, shape).astype(dtype)
    v0, gs0, gt0 = call(kind, s, t, grad=True)
    out = np.full(shape[:-1], np.nan, dtype=value_dtype(dtype))
    gs = np.full(shape, np.nan, dtype=dtype)
    gt = np.full(shape, np.nan, dtype=dtype)
    v, g1, g2 = call(kind, s, t, grad=True, out=out, grad_out=(gs, gt))
    assert v is out and g1 is gs and g2 is gt
    assert same(out, v0) and same(gs, gs0) and same(gt, gt0)
    # out= alone, and grad_out with a reduction
    out2 = np.empty(shape[:-1], dtype=value_dtype(dtype))
    assert call(kind, s, t, out=out2) is out2 and same(out2, v0)
    gs2, gt2 = np.empty(shape, dtype), np.empty(shape, dtype)
    r, a, b = call(kind, s, t, grad=True, reduction="sum", grad_out=(gs2, gt2))
    assert a is gs2 and b is gt2 and np.ndim(r) == 0
    assert same(gs2, gs0) and same(gt2, gt0)  # the gradient of "sum" is that of "none"


def test_one_dimensional_input_gives_a_zero_d_value(rng):
    s, t = rng.normal(size=5), rng.normal(size=5)
    for kind in KINDS:
        v, gs, gt = call(kind, s, t, grad=True)
        assert v.shape == () and gs.shape == (5,)
        assert same(v, call(kind, s[None], t[None])[0])
        out = np.empty(())
        assert call(kind, s, t, out=out) is out and same(out, v)


# ------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------

def _big_case(dtype):
    rng = np.random.default_rng(99)
    # 48 × 3000 elements: above the size (2^17) below which a call stays on the calling thread
    s = rng.normal(0, 3, (48, 3000)).astype(dtype)
    t = (s.astype(np.float64) + rng.normal(0, 0.3, (48, 3000))).astype(dtype)
    where = rng.random(3000) < 0.9
    return s, t, where


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, BF16], ids=lambda d: np.dtype(d).name)
def test_results_are_bit_identical_across_thread_counts(dtype, threads_restored):
    s, t, where = _big_case(dtype)
    results = {}
    for n in (1, 2):
        ld.set_num_threads(n)
        assert ld.get_num_threads() == n
        res = []
        for kind in KINDS:
            for reduction in ("none", "mean"):
                res.append(call(kind, s, t, grad=True, reduction=reduction, where=where, temperature=0.9))
        results[n] = res
    for a, b in zip(results[1], results[2]):
        for x, y in zip(a, b):
            assert same(x, y)


def test_set_num_threads_zero_restores_the_default(threads_restored):
    ld.set_num_threads(1)
    ld.set_num_threads(0)
    env = os.environ.get("LOGITDIV_NUM_THREADS")
    expected = int(env) if env and env.strip().isdigit() and int(env) > 0 else os.cpu_count()
    assert ld.get_num_threads() == expected


_CHILD = r"""
import hashlib, numpy as np, logitdiv as ld
rng = np.random.default_rng(99)
s = rng.normal(0, 3, (48, 3000)); t = s + rng.normal(0, 0.3, (48, 3000))
h = hashlib.sha256()
for k in ("kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl"):
    v, gs, gt = getattr(ld, k)(s, t, grad=True)
    for x in (v, gs, gt):
        h.update(np.ascontiguousarray(x).tobytes())
print(ld.get_num_threads(), h.hexdigest())
"""


def test_environment_variable_sets_the_thread_count():
    outs = {}
    for n in ("1", "3"):
        env = dict(os.environ, LOGITDIV_NUM_THREADS=n)
        r = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        threads, digest = r.stdout.split()
        assert threads == n
        outs[n] = digest
    assert len(set(outs.values())) == 1  # and the results do not depend on it


def test_concurrent_calls_from_python_threads_agree(threads_restored):
    # the GIL is released around the kernels: calls from many threads at once are safe
    from concurrent.futures import ThreadPoolExecutor

    ld.set_num_threads(2)
    s, t, where = _big_case(np.float32)
    want = {k: call(k, s, t, grad=True, where=where) for k in KINDS}
    jobs = [KINDS[i % len(KINDS)] for i in range(10)]
    with ThreadPoolExecutor(max_workers=4) as ex:
        got = list(ex.map(lambda k: (k, call(k, s, t, grad=True, where=where)), jobs))
    for k, res in got:
        for x, y in zip(res, want[k]):
            assert same(x, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_inputs_are_never_modified(dtype, rng):
    s = rng.normal(0, 2, (3, 4)).astype(dtype)
    t = rng.normal(0, 2, (3, 4)).astype(dtype)
    s[0, 1], t[1, 2] = -np.inf, np.nan
    w = rng.uniform(0, 1, 4)
    m = rng.random((3, 4)) < 0.5
    copies = [x.copy() for x in (s, t, w, m)]
    for kind in KINDS:
        kw = {"weights": w} if kind in SIGMOID_KINDS else {}
        call(kind, s, t, grad=True, where=m, temperature=0.5, **kw)
    for x, c in zip((s, t, w, m), copies):
        assert same(x, c)
