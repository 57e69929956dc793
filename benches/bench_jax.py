"""Benchmarks of logitdiv.jax: value and gradient of a loss, ``jax.jit(jax.value_and_grad(f))``, for
logitdiv's function and for the textbook formula in jnp, on identical inputs in one process run
(DESIGN.md, "Benchmark protocol"). CPU, float32, threads = cores for both.

    python benches/bench_jax.py [--quick]

Prints the time per call of each and the ratio textbook / logitdiv (> 1: logitdiv is faster).
"""

from __future__ import annotations

import argparse
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.nn import log_softmax

import logitdiv.jax as ldj

from _timing import median_seconds  # benches/ is on sys.path when this script runs

SHAPES = {"lm": (2048, 32000), "globalpointer": (144, 65536), "classification": (65536, 100)}
QUICK = {"lm": (256, 32000), "globalpointer": (36, 16384), "classification": (8192, 100)}
T = 2.0


def timeit(fn: Callable[[], object]) -> float:
    """Median seconds per call (each waited for) after a warm-up call (which compiles), over ≥ 0.5 s
    and 3 to 20 calls."""
    return median_seconds(lambda: jax.block_until_ready(fn()), min_time=0.5, max_reps=20, min_reps=3, warmups=1)


def textbook_ce(s, y):
    return -jnp.take_along_axis(log_softmax(s), y[:, None], -1).mean()


def textbook_kd(s, t):
    lp, lq = log_softmax(t / T), log_softmax(s / T)
    return (jnp.exp(lp) * (lp - lq)).sum(-1).mean() * T * T


def textbook_sym_kl(s, t):
    lp, lq = log_softmax(s), log_softmax(t)
    return ((jnp.exp(lp) - jnp.exp(lq)) * (lp - lq)).sum(-1).mean()


def textbook_gp_kl(s, t):
    return ((jax.nn.sigmoid(s) - jax.nn.sigmoid(t)) * (s - t)).sum(-1).mean()


def textbook_multilabel(s, y):
    s = (1 - 2 * y) * s
    neg, pos = jnp.where(y > 0, -jnp.inf, s), jnp.where(y > 0, s, -jnp.inf)
    zeros = jnp.zeros_like(s[:, :1])
    lse = jax.scipy.special.logsumexp
    return (lse(jnp.concatenate([neg, zeros], -1), -1) + lse(jnp.concatenate([pos, zeros], -1), -1)).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, a quick look")
    args = parser.parse_args()
    shapes = QUICK if args.quick else SHAPES
    rng = np.random.default_rng(0)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; value_and_grad under jit, float32, seconds per call")
    print(f"{'loss':<28}{'shape':>16}{'logitdiv':>11}{'textbook':>11}{'ratio':>8}")
    for shape_name, shape in shapes.items():
        s = jnp.asarray(rng.standard_normal(shape, dtype=np.float32))
        t = jnp.asarray(s + 0.1 * rng.standard_normal(shape, dtype=np.float32))
        y = jnp.asarray(rng.integers(0, shape[1], shape[0]), dtype=jnp.int32)
        y_bin = jnp.asarray(rng.random(shape, dtype=np.float32) < 0.01, dtype=jnp.float32)
        # every array is an argument of the jitted function (closed-over arrays would be constants)
        cases = {
            "lm": [("softmax_ce (mean)", lambda s, t, y, yb: ldj.softmax_ce(s, y, reduction="mean"),
                    lambda s, t, y, yb: textbook_ce(s, y), 0),
                   ("kd_loss (student grad)",
                    lambda s, t, y, yb: ldj.kd_loss(s, t, temperature=T, alpha=1.0, reduction="mean"),
                    lambda s, t, y, yb: textbook_kd(s, t), 0),
                   ("sym_kl (both grads)", lambda s, t, y, yb: ldj.sym_kl(s, t, reduction="batchmean"),
                    lambda s, t, y, yb: textbook_sym_kl(s, t), (0, 1))],
            "globalpointer": [("gp_kl (both grads)", lambda s, t, y, yb: ldj.gp_kl(s, t, reduction="batchmean"),
                               lambda s, t, y, yb: textbook_gp_kl(s, t), (0, 1)),
                              ("multilabel_ce", lambda s, t, y, yb: ldj.multilabel_ce(s, yb, reduction="mean"),
                               lambda s, t, y, yb: textbook_multilabel(s, yb), 0)],
            "classification": [("softmax_ce (mean)", lambda s, t, y, yb: ldj.softmax_ce(s, y, reduction="mean"),
                                lambda s, t, y, yb: textbook_ce(s, y), 0),
                               ("sym_kl (both grads)", lambda s, t, y, yb: ldj.sym_kl(s, t, reduction="batchmean"),
                                lambda s, t, y, yb: textbook_sym_kl(s, t), (0, 1))],
        }[shape_name]
        for name, mine, ref, argnums in cases:
            f_mine, f_ref = jax.jit(jax.value_and_grad(mine, argnums)), jax.jit(jax.value_and_grad(ref, argnums))
            t_mine, t_ref = timeit(lambda: f_mine(s, t, y, y_bin)), timeit(lambda: f_ref(s, t, y, y_bin))
            print(f"{name:<28}{str(shape):>16}{t_mine:>11.4f}{t_ref:>11.4f}{t_ref / t_mine:>7.2f}×", flush=True)

if __name__ == "__main__":
    main()
