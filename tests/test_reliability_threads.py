"""Concurrency and fork safety (README, "Guarantees"):

- 8 Python threads calling every function family at once — on shared inputs and on inputs of their
  own, while another thread keeps changing the thread count — get results bit-identical to serial
  calls, and never modify their inputs;
- the thread pool survives os.fork: a child (os.fork directly, and multiprocessing with the fork
  start method) computes the same results bit for bit with a pool of the parent's size, also when
  the parent's pool is warm, and when other threads of the parent are in the middle of kernels at
  the moment of the fork. Every child runs under a deadline: a hang fails the test.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
import warnings

import numpy as np
import pytest

import logitdiv as ld

from _helpers import fork_and_run

ROWS, COLS = 128, 1024  # 2^17 elements: the size from which a call runs on several threads


def make_inputs(seed: int):
    rng = np.random.default_rng(seed)
    s = (rng.normal(0, 3, (ROWS, COLS))).astype(np.float32)
    t = (s + rng.normal(0, 0.5, (ROWS, COLS))).astype(np.float32)
    y = rng.integers(0, COLS, ROWS)
    y[::5] = -100
    dense = (rng.random((ROWS, COLS)) < 0.01).astype(np.float32)
    pos = rng.integers(0, COLS, (ROWS, 3))
    pos[:, 1:] = np.where(pos[:, 1:] == pos[:, :1], -1, pos[:, 1:])
    pos[:, 2] = np.where(pos[:, 2] == pos[:, 1], -1, pos[:, 2])
    gp = s.reshape(ROWS // 4, 4, 32, 32)
    spans = np.sort(rng.integers(0, 32, (ROWS // 4, 4, 2, 2)), axis=-1)
    spans[:, :, 1] = np.where((spans[:, :, 1] == spans[:, :, 0]).all(-1, keepdims=True), -1, spans[:, :, 1])
    where = rng.random(COLS) < 0.9
    return dict(s=s, t=t, y=y, dense=dense, pos=pos, gp=gp, spans=spans, where=where)


CALLS = {
    "kl": lambda d: ld.kl(d["s"], d["t"], grad=True, temperature=1.5),
    "sym_kl": lambda d: ld.sym_kl(d["s"], d["t"], grad=True, reduction="mean", where=d["where"]),
    "js": lambda d: ld.js(d["s"], d["t"], grad=True, beta=0.3),
    "sigmoid_kl": lambda d: ld.sigmoid_kl(d["s"], d["t"], grad=True, weights=d["where"].astype(float)),
    "sigmoid_sym_kl": lambda d: ld.gp_kl(d["s"], d["t"], grad=True),
    "softmax_ce": lambda d: ld.softmax_ce(d["s"], d["y"], grad=True, label_smoothing=0.1, reduction="mean"),
    "bce": lambda d: ld.bce(d["s"], d["dense"], grad=True),
    "multilabel_ce": lambda d: ld.multilabel_ce(d["s"], d["dense"], grad=True),
    "sparse_multilabel_ce": lambda d: ld.sparse_multilabel_ce(d["s"], d["pos"], grad=True),
    "globalpointer_ce": lambda d: ld.globalpointer_ce(d["gp"], d["spans"], grad=True),
    "gamma_ce": lambda d: ld.gamma_ce(d["s"], d["y"], gamma=0.4, grad=True),
    "kd_loss": lambda d: ld.kd_loss(d["s"], d["t"], d["y"], temperature=2.0, alpha=0.7, grad=True, grad_teacher=True),
    "rdrop_loss": lambda d: ld.rdrop_loss(d["s"], d["t"], d["y"], alpha=1.0, grad=True),
    "score": lambda d: ld.score(d["s"], d["t"], metrics=("kl", "js", "top1"), chunk_rows=7),
}


def digest(name: str, res) -> str:
    """A hash of every byte a call returned (scores and summary for ld.score)."""
    h = hashlib.sha256(name.encode())
    if name == "score":
        for k in sorted(res.scores):
            h.update(res.scores[k].tobytes())
        h.update(res.summary.to_json().encode())
    else:
        for a in res if isinstance(res, tuple) else (res,):
            a = np.asarray(a)
            h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def run_all(d) -> dict:
    return {name: digest(name, call(d)) for name, call in CALLS.items()}


@pytest.fixture(scope="module")
def inputs():
    return [make_inputs(seed) for seed in range(4)]


@pytest.fixture(scope="module")
def serial(inputs):
    ld.set_num_threads(2)
    try:
        return [run_all(d) for d in inputs]
    finally:
        ld.set_num_threads(0)


def test_eight_threads_at_once_match_serial_calls(inputs, serial, threads_restored):
    ld.set_num_threads(2)
    n_threads = 8
    barrier = threading.Barrier(n_threads + 1)
    results: dict = {}
    errors: list = []
    stop = threading.Event()
    copies = [{k: v.copy() for k, v in d.items()} for d in inputs]

    def worker(i: int):
        try:
            barrier.wait(timeout=60)
            # threads 0–3 share input 0; threads 4–7 each have their own (1, 2, 3, 0)
            which = 0 if i < 4 else (i - 3) % len(inputs)
            order = list(CALLS)[i % len(CALLS):] + list(CALLS)[: i % len(CALLS)]  # different functions at once
            got = {}
            for name in order:
                got[name] = digest(name, CALLS[name](inputs[which]))
            results[i] = (which, got)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    def toggler():
        # the thread count changes under the running calls; results do not depend on it
        k = 0
        barrier.wait(timeout=60)
        while not stop.is_set():
            ld.set_num_threads(1 + k % 3)
            k += 1
            time.sleep(0.002)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    tog = threading.Thread(target=toggler)
    for th in threads:
        th.start()
    tog.start()
    for th in threads:
        th.join(timeout=300)
        assert not th.is_alive(), "a worker thread hung"
    stop.set()
    tog.join(timeout=60)
    assert not errors, errors
    assert len(results) == n_threads
    for i, (which, got) in results.items():
        assert got == serial[which], (i, [k for k in got if got[k] != serial[which][k]])
    for d, c in zip(inputs, copies):  # inputs are never modified
        for k in d:
            assert np.array_equal(d[k], c[k])


# ------------------------------------------------------------------------------------------------
# fork


def pool_threads() -> int:
    """The number of logitdiv worker threads alive in this process."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                n += f.read().startswith("logitdiv-")
        except OSError:
            pass
    return n


