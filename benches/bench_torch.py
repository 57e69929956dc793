"""Benchmarks of logitdiv.torch in a training step: the loss's forward + backward (the logits given,
requires_grad, their gradient written to .grad), beside PyTorch eager and torch.compile of the plain
formulas, on identical inputs in one process run (DESIGN.md, "Benchmark protocol").

    python benches/bench_torch.py [--quick] [--no-compile] [--only TEXT] [--out benches/RESULTS_torch.md]

For every (loss, shape) it prints logitdiv's time per step, the elements per second (of one logits
tensor: R-Drop reads two, distillation a student and a teacher), and the
speed-up over each peer (peer time / logitdiv time; > 1 means logitdiv is faster). Threads = cores
for every framework. Timings are medians after a warm-up; on a loaded machine they are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

import logitdiv as ld
import logitdiv.torch as ldt
from _timing import median_seconds  # benches/ is on sys.path when this script runs
from bench import cpu_hz

SHAPES = {
    "lm": (2048, 32000),
    "globalpointer": (16, 9, 256, 256),  # (B, heads, L, L): 16·9 rows of 256·256 spans
    "classification": (65536, 100),
    "small batch": (32, 1000),  # per-call overhead: a small batch's step is mostly the call itself
}
QUICK_SHAPES = {"lm": (256, 32000), "globalpointer": (4, 9, 128, 128), "classification": (8192, 100),
                "small batch": (32, 1000)}
T, ALPHA = 2.0, 4.0  # distillation temperature, R-Drop weight


def timeit(fn: Callable[[], object]) -> float:
    """Median seconds per call after two warm-up calls, over ≥ 0.5 s and 5 to 50 calls."""
    return median_seconds(fn, min_time=0.5, max_reps=50)


# ---- the plain formulas (what a PyTorch user writes) ------------------------------------------

def plain_softmax_ce(s, y):
    return F.cross_entropy(s, y)


def plain_kd(s, t):
    return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean") * T * T


def plain_rdrop(s1, s2, y):
    l1, l2 = F.log_softmax(s1, -1), F.log_softmax(s2, -1)
    ce = F.nll_loss(l1, y) + F.nll_loss(l2, y)
    sym = F.kl_div(l2, l1, log_target=True, reduction="batchmean") + F.kl_div(l1, l2, log_target=True,
                                                                                reduction="batchmean")
    return ce + ALPHA / 2 * sym


def plain_multilabel(s, y):
    """bert4keras' multilabel_categorical_crossentropy, transcribed."""
    s = (1 - 2 * y) * s
    neg = s - y * 1e12
    pos = s - (1 - y) * 1e12
    zeros = torch.zeros_like(s[..., :1])
    return (torch.logsumexp(torch.cat([neg, zeros], -1), -1) + torch.logsumexp(torch.cat([pos, zeros], -1), -1)).mean()


def plain_globalpointer(s, y, valid):
    """bert4keras' NER global_pointer_crossentropy: the padding and lower-triangle spans pushed to
    −1e12 (as its GlobalPointer layer does), the dense multilabel CE, the mean over batch × heads."""
    b, h, length, _ = s.shape
    s = s.masked_fill(~valid, -1e12)
    return plain_multilabel(s.reshape(b * h, length * length), y.reshape(b * h, length * length))


# ---- the cases --------------------------------------------------------------------------------

class Case(NamedTuple):
    name: str
    shape_name: str
    n_logits: int  # inputs that require grad
    make: Callable[[Tuple[int, ...], torch.Generator], Tuple[tuple, tuple]]  # -> (logits, labels)
    ours: Callable[..., torch.Tensor]
    plain: Callable[..., torch.Tensor]


def _logits(shape, g, n):
    s = torch.randn(shape, generator=g) * 3
    return tuple((s + 0.5 * torch.randn(shape, generator=g)) if i else s for i in range(n))


def _class_labels(shape, g):
    return torch.randint(0, shape[-1], shape[:-1], generator=g)


def make_ce(shape, g):
    return _logits(shape, g, 1), (_class_labels(shape, g),)


def make_kd(shape, g):
    s, t = _logits(shape, g, 2)
    return (s,), (t,)


def make_rdrop(shape, g):
    return _logits(shape, g, 2), (_class_labels(shape, g),)


def make_multilabel(shape, g):
    rows = shape if len(shape) == 2 else (shape[0] * shape[1], shape[2] * shape[3])
    y = torch.zeros(rows)
    y.scatter_(-1, torch.randint(0, rows[-1], (rows[0], 8), generator=g), 1.0)
    return _logits(rows, g, 1), (y,)


