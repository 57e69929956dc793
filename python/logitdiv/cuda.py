"""logitdiv on the GPU: the NumPy API's functions over CuPy arrays, computed by CUDA kernels on
the arrays' device, with no transfer to the host.

``pip install 'logitdiv[cuda]'`` brings CuPy. Then ``logitdiv.kl(s, t)`` with CuPy arrays (or
anything with ``__cuda_array_interface__``) comes here, and so do CUDA tensors through
`logitdiv.torch` (via DLPack). The functions take the same arguments and follow the same
conventions as their NumPy counterparts (MATH.md; the −inf, mask and NaN rules; the four
reductions with "mean" over the rows that count, 0 when none does), with these differences:

- inputs are GPU arrays of float16, float32 or float64 (bfloat16 where the array library has it);
  labels, masks and weights may be GPU arrays or host arrays (copied to the device, they are small);
  the results are CuPy arrays on the logits' device — a reduced value is a 0-d array (no sync);
- the losses check their labels on the device and raise the same ValueError as on the CPU, which
  waits for the kernels to finish (one small read of the row status); the divergences never wait,
  except `sigmoid_kl`/`sigmoid_sym_kl` given `weights`, which are checked the same way;
- a row that is excluded by a row mask is not read, so an invalid weight in it is not reported;
- `tv`, `sparse_multilabel_ce`, `globalpointer_ce`, `gamma_ce`, `kd_loss` and `rdrop_loss` have no
  GPU kernel yet: they raise NotImplementedError naming themselves (never a silent fallback).

The kernels (``_cuda/kernels``) implement the algorithms of the CPU core: one warp (short rows) or
one block per row, online softmax statistics merged across threads, the accurate non-negative
forms of MATH.md accumulated in float64, value and gradients fused in one launch (a second sweep
over the row), rows longer than 65536 classes split across blocks whose partial states merge
associatively. Kernels run on CuPy's current stream; they are compiled by NVRTC on first use
(a few seconds, then cached by CuPy on disk).

Importing this module does not import CuPy.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import _arrays as A
from . import _layout as L
from ._cuda import source as S
from ._cuda.device import CupyDevice, is_device_array

__all__ = [
    "available", "on_gpu",
    "kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl", "gp_kl",
    "softmax_ce", "bce", "multilabel_ce",
    "tv", "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce", "kd_loss", "rdrop_loss",
]

_DEVICE: Any = None
_DEVICE_LOCK = threading.Lock()


def _device() -> Any:
    """The device the kernels run on: CuPy's (created on first use; TypeError without CuPy)."""
    global _DEVICE
    if _DEVICE is None:
        with _DEVICE_LOCK:
            if _DEVICE is None:
                _DEVICE = CupyDevice()
    return _DEVICE


def _set_device(device: Any) -> Any:
    """Replaces the device (the CPU tests install an emulator); returns the previous one."""
    global _DEVICE
    previous, _DEVICE = _DEVICE, device
    return previous


