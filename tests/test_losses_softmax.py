"""softmax_ce against PyTorch's F.cross_entropy (float64), mpmath, and central differences."""

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import logitdiv as ld
from _losses_ref import assert_grad_matches, mp_softmax_nll

RNG = np.random.default_rng(20240611)


def torch_ce(s, target, *, eps=0.0, ignore_index=-100, reduction="none"):
    """F.cross_entropy in float64 with its autograd gradient (of the sum for 'none')."""
    st = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(target)
    if tt.dtype.is_floating_point:
        tt = tt.to(torch.float64)
    v = F.cross_entropy(st, tt, label_smoothing=eps, ignore_index=ignore_index, reduction=reduction)
    v.sum().backward()
    return v.detach().numpy(), st.grad.numpy()


def logits(rows=7, cols=11, scale=3.0):
    return RNG.normal(size=(rows, cols)) * scale


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_class_indices_match_torch(eps, reduction):
    s = logits()
    y = RNG.integers(0, 11, size=7)
    y[[1, 4]] = -100
    v, g = ld.softmax_ce(s, y, label_smoothing=eps, reduction=reduction, grad=True)
    tv, tg = torch_ce(s, y, eps=eps, reduction=reduction)
    np.testing.assert_allclose(v, tv, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)


def test_custom_ignore_index_matches_torch():
    s = logits()
    y = RNG.integers(0, 11, size=7)
    y[2] = 3
    v, g = ld.softmax_ce(s, y, ignore_index=3, label_smoothing=0.1, reduction="mean", grad=True)
    tv, tg = torch_ce(s, y, eps=0.1, ignore_index=3, reduction="mean")
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_probabilities_match_torch(eps):
    s = logits()
    p = RNG.dirichlet(np.ones(11) * 0.5, size=7)
    p[3] = 0.0
    p[3, 5] = 1.0
    v, g = ld.softmax_ce(s, p, label_smoothing=eps, grad=True)
    tv, tg = torch_ce(s, p, eps=eps)
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)


def test_unnormalised_probabilities_follow_torch():
    # rows need not sum to 1: −Σ y log p, as PyTorch computes it
    s = logits(3, 5)
    p = RNG.uniform(0, 2, size=(3, 5))
    v, g = ld.softmax_ce(s, p, grad=True)
    tv, tg = torch_ce(s, p)
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-15)


def test_temperature_divides_the_logits():
    s = logits()
    y = RNG.integers(0, 11, size=7)
    v, g = ld.softmax_ce(s, y, temperature=2.5, label_smoothing=0.1, grad=True)
    tv, tg = torch_ce(s / 2.5, y, eps=0.1)
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g, tg / 2.5, rtol=1e-12, atol=1e-15)


def test_batchmean_divides_by_all_rows_and_mean_by_counted_rows():
    s = logits()
    y = RNG.integers(0, 11, size=7)
    y[0] = -100
    total = ld.softmax_ce(s, y, reduction="sum")
    assert np.isclose(ld.softmax_ce(s, y, reduction="batchmean"), total / 7, rtol=1e-15)
    assert np.isclose(ld.softmax_ce(s, y, reduction="mean"), total / 6, rtol=1e-15)
    _, gb = ld.softmax_ce(s, y, reduction="batchmean", grad=True)
    _, gm = ld.softmax_ce(s, y, reduction="mean", grad=True)
    _, gs = ld.softmax_ce(s, y, reduction="sum", grad=True)
    np.testing.assert_allclose(gb, gs / 7, rtol=1e-15)
    np.testing.assert_allclose(gm, gs / 6, rtol=1e-14)


def test_row_mask_ignores_rows_of_probability_targets():
    s = logits()
    p = RNG.dirichlet(np.ones(11), size=7)
    keep = np.array([True, False, True, True, False, True, True])
    v, g = ld.softmax_ce(s, p, where=keep[:, None], reduction="mean", grad=True)
    tv, tg = torch_ce(s[keep], p[keep], reduction="mean")
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g[keep], tg, rtol=1e-12, atol=1e-15)
    assert np.all(g[~keep] == 0)
    rows = ld.softmax_ce(s, p, where=keep[:, None])
    assert np.all(rows[~keep] == 0)


