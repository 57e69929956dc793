"""API behaviour shared by every loss: docstring examples, dtypes, reductions, masks, threads, errors."""

import doctest

import ml_dtypes
import numpy as np
import pytest

import logitdiv as ld
import logitdiv.losses

RNG = np.random.default_rng(2024)
B, C = 6, 8


def make_call(name):
    """(logits shape, call(logits, **kw) → result) for every loss, with labels fixed."""
    y = RNG.integers(0, C, size=B)
    y[1] = -100
    p = RNG.dirichlet(np.ones(C), size=B)
    dense = (RNG.uniform(size=(B, C)) < 0.3).astype(np.float64)
    pos = np.array([[0, 3, -1], [1, -1, -1], [-1, -1, -1], [7, 2, 5], [4, -1, -1], [6, 0, -1]])
    # second inputs exactly representable in every precision, so that casting them is exact
    teacher = RNG.normal(size=(B, C)).astype(ml_dtypes.bfloat16).astype(np.float64)
    s2 = RNG.normal(size=(B, C)).astype(ml_dtypes.bfloat16).astype(np.float64)
    spans = np.array([[[[0, 1], [-1, -1]], [[2, 2], [0, 2]]]] * 2)
    calls = {
        "softmax_ce": ((B, C), lambda s, **kw: ld.softmax_ce(s, y, label_smoothing=0.1, **kw)),
        "softmax_ce_probs": ((B, C), lambda s, **kw: ld.softmax_ce(s, p, **kw)),
        "bce": ((B, C), lambda s, **kw: ld.bce(s, dense, pos_weight=np.linspace(0.5, 2, C), **kw)),
        "multilabel_ce": ((B, C), lambda s, **kw: ld.multilabel_ce(s, dense, **kw)),
        "sparse_multilabel_ce": ((B, C), lambda s, **kw: ld.sparse_multilabel_ce(s, pos, **kw)),
        "globalpointer_ce": ((2, 2, 4, 4), lambda s, **kw: ld.globalpointer_ce(
            s, spans, mask=np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool), **kw)),
        "gamma_ce": ((B, C), lambda s, **kw: ld.gamma_ce(s, y, gamma=0.3, **kw)),
        "kd_loss": ((B, C), lambda s, **kw: ld.kd_loss(s, teacher.astype(s.dtype), y, temperature=2.0, alpha=0.6,
                                                       **kw)),
        "rdrop_loss": ((B, C), lambda s, **kw: ld.rdrop_loss(s, s2.astype(s.dtype), y, alpha=1.0, **kw)),
        "rdrop_sigmoid": ((B, C), lambda s, **kw: ld.rdrop_loss(s, s2.astype(s.dtype), dense, alpha=1.0,
                                                                kind="sigmoid", **kw)),
    }
    return calls[name]


NAMES = ["softmax_ce", "softmax_ce_probs", "bce", "multilabel_ce", "sparse_multilabel_ce", "globalpointer_ce",
         "gamma_ce", "kd_loss", "rdrop_loss", "rdrop_sigmoid"]


def test_docstring_examples():
    result = doctest.testmod(logitdiv.losses, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 8 and result.failed == 0


def test_exported():
    for name in ["softmax_ce", "bce", "multilabel_ce", "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce",
                 "kd_loss", "rdrop_loss"]:
        assert name in ld.__all__ and getattr(ld, name).__doc__


@pytest.mark.parametrize("name", NAMES)
def test_reductions_are_consistent(name):
    shape, call = make_call(name)
    s = RNG.normal(size=shape) * 2
    rows, g_rows = call(s, grad=True)[:2]
    assert rows.shape == shape[:-1] if name != "globalpointer_ce" else rows.shape == shape[:2]
    total, g_sum = call(s, reduction="sum", grad=True)[:2]
    assert np.isclose(total, rows.sum(), rtol=1e-14)
    np.testing.assert_array_equal(g_sum, g_rows)
    n_rows = rows.size
    assert np.isclose(call(s, reduction="batchmean"), total / n_rows, rtol=1e-14)
    np.testing.assert_allclose(call(s, reduction="batchmean", grad=True)[1], g_sum / n_rows, rtol=1e-14)
    mean, g_mean = call(s, reduction="mean", grad=True)[:2]
    counted = total / mean
    assert abs(counted - round(counted)) < 1e-9 and 1 <= round(counted) <= n_rows
    np.testing.assert_allclose(g_mean, g_sum / round(counted), rtol=1e-13)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_reduced_precision_inputs(name, dtype):
    shape, call = make_call(name)
    s = (RNG.normal(size=shape) * 2).astype(dtype)
    v, g = call(s, grad=True)[:2]
    assert v.dtype == np.float32 and g.dtype == np.dtype(dtype) and g.shape == s.shape
    v64, g64 = call(s.astype(np.float64), grad=True)[:2]
    np.testing.assert_allclose(v, v64, rtol=2e-6, atol=1e-6)
    tol = {np.float32: 2e-6, np.float16: 2e-3, ml_dtypes.bfloat16: 1.6e-2}[dtype]
    np.testing.assert_allclose(g.astype(np.float64), g64, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "globalpointer_ce"])
def test_row_mask_ignores_rows(name):
    shape, call = make_call(name)
    s = RNG.normal(size=shape)
    keep = np.array([True, True, False, True, False, True])
    v, g = call(s, where=keep[:, None], grad=True)[:2]
    v_all, g_all = call(s, grad=True)[:2]
    assert np.all(v[~keep] == 0) and np.all(g[~keep] == 0)
    np.testing.assert_array_equal(v[keep], v_all[keep])
    np.testing.assert_array_equal(g[keep], g_all[keep])
    assert call(s, where=np.array(False), reduction="mean") == 0