def available() -> bool:
    """Whether the GPU backend can run here: CuPy imports and sees at least one GPU."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def on_gpu(x: Any) -> bool:
    """Whether `x` is a GPU array (it has ``__cuda_array_interface__``); never imports CuPy."""
    return is_device_array(x)


# ----------------------------------------------------------------------------------------------
# arguments: checked by the NumPy API's own rules (`_arrays`, with the device as the side); what
# is here is the layout the kernels read (device pointers, element strides) and the ranges of the
# numbers, which the CPU core checks itself

_NULL = np.uint64(0)
_REDUCTION_CODES = {"none": 0, "sum": 1, "mean": 2, "batchmean": 3}


def _same_device(dev: Any, arrays: Sequence[Tuple[Any, str]]) -> int:
    first, first_name = arrays[0]
    device = dev.device_id(first)
    for a, name in arrays[1:]:
        if dev.device_id(a) != device:
            raise TypeError(f"{first_name} is on GPU {device} but {name} is on GPU {dev.device_id(a)}; put them on one device")
    return device


def _rows(dev: Any, arr: Any, cols: int) -> Tuple[Any, int]:
    """A 2-D (rows, cols) view with the layout of `L.rows_fit` and its row stride in elements (a
    row's length for a single row); a device copy where the array cannot be viewed that way."""
    two = arr.reshape(-1, cols)
    if two.size == 0:
        return two, cols
    item = two.dtype.itemsize
    if L.rows_fit(two, dev.ptr(two) % item == 0):
        return two, (two.strides[0] // item if two.shape[0] > 1 else cols)
    return L.contiguous(two), cols


def _broadcast(dev: Any, x: Any, shape: Tuple[int, ...], name: str, dtype: Any) -> Tuple[Any, int]:
    """A mask (`dtype` bool, read as uint8) or weights (float64) as rows (`A.broadcast`); (None, 0)
    without one."""
    if x is None:
        return None, 0
    two, stride = _rows(dev, A.broadcast(dev, x, shape, name, dtype), shape[-1])
    return (two.view(np.uint8) if dtype is bool else two), stride


def _loss_masks(dev: Any, where: Any, shape: Tuple[int, ...]) -> Tuple[Any, int, Any]:
    """`where` as (class mask rows, their stride, None) or (None, 0, row mask): `A.loss_masks`."""
    class_mask, row_mask = A.loss_masks(dev, where, shape)
    if class_mask is None:
        return None, 0, row_mask
    mask, stride = _rows(dev, class_mask, shape[-1])
    return mask.view(np.uint8), stride, None


def _probability_rows(dev: Any, probs: Any, cols: int) -> Tuple[Any, int, str]:
    """Probabilities as rows, their stride and the kernels' name of their type."""
    two, stride = _rows(dev, probs, cols)
    return two, stride, S.TARGET_TYPES[two.dtype.name]


def _check_temperature(t: float) -> float:
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be finite and > 0; got {t}")
    if not math.isfinite(1.0 / t):
        raise ValueError(f"temperature must be at least 1/f64::MAX ≈ 5.6e-309 (its reciprocal must be finite); got {t:e}")
    return t


def _check_unit(x: float, name: str) -> float:
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got {x}")
    return x


def _ptr(dev: Any, a: Any) -> np.uint64:
    return _NULL if a is None else np.uint64(dev.ptr(a))


# ----------------------------------------------------------------------------------------------
# one call: buffers, launches, reduction


class _Run(A.Outputs):
    """The buffers of one call (values and gradients, `A.Outputs`; per-row status) and its launches."""

    def __init__(self, dev: Any, shape: Tuple[int, ...], lead: Tuple[int, ...], dtype: np.dtype, reduction: str,
                 out: Any, grad_out: Any, n_grads: int, want_grad: bool) -> None:
        super().__init__(dev, out, grad_out, shape, lead, dtype, reduction, n_grads, want_grad)
        xp = dev.xp
        self.dev, self.xp = dev, xp
        self.shape, self.dtype, self.reduction = shape, dtype, reduction
        self.cols = shape[-1]
        self.rows = int(np.prod(lead, dtype=np.int64)) if lead else 1
        self.T = S.LOGIT_TYPES[dtype.name]
        self.row_values = None if reduction == "none" else xp.empty(max(self.rows, 1), np.float64)
        self.status = xp.empty(max(self.rows, 1), np.uint8)  # every row kernel path writes its row

    def grad(self, i: int) -> np.uint64:
        return _ptr(self.dev, self.grads[i]) if i < len(self.grads) else _NULL

    def grad_scale(self) -> float:
        """The reduction's factor on the gradients inside the kernel ("mean" is corrected after)."""
        return 1.0 / max(self.rows, 1) if self.reduction in ("mean", "batchmean") else 1.0

    def rows_kernel(self, kernel: str, head: List[Any], phases: Tuple[int, ...]) -> None:
        """Launches a row kernel: phase 0 for whole rows, else `phases` over split rows."""
        if self.rows == 0:
            return
        dev = self.dev
        plan = dev.plan(self.rows, self.cols)
        partial = None
        if plan.chunks > 1:
            partial = self.xp.empty(self.rows * plan.chunks * S.PARTIAL_DOUBLES, np.float64)
        tail = [_ptr(dev, self.values), _ptr(dev, self.row_values), _ptr(dev, self.status)]
        for phase in (phases if plan.chunks > 1 else (0,)):
            args = head + tail + [np.int32(phase), np.int32(plan.warp_rows), np.int32(plan.chunks),
                                  np.int64(plan.chunk_len), _ptr(dev, partial)]
            dev.launch(kernel, plan.grid, plan.threads, args)

    def check(self, describe: Callable[[int], str]) -> None:
        """Raises ValueError for the first row whose labels (or weights) the kernel found invalid."""
        if self.rows == 0:
            return
        bad = (self.status & S.STATUS_INVALID) != 0
        if bool(bad.any()):
            raise ValueError(describe(int(bad.argmax())))

    def result(self) -> Any:
        """The value (per row, or reduced on the device) and the gradients."""
        dev, xp = self.dev, self.xp
        if self.reduction == "none":
            value = self.values
        else:
            value = xp.empty((), self.vdtype)
            factor = xp.empty(1, np.float64) if self.reduction == "mean" and self.grads else None
            V = S.VALUE_TYPES[self.vdtype.name]
            dev.launch(f"reduce_rows<{V}>", 1, dev.reduce_threads(self.rows),
                       [_ptr(dev, self.row_values), _ptr(dev, self.status), np.int64(self.rows),
                        np.int32(_REDUCTION_CODES[self.reduction]), _ptr(dev, value), _ptr(dev, factor)])
            if factor is not None and self.rows > 0:
                for g in self.grads:
                    grid, threads = dev.elementwise(g.size)
                    dev.launch(f"rescale<{self.T}>", grid, threads, [_ptr(dev, g), np.int64(g.size), _ptr(dev, factor)])
        return self.returned(value)


def _first_bad(dev: Any, rows2d: Any, r: int, ok: Callable[[np.ndarray], np.ndarray]) -> Optional[Tuple[int, float]]:
    """(class, value) of the first element of row r that fails `ok`, read on the host (error path)."""
    if rows2d is None:
        return None
    row = np.asarray(dev.to_host(rows2d[r]), dtype=np.float64)
    bad = np.flatnonzero(~ok(row))
    return (int(bad[0]), float(row[bad[0]])) if bad.size else None


def _non_negative(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x) & (x >= 0)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x >= 0) & (x <= 1)


def _describe(dev: Any, r: int, checks: Sequence[Tuple[str, Any, Callable[[np.ndarray], np.ndarray], str]]) -> str:
    for what, rows2d, ok, rule in checks:
        found = _first_bad(dev, rows2d, r, ok)
        if found is not None:
            return f"{what} must {rule}; got {found[1]} at row {r}, class {found[0]}"
    return f"invalid labels or weights at row {r}"


# ----------------------------------------------------------------------------------------------
# divergences

_PAIR_KINDS = {"kl": 0, "sym_kl": 1, "js": 2, "sigmoid_kl": 0, "sigmoid_sym_kl": 1}


def _pair(kind: str, s: Any, t: Any, *, temperature: float, where: Any, weights: Any, beta: float,
          reduction: str, grad: bool, out: Any, grad_out: Any) -> Any:
    dev = _device()
    args = A.divergence_args(dev, s, t, reduction, grad, temperature, beta)
    inv_tau = 1.0 / _check_temperature(args.temperature)
    if kind == "js":
        _check_unit(args.beta, "beta")
    shape = tuple(args.s.shape)
    with dev.on(_same_device(dev, [(args.s, "s"), (args.t, "t")])):
        s2, s_stride = _rows(dev, args.s.astype(args.dtype, copy=False), shape[-1])
        t2, t_stride = _rows(dev, args.t.astype(args.dtype, copy=False), shape[-1])
        mask, m_stride = _broadcast(dev, where, shape, "where", bool)
        run = _Run(dev, shape, shape[:-1], args.dtype, args.reduction, out, grad_out, 2, args.grad)
        head: List[Any] = [_ptr(dev, s2), np.int64(s_stride), _ptr(dev, t2), np.int64(t_stride), _ptr(dev, mask),
                           np.int64(m_stride)]
        params: List[Any] = [np.int64(run.rows), np.int64(run.cols), np.int32(_PAIR_KINDS[kind]), np.float64(inv_tau)]
        scale = np.float64(run.grad_scale() * inv_tau)
        if kind.startswith("sigmoid"):
            w, w_stride = _broadcast(dev, weights, shape, "weights", np.float64)
            head += [_ptr(dev, w), np.int64(w_stride)] + params + [scale, run.grad(0), run.grad(1)]
            run.rows_kernel(f"sigmoid_pair<{run.T}>", head, (1, 3))
            if weights is not None:
                run.check(lambda r: _describe(dev, r, [("weights", w, _non_negative, "be finite and ≥ 0")]))
        else:
            head += params + [np.float64(args.beta), scale, run.grad(0), run.grad(1)]
            run.rows_kernel(f"softmax_pair<{run.T}>", head, (1, 2, 3))
        return run.result()


def _gpu_doc(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def attach(f: Callable[..., Any]) -> Callable[..., Any]:
        f.__doc__ = (
            f"`logitdiv.{name}` on the GPU: the same arguments, conventions and results, for CuPy arrays "
            f"(or any with __cuda_array_interface__); the results are CuPy arrays on their device."
        )
        return f

    return attach


def _no_extension(what: str, asked: bool) -> None:
    """The options the CuPy kernels do not have yet: refused, never silently ignored."""
    if asked:
        raise NotImplementedError(f"{what}: no CuPy kernel yet; pass NumPy arrays (or CPU tensors)")


@_gpu_doc("kl")
def kl(s: Any, t: Any, *, temperature: float = 1.0, where: Any = None, reduction: str = "none", grad: bool = False,
       out: Any = None, grad_out: Any = None, softcap: Optional[float] = None) -> Any:
    _no_extension("softcap", softcap is not None)
    return _pair("kl", s, t, temperature=temperature, where=where, weights=None, beta=0.5, reduction=reduction,
                 grad=grad, out=out, grad_out=grad_out)


@_gpu_doc("sym_kl")
def sym_kl(s: Any, t: Any, *, temperature: float = 1.0, where: Any = None, reduction: str = "none",
           grad: bool = False, out: Any = None, grad_out: Any = None, softcap: Optional[float] = None) -> Any:
    _no_extension("softcap", softcap is not None)
    return _pair("sym_kl", s, t, temperature=temperature, where=where, weights=None, beta=0.5, reduction=reduction,
                 grad=grad, out=out, grad_out=grad_out)


@_gpu_doc("js")
def js(s: Any, t: Any, *, beta: float = 0.5, temperature: float = 1.0, where: Any = None, reduction: str = "none",
       grad: bool = False, out: Any = None, grad_out: Any = None, softcap: Optional[float] = None) -> Any:
    _no_extension("softcap", softcap is not None)
    return _pair("js", s, t, temperature=temperature, where=where, weights=None, beta=beta, reduction=reduction,
                 grad=grad, out=out, grad_out=grad_out)


@_gpu_doc("sigmoid_kl")
def sigmoid_kl(s: Any, t: Any, *, weights: Any = None, temperature: float = 1.0, where: Any = None,
               reduction: str = "none", grad: bool = False, out: Any = None, grad_out: Any = None) -> Any:
    return _pair("sigmoid_kl", s, t, temperature=temperature, where=where, weights=weights, beta=0.5,
                 reduction=reduction, grad=grad, out=out, grad_out=grad_out)


@_gpu_doc("sigmoid_sym_kl")
def sigmoid_sym_kl(s: Any, t: Any, *, weights: Any = None, temperature: float = 1.0, where: Any = None,
                   reduction: str = "none", grad: bool = False, out: Any = None, grad_out: Any = None) -> Any:
    return _pair("sigmoid_sym_kl", s, t, temperature=temperature, where=where, weights=weights, beta=0.5,
                 reduction=reduction, grad=grad, out=out, grad_out=grad_out)


gp_kl = sigmoid_sym_kl


# ----------------------------------------------------------------------------------------------
# losses


@_gpu_doc("softmax_ce")
def softmax_ce(logits: Any, target: Any, *, label_smoothing: float = 0.0, ignore_index: int = -100,
               temperature: float = 1.0, weight: Any = None, z_loss: float = 0.0, softcap: Optional[float] = None,
               return_z_loss: bool = False, return_accuracy: bool = False, where: Any = None,
               reduction: str = "none", grad: bool = False, out: Any = None, grad_out: Any = None) -> Any:
    _no_extension("weight, z_loss, softcap, return_z_loss and return_accuracy",
                  weight is not None or softcap is not None or bool(return_z_loss) or bool(return_accuracy)
                  or not (type(z_loss) in (int, float) and z_loss == 0))
    dev = _device()
    arr, reduction, grad = A.loss_args(dev, logits, reduction, grad)
    shape, dtype, lead = tuple(arr.shape), arr.dtype, tuple(arr.shape[:-1])
    ignore_index = A.check_int(ignore_index, "ignore_index")
    eps = _check_unit(A.check_number(label_smoothing, "label_smoothing"), "label_smoothing")
    inv_tau = 1.0 / _check_temperature(A.check_number(temperature, "temperature"))
    with dev.on(dev.device_id(arr)):
        labels, probs = A.softmax_target(dev, target, shape, dtype)
        p_stride, U = 0, "float"
        if probs is not None:
            probs, p_stride, U = _probability_rows(dev, probs, shape[-1])
        class_mask, m_stride, row_mask = _loss_masks(dev, where, shape)
        s2, s_stride = _rows(dev, arr, shape[-1])
        run = _Run(dev, shape, lead, dtype, reduction, out, grad_out, 1, grad)
        head = [_ptr(dev, s2), np.int64(s_stride), _ptr(dev, labels), np.int64(ignore_index), _ptr(dev, probs),
                np.int64(p_stride), _ptr(dev, class_mask), np.int64(m_stride), _ptr(dev, row_mask),
                np.int64(run.rows), np.int64(run.cols), np.float64(inv_tau), np.float64(eps),
                np.float64(run.grad_scale() * inv_tau), run.grad(0)]
        run.rows_kernel(f"softmax_ce<{run.T}, {U}>", head, (1, 3))

        def describe(r: int) -> str:
            if labels is not None:
                y = int(dev.to_host(labels[r]))
                return (f"target at row {r} is {y}; class indices must lie in [0, {shape[-1]}) or equal "
                        f"ignore_index ({ignore_index})")
            return _describe(dev, r, [("target probabilities", probs, _non_negative, "be finite and ≥ 0")])

        run.check(describe)
        return run.result()


@_gpu_doc("bce")
def bce(logits: Any, target: Any, *, pos_weight: Any = None, weights: Any = None, where: Any = None,
        reduction: str = "none", grad: bool = False, out: Any = None, grad_out: Any = None) -> Any:
    dev = _device()
    arr, reduction, grad = A.loss_args(dev, logits, reduction, grad)
    shape, dtype, lead = tuple(arr.shape), arr.dtype, tuple(arr.shape[:-1])
    with dev.on(dev.device_id(arr)):
        y, y_stride, U = _probability_rows(dev, A.dense_target(dev, target, shape, dtype), shape[-1])
        pw, pw_stride = _broadcast(dev, pos_weight, shape, "pos_weight", np.float64)
        w, w_stride = _broadcast(dev, weights, shape, "weights", np.float64)
        class_mask, m_stride, row_mask = _loss_masks(dev, where, shape)
        s2, s_stride = _rows(dev, arr, shape[-1])
        run = _Run(dev, shape, lead, dtype, reduction, out, grad_out, 1, grad)
        head = [_ptr(dev, s2), np.int64(s_stride), _ptr(dev, y), np.int64(y_stride), _ptr(dev, pw), np.int64(pw_stride),
                _ptr(dev, w), np.int64(w_stride), _ptr(dev, class_mask), np.int64(m_stride), _ptr(dev, row_mask),
                np.int64(run.rows), np.int64(run.cols), np.float64(run.grad_scale()), run.grad(0)]
        run.rows_kernel(f"bce<{run.T}, {U}>", head, (1, 3))
        run.check(lambda r: _describe(dev, r, [
            ("target probabilities", y, _unit, "lie in [0, 1]"),
            ("pos_weight", pw, _non_negative, "be finite and ≥ 0"),
            ("weights", w, _non_negative, "be finite and ≥ 0"),
        ]))
        return run.result()


@_gpu_doc("multilabel_ce")
def multilabel_ce(logits: Any, target: Any, *, where: Any = None, reduction: str = "none", grad: bool = False,
                  out: Any = None, grad_out: Any = None) -> Any:
    dev = _device()
    arr, reduction, grad = A.loss_args(dev, logits, reduction, grad)
    shape, dtype, lead = tuple(arr.shape), arr.dtype, tuple(arr.shape[:-1])
    with dev.on(dev.device_id(arr)):
        y, y_stride, U = _probability_rows(dev, A.dense_target(dev, target, shape, dtype), shape[-1])
        class_mask, m_stride, row_mask = _loss_masks(dev, where, shape)
        s2, s_stride = _rows(dev, arr, shape[-1])
        run = _Run(dev, shape, lead, dtype, reduction, out, grad_out, 1, grad)
        head = [_ptr(dev, s2), np.int64(s_stride), _ptr(dev, y), np.int64(y_stride), _ptr(dev, class_mask),
                np.int64(m_stride), _ptr(dev, row_mask), np.int64(run.rows), np.int64(run.cols),
                np.float64(run.grad_scale()), run.grad(0)]
        run.rows_kernel(f"multilabel_ce<{run.T}, {U}>", head, (1, 3))
        run.check(lambda r: _describe(dev, r, [("target probabilities", y, _unit, "lie in [0, 1]")]))
        return run.result()


def _not_on_gpu(name: str) -> Callable[..., Any]:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"logitdiv.cuda has no GPU kernel for {name} yet; compute it on the CPU with host arrays "
            f"(e.g. logitdiv.{name}(cupy.asnumpy(logits), ...))"
        )

    missing.__name__ = missing.__qualname__ = name
    missing.__doc__ = f"`logitdiv.{name}` has no GPU kernel yet: calling this raises NotImplementedError."
    return missing


tv = _not_on_gpu("tv")
sparse_multilabel_ce = _not_on_gpu("sparse_multilabel_ce")
globalpointer_ce = _not_on_gpu("globalpointer_ce")
gamma_ce = _not_on_gpu("gamma_ce")
kd_loss = _not_on_gpu("kd_loss")
rdrop_loss = _not_on_gpu("rdrop_loss")