def test_class_mask_equals_minus_inf_logits():
    s = logits()
    y = RNG.integers(0, 5, size=7)
    cls = np.ones(11, dtype=bool)
    cls[[6, 9]] = False
    v, g = ld.softmax_ce(s, y, where=cls, label_smoothing=0.2, grad=True)
    s_inf = s.copy()
    s_inf[:, ~cls] = -np.inf
    v2, g2 = ld.softmax_ce(s_inf, y, label_smoothing=0.2, grad=True)
    np.testing.assert_array_equal(v, v2)
    np.testing.assert_array_equal(g, g2)
    # and equals the CE over the kept classes only (smoothing over the C present classes)
    tv, tg = torch_ce(s[:, cls], y, eps=0.2)
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g[:, cls], tg, rtol=1e-12, atol=1e-15)
    assert np.all(g[:, ~cls] == 0)


def test_minus_inf_nan_and_empty_rows():
    s = np.array([
        [0.5, -np.inf, 1.0],        # absent class: as if dropped
        [-np.inf, 0.0, 1.0],        # label on an absent class: +inf, NaN gradient
        [0.0, np.nan, 1.0],         # NaN: this row only
        [-np.inf, -np.inf, -np.inf],  # nothing present: 0, does not count
        [0.3, 0.2, 0.1],
    ])
    y = np.array([0, 0, 0, 1, 2])
    v, g = ld.softmax_ce(s, y, grad=True)
    assert np.isclose(v[0], torch_ce(np.array([[0.5, 1.0]]), np.array([0]))[0][0], rtol=1e-15)
    assert g[0, 1] == 0
    assert v[1] == np.inf and np.all(np.isnan(g[1]))
    assert np.isnan(v[2]) and np.all(np.isnan(g[2]))
    assert v[3] == 0 and np.all(g[3] == 0)
    assert np.isclose(v[4], torch_ce(s[4:], y[4:])[0][0], rtol=1e-15)
    assert np.all(np.isfinite(g[[0, 3, 4]]))
    m = ld.softmax_ce(s[[0, 3, 4]], y[[0, 3, 4]], reduction="mean")
    assert np.isclose(m, (v[0] + v[4]) / 2, rtol=1e-15)


@pytest.mark.parametrize("case", ["hard", "smooth", "soft", "soft_smooth", "temperature", "masked", "mean"])
def test_gradient_matches_finite_differences(case):
    s = logits(4, 6, 1.5)
    y = np.array([1, 5, -100, 0])
    p = RNG.dirichlet(np.ones(6), size=4)
    kw = {
        "hard": dict(target=y),
        "smooth": dict(target=y, label_smoothing=0.15),
        "soft": dict(target=p),
        "soft_smooth": dict(target=p, label_smoothing=0.3),
        "temperature": dict(target=y, temperature=0.7, label_smoothing=0.1),
        "masked": dict(target=p, where=np.array([True, True, False, True, True, True])),
        "mean": dict(target=y, reduction="mean", label_smoothing=0.1),
    }[case]
    kw.setdefault("reduction", "sum")
    target = kw.pop("target")
    _, g = ld.softmax_ce(s, target, grad=True, **kw)
    assert_grad_matches(lambda x: ld.softmax_ce(x, target, **kw), s, g)


def test_confident_rows_keep_their_digits():
    # p_y ≈ 1: the loss is ~e^{-margin}; lse(s) − s_y computes it as 0 or with a large error
    s = np.array([[40.0, 0.0, -3.0, 5.0], [12.0, -20.0, 0.5, 1.0], [3.0, 2.999, -1.0, 0.0]])
    y = np.array([0, 0, 1])
    v, g = ld.softmax_ce(s, y, grad=True)
    for i in range(3):
        ref = float(mp_softmax_nll(s[i], y[i]))
        assert abs(v[i] - ref) <= 4e-16 * ref, (i, v[i], ref)
    # the gradient of the label class, p_y − 1 = −(1 − p_y), is as accurate
    ref = -float(mp_softmax_nll(s[0], 0))  # 1 − p_y ≈ −log p_y to 1e-17 relative here
    assert abs(g[0, 0] - ref) <= 1e-15 * abs(ref)
    # float32 input: values are computed in float64 and rounded once
    s32 = s.astype(np.float32)
    v32 = ld.softmax_ce(s32, y)
    assert v32.dtype == np.float32
    for i in range(3):
        ref = float(mp_softmax_nll(s32[i].astype(np.float64), y[i]))
        assert abs(float(v32[i]) - ref) <= 6e-8 * ref


