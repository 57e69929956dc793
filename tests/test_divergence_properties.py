"""Properties and identities of MATH.md §1, by hypothesis and on fixed cases:

- every divergence is ≥ 0, exactly 0.0 (with zero gradients) when s = t, finite and NaN-free (value
  and gradients) on finite input, logits up to ±1e4 included; the symmetric ones are symmetric;
- sym_kl = kl(s,t) + kl(t,s); sigmoid_sym_kl = sigmoid_kl(s,t) + sigmoid_kl(t,s); each class term of
  sigmoid_sym_kl (and of sigmoid_kl) is the softmax divergence of the two-class rows [s_i, 0], [t_i, 0];
- the softmax family is unchanged by adding a constant to a row of s or of t; the sigmoid family is
  not (errata), nor is sigmoid_kl convex in s (errata);
- the seed's temperature variant Σ (σ(s/τ) − σ(t/τ))(s − t) = τ · sigmoid_sym_kl(s, t, temperature=τ).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference as R
from conftest import KINDS, SIGMOID_KINDS, SOFTMAX_KINDS, call

import logitdiv as ld

SYMMETRIC = ("sym_kl", "js", "sigmoid_sym_kl")  # js with β = ½


@st.composite
def logit_pairs(draw, max_abs=1e4, dtype=np.float64, max_rows=4, max_cols=8):
    """Two logit arrays of one shape: independent, nearly equal, or equal in most classes, with
    magnitudes from 1e-3 up to max_abs."""
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, max_abs]))
    elems = st.floats(-scale, scale, allow_nan=False, allow_infinity=False, width=64)
    s = draw(hnp.arrays(np.float64, (rows, cols), elements=elems))
    how = draw(st.sampled_from(["independent", "near", "partly equal"]))
    if how == "independent":
        t = draw(hnp.arrays(np.float64, (rows, cols), elements=elems))
    elif how == "near":
        eps = draw(st.sampled_from([1e-9, 1e-6, 1e-3]))
        noise = draw(hnp.arrays(np.float64, (rows, cols), elements=st.floats(-1, 1)))
        t = s + eps * noise * max(1.0, scale)
    else:
        t = s.copy()
        other = draw(hnp.arrays(np.float64, (rows, cols), elements=elems))
        pick = draw(hnp.arrays(np.bool_, (rows, cols)))
        t[pick] = other[pick]
    return s.astype(dtype), np.clip(t, -max_abs, max_abs).astype(dtype)


KIND = st.sampled_from(KINDS)


def floor(s, t, tau=1.0):
    """Absolute error floor per row: w = log p − log q is known to ~ulp of the scaled logits
    (ε ~ 2e-16 · max|x/τ|), and a divergence carries ε² of it (a second-order effect, MATH.md)."""
    m = (np.max(np.abs(s), axis=-1) + np.max(np.abs(t), axis=-1)) / tau + 1.0
    return (2e-16 * m) ** 2


def close(a, b, floor_, rtol=1e-12):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return bool(np.all(np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b)) + floor_))
TAU = st.sampled_from([1.0, 0.3, 2.0])


@given(pair=logit_pairs(), kind=KIND, tau=TAU, dtype=st.sampled_from([np.float64, np.float32]))
def test_non_negative_finite_and_nan_free_on_finite_input(pair, kind, tau, dtype):
    s, t = (x.astype(dtype) for x in pair)
    v, gs, gt = call(kind, s, t, temperature=tau, grad=True)
    assert np.all(np.isfinite(v)), (s, t, v)
    assert np.all(v >= 0), (s, t, v)
    assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gt))
    for reduction in ("sum", "mean", "batchmean"):
        r = call(kind, s, t, temperature=tau, reduction=reduction)
        assert np.isfinite(r) and r >= 0


@given(pair=logit_pairs(), kind=KIND, tau=TAU)
def test_zero_with_zero_gradients_on_equal_rows(pair, kind, tau):
    s, _ = pair
    for dtype in (np.float64, np.float32):
        x = s.astype(dtype)
        v, gs, gt = call(kind, x, x.copy(), temperature=tau, grad=True)
        assert np.all(v == 0.0)
        assert np.all(gs == 0.0) and np.all(gt == 0.0)


@given(pair=logit_pairs(), kind=st.sampled_from(SYMMETRIC), tau=TAU)
def test_symmetric_divergences_are_symmetric(pair, kind, tau):
    s, t = pair
    a = call(kind, s, t, temperature=tau)
    b = call(kind, t, s, temperature=tau)
    assert close(a, b, floor(s, t, tau)), (a, b)
    if kind == "js":  # and β ↔ 1−β in general
        assert close(call(kind, s, t, beta=0.3), call(kind, t, s, beta=0.7), floor(s, t))


@pytest.mark.parametrize("symmetric, one_way", [("sym_kl", "kl"), ("sigmoid_sym_kl", "sigmoid_kl")])
@given(pair=logit_pairs(max_abs=30.0), tau=TAU)
def test_symmetric_kl_is_kl_both_ways(symmetric, one_way, pair, tau):
    s, t = pair
    lhs = call(symmetric, s, t, temperature=tau)
    rhs = call(one_way, s, t, temperature=tau) + call(one_way, t, s, temperature=tau)
    assert close(lhs, rhs, floor(s, t, tau)), (lhs, rhs)


@given(pair=logit_pairs(max_abs=30.0), tau=TAU)
def test_sigmoid_class_terms_are_two_class_softmax_divergences(pair, tau):
    # 9039 "峰回路转": (σ(a) − σ(b))(a − b) = sym_kl([a, 0], [b, 0]); likewise the Bernoulli KL
    s, t = pair
    zeros = np.zeros_like(s)
    s2, t2 = np.stack([s, zeros], axis=-1), np.stack([t, zeros], axis=-1)
    fl = floor(s[..., None], t[..., None], tau)
    per_class_sym = ld.sigmoid_sym_kl(s[..., None], t[..., None], temperature=tau)
    # rtol: the float64 accuracy bound (1e-10) of each side. The two-class softmax sums w = d − dlse
    # per class, and with one dominant class that costs ~5e-12 relative (found by hypothesis at
    # s = 11, t = 11.00003), within the bound but above this file's default 1e-12.
    assert close(per_class_sym, ld.sym_kl(s2, t2, temperature=tau), fl, rtol=2e-10)
    per_class_kl = ld.sigmoid_kl(s[..., None], t[..., None], temperature=tau)
    assert close(per_class_kl, ld.kl(s2, t2, temperature=tau), fl)
    assert close(ld.sigmoid_sym_kl(s, t, temperature=tau), per_class_sym.sum(-1), floor(s, t, tau))


@given(pair=logit_pairs(max_abs=1e3), kind=st.sampled_from(SOFTMAX_KINDS),
       shift=st.integers(-512, 512), which=st.sampled_from(["s", "t", "both"]), tau=TAU)
def test_softmax_family_is_shift_invariant(pair, kind, shift, which, tau):
    # logits on a 2^-20 grid plus an integer: the shifted inputs are exact
    s, t = (np.round(x * 2**20) / 2**20 for x in pair)
    c = np.float64(shift) + np.arange(s.shape[0])[:, None]  # a different constant per row
    s2 = s + c if which in ("s", "both") else s
    t2 = t + c if which in ("t", "both") else t
    a = call(kind, s, t, temperature=tau)
    b = call(kind, s2, t2, temperature=tau)
    # The shifted logits are exact, but (s + c − t)/τ rounds differently from (s − t)/τ: an error
    # ε ~ ulp(max|logit| + |c|)/τ in each w_i, which moves the divergence by ~√(2 KL)·ε at first
    # order (and ε² at second).
    eps = 4e-16 * ((np.max(np.abs(s), axis=-1) + np.max(np.abs(t), axis=-1) + np.abs(c[:, 0])) / tau + 1)
    v = np.maximum(a, b)
    assert np.all(np.abs(a - b) <= 1e-12 * v + 2 * np.sqrt(2 * v) * eps + eps**2), (a, b)


def test_sigmoid_family_is_not_shift_invariant():
    # errata: σ(x + c) − σ(y + c) depends on c
    s, t = np.array([5.0, 1.0]), np.array([0.0, -1.0])
    for kind in SIGMOID_KINDS:
        a, b = float(call(kind, s, t)), float(call(kind, s - 5, t - 5))
        assert abs(a - b) > 0.1 * a, kind
        assert a == pytest.approx(R.ref(kind, s, t), rel=1e-12)
        assert b == pytest.approx(R.ref(kind, s - 5, t - 5), rel=1e-12)


def test_sigmoid_kl_is_not_convex_in_s():
    # errata: the second derivative in s at s = 5, t = 0 is negative:
    # σ'(5) ((1 − 2σ(5)) · 5 + 1) for sigmoid_kl, σ'(5) ((1 − 2σ(5)) · 5 + 2) for the symmetric one
    sig = 1 / (1 + math.exp(-5.0))
    d1 = sig * (1 - sig)
    for kind, exact in (("sigmoid_kl", d1 * ((1 - 2 * sig) * 5 + 1)), ("sigmoid_sym_kl", d1 * ((1 - 2 * sig) * 5 + 2))):
        h = 1e-4
        g = [call(kind, np.array([x]), np.array([0.0]), grad=True)[1][0] for x in (5 - h, 5 + h)]
        second = (g[1] - g[0]) / (2 * h)
        assert second < 0
        assert second == pytest.approx(exact, rel=1e-6)


@given(pair=logit_pairs(max_abs=30.0), tau=st.sampled_from([0.25, 1.0, 3.0, 10.0]),
       weighted=st.booleans())
def test_seed_temperature_variant(pair, tau, weighted):
    # Σ w (σ(s/τ) − σ(t/τ))(s − t) = τ · sigmoid_sym_kl(s, t, temperature=τ), the left side in float64
    s, t = pair
    w = np.linspace(0.5, 1.5, s.shape[-1]) if weighted else np.ones(s.shape[-1])
    sig = lambda x: 0.5 * (1 + np.tanh(x / 2))  # noqa: E731
    lhs = np.sum(w * (sig(s / tau) - sig(t / tau)) * (s - t), axis=-1)
    rhs = tau * ld.sigmoid_sym_kl(s, t, temperature=tau, weights=w if weighted else None)
    scale = np.sum(w * np.abs(s - t), axis=-1)  # the textbook left side is exact to ~1e-16 of this
    assert np.all(np.abs(lhs - rhs) <= 1e-12 * np.abs(rhs) + 4e-16 * scale), (lhs, rhs)


@given(pair=logit_pairs(max_abs=30.0), kind=KIND, tau=TAU)
def test_values_agree_with_reference(pair, kind, tau):
    s, t = pair
    want = R.ref(kind, s, t, temperature=tau)
    got = call(kind, s, t, temperature=tau)
    # the textbook reference is exact to ~1e-15 of the logits' size, relative to the divergence
    scale = (np.max(np.abs(s), axis=-1) + np.max(np.abs(t), axis=-1) + 1) / tau
    assume(np.all(np.isfinite(want)))
    assert np.all(np.abs(got - want) <= 1e-10 * want + 1e-13 * scale * s.shape[-1]), (got, want)