def big_call(name):
    """A call on enough rows (2048 × 64) that the kernels run in parallel blocks."""
    rows, cols = 2048, 64
    s = RNG.normal(size=(rows, cols)).astype(np.float32) * 3
    y = RNG.integers(0, cols, size=rows)
    y[::7] = -100
    dense = (RNG.uniform(size=(rows, cols)) < 0.1).astype(np.float32)
    pos = RNG.integers(0, cols, size=(rows, 1))
    other = RNG.normal(size=(rows, cols)).astype(np.float32)
    if name == "globalpointer_ce":
        s4 = s.reshape(512, 4, 8, 8)
        spans = np.sort(RNG.integers(0, 8, size=(512, 4, 1, 2)), axis=-1)
        return lambda **kw: ld.globalpointer_ce(s4, spans, **kw)
    return {
        "softmax_ce": lambda **kw: ld.softmax_ce(s, y, label_smoothing=0.1, **kw),
        "softmax_ce_probs": lambda **kw: ld.softmax_ce(s, dense, **kw),
        "bce": lambda **kw: ld.bce(s, dense, **kw),
        "multilabel_ce": lambda **kw: ld.multilabel_ce(s, dense, **kw),
        "sparse_multilabel_ce": lambda **kw: ld.sparse_multilabel_ce(s, pos, **kw),
        "gamma_ce": lambda **kw: ld.gamma_ce(s, y, gamma=0.3, **kw),
        "kd_loss": lambda **kw: ld.kd_loss(s, other, y, temperature=2.0, alpha=0.6, **kw),
        "rdrop_loss": lambda **kw: ld.rdrop_loss(s, other, y, alpha=1.0, **kw),
        "rdrop_sigmoid": lambda **kw: ld.rdrop_loss(s, other, dense, alpha=1.0, kind="sigmoid", **kw),
    }[name]


@pytest.mark.parametrize("name", NAMES)
def test_results_do_not_depend_on_thread_count(name):
    call = big_call(name)
    results = []
    try:
        for n in (1, 2):
            ld.set_num_threads(n)
            results.append((call(reduction="mean", grad=True), call()))
    finally:
        ld.set_num_threads(0)
    (one, one_rows), (two, two_rows) = results
    assert one[0] == two[0] and np.isfinite(one[0])
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one_rows, two_rows)


def test_large_rows_of_float32_keep_float64_accuracy():
    s = RNG.normal(size=(3, 200_000)).astype(np.float32) * 4
    y = np.array([0, 17, 199_999])
    v = ld.softmax_ce(s, y, label_smoothing=0.1)
    ref = ld.softmax_ce(s.astype(np.float64), y, label_smoothing=0.1)
    np.testing.assert_allclose(v, ref, rtol=1e-7)


def test_where_and_label_type_errors():
    s = RNG.normal(size=(3, 4))
    y = np.array([0, 1, 2])
    with pytest.raises(TypeError, match="where must be a boolean array"):
        ld.softmax_ce(s, y, where=np.ones(4))
    with pytest.raises(ValueError, match=r"where has shape \(5,\), which does not broadcast to the logits' shape \(3, 4\)"):
        ld.softmax_ce(s, y, where=np.ones(5, bool))
    with pytest.raises(TypeError, match="class indices"):
        ld.gamma_ce(s, y.astype(float), gamma=0.1)
    with pytest.raises(TypeError, match="integer class indices"):
        ld.sparse_multilabel_ce(s, np.array([[0.5]] * 3))
    with pytest.raises(TypeError, match="integer class indices"):
        ld.globalpointer_ce(RNG.normal(size=(1, 1, 3, 3)), np.array([[[[0.0, 1.0]]]]))
    with pytest.raises(TypeError, match="floating-point logits"):
        ld.softmax_ce(np.array([[1, 2, 3]]), np.array([0]))
    with pytest.raises(ValueError, match="beyond the int64 range"):
        ld.softmax_ce(s, np.array([0, 1, 2**63], dtype=np.uint64))
    with pytest.raises(ValueError, match="out must have shape"):
        ld.softmax_ce(s, y, out=np.empty(4))
    with pytest.raises(ValueError, match="grad_out= needs grad=True"):
        ld.softmax_ce(s, y, grad_out=np.empty_like(s))
    with pytest.raises(ValueError, match="at least one class"):
        ld.softmax_ce(np.empty((3, 0)), y)
    with pytest.raises(TypeError, match="grad must be True or False"):
        ld.bce(s, np.zeros((3, 4)), grad=1)


def test_empty_batches():
    v, g = ld.softmax_ce(np.empty((0, 5)), np.empty(0, dtype=np.int64), grad=True)
    assert v.shape == (0,) and g.shape == (0, 5)
    assert ld.softmax_ce(np.empty((0, 5)), np.empty(0, dtype=np.int64), reduction="mean") == 0
    assert ld.sparse_multilabel_ce(np.empty((0, 5)), np.empty((0, 2), dtype=np.int64), reduction="sum") == 0
    s = RNG.normal(size=(2, 5))
    np.testing.assert_allclose(ld.sparse_multilabel_ce(s, np.empty((2, 0), dtype=np.int64)),
                               ld.multilabel_ce(s, np.zeros((2, 5))), rtol=1e-15)
    v = ld.globalpointer_ce(RNG.normal(size=(1, 2, 3, 3)), np.empty((1, 2, 0, 2), dtype=np.int64))
    assert v.shape == (1, 2) and np.all(v > 0)
