"""Gradients of the five divergences.

- float64: against central finite differences of the returned value (the gradient of the sum of
  rows for "none", of the reduced value otherwise), both of logitdiv's own value and of the
  independent reference, for every reduction, temperature, where, weights and beta;
- against the closed forms of MATH.md's table (kl, sym_kl, sigmoid_kl, sigmoid_sym_kl) for every
  input dtype and leading-axis shape, gradients having the input's dtype and shape;
- the value returned with grad=True is the value returned without.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as R
from conftest import BF16, DTYPES, KINDS, REDUCTIONS, SIGMOID_KINDS, call

INF = np.inf


def _total(kind, s, t, reduction, kw):
    v = call(kind, s, t, reduction=reduction, **kw)
    return float(np.sum(v)) if reduction == "none" else float(v)


def _ref_total(kind, s, t, reduction, kw):
    v = R.ref(kind, s, t, reduction=reduction, **kw)
    return float(np.sum(v)) if reduction == "none" else float(v)


def _options(kind, shape, rng):
    """Option sets (name, kwargs, s-edit) for a kind."""
    where = rng.random(shape) < 0.75
    where.reshape(-1, shape[-1])[-1] = False  # one row with no class: "mean" divides by fewer rows
    out = [
        ("plain", {}),
        ("tau0.5", {"temperature": 0.5}),
        ("tau2.5", {"temperature": 2.5}),
        ("where", {"where": where}),
        ("where+tau", {"where": where, "temperature": 1.8}),
    ]
    if kind in SIGMOID_KINDS:
        w = rng.uniform(0.0, 2.5, shape)
        w.reshape(-1)[::3] = 0.0
        out += [("weights", {"weights": w}),
                ("weights per class+where+tau", {"weights": rng.uniform(0.1, 2, shape[-1]),
                                                 "where": where, "temperature": 0.7})]
    if kind == "js":
        out += [("beta0.25", {"beta": 0.25}), ("beta0.8+tau", {"beta": 0.8, "temperature": 1.5})]
    return out


OPTION_NAMES = sorted({n for k in KINDS for n, _ in _options(k, (2, 3), np.random.default_rng(0))})
CASES = [(k, n) for k in KINDS for n in OPTION_NAMES
         if n in {m for m, _ in _options(k, (2, 3), np.random.default_rng(0))}]


@pytest.mark.parametrize("shape", ((5,), (2, 2, 3)), ids=str)
@pytest.mark.parametrize("kind,opt", CASES)
def test_gradients_match_finite_differences(kind, opt, shape, rng):
    kw = dict(_options(kind, shape, rng))[opt]
    s = rng.normal(0, 1.5, shape)
    t = s + rng.normal(0, 1.0, shape)
    for reduction in REDUCTIONS:
        v, gs, gt = call(kind, s, t, reduction=reduction, grad=True, **kw)
        assert gs.shape == shape and gt.shape == shape and gs.dtype == gt.dtype == np.float64
        # gradient of logitdiv's own value (tight) and of the independent reference
        for f, tol in ((_total, 2e-8), (_ref_total, 1e-7)):
            fs = R.fd_grad(lambda x: f(kind, x, t, reduction, kw), s, h=1e-5)
            ft = R.fd_grad(lambda x: f(kind, s, x, reduction, kw), t, h=1e-5)
            np.testing.assert_allclose(gs, fs, rtol=1e-6, atol=tol, err_msg=f"{reduction} grad_s {f.__name__}")
            np.testing.assert_allclose(gt, ft, rtol=1e-6, atol=tol, err_msg=f"{reduction} grad_t {f.__name__}")
        # the value with grad=True is the value without
        v0 = call(kind, s, t, reduction=reduction, **kw)
        assert np.array_equal(np.asarray(v), np.asarray(v0)) and np.asarray(v).dtype == np.asarray(v0).dtype


@pytest.mark.parametrize("kind", ["kl", "js", "sigmoid_kl"])
def test_gradients_with_minus_inf_in_one_row_match_finite_differences(kind, rng):
    # cases where −inf in one row only keeps the value finite: differentiate w.r.t. the finite logits
    s = rng.normal(0, 1.5, (3, 5))
    t = rng.normal(0, 1.5, (3, 5))
    s[0, 1] = -INF
    s[1, [0, 4]] = -INF
    if kind == "js":
        t[2, 3] = -INF
    s[2, 2] = t[2, 2] = -INF  # and a class absent from both
    for reduction in ("none", "mean"):
        v, gs, gt = call(kind, s, t, reduction=reduction, grad=True, temperature=1.3)
        assert np.all(np.isfinite(v))
        fs = R.fd_grad(lambda x: _ref_total(kind, x, t, reduction, {"temperature": 1.3}), s)
        ft = R.fd_grad(lambda x: _ref_total(kind, s, x, reduction, {"temperature": 1.3}), t)
        np.testing.assert_allclose(gs, fs, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(gt, ft, rtol=1e-6, atol=1e-8)
        assert np.all(gs[~np.isfinite(s)] == 0) and np.all(gt[~np.isfinite(t)] == 0)


# ------------------------------------------------------------------------------------------
# closed forms from MATH.md's table, every dtype
# ------------------------------------------------------------------------------------------

def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def _sig(x):
    return 0.5 * (1 + np.tanh(x / 2))


def closed_form_grads(kind, s, t, tau=1.0, weights=None):
    """(grad_s, grad_t) of the sum of row values, from MATH.md §1 (float64)."""
    a, b = s / tau, t / tau
    if kind in ("kl", "sym_kl"):
        p, q = _softmax(a), _softmax(b)
        if kind == "kl":
            w = _log_softmax(a) - _log_softmax(b)
            kl = np.sum(p * w, axis=-1, keepdims=True)
            return p * (w - kl) / tau, (q - p) / tau
        d = a - b
        gs = p * (d - np.sum(p * d, axis=-1, keepdims=True)) + (p - q)
        gt = -q * (d - np.sum(q * d, axis=-1, keepdims=True)) - (p - q)
        return gs / tau, gt / tau
    w = 1.0 if weights is None else weights
    ds = _sig(a) * _sig(-a)
    if kind == "sigmoid_kl":
        return w * ds * (a - b) / tau, w * (_sig(b) - _sig(a)) / tau
    dt = _sig(b) * _sig(-b)
    return (w * (ds * (a - b) + _sig(a) - _sig(b)) / tau,
            w * (dt * (b - a) + _sig(b) - _sig(a)) / tau)


GRAD_TOL = {  # rtol, atol relative to the largest gradient
    np.dtype(np.float64): (1e-10, 1e-13),
    np.dtype(np.float32): (1e-6, 1e-7),
    np.dtype(np.float16): (1e-3, 1e-3),
    BF16: (8e-3, 8e-3),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", ((7,), (5, 9), (2, 3, 8)), ids=str)
@pytest.mark.parametrize("kind", ["kl", "sym_kl", "sigmoid_kl", "sigmoid_sym_kl"])
def test_gradients_match_closed_forms(kind, shape, dtype, rng):
    s = rng.normal(0, 2, shape).astype(dtype)
    t = (s.astype(np.float64) + rng.normal(0, 1, shape)).astype(dtype)
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    kw = {"temperature": 1.6}
    weights = None
    if kind in SIGMOID_KINDS:
        weights = rng.uniform(0, 2, shape[-1])
        kw["weights"] = weights
    want_s, want_t = closed_form_grads(kind, s64, t64, 1.6, weights)
    rtol, atol = GRAD_TOL[np.dtype(dtype)]
    rows = int(np.prod(shape[:-1]))
    for reduction, scale in (("none", 1.0), ("sum", 1.0), ("batchmean", 1.0 / rows), ("mean", 1.0 / rows)):
        _, gs, gt = call(kind, s, t, reduction=reduction, grad=True, **kw)
        assert gs.dtype == dtype and gt.dtype == dtype and gs.shape == shape and gt.shape == shape
        for got, want in ((gs, want_s * scale), (gt, want_t * scale)):
            m = np.max(np.abs(want))
            np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol * m,
                                       err_msg=f"{kind} {reduction}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("beta", (0.5, 0.2))
def test_js_gradients_match_finite_differences_of_reference_for_every_dtype(beta, dtype, rng):
    s = rng.normal(0, 2, (3, 6)).astype(dtype)
    t = (s.astype(np.float64) + rng.normal(0, 1, (3, 6))).astype(dtype)
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    _, gs, gt = call("js", s, t, beta=beta, grad=True, temperature=0.9)
    assert gs.dtype == dtype
    fs = R.fd_grad(lambda x: _ref_total("js", x, t64, "none", {"beta": beta, "temperature": 0.9}), s64)
    ft = R.fd_grad(lambda x: _ref_total("js", s64, x, "none", {"beta": beta, "temperature": 0.9}), t64)
    rtol, atol = GRAD_TOL[np.dtype(dtype)]
    rtol, atol = max(rtol, 1e-7), max(atol, 1e-7)  # finite differences carry ~1e-9
    for got, want in ((gs, fs), (gt, ft)):
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol * np.max(np.abs(want)))


@pytest.mark.parametrize("kind", KINDS)
def test_js_beta_0_and_1_and_equal_rows_have_zero_gradients(kind, rng):
    s = rng.normal(0, 2, (3, 5))
    _, gs, gt = call(kind, s, s, grad=True, temperature=0.7)
    assert np.all(gs == 0) and np.all(gt == 0)
    if kind == "js":
        t = rng.normal(0, 2, (3, 5))
        for beta in (0.0, 1.0):
            v, gs, gt = call(kind, s, t, grad=True, beta=beta)
            assert np.all(v == 0) and np.all(gs == 0) and np.all(gt == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_extreme_logits_have_finite_gradients(kind):
    s = np.array([[1e4, -1e4, 0.0, 50.0], [-1e4, 1e4, 3.0, -50.0]])
    t = np.array([[-1e4, 1e4, 1.0, 49.0], [1e4 - 0.5, 1e4, -2.0, -50.5]])
    for dtype in (np.float64, np.float32):
        _, gs, gt = call(kind, s.astype(dtype), t.astype(dtype), grad=True)
        assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gt))
    if kind != "js":
        gs_cf, gt_cf = closed_form_grads(kind, s, t)
        _, gs, gt = call(kind, s, t, grad=True)
        np.testing.assert_allclose(gs, gs_cf, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gt, gt_cf, rtol=1e-9, atol=1e-12)
