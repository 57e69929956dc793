"""Benchmarks: logitdiv beside NumPy, PyTorch eager, torch.compile and JAX jit on identical inputs,
in one process run, reported as ratios (DESIGN.md, "Benchmark protocol").

    python benches/bench.py [--quick] [--out benches/RESULTS.md]

For every (function, shape, mode) it prints elements per second (element *pairs* for two-input
functions), the speed-up of logitdiv over each peer (peer time / logitdiv time; > 1 means logitdiv
is faster) and logitdiv's fraction of the read-bandwidth ceiling (the time to read both inputs
once, measured as the fastest of NumPy's and PyTorch's multi-threaded sums). Threads = cores for
every framework. Peers that are not installed are reported as "–".
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
from typing import Callable, Dict, Optional

import numpy as np

import logitdiv as ld
from _timing import median_seconds  # benches/ is on sys.path when this script runs

SHAPES = {
    "lm": (2048, 32000),
    "globalpointer": (16 * 9, 256 * 256),
    "classification": (65536, 100),
    "classification1k": (65536, 1000),
    "overhead": (1, 10),
    "long": (1, 1 << 22),  # one row of 4M classes: cut into pieces that run on every thread
}


def timeit(fn: Callable[[], object]) -> float:
    """Median seconds per call after two warm-up calls, over ≥ 0.4 s and 5 to 200 calls."""
    return median_seconds(fn, min_time=0.4, max_reps=200)


def make_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    s = (rng.standard_normal(shape, dtype=np.float32) * 3).astype(np.float32)
    t = (s + 0.05 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    return s, t


# ---- peers -------------------------------------------------------------------------------------
# Each function takes (s, t) where t is the second logit array of a divergence, or the labels of a
# loss (class indices for softmax_ce, 0/1 floats for bce and multilabel_ce; see `second_input`).
# Peers are the textbook formulas; a loss's value is per row, summed before backward.

LOSSES = {"softmax_ce", "bce", "multilabel_ce"}


def second_input(name: str, s: np.ndarray, t: np.ndarray, seed: int = 1):
    """The second argument of `name` for logits s: t itself (divergences), or labels."""
    rng = np.random.default_rng(seed)
    if name == "softmax_ce":
        return rng.integers(0, s.shape[-1], size=s.shape[:-1])
    if name in ("bce", "multilabel_ce"):
        return (rng.random(s.shape) < 0.02).astype(np.float32)  # sparse positives, as in NER/GlobalPointer
    return t


def numpy_fns():
    def log_softmax(x):
        m = x.max(-1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))

    def kl(s, t):
        ls, lt = log_softmax(s), log_softmax(t)
        return (np.exp(ls) * (ls - lt)).sum(-1)

    def sym_kl(s, t):
        return ((np.exp(log_softmax(s)) - np.exp(log_softmax(t))) * (s - t)).sum(-1)

    def sig(x):
        return 1.0 / (1.0 + np.exp(-x))

    def gp_kl(s, t):
        return ((sig(s) - sig(t)) * (s - t)).sum(-1)

    return {"kl": kl, "sym_kl": sym_kl, "sigmoid_sym_kl": gp_kl}


def torch_fns():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None

    def kl(s, t):
        return F.kl_div(F.log_softmax(t, -1), F.log_softmax(s, -1), reduction="none", log_target=True).sum(-1)

    def sym_kl(s, t):
        return ((F.softmax(s, -1) - F.softmax(t, -1)) * (s - t)).sum(-1)

    def js(s, t):  # the textbook form: m = (p + q)/2, ½ KL(p‖m) + ½ KL(q‖m)
        lp, lq = F.log_softmax(s, -1), F.log_softmax(t, -1)
        lm = torch.logaddexp(lp, lq) - math.log(2.0)
        return 0.5 * (lp.exp() * (lp - lm)).sum(-1) + 0.5 * (lq.exp() * (lq - lm)).sum(-1)

    def gp_kl(s, t):
        return ((torch.sigmoid(s) - torch.sigmoid(t)) * (s - t)).sum(-1)

    def softmax_ce(s, y):
        return F.cross_entropy(s, y, reduction="none")

    def bce(s, y):
        return F.binary_cross_entropy_with_logits(s, y, reduction="none").sum(-1)

    def multilabel_ce(s, y):  # bert4keras's multilabel_categorical_crossentropy
        s = (1 - 2 * y) * s
        neg = s - y * 1e12
        pos = s - (1 - y) * 1e12
        zeros = torch.zeros_like(s[..., :1])
        return torch.logsumexp(torch.cat([neg, zeros], -1), -1) + torch.logsumexp(torch.cat([pos, zeros], -1), -1)

    return {"kl": kl, "sym_kl": sym_kl, "js": js, "sigmoid_sym_kl": gp_kl, "softmax_ce": softmax_ce, "bce": bce,
            "multilabel_ce": multilabel_ce}


def jax_fns():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def kl(s, t):
        ls, lt = jax.nn.log_softmax(s, -1), jax.nn.log_softmax(t, -1)
        return (jnp.exp(ls) * (ls - lt)).sum(-1)

    def sym_kl(s, t):
        return ((jax.nn.softmax(s, -1) - jax.nn.softmax(t, -1)) * (s - t)).sum(-1)

    def js(s, t):
        lp, lq = jax.nn.log_softmax(s, -1), jax.nn.log_softmax(t, -1)
        lm = jnp.logaddexp(lp, lq) - math.log(2.0)
        return 0.5 * (jnp.exp(lp) * (lp - lm)).sum(-1) + 0.5 * (jnp.exp(lq) * (lq - lm)).sum(-1)

    def gp_kl(s, t):
        return ((jax.nn.sigmoid(s) - jax.nn.sigmoid(t)) * (s - t)).sum(-1)

    def softmax_ce(s, y):
        ls = jax.nn.log_softmax(s, -1)
        return -jnp.take_along_axis(ls, y[..., None], -1)[..., 0]

    def bce(s, y):
        return (jnp.maximum(s, 0) - s * y + jnp.log1p(jnp.exp(-jnp.abs(s)))).sum(-1)

    def multilabel_ce(s, y):
        s = (1 - 2 * y) * s
        neg, pos = s - y * 1e12, s - (1 - y) * 1e12
        zeros = jnp.zeros_like(s[..., :1])
        lse = jax.scipy.special.logsumexp
        return lse(jnp.concatenate([neg, zeros], -1), -1) + lse(jnp.concatenate([pos, zeros], -1), -1)

    return {"kl": kl, "sym_kl": sym_kl, "js": js, "sigmoid_sym_kl": gp_kl, "softmax_ce": softmax_ce, "bce": bce,
            "multilabel_ce": multilabel_ce}


LD = {"kl": ld.kl, "sym_kl": ld.sym_kl, "js": ld.js, "sigmoid_sym_kl": ld.sigmoid_sym_kl,
      "softmax_ce": ld.softmax_ce, "bce": ld.bce, "multilabel_ce": ld.multilabel_ce}


def read_ceiling(s: np.ndarray, t: np.ndarray) -> float:
    """Seconds to read both inputs once: the fastest multi-threaded full reduction available."""
    best = timeit(lambda: (s.sum(), t.sum()))
    try:
        import torch

        ts, tt = torch.from_numpy(s), torch.from_numpy(t)
        best = min(best, timeit(lambda: (ts.sum(), tt.sum())))
    except ImportError:
        pass
    return best


def bench_case(name: str, shape, grad: bool, peers: Dict[str, Optional[dict]]):
    """Times of logitdiv and every peer on one case. With `grad`, every framework computes the
    value and the gradients with respect to the logit inputs (both for a divergence), as a training
    step does: leaf tensors made once, their `.grad` reset inside the timed call, no copies."""
    s, t = make_inputs(shape)
    t = second_input(name, s, t)
    loss = name in LOSSES
    n = s.size
    row: Dict[str, Optional[float]] = {}
    if grad:
        row["logitdiv"] = timeit(lambda: LD[name](s, t, reduction="sum", grad=True))
    else:
        row["logitdiv"] = timeit(lambda: LD[name](s, t))
    if not grad and name in numpy_fns():
        row["numpy"] = timeit(lambda: numpy_fns()[name](s, t))
    tf = peers.get("torch")
    if tf is not None and name in tf:
        import torch

        ts, tt = torch.from_numpy(s), torch.from_numpy(t)
        compiled = torch.compile(tf[name])
        if grad:
            a = ts.clone().requires_grad_()
            b = tt if loss else tt.clone().requires_grad_()
            leaves = [a] if loss else [a, b]

            def step(f):
                for x in leaves:
                    x.grad = None
                f(a, b).sum().backward()

            eager, comp = (lambda: step(tf[name])), (lambda: step(compiled))
        else:
            def eager():
                with torch.no_grad():
                    tf[name](ts, tt)

            def comp():
                with torch.no_grad():
                    compiled(ts, tt)
        row["torch eager"] = timeit(eager)
        row["torch.compile"] = timeit(comp)
    jf = peers.get("jax")
    if jf is not None and name in jf:
        import jax

        js, jt = jax.device_put(s), jax.device_put(t)
        if grad:
            argnums = (0,) if loss else (0, 1)
            f = jax.jit(jax.value_and_grad(lambda a, b: jf[name](a, b).sum(), argnums=argnums))
        else:
            f = jax.jit(jf[name])
        row["jax jit"] = timeit(lambda: jax.block_until_ready(f(js, jt)))
    ceiling = read_ceiling(s, s if loss else t) if shape != SHAPES["overhead"] else None
    return n, row, ceiling


def cpu_hz() -> Optional[float]:
    """The clock the kernel reports for this CPU (cycles per element = time × clock × threads / n)."""
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return statistics.median(mhz) * 1e6 if mhz else None
    except OSError:
        return None


def scaling_table(threads: int) -> str:
    """float16 input against float32 on the same values, and 1 thread against `threads` (logitdiv
    alone; the targets: float16 ≥ 1.5× float32, all threads ≥ 1.8× one on 2 cores)."""
    s, t = make_inputs(SHAPES["lm"])
    h, g = s.astype(np.float16), t.astype(np.float16)
    rows = [f"| function | mode | float32, {threads} threads | float16 vs float32 | {threads} threads vs 1 |",
            "|---|---|---|---|---|"]
    for name in ("kl", "sym_kl", "sigmoid_sym_kl"):
        for grad in (False, True):
            call = (lambda a, b: LD[name](a, b, reduction="sum", grad=True)) if grad else (lambda a, b: LD[name](a, b))
            ld.set_num_threads(threads)
            t32 = timeit(lambda: call(s, t))
            t16 = timeit(lambda: call(h, g))
            ld.set_num_threads(1)
            t1 = timeit(lambda: call(s, t))
            ld.set_num_threads(threads)
            mode = "value+grads" if grad else "value"
            rows.append(f"| {name} | {mode} | {s.size / t32 / 1e9:.2f} G/s | {t32 / t16:.2f}× | {t1 / t32:.2f}× |")
    return "\n".join(rows)


def long_row_table(threads: int) -> str:
    """One row of 4M classes, 1 thread against `threads`: the row is cut into pieces whose partial
    statistics merge, so one row uses every thread (target ≥ 1.8× on 2 cores)."""
    s, t = make_inputs(SHAPES["long"])
    rows = [f"| function (1, {s.shape[1]}) | mode | float32, {threads} threads | {threads} threads vs 1 |",
            "|---|---|---|---|"]
    for name in ("kl", "sym_kl", "js", "sigmoid_sym_kl"):
        for grad in (False, True):
            call = (lambda: LD[name](s, t, reduction="sum", grad=True)) if grad else (lambda: LD[name](s, t))
            ld.set_num_threads(threads)
            tn = timeit(call)
            ld.set_num_threads(1)
            t1 = timeit(call)
            ld.set_num_threads(threads)
            mode = "value+grads" if grad else "value"
            rows.append(f"| {name} | {mode} | {s.size / tn / 1e9:.2f} G/s | {t1 / tn:.2f}× |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases, for a smoke run")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    parser.add_argument("--only", default=None, help="comma-separated function:shape cases, e.g. kl:lm,sym_kl:lm")
    parser.add_argument("--scaling", action="store_true",
                        help="also time float16 against float32 input and 1 thread against all threads (LM shape,"
                             " and one row of 4M classes)")
    parser.add_argument("--paths", action="store_true",
                        help="also time logitdiv on every available SIMD path (the fast path against the scalar one)")
    args = parser.parse_args(argv)
    threads = os.cpu_count() or 1
    ld.set_num_threads(threads)
    peers = {"torch": torch_fns(), "jax": jax_fns()}
    if peers["torch"] is not None:
        import torch

        torch.set_num_threads(threads)
    cases = [
        ("kl", "lm"), ("sym_kl", "lm"), ("js", "lm"), ("sigmoid_sym_kl", "lm"), ("sigmoid_sym_kl", "globalpointer"),
        ("kl", "classification"), ("sym_kl", "classification"), ("kl", "classification1k"),
        ("sym_kl", "classification1k"), ("softmax_ce", "lm"), ("softmax_ce", "classification"),
        ("softmax_ce", "classification1k"), ("bce", "classification"), ("bce", "classification1k"),
        ("multilabel_ce", "lm"), ("multilabel_ce", "globalpointer"), ("kl", "long"), ("kl", "overhead"),
    ]
    if args.quick:
        cases = cases[:1] + cases[-1:]
    if args.only:
        cases = [tuple(c.split(":")) for c in args.only.split(",")]
    if args.paths:
        from logitdiv import _native

        before = _native.simd_path()
        # A mask (all True) sends every row to the scalar f64 row kernel: the "before" of the fast path.
        print("| function | shape | mode | scalar f64 kernel (where=ones) | "
              + " | ".join(f"fast path on {p}" for p in _native.available_simd_paths()) + " | speed-up |")
        print("|---|---|---|---|" + "---|" * len(_native.available_simd_paths()) + "---|")
        for name, shape_name in cases:
            s, t = make_inputs(SHAPES[shape_name])
            for grad in (False, True):
                ones = np.ones(s.shape, dtype=bool)
                _native.set_simd_path(before)
                times = [timeit(lambda: LD[name](s, t, where=ones, reduction="sum", grad=grad))]
                for path in _native.available_simd_paths():
                    _native.set_simd_path(path)
                    if grad:
                        times.append(timeit(lambda: LD[name](s, t, reduction="sum", grad=True)))
                    else:
                        times.append(timeit(lambda: LD[name](s, t)))
                cells = " | ".join(f"{t * 1e3:.1f} ms" for t in times)
                mode = "value+grads" if grad else "value"
                print(f"| {name} | {shape_name} | {mode} | {cells} | {times[0] / times[-1]:.2f}× |", flush=True)
        _native.set_simd_path(before)
    peer_names = ["numpy", "torch eager", "torch.compile", "jax jit"]
    lines = [
        f"threads = {threads}; float32; speed-up = peer time / logitdiv time (> 1: logitdiv faster); cycles per "
        "element (pair, for a divergence) = time × clock × threads / elements; losses' peers: the textbook formula "
        "(bert4keras's for multilabel_ce)",
        "",
        "| function | shape | mode | logitdiv | cycles/element | " + " | ".join(f"vs {p}" for p in peer_names)
        + " | of read ceiling |",
        "|---|---|---|---|---|" + "---|" * len(peer_names) + "---|",
    ]
    for name, shape_name in cases:
        for grad in (False, True):
            shape = SHAPES[shape_name]
            n, row, ceiling = bench_case(name, shape, grad, peers)
            t_ld = row["logitdiv"]
            rate = f"{n / t_ld / 1e9:.2f} G/s" if shape_name != "overhead" else f"{t_ld * 1e6:.1f} µs/call"
            ratios = [f"{row[p] / t_ld:.2f}×" if row.get(p) else "–" for p in peer_names]
            frac = f"{ceiling / t_ld:.0%}" if ceiling else "–"
            mode = "value+grads" if grad else "value"
            hz = cpu_hz()
            cycles = f"{t_ld * hz * threads / n:.1f}" if hz and shape_name != "overhead" else "–"
            line = (f"| {name} | {shape_name} {shape} | {mode} | {rate} | {cycles} | " + " | ".join(ratios)
                    + f" | {frac} |")
            lines.append(line)
            print(line, flush=True)
    if args.scaling:
        lines += ["", scaling_table(threads)]
        print(lines[-1], flush=True)
        lines += ["", long_row_table(threads)]
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
