"""Independent float64 NumPy references and test data for the scoring tests (no logitdiv code)."""

from __future__ import annotations

import numpy as np


def _logsoftmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))


def reference(name: str, a: np.ndarray, b: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Per-row metric computed the textbook way in float64 (rows = leading axes, flattened)."""
    c = a.shape[-1]
    a = np.asarray(a, dtype=np.float64).reshape(-1, c)
    b = np.asarray(b, dtype=np.float64).reshape(-1, c)
    if name.startswith("top"):
        k = int(name[3:])
        sa = np.argsort(-a, axis=1, kind="stable")[:, :k]  # ties to the lower class index
        sb = np.argsort(-b, axis=1, kind="stable")[:, :k]
        return np.array([len(set(x) & set(y)) / k for x, y in zip(sa.tolist(), sb.tolist())]).astype(np.float32)
    a, b = a / temperature, b / temperature
    if name in ("kl", "rkl", "sym_kl", "js"):
        la, lb = _logsoftmax(a), _logsoftmax(b)
        pa, pb = np.exp(la), np.exp(lb)
        if name == "kl":
            return (pa * (la - lb)).sum(1)
        if name == "rkl":
            return (pb * (lb - la)).sum(1)
        if name == "sym_kl":
            return ((pa - pb) * (la - lb)).sum(1)
        lm = np.log(0.5 * (pa + pb))
        return 0.5 * (pa * (la - lm)).sum(1) + 0.5 * (pb * (lb - lm)).sum(1)
    if name == "sigmoid_kl":
        return (_softplus(b) - _softplus(a) - _sigmoid(a) * (b - a)).sum(1)
    if name == "sigmoid_sym_kl":
        return ((_sigmoid(a) - _sigmoid(b)) * (a - b)).sum(1)
    raise ValueError(name)


def pair(rows: int = 1200, classes: int = 64, seed: int = 0, noise: float = 0.3, dtype=np.float32,
         bad_rows: int = 5) -> "tuple[np.ndarray, np.ndarray]":
    """Two logit arrays that mostly agree, with a few rows that disagree badly."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, classes)) * 3
    b = a + noise * rng.standard_normal((rows, classes))
    idx = rng.choice(rows, size=min(bad_rows, rows), replace=False)
    b[idx] = rng.standard_normal((idx.size, classes)) * 3
    return a.astype(dtype), b.astype(dtype)


def summary_equal(s1, s2) -> bool:
    """Field-for-field equality of two Summaries (via the JSON form, where NaN == NaN)."""
    return s1.to_dict() == s2.to_dict()