def child_task(inputs_0, names):
    def task():
        digests = {n: digest(n, CALLS[n](inputs_0)) for n in names}
        threads = ld.get_num_threads()
        for _ in range(200):  # a worker names itself once it runs: give a just-started one a moment
            if pool_threads() == threads:
                break
            time.sleep(0.005)
        return repr((threads, pool_threads(), digests))
    return task


def test_fork_with_a_warm_pool(inputs, serial, threads_restored):
    ld.set_num_threads(2)
    CALLS["kl"](inputs[0])  # the pool's threads are alive (warm)
    assert pool_threads() >= 2
    out = fork_and_run(child_task(inputs[0], list(CALLS)))
    threads, alive, digests = eval(out)  # noqa: S307 - our own child's repr
    assert threads == 2
    assert alive == 2, "the child rebuilt a pool of the parent's size, and its kernels ran on it"
    assert digests == serial[0]
    # the parent's pool still works after the fork
    assert digest("sym_kl", CALLS["sym_kl"](inputs[0])) == serial[0]["sym_kl"]


def test_fork_of_a_fork_and_a_child_that_changes_the_thread_count(inputs, serial, threads_restored):
    ld.set_num_threads(2)
    CALLS["js"](inputs[0])

    def grandchild_via_child():
        ld.set_num_threads(3)
        mine = digest("js", CALLS["js"](inputs[0]))
        inner = fork_and_run(child_task(inputs[0], ["js", "softmax_ce"]))
        return repr((mine, ld.get_num_threads(), inner))

    mine, threads, inner = eval(fork_and_run(grandchild_via_child))  # noqa: S307
    assert mine == serial[0]["js"] and threads == 3
    g_threads, g_alive, g_digests = eval(inner)  # noqa: S307
    assert g_threads == 3 and g_alive == 3 and g_digests == {k: serial[0][k] for k in ("js", "softmax_ce")}


def test_fork_while_other_threads_are_inside_kernels(inputs, serial, threads_restored):
    """Threads of the parent are in the middle of kernels (the pool busy, its lock in use, threads
    starting after set_num_threads) when the main thread forks, again and again: every child
    computes correctly and none hangs."""
    ld.set_num_threads(2)
    stop = threading.Event()
    errors: list = []

    def busy(k: int):
        names = list(CALLS)
        i = 0
        try:
            while not stop.is_set():
                name = names[(i + k) % len(names)]
                if digest(name, CALLS[name](inputs[0])) != serial[0][name]:
                    errors.append(name)
                if k == 0 and i % 3 == 0:
                    ld.set_num_threads(2 + i % 2)
                i += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(repr(e))

    workers = [threading.Thread(target=busy, args=(k,)) for k in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.05)
        for _ in range(6):
            out = fork_and_run(child_task(inputs[0], ["kl", "softmax_ce", "globalpointer_ce", "score"]), timeout=120)
            threads, alive, digests = eval(out)  # noqa: S307
            assert threads in (2, 3) and alive == threads
            assert digests == {k: serial[0][k] for k in digests}
            time.sleep(0.01)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=300)
    assert not errors, errors


def _mp_task(args):
    seed, name = args
    d = make_inputs(seed)
    return name, digest(name, CALLS[name](d)), ld.get_num_threads()


def test_multiprocessing_fork_pool(serial, threads_restored):
    ld.set_num_threads(2)
    ld.kl(np.zeros((64, 1024)), np.zeros((64, 1024)))  # warm
    ctx = multiprocessing.get_context("fork")
    jobs = [(seed, name) for seed in (0, 1) for name in CALLS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with ctx.Pool(2) as pool:
            got = pool.map_async(_mp_task, jobs).get(timeout=300)
    for (seed, name), (n, dig, threads) in zip(jobs, got):
        assert n == name and dig == serial[seed][name], name
        assert threads == 2