def test_many_leading_axes_and_strided_input():
    s = RNG.normal(size=(2, 3, 4, 9))
    y = RNG.integers(0, 9, size=(2, 3, 4))
    v, g = ld.softmax_ce(s, y, grad=True)
    assert v.shape == (2, 3, 4) and g.shape == s.shape
    tv, tg = torch_ce(s.reshape(-1, 9), y.reshape(-1))
    np.testing.assert_allclose(v.reshape(-1), tv, rtol=1e-13)
    np.testing.assert_allclose(g.reshape(-1, 9), tg, rtol=1e-12, atol=1e-15)
    big = RNG.normal(size=(5, 20))
    sub = big[::2, 3:14]  # strided rows
    ys = np.array([1, 2, 3])
    np.testing.assert_allclose(ld.softmax_ce(sub, ys), torch_ce(np.ascontiguousarray(sub), ys)[0], rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_reduced_precision_inputs(dtype):
    s = logits(6, 10, 2.0).astype(dtype)
    y = RNG.integers(0, 10, size=6)
    v, g = ld.softmax_ce(s, y, label_smoothing=0.1, grad=True)
    assert v.dtype == np.float32 and g.dtype == s.dtype
    ref_v, ref_g = torch_ce(s.astype(np.float64), y, eps=0.1)
    np.testing.assert_allclose(v, ref_v, rtol=1e-6)
    tol = {np.float32: 1e-6, np.float16: 1e-3, ml_dtypes.bfloat16: 8e-3}[dtype]
    # float32 gradients come from f32 lanes (the exponential's argument is rounded to f32): each
    # element within a few 1e-7 of the row's largest gradient, besides its own relative error
    atol = 3e-7 * np.abs(ref_g).max(axis=-1, keepdims=True) if dtype == np.float32 else tol * 1e-3
    assert np.all(np.abs(g.astype(np.float64) - ref_g) <= tol * np.abs(ref_g) + atol)


def test_probabilities_of_another_precision():
    s = logits(4, 6)
    p = RNG.dirichlet(np.ones(6), size=4)
    for pdt in (np.float32, np.float16):
        v = ld.softmax_ce(s, p.astype(pdt))
        tv, _ = torch_ce(s, p.astype(pdt).astype(np.float64))
        np.testing.assert_allclose(v, tv, rtol=1e-13)


def test_out_and_grad_out_buffers_are_used():
    s = logits()
    y = RNG.integers(0, 11, size=7)
    out = np.empty(7)
    gout = np.empty_like(s)
    v, g = ld.softmax_ce(s, y, grad=True, out=out, grad_out=gout)
    assert v is out and g is gout
    np.testing.assert_allclose(out, torch_ce(s, y)[0], rtol=1e-13)
    with pytest.raises(ValueError, match="reduction='none'"):
        ld.softmax_ce(s, y, out=out, reduction="sum")


def test_bad_labels_and_options():
    s = logits(4, 5)
    with pytest.raises(ValueError, match=r"row 2 is 5; class indices must lie in \[0, 5\)"):
        ld.softmax_ce(s, np.array([0, 1, 5, 2]))
    with pytest.raises(ValueError, match="row 1 is -3"):
        ld.softmax_ce(s, np.array([0, -3, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices or floating-point probabilities"):
        ld.softmax_ce(s, np.array([True, False, True, True]))
    with pytest.raises(TypeError):
        ld.softmax_ce(s, np.array(["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match=r"leading shape \(4,\); got shape \(3,\)"):
        ld.softmax_ce(s, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"pass an integer array"):
        ld.softmax_ce(s, np.array([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"logits' shape \(4, 5\); got shape \(4, 4\)"):
        ld.softmax_ce(s, np.full((4, 4), 0.25))
    p = np.full((4, 5), 0.2)
    p[3, 1] = -0.1
    with pytest.raises(ValueError, match=r"finite and ≥ 0; got -0.1 at row 3, class 1"):
        ld.softmax_ce(s, p)
    p[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN at row 3, class 1"):
        ld.softmax_ce(s, p)
    with pytest.raises(ValueError, match="label_smoothing"):
        ld.softmax_ce(s, np.array([0, 1, 2, 3]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ld.softmax_ce(s, np.array([0, 1, 2, 3]), temperature=0.0)
    with pytest.raises(ValueError, match="reduction"):
        ld.softmax_ce(s, np.array([0, 1, 2, 3]), reduction="avg")
    with pytest.raises(TypeError, match="ignore_index"):
        ld.softmax_ce(s, np.array([0, 1, 2, 3]), ignore_index=1.5)
    # an ignored row's label is not read
    assert np.isfinite(ld.softmax_ce(s, np.array([0, 1, 2, 3]), where=np.array([1, 1, 1, 0], bool)[:, None]).sum())
    assert np.isfinite(ld.softmax_ce(s, np.array([0, 1, 2, 99]), where=np.array([1, 1, 1, 0], bool)[:, None]).sum())
