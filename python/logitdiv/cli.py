"""The `logitdiv` command line. `logitdiv demo` scores two synthetic models that mostly agree."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np

from . import divergences as D


def _demo_logits(rows: int = 4096, classes: int = 512, seed: int = 0):
    """Two 'models': a random linear classifier and a copy with quantised weights; a few rows
    (inputs far out of distribution) disagree badly."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((rows, 64)).astype(np.float32)
    features[rng.choice(rows, 8, replace=False)] *= 25.0
    weights = rng.standard_normal((64, classes)).astype(np.float32) * 0.6
    step = 0.05  # quantisation step of the candidate's weights
    quantised = np.round(weights / step) * step
    return features @ weights, features @ quantised


def _summary_lines(name: str, v: np.ndarray) -> str:
    se = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    q = np.quantile(v, [0.5, 0.9, 0.99, 0.999])
    return (f"{name:<8} {v.mean():>11.4e} ± {se:<9.2e} {q[0]:>10.3e} {q[1]:>10.3e} "
            f"{q[2]:>10.3e} {q[3]:>10.3e} {v.max():>10.3e}")


def demo(args: argparse.Namespace) -> int:
    base, cand = _demo_logits()
    print(f"logitdiv demo: {base.shape[0]} rows × {base.shape[1]} classes, a model and its weight-quantised copy\n")
    print(f"{'metric':<8} {'mean':>11}   {'± s.e.':<9} {'median':>10} {'p90':>10} {'p99':>10} {'p99.9':>10} {'max':>10}")
    scores = {
        "kl": D.kl(base, cand),
        "sym_kl": D.sym_kl(base, cand),
        "js": D.js(base, cand),
    }
    for name, v in scores.items():
        print(_summary_lines(name, v))
    agree = np.argmax(base, axis=-1) == np.argmax(cand, axis=-1)
    print(f"\ntop-1 agreement: {agree.mean():.2%}   non-finite rows: {int((~np.isfinite(scores['kl'])).sum())}")
    worst = np.argsort(scores["kl"])[::-1][:5]
    print("worst rows by KL: " + ", ".join(f"{i} ({scores['kl'][i]:.3g})" for i in worst))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="logitdiv", description="Divergences between logits, from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="score two synthetic models that mostly agree").set_defaults(func=demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
