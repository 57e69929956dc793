"""Values of the five divergences against the independent float64 reference (tests/reference.py),
for every option, reduction, leading-axis shape and input dtype; output dtypes and shapes; worked
examples with known closed forms (including the errata of MATH.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference as R
from conftest import BF16, DTYPES, KINDS, REDUCTIONS, SIGMOID_KINDS, call, value_dtype

import logitdiv as ld

SHAPES = ((6,), (4, 7), (2, 3, 5), (1, 1, 2, 3))

# option sets: name -> function(kind, shape, rng) -> kwargs (None: not applicable to the kind)
def _opts_plain(kind, shape, rng):
    return {}


def _opts_tau_small(kind, shape, rng):
    return {"temperature": 0.4}


def _opts_tau_large(kind, shape, rng):
    return {"temperature": 3.0}


def _opts_where_full(kind, shape, rng):
    where = rng.random(shape) < 0.7
    if len(shape) > 1:
        where.reshape(-1, shape[-1])[0] = False  # a row with no class: 0, not counted by "mean"
    return {"where": where}


def _opts_where_classes(kind, shape, rng):
    where = np.ones(shape[-1], dtype=bool)  # one mask row broadcast to every row
    where[1] = False
    return {"where": where}


def _opts_where_lead(kind, shape, rng):
    # broadcasting over leading axes: (B, 1, C) for 3-D logits, a per-row flag (..., 1) otherwise
    if len(shape) >= 3:
        return {"where": rng.random((shape[0], 1, shape[-1])) < 0.6}
    return {"where": rng.random(shape[:-1] + (1,)) < 0.6}


def _opts_weights(kind, shape, rng):
    if kind not in SIGMOID_KINDS:
        return None
    w = rng.uniform(0.0, 3.0, shape)
    w.reshape(-1)[::4] = 0.0  # weight 0 excludes a class
    return {"weights": w}


def _opts_weights_classes(kind, shape, rng):
    if kind not in SIGMOID_KINDS:
        return None
    w = rng.uniform(0.5, 2.0, shape[-1])
    return {"weights": w, "temperature": 1.7}


def _opts_weights_and_where(kind, shape, rng):
    if kind not in SIGMOID_KINDS:
        return None
    return {"weights": rng.uniform(0.0, 2.0, shape), "where": rng.random(shape) < 0.5, "temperature": 0.8}


def _opts_beta(beta):
    def f(kind, shape, rng):
        return {"beta": beta, "temperature": 1.3} if kind == "js" else None
    f.__name__ = f"_opts_beta_{beta}"
    return f


OPTIONS = {
    "plain": _opts_plain,
    "tau0.4": _opts_tau_small,
    "tau3": _opts_tau_large,
    "where": _opts_where_full,
    "where_classes": _opts_where_classes,
    "where_lead": _opts_where_lead,
    "weights": _opts_weights,
    "weights_classes": _opts_weights_classes,
    "weights_where": _opts_weights_and_where,
    "beta0.2": _opts_beta(0.2),
    "beta0.9": _opts_beta(0.9),
    "beta0": _opts_beta(0.0),
    "beta1": _opts_beta(1.0),
}

TOL = {  # (rtol, atol) of a library value against the float64 reference on the same inputs
    np.dtype(np.float64): (1e-11, 1e-13),
    np.dtype(np.float32): (2e-6, 1e-9),
    np.dtype(np.float16): (2e-6, 1e-9),
    BF16: (2e-6, 1e-9),
}


def _inputs(shape, dtype, rng, scale=2.0):
    s = (rng.normal(0.0, scale, shape)).astype(dtype)
    t = (s.astype(np.float64) + rng.normal(0.0, scale / 2, shape)).astype(dtype)
    return s, t


# the (kind, option set) pairs that apply
CASES = [(k, o) for k in KINDS for o in OPTIONS if OPTIONS[o](k, (2, 3, 5), np.random.default_rng(0)) is not None]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind,opt", CASES)
def test_values_match_float64_reference(kind, opt, shape, dtype, rng):
    kw = OPTIONS[opt](kind, shape, rng)
    s, t = _inputs(shape, dtype, rng)
    s64, t64 = s.astype(np.float64), t.astype(np.float64)  # the same rounded inputs
    rtol, atol = TOL[np.dtype(dtype)]
    vals, counts = R.ref_values(kind, s64, t64, **kw)
    for reduction in REDUCTIONS:
        got = call(kind, s, t, reduction=reduction, **kw)
        want = R.reduce(vals, counts, reduction)
        if reduction == "none":
            assert isinstance(got, np.ndarray)
            assert got.shape == shape[:-1]
        else:
            assert np.ndim(got) == 0
        assert got.dtype == value_dtype(dtype), (reduction, got.dtype)
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=atol,
                                   err_msg=f"{kind} {reduction} {kw}")


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_dtypes_promote(kind, rng):
    s64, t64 = _inputs((3, 5), np.float64, rng)
    s32, t32 = s64.astype(np.float32), t64.astype(np.float32)
    # float32 with float64: computed on float64 (the wider type), value float64
    v = call(kind, s32, t64)
    assert v.dtype == np.float64
    np.testing.assert_allclose(v, R.ref(kind, s32.astype(np.float64), t64), rtol=1e-11, atol=1e-13)
    # float16 with bfloat16 meet at float32
    s16, tb = s64.astype(np.float16), t64.astype(BF16)
    v = call(kind, s16, tb)
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, R.ref(kind, s16.astype(np.float64), tb.astype(np.float64)),
                               rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_array_likes_are_accepted(kind):
    s, t = [[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], [[0.0, 1.0, 1.5], [1.0, 0.0, -1.0]]
    v = call(kind, s, t)
    assert v.dtype == np.float64 and v.shape == (2,)
    np.testing.assert_allclose(v, R.ref(kind, s, t), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch(kind):
    s = np.zeros((0, 4))
    v = call(kind, s, s)
    assert v.shape == (0,) and v.dtype == np.float64
    for reduction in ("sum", "mean", "batchmean"):
        assert call(kind, s, s, reduction=reduction) == 0.0


# ------------------------------------------------------------------------------------------
# worked examples with closed forms, and the errata of MATH.md
# ------------------------------------------------------------------------------------------

def test_kl_worked_example_is_0_368_not_0_510():
    # KL([0.9, 0.1] ‖ [0.5, 0.5]) = 0.9 ln 1.8 + 0.1 ln 0.2 = 0.368064 (the seed's notes say 0.510)
    exact = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    v = float(ld.kl(np.log([0.9, 0.1]), np.log([0.5, 0.5])))
    assert abs(v - exact) < 1e-15
    assert round(v, 3) == 0.368
    # 0.511 is the reverse KL
    rev = float(ld.kl(np.log([0.5, 0.5]), np.log([0.9, 0.1])))
    assert round(rev, 3) == 0.511 and abs(rev - (0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))) < 1e-15
    # the same Bernoulli pair through the sigmoid divergence (one class, logit(p))
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    vs = float(ld.sigmoid_kl(np.array([logit(0.9)]), np.array([logit(0.5)])))
    assert abs(vs - exact) < 1e-15


def test_kl_closed_form_half_against_quarter():
    # KL([½, ½] ‖ [¼, ¾]) = ½ ln 2 + ½ ln(2/3)
    v = float(ld.kl(np.array([0.0, 0.0]), np.array([0.0, math.log(3.0)])))
    assert abs(v - (0.5 * math.log(2) + 0.5 * math.log(2 / 3))) < 1e-15


def test_js_of_disjoint_supports_is_log2_weighted_entropy():
    # p, q with disjoint support: JS_β = −β ln β − (1−β) ln(1−β)
    s, t = np.array([0.0, -np.inf]), np.array([-np.inf, 0.0])
    for beta in (0.5, 0.25, 0.9):
        v = float(ld.js(s, t, beta=beta))
        assert abs(v - (-beta * math.log(beta) - (1 - beta) * math.log(1 - beta))) < 1e-15


def test_js_is_bounded_by_log2():
    rng = np.random.default_rng(5)
    s, t = rng.normal(0, 30, (200, 4)), rng.normal(0, 30, (200, 4))
    v = ld.js(s, t)
    # the bound holds up to rounding: the terms (ln 2 − ½) + ½ cost a few ulps
    assert np.all(v <= math.log(2) * (1 + 1e-14)) and np.all(v >= 0)
    assert v.max() > 0.6  # the test reaches near the bound


def test_sigmoid_sym_kl_closed_form():
    # one class: (σ(a) − σ(b))(a − b) with σ(ln 3) = ¾, σ(0) = ½
    v = float(ld.sigmoid_sym_kl(np.array([math.log(3.0)]), np.array([0.0])))
    assert abs(v - 0.25 * math.log(3.0)) < 1e-15
    assert ld.gp_kl is ld.sigmoid_sym_kl


@pytest.mark.parametrize("kind", KINDS)
def test_temperature_divides_logits(kind, rng):
    s, t = _inputs((3, 6), np.float64, rng)
    for tau in (0.25, 1.0, 7.0):
        np.testing.assert_allclose(call(kind, s, t, temperature=tau), call(kind, s / tau, t / tau),
                                   rtol=1e-13, atol=1e-15)


def test_huge_logits_are_finite_and_correct():
    # ±1e4: terms computed without overflow, against mpmath (the textbook float64 reference loses
    # ~1e-12 absolute to the differences of logits of size 1e4)
    s = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]])
    t = np.array([[-1e4, 1e4, 1.0], [1e4 - 0.5, 1e4, -2.0]])
    for kind in KINDS:
        v = call(kind, s, t)
        assert np.all(np.isfinite(v)), kind
        want = [R.mp_row(kind, s[i], t[i]) for i in range(2)]
        # float64 holds a logit of 1e4 to 1.8e-12 absolute, so lse and p carry ~1e-12 relative
        np.testing.assert_allclose(v, want, rtol=1e-11, err_msg=kind)
