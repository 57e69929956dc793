"""GPU benchmarks: logitdiv.cuda beside PyTorch CUDA eager, torch.compile and Liger-Kernel (where it
has the function) on identical inputs, in one process run (DESIGN.md, "Benchmark protocol").

    python benches/bench_cuda.py [--quick] [--out benches/RESULTS_CUDA.md]

For every (function, shape, mode) it prints elements per second (element pairs for two-input
functions), the speed-up of logitdiv over each peer (peer time / logitdiv time; > 1 means logitdiv
is faster) and logitdiv's fraction of the device's read bandwidth (the time to read the inputs once,
measured in the same run by a sum over them). Modes: "value" (forward only) and "value+grad"
(value and the gradients w.r.t. the logits; for the peers, forward + backward). Times are medians of
CUDA-event timings after warm-up. Peers that are not installed are reported as "–".

Exits with status 1 and a message when no GPU (or no CuPy) is present.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any, Callable, Dict, List, Optional

import numpy as np

SHAPES = {
    "lm": (2048, 32000),
    "globalpointer": (16 * 9, 256 * 256),
    "classification": (65536, 100),
    "overhead": (1, 10),
}
FUNCTIONS = ("kl", "js", "sym_kl", "gp_kl", "softmax_ce")


def require_gpu() -> Any:
    try:
        import cupy
    except ImportError:
        sys.exit("bench_cuda: CuPy is not installed (pip install 'logitdiv[cuda]'); no GPU benchmark run")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no device")
    except Exception as e:  # noqa: BLE001 - any CUDA error means: no usable GPU
        sys.exit(f"bench_cuda: no GPU available ({e}); no GPU benchmark run")
    return cupy


def cuda_time(fn: Callable[[], object], cupy: Any, min_time: float = 0.3, max_reps: int = 200) -> float:
    """Median seconds per call, timed with CUDA events on the current stream, after warm-up."""
    for _ in range(3):
        fn()
    cupy.cuda.Stream.null.synchronize()
    times: List[float] = []
    total = 0.0
    while (total < min_time or len(times) < 5) and len(times) < max_reps:
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms = cupy.cuda.get_elapsed_time(start, end)
        times.append(ms / 1e3)
        total += ms / 1e3
    return statistics.median(times)


def torch_peers(torch: Any) -> Dict[str, Callable[..., Any]]:
    F = torch.nn.functional

    def kl(s, t):
        return F.kl_div(F.log_softmax(t, -1), F.log_softmax(s, -1), log_target=True, reduction="sum")

    def js(s, t):
        ls, lt = F.log_softmax(s, -1), F.log_softmax(t, -1)
        lm = torch.logsumexp(torch.stack([ls, lt]), 0) - np.log(2.0)
        return 0.5 * (F.kl_div(lm, ls, log_target=True, reduction="sum") + F.kl_div(lm, lt, log_target=True, reduction="sum"))

    def sym_kl(s, t):
        return ((F.softmax(s, -1) - F.softmax(t, -1)) * (s - t)).sum()

    def gp_kl(s, t):
        return ((torch.sigmoid(s) - torch.sigmoid(t)) * (s - t)).sum()

    def softmax_ce(s, y):
        return F.cross_entropy(s, y, reduction="sum")

    return {"kl": kl, "js": js, "sym_kl": sym_kl, "gp_kl": gp_kl, "softmax_ce": softmax_ce}


def liger_peers() -> Dict[str, Callable[..., Any]]:
    """Liger-Kernel's losses where it has the function (optional)."""
    try:
        from liger_kernel.transformers import LigerCrossEntropyLoss, LigerJSD, LigerKLDIVLoss
    except ImportError:
        return {}
    import torch.nn.functional as F

    kl_mod = LigerKLDIVLoss(reduction="sum", log_target=True)
    jsd_mod = LigerJSD(beta=0.5)
    ce_mod = LigerCrossEntropyLoss(reduction="sum")
    return {
        # Liger's KL takes log-probabilities: the log_softmax is part of the work, as in logitdiv
        "kl": lambda s, t: kl_mod(F.log_softmax(t, -1), F.log_softmax(s, -1)),
        "js": lambda s, t: jsd_mod(F.log_softmax(s, -1), F.log_softmax(t, -1)),
        "softmax_ce": lambda s, y: ce_mod(s, y),
    }


