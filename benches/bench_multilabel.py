"""Multilabel CE (Su's bert4keras ``multilabel_categorical_crossentropy``) and the sigmoid family:
logitdiv against PyTorch eager on identical inputs, one process, median of repeated calls.

    python benches/bench_multilabel.py [--quick]

Prints seconds per call and the speed-up (torch time / logitdiv time; > 1: logitdiv faster).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import logitdiv as ld

from _timing import median_seconds  # benches/ is on sys.path when this script runs


def timeit(fn):
    """Median seconds per call after two warm-up calls, over ≥ 0.5 s and 5 to 100 calls."""
    return median_seconds(fn, min_time=0.5, max_reps=100)


def bert4keras_mlce(torch, y_pred, y_true):
    """bert4keras' multilabel_categorical_crossentropy, line for line in PyTorch."""
    y_pred = (1 - 2 * y_true) * y_pred
    y_pred_neg = y_pred - y_true * 1e12
    y_pred_pos = y_pred - (1 - y_true) * 1e12
    zeros = torch.zeros_like(y_pred[..., :1])
    y_pred_neg = torch.cat([y_pred_neg, zeros], dim=-1)
    y_pred_pos = torch.cat([y_pred_pos, zeros], dim=-1)
    return torch.logsumexp(y_pred_neg, dim=-1) + torch.logsumexp(y_pred_pos, dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    shapes = [(144, 65536), (2048, 32000)] if not args.quick else [(144, 4096)]
    print(f"threads={os.cpu_count()} load={os.getloadavg()}")
    print("| case | shape | logitdiv s | torch eager s | speed-up |")
    print("|---|---|---|---|---|")
    for shape in shapes:
        s = (rng.standard_normal(shape, dtype=np.float32) * 3).astype(np.float32)
        y = (rng.random(shape) < 0.01).astype(np.float32)
        ts, ty = torch.from_numpy(s), torch.from_numpy(y)
        for grad in (False, True):
            if grad:
                t_ld = timeit(lambda: ld.multilabel_ce(s, y, reduction="sum", grad=True))

                def eager():
                    a = ts.clone().requires_grad_()
                    bert4keras_mlce(torch, a, ty).sum().backward()
            else:
                t_ld = timeit(lambda: ld.multilabel_ce(s, y))

                def eager():
                    with torch.no_grad():
                        bert4keras_mlce(torch, ts, ty)
            t_pt = timeit(eager)
            mode = "value+grad" if grad else "value"
            print(f"| multilabel_ce {mode} | {shape} | {t_ld:.4g} | {t_pt:.4g} | {t_pt / t_ld:.1f}x |")
        t = (s + 0.05 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        tt = torch.from_numpy(t)
        for grad in (False, True):
            if grad:
                t_ld = timeit(lambda: ld.sigmoid_sym_kl(s, t, reduction="sum", grad=True))

                def eager():
                    a, b = ts.clone().requires_grad_(), tt.clone().requires_grad_()
                    ((torch.sigmoid(a) - torch.sigmoid(b)) * (a - b)).sum().backward()
            else:
                t_ld = timeit(lambda: ld.sigmoid_sym_kl(s, t))

                def eager():
                    with torch.no_grad():
                        ((torch.sigmoid(ts) - torch.sigmoid(tt)) * (ts - tt)).sum(-1)
            t_pt = timeit(eager)
            mode = "value+grads" if grad else "value"
            print(f"| sigmoid_sym_kl {mode} | {shape} | {t_ld:.4g} | {t_pt:.4g} | {t_pt / t_ld:.1f}x |")


if __name__ == "__main__":
    main()