def make_globalpointer(shape, g):
    b, h, length, _ = shape
    lengths = torch.randint(length // 2, length + 1, (b,), generator=g)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    k = 8  # spans per (batch, head), some of them padding
    start = (torch.rand(b, h, k, generator=g) * lengths[:, None, None] * 0.9).long()
    end = torch.minimum(start + torch.randint(0, 5, (b, h, k), generator=g), lengths[:, None, None] - 1)
    spans = torch.stack([start, end], -1)
    spans[:, :, k // 2:] = -1
    # duplicates are an error for logitdiv: keep the first of each
    flat = spans[..., 0] * length + spans[..., 1]
    for bi in range(b):
        for hi in range(h):
            seen = set()
            for ki in range(k):
                f = int(flat[bi, hi, ki])
                if f >= 0 and f in seen:
                    spans[bi, hi, ki] = -1
                seen.add(f)
    y = torch.zeros(b, h, length * length)
    for bi in range(b):
        for hi in range(h):
            for si, ei in spans[bi, hi].tolist():
                if si >= 0:
                    y[bi, hi, si * length + ei] = 1.0
    i = torch.arange(length)
    valid = (i[:, None] <= i[None, :]) & mask[:, None, :, None] & mask[:, None, None, :]
    return _logits(shape, g, 1), (spans, mask, y.reshape(shape), valid)


CASES = [
    Case("softmax CE", "lm", 1, make_ce, lambda s, y: ldt.softmax_ce(s, y, reduction="mean"), plain_softmax_ce),
    Case("softmax CE", "classification", 1, make_ce, lambda s, y: ldt.softmax_ce(s, y, reduction="mean"),
         plain_softmax_ce),
    Case("softmax CE", "small batch", 1, make_ce, lambda s, y: ldt.softmax_ce(s, y, reduction="mean"),
         plain_softmax_ce),
    Case(f"KL distillation (T={T:g})", "lm", 1, make_kd,
         lambda s, t: ldt.kd_loss(s, t, temperature=T, alpha=1.0, reduction="batchmean"), plain_kd),
    Case(f"R-Drop softmax (α={ALPHA:g})", "lm", 2, make_rdrop,
         lambda a, b, y: ldt.rdrop_loss(a, b, y, alpha=ALPHA, reduction="mean"), plain_rdrop),
    Case(f"R-Drop softmax (α={ALPHA:g})", "classification", 2, make_rdrop,
         lambda a, b, y: ldt.rdrop_loss(a, b, y, alpha=ALPHA, reduction="mean"), plain_rdrop),
    Case("multilabel CE", "globalpointer", 1, make_multilabel,
         lambda s, y: ldt.multilabel_ce(s, y, reduction="mean"), plain_multilabel),
    Case("multilabel CE", "classification", 1, make_multilabel,
         lambda s, y: ldt.multilabel_ce(s, y, reduction="mean"), plain_multilabel),
    Case("GlobalPointer CE", "globalpointer", 1, make_globalpointer,
         lambda s, spans, mask, y, valid: ldt.globalpointer_ce(s, spans, mask=mask, reduction="batchmean"),
         lambda s, spans, mask, y, valid: plain_globalpointer(s, y, valid)),
]


def step(loss_fn, logits, labels) -> Callable[[], None]:
    """One training step's loss work: forward, backward into fresh .grad (as after zero_grad())."""
    def run() -> None:
        for x in logits:
            x.grad = None
        loss_fn(*logits, *labels).backward()
    return run


def bench(case: Case, shape, use_compile: bool) -> Tuple[int, Dict[str, Optional[float]], Optional[str]]:
    logits, labels = case.make(shape, torch.Generator().manual_seed(0))
    logits = tuple(x.contiguous().requires_grad_() for x in logits)
    # a check that the two compute the same loss (float32: agreement to ~1e-5 relative)
    ours, plain = case.ours(*logits, *labels).item(), case.plain(*logits, *labels).item()
    note = None if abs(ours - plain) <= 1e-4 * max(1.0, abs(plain)) else f"values differ: {ours:.6g} vs {plain:.6g}"
    row: Dict[str, Optional[float]] = {"logitdiv": timeit(step(case.ours, logits, labels))}
    row["torch eager"] = timeit(step(case.plain, logits, labels))
    row["torch.compile"] = None
    if use_compile:
        compiled = torch.compile(case.plain, dynamic=False)
        try:
            row["torch.compile"] = timeit(step(compiled, logits, labels))
        except Exception as e:  # no C++ compiler, an inductor limitation...
            note = f"torch.compile failed: {type(e).__name__}"
    return logits[0].numel(), row, note


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes and fewer cases, for a smoke run")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for minutes)")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    parser.add_argument("--only", default=None,
                        help="only the cases whose 'loss shape' text contains this (e.g. 'R-Drop softmax (α=4) classification')")
    args = parser.parse_args(argv)
    threads = os.cpu_count() or 1
    ld.set_num_threads(threads)
    torch.set_num_threads(threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    cases = CASES if not args.quick else [c for c in CASES if c.shape_name != "classification"]
    if args.only:
        cases = [c for c in cases if args.only in f"{c.name} {c.shape_name}"]
    peers = ["torch eager", "torch.compile"]
    lines = [
        f"loss forward + backward per training step; float32; threads = {threads}; torch {torch.__version__}; "
        f"{platform.machine()}; speed-up = peer time / logitdiv time (> 1: logitdiv faster)"
        + ("; --quick shapes" if args.quick else ""),
        "",
        "| loss | shape | logitdiv | elements/s | cycles/element | " + " | ".join(f"vs {p}" for p in peers)
        + " | note |",
        "|---|---|---|---|---|" + "---|" * len(peers) + "---|",
    ]
    print("\n".join(lines), flush=True)
    for case in cases:
        shape = shapes[case.shape_name]
        n, row, note = bench(case, shape, not args.no_compile)
        t_ld = row["logitdiv"]
        ratios = [f"{row[p] / t_ld:.2f}×" if row.get(p) else "–" for p in peers]
        shape_text = "×".join(map(str, shape))
        hz = cpu_hz()
        cycles = f"{t_ld * hz * threads / n:.1f}" if hz else "–"
        line = (f"| {case.name} | {case.shape_name} {shape_text} | {t_ld * 1e3:.2f} ms | {n / t_ld / 1e9:.2f} G/s | "
                f"{cycles} | " + " | ".join(ratios) + f" | {note or ''} |")
        lines.append(line)
        print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
