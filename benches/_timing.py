"""The timing loop of the CPU benchmarks (bench.py, bench_torch.py, bench_multilabel.py,
bench_jax.py): the median wall-clock seconds of repeated calls after warm-up. Each bench passes its
own budget. (bench_cuda.py times with CUDA events instead.)"""

from __future__ import annotations

import statistics
import time
from typing import Callable, List


def median_seconds(fn: Callable[[], object], *, min_time: float, max_reps: int, min_reps: int = 5,
                   warmups: int = 2) -> float:
    """Median seconds per call of `fn` after `warmups` untimed calls: calls until `min_time` seconds
    and `min_reps` calls have passed, at most `max_reps` calls."""
    for _ in range(warmups):
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while (time.perf_counter() - start < min_time or len(times) < min_reps) and len(times) < max_reps:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
