"""Long rows (2^18 classes and more) are cut into pieces that run on several threads, with their
partial softmax statistics (or sums) merged in piece order (README, "How it computes").

- The result does not depend on the thread count, bit for bit, values and gradients, for every
  divergence, float32 and float16, and with a −inf or NaN logit in one row (whose conventions the
  whole row keeps);
- one long row matches an accurate float64 reference (values to the float32 bound, gradients to
  their closed forms in float64);
- rows of 2^18 − 1 classes (computed whole) and 2^18 (in pieces) both agree with float64.
The 10^6-class accuracy tests (test_divergence_accuracy.py) run through the same path.
"""

from __future__ import annotations

import numpy as np
import pytest

import logitdiv as ld

SPLIT = 1 << 18
KINDS = ["kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl"]


def pair(rows, cols, dtype, seed=0, scale=4.0, eps=0.2):
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=scale, size=(rows, cols))
    t = s + eps * rng.normal(size=(rows, cols))
    return s.astype(dtype), t.astype(dtype)


def run(kind, s, t, **kw):
    v, gs, gt = getattr(ld, kind)(s, t, grad=True, **kw)
    return np.asarray(v), np.asarray(gs), np.asarray(gt)


def same_bits(a, b):
    return all(np.array_equal(x.view(np.uint8), y.view(np.uint8)) for x, y in zip(a, b))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("kind", KINDS)
def test_long_rows_do_not_depend_on_the_thread_count(kind, dtype, threads_restored):
    s, t = pair(3, SPLIT + 5000, dtype)
    s[1, 777] = -np.inf  # a class absent from s only: the row's conventions, whole
    t[2, SPLIT + 100] = np.nan  # NaN in the last piece: the row is NaN, gradients too
    results = []
    for n in (1, 2, 3):
        ld.set_num_threads(n)
        results.append(run(kind, s, t, temperature=1.3))
    assert same_bits(results[0], results[1]) and same_bits(results[0], results[2])
    v, gs, gt = results[0]
    assert np.isfinite(v[0]) and np.isnan(v[2])
    assert np.isnan(gs[2]).all() and np.isnan(gt[2]).all()
    # the −inf row against the same row in float64 (the scalar kernel's conventions)
    v64 = getattr(ld, kind)(s[1:2].astype(np.float64), t[1:2].astype(np.float64), temperature=1.3)
    if np.isinf(v64[0]):
        assert v[1] == v64[0]
    else:
        assert abs(v[1] - v64[0]) <= 1e-4 * v64[0]


def softmax64(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.parametrize("kind", ["kl", "sym_kl", "js"])
def test_a_long_softmax_row_matches_float64(kind):
    s, t = pair(1, SPLIT + 12345, np.float32, seed=5, scale=6.0, eps=0.05)
    v, gs, gt = run(kind, s, t)
    p, q = softmax64(s[0]), softmax64(t[0])
    logp, logq = np.log(p), np.log(q)
    if kind == "kl":
        want = np.sum(p * (logp - logq))
        w = logp - logq
        want_gs, want_gt = p * (w - want), q - p
    elif kind == "sym_kl":
        w = logp - logq
        kl_pq, kl_qp = np.sum(p * w), np.sum(q * -w)
        want = kl_pq + kl_qp
        want_gs = p * (w - kl_pq) + (p - q)
        want_gt = -q * (w + kl_qp) - (p - q)
    else:
        m = 0.5 * (p + q)
        ra, rb = logp - np.log(m), logq - np.log(m)
        ka, kb = np.sum(p * ra), np.sum(q * rb)
        want = 0.5 * ka + 0.5 * kb
        want_gs, want_gt = 0.5 * p * (ra - ka), 0.5 * q * (rb - kb)
    assert abs(v[0] - want) <= 1e-4 * want
    for g, w_ in ((gs[0], want_gs), (gt[0], want_gt)):
        top = np.abs(w_).max()
        assert np.all(np.abs(g - w_) <= 1e-4 * top + 1e-6 * (p + q)), kind


@pytest.mark.parametrize("cols", [SPLIT - 1, SPLIT])
@pytest.mark.parametrize("kind", KINDS)
def test_both_sides_of_the_split_size_match_float64(kind, cols):
    # SPLIT − 1 classes are computed whole, SPLIT in pieces: both agree with the float64 input's
    # value (the scalar float64 kernel) to the float32 bound
    s, t = pair(2, cols, np.float32, seed=9)
    v = getattr(ld, kind)(s, t)
    v64 = getattr(ld, kind)(s.astype(np.float64), t.astype(np.float64))
    assert np.all(np.abs(v - v64) <= 1e-5 * v64)
