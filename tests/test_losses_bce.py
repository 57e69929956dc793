"""bce against PyTorch's F.binary_cross_entropy_with_logits (float64), mpmath and central differences."""

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import logitdiv as ld
from _losses_ref import assert_grad_matches

RNG = np.random.default_rng(7)


def torch_bce(s, y, *, pos_weight=None, weight=None):
    """Per-row sums of F.binary_cross_entropy_with_logits(reduction='none'), and its gradient."""
    st = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    kw = {}
    if pos_weight is not None:
        kw["pos_weight"] = torch.tensor(pos_weight, dtype=torch.float64)
    if weight is not None:
        kw["weight"] = torch.tensor(weight, dtype=torch.float64)
    v = F.binary_cross_entropy_with_logits(st, torch.tensor(y, dtype=torch.float64), reduction="none", **kw).sum(-1)
    v.sum().backward()
    return v.detach().numpy(), st.grad.numpy()


@pytest.mark.parametrize("options", ["plain", "pos_weight", "weights", "both", "full_weights"])
@pytest.mark.parametrize("soft", [False, True])
def test_matches_torch(options, soft):
    s = RNG.normal(size=(6, 8)) * 3
    y = RNG.uniform(size=(6, 8)) if soft else (RNG.uniform(size=(6, 8)) < 0.3).astype(float)
    pw = RNG.uniform(0.2, 4.0, size=8)
    w = RNG.uniform(0.0, 2.0, size=8)
    wfull = RNG.uniform(0.0, 2.0, size=(6, 8))
    kw, tkw = {
        "plain": ({}, {}),
        "pos_weight": ({"pos_weight": pw}, {"pos_weight": pw}),
        "weights": ({"weights": w}, {"weight": w}),
        "both": ({"pos_weight": pw, "weights": w}, {"pos_weight": pw, "weight": w}),
        "full_weights": ({"weights": wfull}, {"weight": wfull}),
    }[options]
    v, g = ld.bce(s, y, grad=True, **kw)
    tv, tg = torch_bce(s, y, **tkw)
    np.testing.assert_allclose(v, tv, rtol=1e-13)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-16)


def test_reductions_relate_to_torch_mean_over_elements():
    s = RNG.normal(size=(5, 4))
    y = (RNG.uniform(size=(5, 4)) < 0.5).astype(np.float64)
    t_mean = F.binary_cross_entropy_with_logits(torch.tensor(s), torch.tensor(y)).item()
    assert np.isclose(ld.bce(s, y, reduction="sum") / s.size, t_mean, rtol=1e-14)
    assert np.isclose(ld.bce(s, y, reduction="mean"), t_mean * 4, rtol=1e-14)
    assert np.isclose(ld.bce(s, y, reduction="batchmean"), t_mean * 4, rtol=1e-14)


@pytest.mark.parametrize("kw", [{}, {"pos_weight": [0.5, 2.0, 1.0, 3.0]}, {"weights": [1.0, 0.0, 2.0, 0.5]},
                                {"where": np.array([True, False, True, True])}, {"reduction": "mean"}])
def test_gradient_matches_finite_differences(kw):
    s = RNG.normal(size=(3, 4)) * 2
    y = RNG.uniform(size=(3, 4))
    kw = dict(kw)
    kw.setdefault("reduction", "sum")
    _, g = ld.bce(s, y, grad=True, **kw)
    assert_grad_matches(lambda x: ld.bce(x, y, **kw), s, g)


def test_large_logits_keep_their_digits():
    # softplus(−40) = log1p(e^−40) ≈ 4.2e-18: PyTorch's formula rounds log(1 + e^−40) to 0
    s = np.array([[40.0, -35.0, 25.0]])
    y = np.array([[1.0, 0.0, 1.0]])
    v, g = ld.bce(s, y, grad=True)
    with mpmath.workdps(40):
        ref = float(sum(mpmath.log1p(mpmath.exp(-abs(mpmath.mpf(x)))) for x in s[0]))
        gref = [-float(1 / (1 + mpmath.exp(40))), float(1 / (1 + mpmath.exp(35))), -float(1 / (1 + mpmath.exp(25)))]
    assert abs(v[0] - ref) <= 1e-15 * ref
    np.testing.assert_allclose(g[0], gref, rtol=1e-15)
    torch_v = F.binary_cross_entropy_with_logits(torch.tensor(s), torch.tensor(y), reduction="sum").item()
    assert abs(torch_v - ref) > 1e-6 * ref  # the textbook form loses ~5e-5 relative here


def test_conventions():
    s = np.array([[-np.inf, 0.5], [-np.inf, 0.5], [np.nan, 0.5], [-np.inf, -np.inf], [0.2, 0.1]])
    y = np.array([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    v, g = ld.bce(s, y, grad=True)
    assert np.isclose(v[0], np.log1p(np.exp(-0.5)), rtol=1e-15) and g[0, 0] == 0
    assert v[1] == np.inf and np.all(np.isnan(g[1]))
    assert np.isnan(v[2]) and np.all(np.isnan(g[2]))
    assert v[3] == 0 and np.all(g[3] == 0)
    assert np.isfinite(v[4])
    # the all-absent row does not count for the mean
    assert np.isclose(ld.bce(s[[0, 3, 4]], y[[0, 3, 4]], reduction="mean"), (v[0] + v[4]) / 2, rtol=1e-15)


def test_label_types_and_errors():
    s = RNG.normal(size=(3, 4))
    yb = RNG.uniform(size=(3, 4)) < 0.5
    np.testing.assert_allclose(ld.bce(s, yb), ld.bce(s, yb.astype(float)), rtol=1e-15)
    np.testing.assert_allclose(ld.bce(s, yb.astype(np.int8)), ld.bce(s, yb.astype(float)), rtol=1e-15)
    bad = yb.astype(float)
    bad[2, 3] = 1.5
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]; got 1.5 at row 2, class 3"):
        ld.bce(s, bad)
    with pytest.raises(ValueError, match=r"logits' shape \(3, 4\); got shape \(3, 3\)"):
        ld.bce(s, bad[:, :3])
    with pytest.raises(ValueError, match="pos_weight must be finite and ≥ 0"):
        ld.bce(s, yb, pos_weight=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="does not broadcast"):
        ld.bce(s, yb, weights=[1.0, 2.0])
    with pytest.raises(TypeError):
        ld.bce(s, np.array([["a"] * 4] * 3))
