"""The −inf / mask / weight / NaN conventions (MATH.md "−inf, masks and bad values",
rust/core/src/divergence/mod.rs), each asserted exactly:

- a class masked out by `where`, given weight 0, or −inf in both rows contributes exactly 0 to the
  value and the gradients: the results equal (bit for bit) those of the row without that class;
- −inf in one row only: +inf where the mathematics says so (kl with p_i > 0 = q_i, sym_kl either
  way, the sigmoid family with t_i = −inf, sigmoid_sym_kl either way), finite otherwise (kl with
  p_i = 0 < q_i, js always, sigmoid_kl with s_i = −inf: softplus(t_i));
- a row whose value is +inf gets NaN gradients; a row holding NaN or +inf gets a NaN value and NaN
  gradients; other rows are untouched;
- a row with no class present gives 0 (value and gradients) and does not count for "mean"; "mean"
  with no counted row is 0; a softmax row with −inf on every present class of one side is NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference as R
from conftest import BF16, KINDS, REDUCTIONS, SIGMOID_KINDS, SOFTMAX_KINDS, call

INF = np.inf
DTYPES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16), BF16)


def _grad(kind, s, t, **kw):
    return call(kind, s, t, grad=True, **kw)


def _same(a, b):
    """Bit-for-bit equality of two float arrays (NaN == NaN)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.fixture
def rows(rng):
    s = rng.normal(0, 2, (3, 6))
    t = rng.normal(0, 2, (3, 6))
    return s, t


# ------------------------------------------------------------------------------------------
# classes that are absent: masked, −inf in both rows, weight 0
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("tau", (1.0, 0.6))
@pytest.mark.parametrize("kind", KINDS)
def test_absent_class_is_exactly_as_if_deleted(kind, tau, dtype, rows):
    s, t = (x.astype(dtype) for x in rows)
    drop = 2
    keep = np.arange(s.shape[-1]) != drop
    v0, gs0, gt0 = _grad(kind, s[:, keep], t[:, keep], temperature=tau)

    where = np.broadcast_to(keep, s.shape)
    s_inf, t_inf = s.copy(), t.copy()
    s_inf[:, drop] = -INF
    t_inf[:, drop] = -INF
    s_nan = s.copy()
    s_nan[:, drop] = np.nan  # an excluded class is never read
    variants = [
        ("where", s, t, {"where": where}),
        ("where per class", s, t, {"where": keep}),
        ("where excludes garbage", s_nan, t, {"where": keep}),
        ("-inf in both", s_inf, t_inf, {}),
    ]
    if kind in SIGMOID_KINDS:
        w = np.where(keep, 1.0, 0.0)
        variants.append(("weight 0", s, t, {"weights": w}))
        variants.append(("weight 0 excludes garbage", s_nan, t, {"weights": w}))
    for name, a, b, kw in variants:
        v, gs, gt = _grad(kind, a, b, temperature=tau, **kw)
        assert _same(v, v0), name
        assert _same(gs[:, keep], gs0) and _same(gt[:, keep], gt0), name
        assert np.all(gs[:, drop] == 0) and np.all(gt[:, drop] == 0), name
        for reduction in ("sum", "mean", "batchmean"):
            assert call(kind, a, b, temperature=tau, reduction=reduction, **kw) == call(
                kind, s[:, keep], t[:, keep], temperature=tau, reduction=reduction), (name, reduction)


