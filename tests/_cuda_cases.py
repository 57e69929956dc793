"""The cases on which the GPU backend must agree with the CPU core, and the comparison itself.
Used by test_cuda_emulated.py (the kernels compiled for the host) and test_cuda_gpu.py (on a GPU),
so that both check exactly the same things.

A case is (id, function name, positional arrays, keyword options). The comparison runs the CPU
function of `logitdiv` and the backend's function of `logitdiv.cuda` on the same inputs and
compares values and gradients with a tolerance from the accuracy of the output type: both sides
evaluate the same accurate forms in float64, so they differ by float64 rounding (summation order,
exp/log ulps) and by the final rounding to the output type.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

import ml_dtypes
import numpy as np

import logitdiv as ld

BF16 = np.dtype(ml_dtypes.bfloat16)
NINF = -np.inf

# relative tolerance of a result of each dtype, against the largest magnitude in its array
RTOL = {"float64": 1e-9, "float32": 3e-6, "float16": 2e-3, "bfloat16": 1.6e-2}

Case = Tuple[str, str, Tuple[Any, ...], Dict[str, Any]]


def _pair_inputs(rng: np.random.Generator, shape: Tuple[int, ...], dtype: np.dtype, spread: float = 1.0):
    s = rng.normal(scale=3.0, size=shape)
    t = s + spread * rng.normal(size=shape)
    return s.astype(dtype), t.astype(dtype)


def _special_rows(dtype: np.dtype) -> Tuple[np.ndarray, np.ndarray]:
    """Rows that hit every convention: −inf in both/one row, NaN, +inf, all absent, huge logits,
    identical rows, nearly identical rows."""
    s = np.array([
        [0.0, 1.0, NINF, 2.0, -1.0],       # −inf in both rows at class 2
        [0.0, NINF, 1.0, 2.0, 0.5],        # −inf in s only
        [0.0, 1.0, 1.0, 2.0, 0.5],         # −inf in t only (t row below)
        [0.0, np.nan, 1.0, 2.0, 0.5],      # NaN
        [0.0, np.inf, 1.0, 2.0, 0.5],      # +inf
        [NINF, NINF, NINF, NINF, NINF],    # every class absent
        [3.0, 1.0, -2.0, 0.25, 7.0],       # identical rows
        [30.0, 29.0, -12.0, 1.0, 28.5],    # nearly identical, large logits
        [NINF, 1.0, NINF, 2.0, NINF],      # s with −inf where t is finite
    ])
    t = s.copy()
    t[2, 1] = NINF
    t[7] += np.array([1e-6, -2e-6, 0.0, 3e-6, 0.0])
    t[8] = [0.0, 1.0, NINF, 2.5, 1.0]
    with np.errstate(invalid="ignore"):
        return s.astype(dtype), t.astype(dtype)


def pair_cases(dtypes: List[np.dtype], rng: np.random.Generator) -> Iterator[Case]:
    for dtype in dtypes:
        dn = dtype.name
        for kind in ("kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl"):
            s, t = _pair_inputs(rng, (3, 4, 37), dtype)
            for red in ("none", "sum", "mean", "batchmean"):
                yield f"{kind}-{dn}-{red}", kind, (s, t), dict(reduction=red, grad=True)
            yield f"{kind}-{dn}-value-only", kind, (s, t), {}
            yield f"{kind}-{dn}-temperature", kind, (s, t), dict(temperature=2.5, grad=True)
            s1, t1 = _pair_inputs(rng, (5, 2000), dtype, spread=1e-3)
            yield f"{kind}-{dn}-near", kind, (s1, t1), dict(grad=True, reduction="batchmean")
            ss, ts = _special_rows(dtype)
            yield f"{kind}-{dn}-special", kind, (ss, ts), dict(grad=True)
            yield f"{kind}-{dn}-special-mean", kind, (ss, ts), dict(grad=True, reduction="mean")
            where = rng.random((3, 4, 37)) < 0.8
            where[0, 0] = False  # a fully masked row: 0, not counted by "mean"
            yield f"{kind}-{dn}-where", kind, (s, t), dict(where=where, grad=True, reduction="mean")
            yield f"{kind}-{dn}-where-class", kind, (s, t), dict(where=rng.random(37) < 0.5, grad=True)
            yield f"{kind}-{dn}-one-class", kind, (s[..., :1], t[..., :1]), dict(grad=True)
            yield f"{kind}-{dn}-empty-batch", kind, (s[:0], t[:0]), dict(grad=True, reduction="mean")
            sl, tl = _pair_inputs(rng, (2, 70000), dtype)  # longer than SPLIT_COLS: split rows
            yield f"{kind}-{dn}-long", kind, (sl, tl), dict(grad=True, reduction="sum")
            if kind == "js":
                for beta in (0.0, 0.2, 1.0):
                    yield f"js-{dn}-beta{beta}", kind, (s, t), dict(beta=beta, grad=True)
            if kind.startswith("sigmoid"):
                w = rng.random(37) * 2
                w[3] = 0.0
                yield f"{kind}-{dn}-weights", kind, (s, t), dict(weights=w, grad=True, reduction="sum")
                yield f"{kind}-{dn}-weights-special", kind, (ss, ts), dict(weights=np.arange(5.0), grad=True)


def loss_cases(dtypes: List[np.dtype], rng: np.random.Generator) -> Iterator[Case]:
    for dtype in dtypes:
        dn = dtype.name
        x = rng.normal(scale=3.0, size=(3, 4, 29)).astype(dtype)
        labels = rng.integers(0, 29, size=(3, 4))
        labels[1, 2] = -100
        probs = rng.random((3, 4, 29))
        probs /= probs.sum(-1, keepdims=True)
        ss, _ = _special_rows(dtype)
        special_labels = np.array([2, 1, 0, 0, 3, 0, 4, 2, 0])
        for red in ("none", "sum", "mean", "batchmean"):
            yield f"softmax_ce-{dn}-{red}", "softmax_ce", (x, labels), dict(reduction=red, grad=True)
        yield f"softmax_ce-{dn}-smooth-tau", "softmax_ce", (x, labels), dict(label_smoothing=0.1, temperature=1.7, grad=True)
        yield f"softmax_ce-{dn}-probs", "softmax_ce", (x, probs.astype(np.float32)), dict(grad=True, label_smoothing=0.05)
        yield f"softmax_ce-{dn}-probs64", "softmax_ce", (x, probs), dict(grad=True, reduction="mean")
        yield f"softmax_ce-{dn}-special", "softmax_ce", (ss, special_labels), dict(grad=True)
        yield f"softmax_ce-{dn}-confident", "softmax_ce", (np.array([[40.0, 0.0, -3.0]], dtype), np.array([0])), dict(grad=True)
        yield (f"softmax_ce-{dn}-row-mask", "softmax_ce", (x, labels),
               dict(where=rng.random((3, 4, 1)) < 0.5, grad=True, reduction="mean"))
        yield (f"softmax_ce-{dn}-class-mask", "softmax_ce", (x, probs),
               dict(where=np.arange(29) != 5, grad=True))
        xl = rng.normal(size=(2, 70000)).astype(dtype)
        yield f"softmax_ce-{dn}-long", "softmax_ce", (xl, np.array([5, 69999])), dict(grad=True, label_smoothing=0.2)
        yield f"softmax_ce-{dn}-empty-batch", "softmax_ce", (x[:0], labels[:0]), dict(grad=True, reduction="mean")

        y01 = (rng.random((3, 4, 29)) < 0.3).astype(np.float32)
        ysoft = rng.random((3, 4, 29))
        special_y = (np.arange(45).reshape(9, 5) % 3 == 0).astype(np.float64)
        for name in ("bce", "multilabel_ce"):
            for red in ("none", "sum", "mean", "batchmean"):
                yield f"{name}-{dn}-{red}", name, (x, y01), dict(reduction=red, grad=True)
            yield f"{name}-{dn}-soft", name, (x, ysoft), dict(grad=True)
            yield f"{name}-{dn}-bool", name, (x, y01 > 0), dict(grad=True)
            yield f"{name}-{dn}-special", name, (ss, special_y), dict(grad=True)
            yield (f"{name}-{dn}-row-mask", name, (x, y01), dict(where=rng.random((3, 4, 1)) < 0.5, grad=True,
                                                                  reduction="mean"))
            yield f"{name}-{dn}-class-mask", name, (x, y01), dict(where=rng.random((3, 4, 29)) < 0.7, grad=True)
            yl = (rng.random((2, 70000)) < 0.01).astype(np.float32)
            yield f"{name}-{dn}-long", name, (xl, yl), dict(grad=True, reduction="batchmean")
        yield f"bce-{dn}-weights", "bce", (x, ysoft), dict(pos_weight=rng.random(29) * 3, weights=rng.random(29), grad=True)


def all_cases(dtypes: List[np.dtype], seed: int = 20240611) -> List[Case]:
    rng = np.random.default_rng(seed)
    return list(pair_cases(dtypes, rng)) + list(loss_cases(dtypes, rng))


def _as_tuple(r: Any) -> Tuple[Any, ...]:
    return r if isinstance(r, tuple) else (r,)


def _close(name: str, got: np.ndarray, want: np.ndarray, what: str) -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name} {what}: shape {got.shape}, CPU {want.shape}"
    assert got.dtype == want.dtype, f"{name} {what}: dtype {got.dtype}, CPU {want.dtype}"
    g, w = got.astype(np.float64), want.astype(np.float64)
    nan_g, nan_w = np.isnan(g), np.isnan(w)
    assert np.array_equal(nan_g, nan_w), f"{name} {what}: NaN at {np.argwhere(nan_g != nan_w)[:5].tolist()}"
    inf_g, inf_w = np.isinf(g), np.isinf(w)
    assert np.array_equal(inf_g, inf_w) and np.array_equal(g[inf_g], w[inf_w]), f"{name} {what}: infinities differ"
    fin = ~(nan_w | inf_w)
    if not fin.any():
        return
    rtol = RTOL[want.dtype.name]
    scale = np.abs(w[fin]).max()
    err = np.abs(g[fin] - w[fin])
    # each element within rtol of itself, or of the array's largest magnitude (cancellation)
    ok = err <= rtol * np.maximum(np.abs(w[fin]), scale) + 1e-300
    assert ok.all(), (
        f"{name} {what}: {int((~ok).sum())} of {ok.size} elements differ; worst |Δ| = {err.max():.3e} "
        f"(scale {scale:.3e}, rtol {rtol}) at {np.argwhere(~ok)[:3].tolist()}"
    )
    # the accuracy claims: exact zeros stay exact, and no divergence or loss is negative
    assert np.array_equal(g[fin] == 0, w[fin] == 0) or what != "value", f"{name} {what}: zeros differ"


def compare(case: Case, backend: Any, to_device: Callable[[Any], Any], to_host: Callable[[Any], np.ndarray]) -> None:
    """Runs one case on the CPU and on `backend` (logitdiv.cuda) and compares every output."""
    name, fn, args, kw = case
    want = _as_tuple(getattr(ld, fn)(*args, **kw))
    dev_args = tuple(to_device(a) if isinstance(a, np.ndarray) else a for a in args)
    dev_kw = {k: (to_device(v) if isinstance(v, np.ndarray) and k == "where" else v) for k, v in kw.items()}
    got = _as_tuple(getattr(backend, fn)(*dev_args, **dev_kw))
    assert len(got) == len(want), f"{name}: {len(got)} results, CPU {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        _close(name, to_host(g), np.asarray(w), "value" if i == 0 else f"gradient {i}")
