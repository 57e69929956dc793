"""The built-in example of ``logitdiv demo``: two synthetic "models" that mostly agree.

The base model is a random linear classifier on random features, ``logits = X @ W + c``. The
candidate is its quantised copy, in the way real quantised models are made: weights rounded to
6 bits (symmetric, one scale per class), activations rounded to 8 bits over a static range
calibrated on ordinary data (±4), logits stored as float16. On ordinary rows the two agree
closely. A few rows (0.4 %) carry an outlier activation — one feature 6 to 40 times its usual
size, as LLMs' activation outliers are — which the static range clips, so on those rows the two
models disagree badly. Deterministic for a given seed.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

import numpy as np

__all__ = ["make_demo", "write_demo"]


def make_demo(rows: int = 6000, classes: int = 256, features: int = 64, seed: int = 0,
              outlier_share: float = 0.004) -> Tuple[np.ndarray, np.ndarray, Dict[str, object]]:
    """(base float32 logits, candidate float16 logits, facts about them), both (rows, classes)."""
    if rows < 1 or classes < 2 or features < 1:
        raise ValueError(f"the demo needs rows ≥ 1, classes ≥ 2, features ≥ 1; got {rows}, {classes}, {features}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((features, classes)) * (2.5 / np.sqrt(features))
    c = rng.standard_normal(classes) * 0.5
    x = rng.standard_normal((rows, features))
    n_out = max(1, int(round(rows * outlier_share)))
    outliers = np.sort(rng.choice(rows, size=n_out, replace=False))
    feats = rng.integers(0, features, size=n_out)
    x[outliers, feats] = rng.choice([-1.0, 1.0], size=n_out) * rng.uniform(6.0, 40.0, size=n_out)

    wscale = np.abs(w).max(axis=0) / 31.0  # 6-bit weights, symmetric, one scale per class
    wq = np.clip(np.round(w / wscale), -32, 31) * wscale
    step = 4.0 / 127.0  # 8-bit activations over a static range of ±4
    xq = np.clip(np.round(x / step), -127, 127) * step

    base = (x @ w + c).astype(np.float32)
    cand = (xq @ wq + c).astype(np.float16)
    info = {"rows": rows, "classes": classes, "features": features, "seed": seed, "outlier_rows": outliers.tolist()}
    return base, cand, info


def write_demo(directory: str, **kwargs: object) -> Tuple[str, str, Dict[str, object]]:
    """Writes the demo's logits as ``base.npy`` and ``candidate.npy`` in `directory`."""
    base, cand, info = make_demo(**kwargs)  # type: ignore[arg-type]
    os.makedirs(directory, exist_ok=True)
    pa, pb = os.path.join(directory, "base.npy"), os.path.join(directory, "candidate.npy")
    np.save(pa, base)
    np.save(pb, cand)
    return pa, pb, info
