"""Independent reference implementations of the five divergences, written from the definitions in
MATH.md (section 1), never from logitdiv's accurate forms:

- ``ref_values``: float64 NumPy, the textbook definitions (KL as Σ p (log p − log q), the Bernoulli KL
  per class, ...) with the mathematical −inf conventions (0·log 0 = 0, p > 0 = q gives +inf). Accurate
  to ~1e-13 on well-conditioned rows; not meant for near-identical rows.
- ``mp_row``: mpmath at 50 significant digits, the same definitions, exact on the given (already
  rounded) float inputs to far more digits than any test needs. Optional multiplicities let one
  distinct (s_i, t_i) pair stand for many identical classes, so a 10^6-class row made of repeated
  pairs has an exact reference.
- ``fsum_row``: float64 with ``math.fsum`` for very long rows (10^6 classes), using forms derived
  here independently of the library (the lse difference as log1p(Σ q (e^δ − 1)), signed sums of
  p·w summed exactly, σ(a) − σ(b) = sinh((a−b)/2) / (2 cosh(a/2) cosh(b/2)), the Bernoulli KL
  as ∫_a^b (σ(x) − σ(a)) dx by its Taylor series). Its own accuracy is checked against ``mp_row``
  in the test suite.
- ``textbook_f32``: what a user would write in float32 (log_softmax differences etc.), to show that
  the accuracy tests are meaningful.
- ``fd_grad``: central finite differences of any scalar function.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import mpmath
import numpy as np

KINDS = ("kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl")
SOFTMAX_KINDS = ("kl", "sym_kl", "js")
SIGMOID_KINDS = ("sigmoid_kl", "sigmoid_sym_kl")
NINF = -np.inf


# ----------------------------------------------------------------------------------------------
# float64 NumPy, textbook definitions
# ----------------------------------------------------------------------------------------------

def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x)
    if m == NINF:
        return np.full_like(x, np.nan)
    return x - (m + np.log(np.sum(np.exp(x - m))))


def _kl_from_logs(logp: np.ndarray, logq: np.ndarray) -> float:
    """Σ p (log p − log q) with 0 · anything = 0 and p > 0 = q → +inf."""
    terms = []
    for lp, lq in zip(logp, logq):
        if lp == NINF:
            continue  # p_i = 0 contributes 0
        if lq == NINF:
            return math.inf
        terms.append(math.exp(lp) * (lp - lq))
    return float(np.sum(terms)) if terms else 0.0


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    # log σ(x) = −log(1 + e^{−x})
    return -np.logaddexp(0.0, -x)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _bernoulli_kl(a: float, b: float) -> float:
    """KL(Bern(σ(a)) ‖ Bern(σ(b))) = σ(a) log(σ(a)/σ(b)) + σ(−a) log(σ(−a)/σ(−b))."""
    la, lb = _log_sigmoid(np.array([a, b]))
    lna, lnb = _log_sigmoid(np.array([-a, -b]))
    return _kl_from_logs(np.array([la, lna]), np.array([lb, lnb]))


def ref_row(kind: str, a: np.ndarray, b: np.ndarray, *, beta: float = 0.5,
            weights: Optional[np.ndarray] = None) -> float:
    """One row of already temperature-scaled logits restricted to the classes present."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if np.isnan(a).any() or np.isnan(b).any() or np.isposinf(a).any() or np.isposinf(b).any():
        return math.nan
    both = (a == NINF) & (b == NINF)
    if weights is not None:
        both |= np.asarray(weights) == 0
        weights = np.asarray(weights, dtype=np.float64)[~both]
    a, b = a[~both], b[~both]
    if a.size == 0:
        return 0.0
    if kind in SOFTMAX_KINDS:
        if (a == NINF).all() or (b == NINF).all():
            return math.nan
        logp, logq = _log_softmax(a), _log_softmax(b)
        if kind == "kl":
            return _kl_from_logs(logp, logq)
        if kind == "sym_kl":
            return _kl_from_logs(logp, logq) + _kl_from_logs(logq, logp)
        # js
        if beta in (0.0, 1.0):
            return 0.0
        # log m = log(β p + (1−β) q), in logs so that an underflowing m stays finite
        logm = np.logaddexp(math.log(beta) + logp, math.log(1 - beta) + logq)
        return beta * _kl_from_logs(logp, logm) + (1 - beta) * _kl_from_logs(logq, logm)
    w = np.ones_like(a) if weights is None else weights
    if kind == "sigmoid_kl":
        return float(np.sum([wi * _bernoulli_kl(x, y) for wi, x, y in zip(w, a, b)]))
    # sigmoid_sym_kl = Σ (σ(a) − σ(b)) (a − b)
    terms = []
    for wi, x, y in zip(w, a, b):
        if x == NINF or y == NINF:  # exactly one of them: (σ(a) − σ(b))(a − b) = +inf
            terms.append(math.inf)
            continue
        terms.append(wi * (_sigmoid(x) - _sigmoid(y)) * (x - y))
    return float(np.sum(terms))


