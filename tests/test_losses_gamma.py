"""gamma_ce: γ = 0 is softmax_ce, mpmath values, the thresholded-gradient variant, central differences."""

import mpmath
import numpy as np
import pytest

import logitdiv as ld
from _losses_ref import assert_grad_matches

RNG = np.random.default_rng(3)


def mp_gamma_ce(row, label, gamma, dps=50):
    with mpmath.workdps(dps):
        x = [mpmath.mpf(float(v)) for v in row]
        p = mpmath.exp(x[label]) / mpmath.fsum(mpmath.exp(v) for v in x)
        g = mpmath.mpf(gamma)
        return -mpmath.log(g + (1 - g) * p) / (1 - g), p


def softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_gamma_zero_is_softmax_ce():
    s = RNG.normal(size=(8, 9)) * 3
    y = RNG.integers(0, 9, size=8)
    y[2] = -100
    v, g = ld.gamma_ce(s, y, gamma=0.0, grad=True, reduction="mean")
    cv, cg = ld.softmax_ce(s, y, grad=True, reduction="mean")
    assert v == cv
    np.testing.assert_array_equal(g, cg)


@pytest.mark.parametrize("gamma", [1e-6, 0.1, 0.5, 0.9, 0.999])
def test_values_match_mpmath(gamma):
    s = np.concatenate([RNG.normal(size=(6, 7)) * 3, [[30.0, 0, 0, 0, 0, 0, 0], [0.0, 25, 1, 2, 3, 4, 5]]])
    y = np.concatenate([RNG.integers(0, 7, size=6), [0, 0]])
    v = ld.gamma_ce(s, y, gamma=gamma)
    for r in range(len(y)):
        ref, _ = mp_gamma_ce(s[r], y[r], gamma)
        assert abs(v[r] - float(ref)) <= 1e-14 * float(ref), (r, v[r], float(ref))


def test_gamma_near_one_tends_to_one_minus_p():
    s = RNG.normal(size=(5, 6))
    y = RNG.integers(0, 6, size=5)
    p = softmax(s)[np.arange(5), y]
    np.testing.assert_allclose(ld.gamma_ce(s, y, gamma=1 - 1e-9), 1 - p, rtol=1e-8)


@pytest.mark.parametrize("kw", [{"gamma": 0.2}, {"gamma": 0.7}, {"gamma": 0.5, "reduction": "mean"},
                                {"gamma": 0.4, "where": np.array([1, 1, 0, 1, 1], bool)}])
def test_gradient_matches_finite_differences(kw):
    s = RNG.normal(size=(4, 5)) * 2
    y = np.array([0, 3, -100, 4])
    kw = dict(kw)
    kw.setdefault("reduction", "sum")
    _, g = ld.gamma_ce(s, y, grad=True, **kw)
    assert_grad_matches(lambda x: ld.gamma_ce(x, y, **kw), s, g)


def test_gradient_is_r_times_the_ce_gradient():
    s = RNG.normal(size=(6, 5)) * 2
    y = RNG.integers(0, 5, size=6)
    gamma = 0.3
    _, g = ld.gamma_ce(s, y, gamma=gamma, grad=True)
    _, cg = ld.softmax_ce(s, y, grad=True)
    p = softmax(s)[np.arange(6), y]
    r = p / (gamma + (1 - gamma) * p)
    np.testing.assert_allclose(g, r[:, None] * cg, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("b", [0.0, 0.5, 0.95, 1.0])
def test_threshold_variant(b):
    s = RNG.normal(size=(6, 5)) * 2
    y = RNG.integers(0, 5, size=6)
    gamma = 0.3
    v, g = ld.gamma_ce(s, y, gamma=gamma, threshold=b, grad=True)
    cv, cg = ld.softmax_ce(s, y, grad=True)
    p = softmax(s)[np.arange(6), y]
    w = np.maximum(b, p / (gamma + (1 - gamma) * p))
    np.testing.assert_allclose(v, w * cv, rtol=1e-13)
    np.testing.assert_allclose(g, w[:, None] * cg, rtol=1e-13, atol=1e-16)


def test_errors_and_conventions():
    s = RNG.normal(size=(3, 4))
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"gamma must lie in \[0, 1\); got 1"):
        ld.gamma_ce(s, y, gamma=1.0)
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        ld.gamma_ce(s, y, gamma=0.5, threshold=1.5)
    with pytest.raises(TypeError, match="class indices"):
        ld.gamma_ce(s, np.full((3, 4), 0.25), gamma=0.5)
    with pytest.raises(ValueError, match="row 1 is 4"):
        ld.gamma_ce(s, np.array([0, 4, 1]), gamma=0.5)
    s2 = s.copy()
    s2[0, 0] = -np.inf
    s2[1, 2] = np.nan
    v, g = ld.gamma_ce(s2, y, gamma=0.5, grad=True)
    assert v[0] == np.inf and np.all(np.isnan(g[0]))
    assert np.isnan(v[1]) and np.all(np.isfinite(g[2]))
