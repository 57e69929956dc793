"""Memory (README, "Guarantees"):

- 10^4 repeated calls leave the resident set flat — values, gradients, out= buffers, masks and
  weights, every loss, ld.score, and calls that raise (in the Python layer and in the core);
- a single row of more than 2^31 elements computes correctly (no 32-bit index anywhere), and the
  call allocates nothing the size of its input: the rows are lazily zero-mapped float16 arrays of
  4 GiB each, of which only a few pages are ever written, so the resident set stays small.

The C ABI's memory checks (valgrind memcheck on tests/c) are in test_capi.py.
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time

import numpy as np
import pytest

import logitdiv as ld

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20


def rss() -> int:
    """Resident set size in bytes, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


RNG = np.random.default_rng(7)
S = RNG.normal(0, 2, (8, 64))
T = S + RNG.normal(0, 0.3, (8, 64))
S32, T32 = S.astype(np.float32), T.astype(np.float32)
Y = RNG.integers(0, 64, 8)
Y[3] = -100
D = (RNG.random((8, 64)) < 0.1).astype(np.float64)
POS = np.array([[1, 5, -1]] * 8)
W = RNG.random(64) < 0.9
G = RNG.normal(0, 2, (2, 3, 8, 8))
SPANS = np.array([[[[0, 1], [2, 5]]] * 3] * 2)
OUT = np.empty(8)
GRAD = np.empty((8, 64), np.float32)
BAD_Y = Y.copy()
BAD_Y[5] = 64  # out of range: a ValueError from the core


def _raises(f, exc):
    def call():
        try:
            f()
        except exc:
            return
        raise AssertionError("expected an exception")
    return call


CALLS = {
    "kl-grad": lambda: ld.kl(S, T, grad=True),
    "sym_kl-out-where": lambda: ld.sym_kl(S, T, where=W, out=OUT),
    "js-float32-grad_out": lambda: ld.js(S32, T32, grad=True, grad_out=(GRAD, np.empty((8, 64), np.float32))),
    "sigmoid_kl-weights-mean": lambda: ld.sigmoid_kl(S, T, weights=W.astype(float), reduction="mean", grad=True),
    "softmax_ce-grad": lambda: ld.softmax_ce(S, Y, grad=True, label_smoothing=0.1),
    "bce": lambda: ld.bce(S, D, pos_weight=np.full(64, 2.0)),
    "sparse_multilabel_ce-grad": lambda: ld.sparse_multilabel_ce(S, POS, grad=True),
    "globalpointer_ce-grad": lambda: ld.globalpointer_ce(G, SPANS, grad=True),
    "gamma_ce": lambda: ld.gamma_ce(S32, Y, gamma=0.3, threshold=0.2),
    "kd_loss-grad": lambda: ld.kd_loss(S, T, Y, temperature=2.0, alpha=0.5, grad=True, grad_teacher=True),
    "rdrop_loss-grad": lambda: ld.rdrop_loss(S, T, Y, alpha=1.0, grad=True),
    "error-in-core": _raises(lambda: ld.softmax_ce(S, BAD_Y, grad=True), ValueError),
    "error-in-python": _raises(lambda: ld.kl(S, T, reduction="avg"), ValueError),
    "error-type": _raises(lambda: ld.bce(S.astype(int), D), TypeError),
    "error-misaligned-out": _raises(lambda: ld.kl(S, T, out=np.frombuffer(bytearray(65), np.float64, 8, 1)), ValueError),
    "nan-rows-grad": lambda: ld.kl(np.where(S > 3, np.nan, S), T, grad=True),
}


# every family, with gradients and output buffers, and the three ways a call can fail; 10^4 calls
# each (about 1 s apiece); the rest of CALLS run 2000 times
TEN_THOUSAND = ["kl-grad", "sym_kl-out-where", "sigmoid_kl-weights-mean", "softmax_ce-grad", "globalpointer_ce-grad",
                "kd_loss-grad", "error-in-core", "error-type", "error-misaligned-out"]