def ref_values(kind: str, s, t, *, temperature: float = 1.0, where=None, weights=None,
               beta: float = 0.5) -> tuple:
    """Per-row values (shape = leading axes) and whether each row counts for "mean"."""
    s = np.asarray(s, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    shape = s.shape
    C = shape[-1]
    s2 = (s / temperature).reshape(-1, C)
    t2 = (t / temperature).reshape(-1, C)
    keep = np.ones(s2.shape, dtype=bool) if where is None else np.broadcast_to(where, shape).reshape(-1, C)
    w2 = None if weights is None else np.broadcast_to(np.asarray(weights, np.float64), shape).reshape(-1, C)
    vals = np.empty(s2.shape[0])
    counts = np.empty(s2.shape[0], dtype=bool)
    for r in range(s2.shape[0]):
        k = keep[r]
        wr = None if w2 is None else w2[r][k]
        vals[r] = ref_row(kind, s2[r][k], t2[r][k], beta=beta, weights=wr)
        present = ~((s2[r][k] == NINF) & (t2[r][k] == NINF))
        if wr is not None:
            present &= wr != 0
        counts[r] = bool(present.any())
    return vals.reshape(shape[:-1]), counts.reshape(shape[:-1])


def reduce(values: np.ndarray, counts: np.ndarray, reduction: str) -> float:
    """The reduction of MATH.md §3 on reference row values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if reduction == "none":
        return values
    total = float(np.sum(v)) if v.size else 0.0
    if reduction == "sum":
        return total
    if reduction == "batchmean":
        return total / v.size if v.size else 0.0
    n = int(np.sum(counts))
    return total / n if n else 0.0


def ref(kind: str, s, t, *, reduction: str = "none", **opts):
    vals, counts = ref_values(kind, s, t, **opts)
    return reduce(vals, counts, reduction)


# ----------------------------------------------------------------------------------------------
# mpmath, 50 digits
# ----------------------------------------------------------------------------------------------

MP_DPS = 50


def mp_row(kind: str, s, t, *, temperature: float = 1.0, beta: float = 0.5, weights=None,
           mult=None) -> float:
    """One row of finite logits, exact to ~40 digits; `mult[i]` copies of class i (default 1)."""
    s = [float(x) for x in np.asarray(s, dtype=np.float64).ravel()]
    t = [float(x) for x in np.asarray(t, dtype=np.float64).ravel()]
    n = len(s)
    mult = [1] * n if mult is None else [int(k) for k in np.asarray(mult).ravel()]
    w = [1.0] * n if weights is None else [float(x) for x in np.asarray(weights, np.float64).ravel()]
    with mpmath.workdps(MP_DPS):
        tau = mpmath.mpf(float(temperature))
        a = [mpmath.mpf(x) / tau for x in s]
        b = [mpmath.mpf(x) / tau for x in t]
        if kind in SOFTMAX_KINDS:
            ea = [mpmath.exp(x) for x in a]
            eb = [mpmath.exp(x) for x in b]
            za = mpmath.fsum(k * e for k, e in zip(mult, ea))
            zb = mpmath.fsum(k * e for k, e in zip(mult, eb))
            p = [e / za for e in ea]
            q = [e / zb for e in eb]
            lp = [x - mpmath.log(za) for x in a]
            lq = [x - mpmath.log(zb) for x in b]

            def kl(pp, lpp, lqq):
                return mpmath.fsum(k * x * (u - v) for k, x, u, v in zip(mult, pp, lpp, lqq))

            if kind == "kl":
                v = kl(p, lp, lq)
            elif kind == "sym_kl":
                v = kl(p, lp, lq) + kl(q, lq, lp)
            else:
                bt = mpmath.mpf(float(beta))
                m = [bt * x + (1 - bt) * y for x, y in zip(p, q)]
                lm = [mpmath.log(x) for x in m]
                v = bt * kl(p, lp, lm) + (1 - bt) * kl(q, lq, lm)
        else:
            def sig(x):
                return 1 / (1 + mpmath.exp(-x))

            terms = []
            for k, wi, x, y in zip(mult, w, a, b):
                if kind == "sigmoid_kl":
                    sx, sy, cx, cy = sig(x), sig(y), sig(-x), sig(-y)
                    term = sx * mpmath.log(sx / sy) + cx * mpmath.log(cx / cy)
                else:
                    term = (sig(x) - sig(y)) * (x - y)
                terms.append(k * mpmath.mpf(wi) * term)
            v = mpmath.fsum(terms)
        return float(v)


# ----------------------------------------------------------------------------------------------
# float64 + math.fsum for very long rows of finite, nearly identical logits
# ----------------------------------------------------------------------------------------------

def _lse_fsum(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + math.log(math.fsum(np.exp(x - m)))


def fsum_row(kind: str, s, t, *, beta: float = 0.5) -> float:
    """Accurate float64 value of one long row (temperature 1), see the module docstring."""
    a = np.asarray(s, dtype=np.float64)
    b = np.asarray(t, dtype=np.float64)
    if kind in SOFTMAX_KINDS:
        lse_b = _lse_fsum(b)
        q = np.exp(b - lse_b)
        delta = a - b  # exact: float32 inputs of similar size
        # lse(a) − lse(b) = log Σ q e^δ = log1p(Σ q (e^δ − 1)): tiny terms, no cancellation
        dlse = math.log1p(math.fsum(q * np.expm1(delta)))
        w = delta - dlse                       # log p − log q
        p = q * np.exp(w)
        kl_pq = math.fsum(p * w)               # signed terms summed exactly
        kl_qp = math.fsum(-q * w)
        if kind == "kl":
            return kl_pq
        if kind == "sym_kl":
            return kl_pq + kl_qp
        # log p − log m = −log(β + (1−β) q/p) = −log1p((1−β)(e^{−w} − 1))
        ra = -np.log1p((1 - beta) * np.expm1(-w))
        rb = -np.log1p(beta * np.expm1(w))
        return beta * math.fsum(p * ra) + (1 - beta) * math.fsum(q * rb)
    d = b - a
    if kind == "sigmoid_sym_kl":
        diff = np.sinh((a - b) / 2) / (2 * np.cosh(a / 2) * np.cosh(b / 2))
        return math.fsum(diff * (a - b))
    # ∫_a^{a+d} (σ(x) − σ(a)) dx = Σ_k σk d^{k+1}/(k+1)!, σk = k-th derivative of σ at a, which is
    # a polynomial in u = σ(a)σ(−a): σ1 = u, σ2 = u(1−2σ), σ3 = u(1−6u), σ4 = u(1−2σ)(1−12u),
    # σ5 = u(1−30u+120u²). Truncation: ~d⁵/5040 relative, < 1e-11 for |d| < 0.05.
    assert np.max(np.abs(d)) < 0.05, "the series reference is for nearly identical rows"
    sp = 1 / (1 + np.exp(-a))
    sm = 1 / (1 + np.exp(a))
    u = sp * sm
    s1, s2, s3 = u, u * (sm - sp), u * (1 - 6 * u)
    s4, s5 = u * (sm - sp) * (1 - 12 * u), u * (1 - 30 * u + 120 * u**2)
    return math.fsum(s1 * d**2 / 2 + s2 * d**3 / 6 + s3 * d**4 / 24 + s4 * d**5 / 120 + s5 * d**6 / 720)


# ----------------------------------------------------------------------------------------------
# textbook float32 (what the accuracy tests must beat)
# ----------------------------------------------------------------------------------------------

def textbook_f32(kind: str, s, t, beta: float = 0.5) -> np.ndarray:
    """Per-row values computed the usual way in float32 (last axis = classes)."""
    s = np.asarray(s, dtype=np.float32)
    t = np.asarray(t, dtype=np.float32)
    f = np.float32

    def log_softmax(x):
        m = np.max(x, axis=-1, keepdims=True)
        return x - (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))

    if kind in SOFTMAX_KINDS:
        lp, lq = log_softmax(s), log_softmax(t)
        p, q = np.exp(lp), np.exp(lq)
        if kind == "kl":  # F.kl_div(log_softmax(t), log_softmax(s), log_target=True)
            return np.sum(p * (lp - lq), axis=-1)
        if kind == "sym_kl":  # ⟨p − q, s − t⟩
            return np.sum((p - q) * (s - t), axis=-1)
        bt = f(beta)
        lm = np.log(bt * p + (f(1) - bt) * q)
        return bt * np.sum(p * (lp - lm), axis=-1) + (f(1) - bt) * np.sum(q * (lq - lm), axis=-1)
    sp, tp = f(1) / (f(1) + np.exp(-s)), f(1) / (f(1) + np.exp(-t))
    if kind == "sigmoid_sym_kl":
        return np.sum((sp - tp) * (s - t), axis=-1)
    softplus = lambda x: np.maximum(x, f(0)) + np.log1p(np.exp(-np.abs(x)))  # noqa: E731
    return np.sum(softplus(t) - softplus(s) - sp * (t - s), axis=-1)


# ----------------------------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------------------------

def fd_grad(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of scalar f at x (float64), element by element."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        if not np.isfinite(flat[i]):
            continue
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g
