"""References of the accuracy grid (tests/test_accuracy_grid.py), written from MATH.md's
definitions, independent of logitdiv's code.

Two references, both computed on the exact values of the (already rounded) test inputs:

- ``mp_*``: mpmath at 50 significant digits, the textbook definitions (KL as Σ p (log p − log q),
  the Bernoulli KL per class, lse(s') − s'_y, ...) and MATH.md's gradient formulas (the js
  gradient derived here; ``mp_fd_grad`` checks every formula by numerical differentiation).
  The only rewritings are exact algebra that keeps 50 digits meaningful where a number rounds to
  1 (σ(150) = 1 − 1e-65, p_top = 1 − 1e-26): σ(a) − σ(b) = (e^{−b} − e^{−a}) / ((1 + e^{−a})(1 + e^{−b})),
  log σ(x) = −log1p(e^{−x}), lse(x) = x_k + log1p(Σ_{i≠k} e^{x_i − x_k}), log p − log m =
  −log(β + (1−β) q/p); rows with p = q exactly (equal, or shifted by an exact constant) give 0.
  Optional multiplicities let one (s_i, t_i) pair stand for many identical classes.
- ``f64_*``: vectorised float64 with accurate sums (``xsum``) for long rows (up to 10^6 classes), in forms with no
  cancellation: exactly formed differences (TwoSum for float64 inputs, divided by τ after the
  difference), w_i = log p_i − log q_i = e_i + L with e_i = δ_i − δ_k (k = argmax p) and
  L = log1p(Σ p_i expm1(−e_i)), values as sums of non-negative terms (p φ(w), φ by its series
  near 0; the Bernoulli KL as σ(a) φ(u) + σ(−a) φ(v)). The test file checks it against ``mp_*``.

Every function takes 2-D arrays (rows, C) of the test dtype and returns float64 arrays:
divergences (values, grad_s, grad_t), losses (values, grad).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
from mpmath import libmp

MP_DPS = 50
SOFTMAX_KINDS = ("kl", "sym_kl", "js")
SIGMOID_KINDS = ("sigmoid_kl", "sigmoid_sym_kl")


def as_f64(x) -> np.ndarray:
    """The exact float64 values of an array of float16/bfloat16/float32/float64."""
    return np.asarray(x).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# mpmath, 50 digits
# ----------------------------------------------------------------------------------------------

def _mp_sig(x):
    return 1 / (1 + mpmath.exp(-x))


def _mp_list(x):
    """mpf values of a row: floats (and arrays of any float dtype) exactly, mpf as they are."""
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, mpmath.mpf) for v in x):
        return list(x)
    return [mpmath.mpf(float(v)) for v in np.ravel(as_f64(x))]


def _mp_expm1(x):
    """e^x − 1 to full relative precision: e^x evaluated with the bits that the subtraction
    cancels added (mpmath's own expm1 is slow)."""
    if x == 0:
        return mpmath.mpf(0)
    prec = mpmath.mp.prec
    extra = max(0, -int(mpmath.mag(x))) + 16
    e = libmp.mpf_exp(x._mpf_, prec + extra)
    return mpmath.mp.make_mpf(libmp.mpf_sub(e, libmp.fone, prec))


def _mp_phi(w):
    """φ(w) = w − 1 + e^{−w} = Σ_{n≥2} (−w)^n/n! ≥ 0, to full relative precision: (w − 1) + e^{−w}
    with 2·log2(1/|w|) extra bits, what the sum cancels."""
    if w == 0:
        return mpmath.mpf(0)
    prec = mpmath.mp.prec
    big = prec + 2 * max(0, -int(mpmath.mag(w))) + 16
    e = libmp.mpf_exp(libmp.mpf_neg(w._mpf_), big)
    wm1 = libmp.mpf_sub(w._mpf_, libmp.fone, big)
    return mpmath.mp.make_mpf(libmp.mpf_add(wm1, e, prec))


def _mp_pair(s, t, temperature, mult):
    """The common start of both divergence references: the rows as mpf lists, the multiplicities
    (1 each by default) and τ as an mpf."""
    s, t = _mp_list(s), _mp_list(t)
    k = [1] * len(s) if mult is None else [int(m) for m in np.ravel(mult)]
    return s, t, k, mpmath.mpf(float(temperature))


def _mp_from_top(s, t, tau):
    """Softmax rows relative to the class k of the largest s: (k, (s_i − s_k)/τ, (t_i − t_k)/τ);
    differences of floats, exact at 50 digits."""
    top = max(range(len(s)), key=lambda i: s[i])
    return top, [(x - s[top]) / tau for x in s], [(y - t[top]) / tau for y in t]


def _mp_sigmoid_row(kind, s, t, k, tau, kl_term):
    """The sigmoid kinds, shared by both references: the value Σ k_i term_i and the gradients from
    σ(x) − σ(y) = (e^{−y} − e^{−x}) / ((1 + e^{−x})(1 + e^{−y})) (exact algebra). Only sigmoid_kl's
    value term differs between the references: `kl_term(x, y, e^{−x}, e^{−y}, σ(x), σ(−x))`."""
    fsum = mpmath.fsum
    a = [x / tau for x in s]
    b = [y / tau for y in t]
    terms, gs, gt = [], [], []
    for x, y in zip(a, b):
        ex, ey = mpmath.exp(-x), mpmath.exp(-y)
        sx, snx = 1 / (1 + ex), ex / (1 + ex)        # σ(x), σ(−x)
        sy, sny = 1 / (1 + ey), ey / (1 + ey)
        dxy = (ey - ex) / ((1 + ex) * (1 + ey))      # σ(x) − σ(y)
        if kind == "sigmoid_kl":
            terms.append(kl_term(x, y, ex, ey, sx, snx))
            gs.append(sx * snx * (x - y) / tau)
            gt.append(-dxy / tau)
        else:
            terms.append(dxy * (x - y))
            gs.append((sx * snx * (x - y) + dxy) / tau)
            gt.append((sy * sny * (y - x) - dxy) / tau)
    return fsum(ki * x for ki, x in zip(k, terms)), gs, gt


def _mp_bernoulli_kl(x, y, ex, ey, sx, snx):
    """σ(x) φ(u) + σ(−x) φ(v), u, v the log-ratios by log1p of differences of exponentials."""
    if x == y:
        return mpmath.mpf(0)
    u = mpmath.log1p((ey - ex) / (1 + ex))         # log σ(x) − log σ(y)
    vv = mpmath.log1p((ex - ey) / (ey * (1 + ex)))  # log σ(−x) − log σ(−y)
    return sx * _mp_phi(u) + snx * _mp_phi(vv)


def _textbook_bernoulli_kl(x, y, ex, ey, sx, snx):
    """σ(x) log(σ(x)/σ(y)) + σ(−x) log(σ(−x)/σ(−y)), log σ(x) = −log1p(e^{−x})."""
    lsx, lsy = -mpmath.log1p(ex), -mpmath.log1p(ey)
    lsnx, lsny = -mpmath.log1p(1 / ex), -mpmath.log1p(1 / ey)
    return sx * (lsx - lsy) + snx * (lsnx - lsny)


def mp_div_row(kind, s, t, temperature=1.0, beta=0.5, mult=None):
    """One row: (value, grad_s, grad_t) as mpf / lists of mpf (one entry per distinct class;
    `mult[i]` copies of class i), to ~50 significant digits *relative to each result*, however
    small (a KL of 1e-50 between logits of size 100: the textbook Σ p (log p − log q) would need
    ~65 digits there). Exact algebra only:
    - softmax: logits relative to the class k of the largest s, w_i = log p_i − log q_i =
      (s'_i − s'_k) − (t'_i − t'_k) − c with c = lse − lse' = log1p(Σ_{j≠k} e^{t'_j−t'_k}
      expm1(·) / Z'), and KL(p‖q) = Σ p φ(w) (as Σ p (1 − e^{−w}) = 0), sym_kl =
      Σ p w (1 − e^{−w}), KL(p‖m) = Σ p φ(log p − log m) (Σ m = 1), q − p = p expm1(−w);
    - sigmoid: KL of two Bernoullis as σ(x) φ(u) + σ(−x) φ(v), u, v the log-ratios formed by log1p
      of differences of exponentials; σ(x) − σ(y) = (e^{−y} − e^{−x}) / ((1+e^{−x})(1+e^{−y})).
    ``mp_div_row_textbook`` at 300 digits checks it."""
    s, t, k, tau = _mp_pair(s, t, temperature, mult)
    n = len(s)
    fsum = mpmath.fsum
    if kind in SOFTMAX_KINDS:
        top, xa, xb = _mp_from_top(s, t, tau)
        d = [x - y for x, y in zip(xa, xb)]    # (s' − t') − (s'_k − t'_k)
        ea = [mpmath.exp(x) for x in xa]
        eb = [mpmath.exp(x) for x in xb]
        others = [i for i in range(n) if i != top]
        za = 1 + fsum(k[i] * ea[i] for i in others) + (k[top] - 1)
        zb = 1 + fsum(k[i] * eb[i] for i in others) + (k[top] - 1)
        # c = log za − log zb = log1p((za − zb)/zb), za − zb = Σ_{j≠k} e^{xb_j} expm1(d_j)
        c = mpmath.log1p(fsum(k[i] * eb[i] * _mp_expm1(d[i]) for i in others) / zb)
        w = [di - c for di in d]               # log p − log q
        if all(di == 0 for di in d):           # p = q exactly (equal or shifted rows)
            zero = [mpmath.mpf(0)] * n
            return mpmath.mpf(0), zero, list(zero)
        p = [e / za for e in ea]
        q = [e / zb for e in eb]
        q_minus_p = [pi * _mp_expm1(-wi) for pi, wi in zip(p, w)]
        if kind == "kl":
            v = fsum(ki * pi * _mp_phi(wi) for ki, pi, wi in zip(k, p, w))
            gs = [pi * (wi - v) / tau for pi, wi in zip(p, w)]
            gt = [x / tau for x in q_minus_p]
        elif kind == "sym_kl":
            v = fsum(-ki * pi * wi * _mp_expm1(-wi) for ki, pi, wi in zip(k, p, w))
            pd = fsum(ki * pi * di for ki, pi, di in zip(k, p, d))
            qd = fsum(ki * qi * di for ki, qi, di in zip(k, q, d))
            gs = [(pi * (di - pd) - qp) / tau for pi, qp, di in zip(p, q_minus_p, d)]
            gt = [(-qi * (di - qd) + qp) / tau for qi, qp, di in zip(q, q_minus_p, d)]
        else:
            bt = mpmath.mpf(float(beta))
            # log p − log m = −log(β + (1−β) e^{−w}), log q − log m = −log(β e^{w} + 1 − β)
            ra = [-mpmath.log1p((1 - bt) * _mp_expm1(-wi)) for wi in w]
            rb = [-mpmath.log1p(bt * _mp_expm1(wi)) for wi in w]
            kpm = fsum(ki * pi * _mp_phi(x) for ki, pi, x in zip(k, p, ra))   # KL(p‖m)
            kqm = fsum(ki * qi * _mp_phi(x) for ki, qi, x in zip(k, q, rb))   # KL(q‖m)
            v = bt * kpm + (1 - bt) * kqm
            gs = [bt * pi * (x - kpm) / tau for pi, x in zip(p, ra)]
            gt = [(1 - bt) * qi * (x - kqm) / tau for qi, x in zip(q, rb)]
        return v, gs, gt
    return _mp_sigmoid_row(kind, s, t, k, tau, _mp_bernoulli_kl)


def mp_div_row_textbook(kind, s, t, temperature=1.0, beta=0.5, mult=None):
    """The textbook definitions, Σ p (log p − log q), Σ σ log(σ/σ') + ..., and MATH.md's gradients
    in terms of p, q, log p, log q: exact to ~10^-dps *absolute* (on log p, log q), so run it at
    high precision (the tests use 300 digits) to check ``mp_div_row``."""
    s, t, k, tau = _mp_pair(s, t, temperature, mult)
    n = len(s)
    fsum = mpmath.fsum
    if kind in SOFTMAX_KINDS:
        top, xa, xb = _mp_from_top(s, t, tau)
        la = mpmath.log1p(fsum(ki * mpmath.exp(x) for i, (ki, x) in enumerate(zip(k, xa)) if i != top)
                          + (k[top] - 1))
        lb = mpmath.log1p(fsum(ki * mpmath.exp(x) for i, (ki, x) in enumerate(zip(k, xb)) if i != top)
                          + (k[top] - 1))
        lp = [x - la for x in xa]
        lq = [x - lb for x in xb]
        p = [mpmath.exp(x) for x in lp]
        q = [mpmath.exp(x) for x in lq]
        w = [u - v for u, v in zip(lp, lq)]           # log p − log q
        if all(wi == 0 for wi in w):                   # p = q exactly (equal or shifted rows)
            zero = [mpmath.mpf(0)] * n
            return mpmath.mpf(0), zero, list(zero)
        if kind == "kl":
            v = fsum(ki * pi * wi for ki, pi, wi in zip(k, p, w))
            gs = [pi * (wi - v) / tau for pi, wi in zip(p, w)]
            gt = [(qi - pi) / tau for pi, qi in zip(p, q)]
        elif kind == "sym_kl":
            v = fsum(ki * pi * wi for ki, pi, wi in zip(k, p, w)) + fsum(-ki * qi * wi for ki, qi, wi in zip(k, q, w))
            d = [x - y for x, y in zip(xa, xb)]        # s' − t' up to a constant (cancels below)
            pd = fsum(ki * pi * di for ki, pi, di in zip(k, p, d))
            qd = fsum(ki * qi * di for ki, qi, di in zip(k, q, d))
            gs = [(pi * (di - pd) + (pi - qi)) / tau for pi, qi, di in zip(p, q, d)]
            gt = [(-qi * (di - qd) - (pi - qi)) / tau for pi, qi, di in zip(p, q, d)]
        else:
            bt = mpmath.mpf(float(beta))
            # log p − log m = −log(m/p) = −log(β + (1−β) q/p), log q − log m likewise
            ra = [-mpmath.log(bt + (1 - bt) * mpmath.exp(-wi)) for wi in w]
            rb = [-mpmath.log(bt * mpmath.exp(wi) + (1 - bt)) for wi in w]
            kpm = fsum(ki * pi * x for ki, pi, x in zip(k, p, ra))   # KL(p‖m)
            kqm = fsum(ki * qi * x for ki, qi, x in zip(k, q, rb))   # KL(q‖m)
            v = bt * kpm + (1 - bt) * kqm
            # d/ds'_j [β Σp log p + (1−β) Σq log q − Σm log m] = β p_j (ra_j − KL(p‖m)), t alike
            gs = [bt * pi * (x - kpm) / tau for pi, x in zip(p, ra)]
            gt = [(1 - bt) * qi * (x - kqm) / tau for qi, x in zip(q, rb)]
        return v, gs, gt
    return _mp_sigmoid_row(kind, s, t, k, tau, _textbook_bernoulli_kl)


def mp_loss_row(kind, s, y, temperature=1.0):
    """One loss row: (value, grad) in mpf; y an int label (softmax_ce) or a 0/1 row."""
    s = _mp_list(s)
    tau = mpmath.mpf(float(temperature))
    fsum = mpmath.fsum
    if kind == "softmax_ce":
        x = [v / tau for v in s]
        e = [mpmath.exp(xi - x[y]) for xi in x]
        rest = fsum(ei for i, ei in enumerate(e) if i != y)
        v = mpmath.log1p(rest)                      # lse(x) − x_y
        z = 1 + rest
        g = [ei / z / tau for ei in e]
        g[y] = -(rest / z) / tau                    # p_y − 1 = −Σ_{i≠y} p_i
        return v, g
    yy = [int(v) for v in np.ravel(y)]
    x = s
    if kind == "bce":
        v = fsum(mpmath.log1p(mpmath.exp(-xi if yi else xi)) for xi, yi in zip(x, yy))
        g = [(-_mp_sig(-xi) if yi else _mp_sig(xi)) for xi, yi in zip(x, yy)]
        return v, g
    assert kind == "multilabel_ce"
    en = [(mpmath.exp(xi) if not yi else mpmath.mpf(0)) for xi, yi in zip(x, yy)]
    ep = [(mpmath.exp(-xi) if yi else mpmath.mpf(0)) for xi, yi in zip(x, yy)]
    sn, sp = fsum(en), fsum(ep)
    zn, zp = 1 + sn, 1 + sp
    v = mpmath.log1p(sn) + mpmath.log1p(sp)
    g = [en_i / zn - ep_i / zp for en_i, ep_i in zip(en, ep)]
    return v, g


def _tofloat(xs):
    return np.array([float(x) for x in xs])


def mp_div(kind, s, t, temperature=1.0, beta=0.5):
    """Rows of a divergence at 50 digits: float64 (values, grad_s, grad_t)."""
    s2, t2 = np.atleast_2d(as_f64(s)), np.atleast_2d(as_f64(t))
    vals, gss, gts = [], [], []
    with mpmath.workdps(MP_DPS):
        for r in range(s2.shape[0]):
            v, gs, gt = mp_div_row(kind, s2[r], t2[r], temperature, beta)
            vals.append(float(v))
            gss.append(_tofloat(gs))
            gts.append(_tofloat(gt))
    return np.array(vals), np.array(gss), np.array(gts)


def mp_loss(kind, s, y, temperature=1.0):
    s2 = np.atleast_2d(as_f64(s))
    vals, gs = [], []
    with mpmath.workdps(MP_DPS):
        for r in range(s2.shape[0]):
            v, g = mp_loss_row(kind, s2[r], int(y[r]) if kind == "softmax_ce" else y[r], temperature)
            vals.append(float(v))
            gs.append(_tofloat(g))
    return np.array(vals), np.array(gs)


def mp_fd_grad(fun, x, h_digits=25):
    """Central differences at 50 digits of a scalar mpmath function of a list of floats; error
    O(h²) = 1e-50 with h = 1e-25, far below anything the tests resolve."""
    with mpmath.workdps(MP_DPS + 30):
        h = mpmath.mpf(10) ** (-h_digits)
        x = _mp_list(x)
        out = []
        for i in range(len(x)):
            xp = list(x)
            xm = list(x)
            xp[i] += h
            xm[i] -= h
            out.append(float((fun(xp) - fun(xm)) / (2 * h)))
        return np.array(out)


# ----------------------------------------------------------------------------------------------
# float64 + fsum, for long rows
# ----------------------------------------------------------------------------------------------

def _two_diff(x: np.ndarray, y: np.ndarray):
    """x − y = hi + lo exactly (Knuth's TwoSum on x + (−y))."""
    hi = x - y
    z = hi - x
    lo = (x - (hi - z)) + (-y - z)
    return hi, lo


def xsum(x) -> float:
    """An accurate sum: math.fsum (correctly rounded) for up to 20,000 terms; beyond, NumPy's
    pairwise summation in long double (error ≲ log2(n)·2^-64·Σ|x| on x86, ≲ log2(n)·2^-53·Σ|x|
    where long double is double: 1e-15 relative for the non-negative terms of a value)."""
    x = np.asarray(x, np.float64).ravel()
    if x.size <= 20000:
        return math.fsum(x)
    return float(np.sum(x.astype(np.longdouble)))


def _phi(w: np.ndarray) -> np.ndarray:
    """φ(w) = w − 1 + e^{−w} ≥ 0; Taylor series for |w| < 0.05 (truncation < 1e-15 relative)."""
    w = np.asarray(w, np.float64)
    out = w + np.expm1(-w)
    small = np.abs(w) < 0.05
    if small.any():
        x = w[small]
        acc = np.zeros_like(x)
        term = x * x / 2  # w²/2!, then alternating −w³/3!, ...
        for n in range(3, 12):
            acc += term
            term = term * (-x) / n
        out[small] = acc
    return np.maximum(out, 0.0)


def _sig(x: np.ndarray) -> np.ndarray:
    """σ(x), relative accuracy everywhere."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _differences(s: np.ndarray, t: np.ndarray, exact_in_f64: bool):
    """(hi, lo) with s − t = hi + lo exactly."""
    if exact_in_f64:
        # float32/float16/bfloat16 values of comparable size: s − t is exact in float64 (and for
        # wildly different magnitudes its relative rounding of 1e-16 is harmless)
        return s - t, np.zeros_like(s)
    return _two_diff(s, t)


def f64_div(kind, s, t, temperature=1.0, beta=0.5):
    """float64 (values, grad_s, grad_t) of rows (rows, C) of the test dtype."""
    exact = np.asarray(s).dtype != np.float64
    s2, t2 = np.atleast_2d(as_f64(s)), np.atleast_2d(as_f64(t))
    tau = float(temperature)
    R, C = s2.shape
    vals = np.empty(R)
    gs_all = np.empty((R, C))
    gt_all = np.empty((R, C))
    for r in range(R):
        s_, t_ = s2[r], t2[r]
        hi, lo = _differences(s_, t_, exact)
        if kind in SOFTMAX_KINDS:
            kk = int(np.argmax(s_))
            x = (s_ - s_[kk]) / tau
            ex = np.exp(x)
            others = np.ones(C, bool)
            others[kk] = False
            logz = math.log1p(xsum(ex[others]))
            p = np.exp(x - logz)
            # e_i = δ_i − δ_k, δ = (s − t)/τ, from the exact differences; divided after
            e = ((hi - hi[kk]) + (lo - lo[kk])) / tau
            e[kk] = 0.0
            L = math.log1p(xsum(p * np.expm1(-e)))   # lse(t') − lse(s') + δ_k
            w = e + L                                      # log p − log q
            q_minus_p = p * np.expm1(-w)
            q = p * np.exp(-w)
            if kind == "kl":
                v = xsum(p * _phi(w))
                gs = p * (w - v) / tau
                gt = q_minus_p / tau
            elif kind == "sym_kl":
                v = xsum(p * w * -np.expm1(-w))
                pe = xsum(p * e)
                qe = xsum(q * e)
                gs = (p * (e - pe) - q_minus_p) / tau
                gt = (-q * (e - qe) + q_minus_p) / tau
            else:
                ra = -np.log1p((1 - beta) * np.expm1(-w))   # log p − log m
                rb = -np.log1p(beta * np.expm1(w))          # log q − log m
                kpm = xsum(p * _phi(ra))
                kqm = xsum(q * _phi(rb))
                v = beta * kpm + (1 - beta) * kqm
                gs = beta * p * (ra - kpm) / tau
                gt = (1 - beta) * q * (rb - kqm) / tau
        else:
            a, b = s_ / tau, t_ / tau
            delta = -(hi + lo) / tau   # b − a
            sa, sna, sb, snb = _sig(a), _sig(-a), _sig(b), _sig(-b)
            sb_minus_sa = sa * snb * np.expm1(delta)   # σ(b) − σ(a), no cancellation
            if kind == "sigmoid_kl":
                u = np.log1p(sna * np.expm1(-delta))    # log σ(a) − log σ(b)
                vv = np.log1p(sa * np.expm1(delta))     # log σ(−a) − log σ(−b)
                v = xsum(sa * _phi(u) + sna * _phi(vv))
                gs = -delta * sa * sna / tau
                gt = sb_minus_sa / tau
            else:
                v = xsum(delta * sb_minus_sa)
                gs = (-delta * sa * sna - sb_minus_sa) / tau
                gt = (delta * sb * snb + sb_minus_sa) / tau
        vals[r] = v
        gs_all[r] = gs
        gt_all[r] = gt
    return vals, gs_all, gt_all


def _log1p_exp_sum(z: np.ndarray) -> float:
    """log(1 + Σ e^{z_i})."""
    if z.size == 0:
        return 0.0
    m = float(np.max(z))
    if m <= 0:
        return math.log1p(xsum(np.exp(z)))
    return m + math.log(xsum(np.concatenate([[math.exp(-m)], np.exp(z - m)])))


def f64_loss(kind, s, y, temperature=1.0):
    """float64 (values, grad) of loss rows."""
    s2 = np.atleast_2d(as_f64(s))
    R, C = s2.shape
    vals = np.empty(R)
    g_all = np.empty((R, C))
    tau = float(temperature)
    for r in range(R):
        x = s2[r]
        if kind == "softmax_ce":
            yy = int(y[r])
            kk = int(np.argmax(x))
            z = (x - x[kk]) / tau
            ez = np.exp(z)
            others = np.ones(C, bool)
            others[yy] = False
            if yy == kk or x[yy] == x[kk]:
                rest = xsum(np.exp((x[others] - x[yy]) / tau))
                v = math.log1p(rest)
                p = np.exp((x - x[yy]) / tau - v)
            else:
                zs = xsum(ez)
                v = (x[kk] - x[yy]) / tau + math.log(zs)
                p = ez / zs
            g = p.copy()
            g[yy] = -xsum(p[others])
            g_all[r] = g / tau
        else:
            lab = np.asarray(y[r]).astype(bool)
            if kind == "bce":
                v = xsum(np.where(lab, _softplus(-x), _softplus(x)))
                g_all[r] = np.where(lab, -_sig(-x), _sig(x))
            else:
                ln = _log1p_exp_sum(x[~lab])
                lp = _log1p_exp_sum(-x[lab])
                v = ln + lp
                g_all[r] = np.where(lab, -np.exp(-x - lp), np.exp(x - ln))
        vals[r] = v
    return vals, g_all