def read_ceiling(cupy: Any, arrays: List[Any]) -> float:
    """Seconds to read the arrays once: a sum over each (a bandwidth-bound reduction)."""
    return sum(cuda_time(lambda a=a: a.sum(), cupy) for a in arrays)


def bench_case(fn: str, shape, grad: bool, cupy: Any, torch: Any, peers: Dict[str, Dict[str, Callable]]):
    import logitdiv.cuda as ldc

    rng = cupy.random.default_rng(0)
    s = rng.standard_normal(shape, dtype=np.float32) * 3
    t = s + 0.05 * rng.standard_normal(shape, dtype=np.float32)
    second = rng.integers(0, shape[1], size=shape[0]) if fn == "softmax_ce" else t
    ours = {"kl": ldc.kl, "js": ldc.js, "sym_kl": ldc.sym_kl, "gp_kl": ldc.gp_kl, "softmax_ce": ldc.softmax_ce}[fn]
    mine = cuda_time(lambda: ours(s, second, reduction="sum", grad=grad), cupy)
    inputs = [s] if fn == "softmax_ce" else [s, t]
    ceiling = read_ceiling(cupy, inputs)
    row = {"function": fn, "shape": shape, "mode": "value+grad" if grad else "value", "time": mine,
           "elems_per_s": s.size / mine, "of_read_ceiling": ceiling / mine}
    if torch is not None:
        ts = torch.from_dlpack(s)
        tt = torch.from_dlpack(second) if fn != "softmax_ce" else torch.from_dlpack(second).long()
        for peer, table in peers.items():
            f = table.get(fn)
            if f is None:
                row[peer] = None
                continue
            a = ts.detach().clone().requires_grad_(grad)
            b = tt.detach().clone().requires_grad_(grad and fn != "softmax_ce")

            def run(f=f, a=a, b=b):
                out = f(a, b)
                if grad:
                    out.backward()
                return out

            try:
                row[peer] = cuda_time(run, cupy) / mine
            except Exception as e:  # noqa: BLE001 - a peer that fails on a shape is reported, not fatal
                print(f"  {peer} failed on {fn} {shape}: {type(e).__name__}: {e}", file=sys.stderr)
                row[peer] = None
    return row


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the LM shape and kl only, for a smoke run")
    parser.add_argument("--out", default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    cupy = require_gpu()
    try:
        import torch
    except ImportError:
        torch = None
    peers: Dict[str, Dict[str, Callable]] = {}
    if torch is not None and torch.cuda.is_available():
        eager = torch_peers(torch)
        peers["torch eager"] = eager
        peers["torch.compile"] = {k: torch.compile(v) for k, v in eager.items()}
        peers["liger"] = liger_peers()
    else:
        torch = None
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    print(f"GPU: {name}; CuPy {cupy.__version__}; torch {getattr(torch, '__version__', '–')}")
    shapes = {"lm": SHAPES["lm"]} if args.quick else SHAPES
    functions = ("kl",) if args.quick else FUNCTIONS
    rows = []
    peer_names = list(peers)
    header = ["function", "shape", "mode", "G elems/s", *[f"vs {p}" for p in peer_names], "of read ceiling"]
    print(" | ".join(header))
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"GPU: {name}\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
    for fn in functions:
        for shape in shapes.values():
            for grad in (False, True):
                r = bench_case(fn, shape, grad, cupy, torch, peers)
                rows.append(r)
                cells = [fn, "×".join(map(str, shape)), r["mode"], f"{r['elems_per_s'] / 1e9:.2f}"]
                cells += ["–" if r.get(p) is None else f"{r[p]:.2f}×" for p in peer_names]
                cells.append(f"{100 * r['of_read_ceiling']:.0f} %")
                print(" | ".join(cells), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write("| " + " | ".join(cells) + " |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