@pytest.mark.parametrize("name", list(CALLS))
def test_repeated_calls_leave_rss_flat(name):
    call = CALLS[name]
    for _ in range(300):  # warm: allocator pools, caches, the thread pool
        call()
    gc.collect()
    n = 10_000 if name in TEN_THOUSAND else 2_000
    before = rss()
    for _ in range(n):
        call()
    gc.collect()
    grown = rss() - before
    # a leak of one 8×64 float64 array per call would be 40 MiB over 10^4 calls; 2 MiB is allocator noise
    assert grown < 2 * MiB, f"{name}: RSS grew by {grown / MiB:.2f} MiB over {n} calls"


def test_repeated_score_calls_leave_rss_flat():
    def call():
        ld.score(S, T, metrics=("kl", "js", "top1"), chunk_rows=3)
    for _ in range(50):
        call()
    gc.collect()
    before = rss()
    for _ in range(1_000):
        call()
    gc.collect()
    grown = rss() - before
    assert grown < 2 * MiB, f"RSS grew by {grown / MiB:.2f} MiB over 1000 score calls"


# ------------------------------------------------------------------------------------------------
# a row of more than 2^31 elements

N = 2**31 + 3  # classes in the one row
HIGH = 2**31 + 1  # a class beyond the int32 range


def test_a_row_longer_than_2_31_computes_correctly():
    """Two calls on one row of 2^31 + 3 float16 logits, run at once (the GIL is released):

    - softmax_ce, value only, over every element (its cheapest full sweep: about 20 s of one core
      with today's scalar kernel, while a full divergence such as sigmoid_sym_kl would take over
      120 s), with large logits at class 0 and at class 2^31 + 1 and the label at the last class;
    - kl with a `where` mask keeping four classes, two of them beyond 2^31, against a uniform t:
      the two-input path, the broadcast mask and every class index, in a few seconds.

    Both against closed forms in float64. A 32-bit index would read class 2^31 + 1 as class 1
    (or crash), and the label as another class: the values would be off by more than 1."""
    before = rss()
    s = np.zeros((1, N), dtype=np.float16)  # 4 GiB of address space, untouched
    t = np.zeros((1, N), dtype=np.float16)
    a = {0: 2.0, HIGH: 3.0, N - 1: 1.5}
    for j, v in a.items():
        s[0, j] = v
    keep = np.zeros(N, dtype=bool)
    kept = [0, 7, HIGH, N - 1]
    keep[kept] = True

    results = {}

    def ce():
        t0 = time.perf_counter()
        results["ce"] = ld.softmax_ce(s, np.array([N - 1]))
        results["ce_s"] = time.perf_counter() - t0

    worker = threading.Thread(target=ce)
    worker.start()
    t0 = time.perf_counter()
    kl = ld.kl(s, t, where=keep)
    kl_s = time.perf_counter() - t0
    worker.join()
    grown = rss() - before

    # softmax_ce = lse(s) − s_label, lse over N − 3 zeros and the three large logits
    lse = math.log((N - 3) + sum(math.exp(v) for v in a.values()))
    want_ce = lse - a[N - 1]
    assert results["ce"].shape == (1,) and results["ce"].dtype == np.float32
    assert np.isclose(results["ce"][0], want_ce, rtol=2e-6), (results["ce"][0], want_ce)
    # kl over the kept classes: p = softmax(s[kept]), q uniform over them
    x = np.array([float(s[0, j]) for j in kept])
    p = np.exp(x - x.max())
    p /= p.sum()
    want_kl = float(np.sum(p * np.log(p * len(kept))))
    assert np.isclose(kl[0], want_kl, rtol=1e-6), (kl[0], want_kl)
    # nothing the size of the input was allocated or copied: 8 GiB of zeros stay unmapped
    assert grown < 256 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"
    print(f"\n2^31+3 classes: softmax_ce {results['ce_s']:.1f} s, masked kl {kl_s:.1f} s, RSS +{grown / MiB:.0f} MiB")