@pytest.mark.parametrize("kind", KINDS)
def test_row_with_no_class_present_is_zero_and_not_counted(kind, rows):
    s, t = (x.copy() for x in rows)
    s[1] = -INF
    t[1] = -INF
    where_row = np.ones(s.shape, dtype=bool)
    where_row[2] = False
    variants = [("-inf row", s, t, {}), ("masked row", rows[0], rows[1], {"where": where_row})]
    if kind in SIGMOID_KINDS:
        w = np.ones(s.shape)
        w[0] = 0.0
        variants.append(("zero-weight row", rows[0], rows[1], {"weights": w}))
    for name, a, b, kw in variants:
        v, gs, gt = _grad(kind, a, b, **kw)
        empty = [r for r in range(3) if (np.isneginf(a[r]) & np.isneginf(b[r])).all()
                 or ("where" in kw and not kw["where"][r].any())
                 or ("weights" in kw and not kw["weights"][r].any())]
        assert len(empty) == 1, name
        e = empty[0]
        full = [r for r in range(3) if r != e]
        assert v[e] == 0.0 and np.all(gs[e] == 0) and np.all(gt[e] == 0), name
        # "mean" averages over the two rows that count, "batchmean" over all three
        vm = call(kind, a, b, reduction="mean", **kw)
        assert vm == pytest.approx((v[full[0]] + v[full[1]]) / 2, rel=1e-15), name
        vb = call(kind, a, b, reduction="batchmean", **kw)
        assert vb == pytest.approx(v.sum() / 3, rel=1e-15), name
        # and the gradient of "mean" is that of the two counted rows, divided by 2
        _, gsm, gtm = _grad(kind, a, b, reduction="mean", **kw)
        np.testing.assert_allclose(gsm[full], gs[full] / 2, rtol=1e-15, atol=0, err_msg=name)
        np.testing.assert_allclose(gtm[full], gt[full] / 2, rtol=1e-15, atol=0, err_msg=name)
        assert np.all(gsm[e] == 0) and np.all(gtm[e] == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_mean_with_no_counted_row_is_zero(kind):
    s = np.full((2, 3), -INF)
    for reduction in ("mean", "sum", "batchmean"):
        v, gs, gt = _grad(kind, s, s, reduction=reduction)
        assert v == 0.0 and np.all(gs == 0) and np.all(gt == 0)
    x = np.ones((2, 3))
    v, gs, gt = _grad(kind, x, x + np.arange(3), reduction="mean", where=np.zeros(3, bool))
    assert v == 0.0 and np.all(gs == 0) and np.all(gt == 0)
    assert call(kind, x, x, reduction="none", where=np.zeros(3, bool)).tolist() == [0.0, 0.0]


# ------------------------------------------------------------------------------------------
# −inf in one row only
# ------------------------------------------------------------------------------------------

# (kind, which row gets −inf, infinite?) — from the mathematics
ONE_SIDED = [
    ("kl", "t", True),          # p_i > 0 = q_i
    ("kl", "s", False),         # p_i = 0 < q_i: the class adds nothing
    ("sym_kl", "t", True),
    ("sym_kl", "s", True),
    ("js", "t", False),
    ("js", "s", False),
    ("sigmoid_kl", "t", True),  # KL(Bern(σ(s)) ‖ Bern(0))
    ("sigmoid_kl", "s", False),  # KL(Bern(0) ‖ Bern(σ(t))) = softplus(t)
    ("sigmoid_sym_kl", "t", True),
    ("sigmoid_sym_kl", "s", True),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("kind,side,infinite", ONE_SIDED)
def test_minus_inf_in_one_row(kind, side, infinite, dtype, rows):
    s, t = (x.astype(dtype) for x in rows)
    (s if side == "s" else t)[0, 3] = -INF
    v, gs, gt = _grad(kind, s, t)
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    if infinite:
        assert v[0] == INF
        assert np.all(np.isnan(gs[0])) and np.all(np.isnan(gt[0]))
        assert call(kind, s, t, reduction="sum") == INF
    else:
        assert np.isfinite(v[0])
        np.testing.assert_allclose(v[0], R.ref(kind, s64[:1], t64[:1])[0], rtol=2e-6, atol=1e-9)
        assert np.all(np.isfinite(gs[0])) and np.all(np.isfinite(gt[0]))
        # the −inf logit itself gets gradient 0 (its probability is 0 and stays 0)
        assert (gs if side == "s" else gt)[0, 3] == 0.0
    # the other rows are untouched
    v1, gs1, gt1 = _grad(kind, s[1:], t[1:])
    assert _same(v[1:], v1) and _same(gs[1:], gs1) and _same(gt[1:], gt1)


@pytest.mark.parametrize("kind,side,infinite", ONE_SIDED)
def test_minus_inf_against_a_logit_whose_probability_underflows(kind, side, infinite):
    # The support is decided by −inf, not by underflow: softmax([0, −800])[1] = e^−800 rounds to 0
    # in float64 but is positive, so KL against a row with −inf there is +inf (likewise σ(−800)).
    s, t = np.array([[0.5, -800.0, 1.0]]), np.array([[0.0, -800.0, 2.0]])
    (s if side == "s" else t)[0, 1] = -INF
    v = call(kind, s, t)[0]
    assert (v == INF) if infinite else np.isfinite(v)
    # the same through a small temperature: −8 / 0.01 = −800
    v = call(kind, s / 100, t / 100, temperature=0.01)[0]
    assert (v == INF) if infinite else np.isfinite(v)


def test_sigmoid_kl_with_minus_inf_student_is_softplus():
    t = np.array([2.0, -3.0, 0.0, 30.0, -40.0])
    v, gs, gt = _grad("sigmoid_kl", np.full(5, -INF), t, reduction="none")
    softplus = [math.log1p(math.exp(x)) if x < 30 else x + math.log1p(math.exp(-x)) for x in t]
    assert float(v) == pytest.approx(math.fsum(softplus), rel=1e-15)
    for i in range(5):
        vi = float(R.ref("sigmoid_kl", np.array([-INF]), t[i:i + 1]))
        assert vi == pytest.approx(softplus[i], rel=1e-15)
    # gradients: σ'(−inf) = 0 for s, σ(t) − σ(−inf) = σ(t) for t
    assert np.all(gs == 0)
    np.testing.assert_allclose(gt, 1 / (1 + np.exp(-t)), rtol=1e-15)


def test_kl_with_minus_inf_in_p_ignores_the_class_and_gets_q_gradient():
    s = np.array([0.3, -INF, 1.2, -0.5])
    t = np.array([0.1, 0.7, 1.0, 0.0])
    v, gs, gt = _grad("kl", s, t)
    q = np.exp(t - np.log(np.sum(np.exp(t))))
    p = np.exp(s - np.log(np.sum(np.exp(s[np.isfinite(s)]))))
    # KL = Σ_{p_i>0} p_i (log p_i − log q_i)
    sup = np.isfinite(s)
    assert float(v) == pytest.approx(float(np.sum(p[sup] * (np.log(p[sup]) - np.log(q[sup])))), rel=1e-13)
    np.testing.assert_allclose(gt, q - p, rtol=1e-13, atol=1e-16)
    assert gs[1] == 0.0


@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_softmax_row_with_every_class_minus_inf_on_one_side_is_nan(kind, rows):
    s, t = (x.copy() for x in rows)
    s[0] = -INF                       # s has no distribution
    t[2, :3] = -INF                   # ... and with a mask leaving only −inf classes on t
    where = np.ones(t.shape, bool)
    where[2, 3:] = False
    v, gs, gt = _grad(kind, s, t, where=where)
    assert np.isnan(v[0]) and np.isnan(v[2])
    assert np.all(np.isnan(gs[0])) and np.all(np.isnan(gt[2]))
    assert np.isfinite(v[1]) and np.all(np.isfinite(gs[1]))


# ------------------------------------------------------------------------------------------
# NaN and +inf
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("bad", (np.nan, INF), ids=("nan", "+inf"))
@pytest.mark.parametrize("side", ("s", "t"))
@pytest.mark.parametrize("kind", KINDS)
def test_nan_or_plus_inf_poisons_its_row_only(kind, side, bad, dtype, rows):
    s, t = (x.astype(dtype) for x in rows)
    (s if side == "s" else t)[1, 4] = bad
    v, gs, gt = _grad(kind, s, t)
    assert np.isnan(v[1])
    assert np.all(np.isnan(gs[1])) and np.all(np.isnan(gt[1]))
    keep = [0, 2]
    v0, gs0, gt0 = _grad(kind, s[keep], t[keep])
    assert _same(v[keep], v0) and _same(gs[keep], gs0) and _same(gt[keep], gt0)
    for reduction in ("sum", "mean", "batchmean"):
        assert np.isnan(call(kind, s, t, reduction=reduction))
    # a NaN against −inf is still NaN
    (t if side == "s" else s)[1, 4] = -INF
    assert np.isnan(call(kind, s, t)[1])


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "js"])  # js is never infinite
def test_infinite_value_rows_poison_reductions_but_not_other_gradients(kind, rows):
    s, t = (x.copy() for x in rows)
    t[0, 0] = -INF
    for reduction in REDUCTIONS:
        v, gs, gt = _grad(kind, s, t, reduction=reduction)
        if reduction != "none":
            assert v == INF
        assert np.all(np.isnan(gs[0])) and np.all(np.isnan(gt[0]))
        assert np.all(np.isfinite(gs[1:])) and np.all(np.isfinite(gt[1:]))
