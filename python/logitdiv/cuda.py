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
- `sparse_multilabel_ce`, `globalpointer_ce`, `gamma_ce`, `kd_loss` and `rdrop_loss` have no GPU
  kernel yet: they raise NotImplementedError naming themselves (never a silent fallback).

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
from ._cuda import source as S
from ._cuda.device import CupyDevice, is_device_array

__all__ = [
    "available", "on_gpu",
    "kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl", "gp_kl",
    "softmax_ce", "bce", "multilabel_ce",
    "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce", "kd_loss", "rdrop_loss",
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
# arguments

_FLOATS = ("float16", "bfloat16", "float32", "float64")
_NULL = np.uint64(0)
_REDUCTION_CODES = {"none": 0, "sum": 1, "mean": 2, "batchmean": 3}


def _logits(dev: Any, x: Any, name: str) -> Any:
    arr = dev.logits(x, name)
    if arr.dtype.name not in _FLOATS:
        raise TypeError(
            f"{name} must hold floating-point logits (float16, bfloat16, float32 or float64); got dtype {arr.dtype}"
        )
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the classes); got a 0-d array")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one class on the last axis; got shape {arr.shape}")
    return arr


def _same_device(dev: Any, arrays: Sequence[Tuple[Any, str]]) -> int:
    first, first_name = arrays[0]
    device = dev.device_id(first)
    for a, name in arrays[1:]:
        if dev.device_id(a) != device:
            raise TypeError(f"{first_name} is on GPU {device} but {name} is on GPU {dev.device_id(a)}; put them on one device")
    return device


def _rows(dev: Any, arr: Any, cols: int) -> Tuple[Any, int]:
    """A 2-D (rows, cols) view with unit class stride and a row stride ≥ a row (or 0, a repeated
    row), in elements; a device copy where the layout does not allow it."""
    two = arr.reshape(-1, cols)
    if two.size == 0:
        return two, cols
    item = two.dtype.itemsize
    rs, cs = two.strides
    ok = (
        (cols <= 1 or cs == item)
        and rs >= 0
        and rs % item == 0
        and (two.shape[0] <= 1 or rs == 0 or rs >= cols * item)
        and dev.ptr(two) % item == 0
    )
    if ok:
        return two, (rs // item if two.shape[0] > 1 else cols)
    return dev.xp.ascontiguousarray(two), cols


def _broadcast(dev: Any, x: Any, shape: Tuple[int, ...], name: str, boolean: bool) -> Tuple[Any, int]:
    """A mask (uint8) or weights (float64) broadcast to the logits' shape, as 2-D rows."""
    xp = dev.xp
    arr = dev.aux(x, name)
    if boolean:
        if arr.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean array; got dtype {arr.dtype}")
    else:
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
    A.check_broadcasts(arr.shape, shape, name)
    two, stride = _rows(dev, xp.broadcast_to(arr, shape), shape[-1])
    return (two.view(np.uint8) if boolean else two), stride


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


def _probabilities(arr: Any, logits_dtype: np.dtype, name: str) -> Any:
    """Labels of the logits' shape as float32 or float64 (`A.probability_dtype`, as the CPU path)."""
    return arr.astype(A.probability_dtype(arr.dtype, logits_dtype, name), copy=False)


def _loss_masks(dev: Any, where: Any, shape: Tuple[int, ...]) -> Tuple[Any, int, Any]:
    """`where` as (class mask rows, its row stride, None) or, when its last axis has length 1,
    (None, 0, row mask): as the NumPy API reads it."""
    if where is None:
        return None, 0, None
    xp = dev.xp
    arr = dev.aux(where, "where")
    if A.where_masks_rows(arr.shape, arr.dtype, shape):
        per_row = arr if arr.ndim == 0 else arr[..., 0]
        rows = xp.ascontiguousarray(xp.broadcast_to(per_row, shape[:-1])).reshape(-1)
        return None, 0, rows.view(np.uint8)
    mask, stride = _broadcast(dev, arr, shape, "where", True)
    return mask, stride, None


# ----------------------------------------------------------------------------------------------
# one call: buffers, launches, reduction


class _Run:
    """The buffers of one call (values, gradients, per-row status) and its launches."""

    def __init__(self, dev: Any, shape: Tuple[int, ...], lead: Tuple[int, ...], dtype: np.dtype, reduction: str,
                 out: Any, grad_out: Any, n_grads: int, want_grad: bool) -> None:
        xp = dev.xp
        self.dev, self.xp = dev, xp
        self.shape, self.dtype, self.reduction = shape, dtype, reduction
        self.cols = shape[-1]
        self.rows = int(np.prod(lead, dtype=np.int64)) if lead else 1
        self.vdtype = A.value_dtype(dtype)
        self.T = S.LOGIT_TYPES[dtype.name]
        if out is not None and reduction != "none":
            raise ValueError(f"out= holds per-row values and needs reduction='none'; got reduction={reduction!r}")
        self.values = self._buffer(out, lead, self.vdtype, "out") if reduction == "none" else None
        self.row_values = None if reduction == "none" else xp.empty(max(self.rows, 1), np.float64)
        self.status = xp.empty(max(self.rows, 1), np.uint8)  # every row kernel path writes its row
        self.grads: Tuple[Any, ...] = ()
        if want_grad:
            bufs = A.grad_outs(grad_out, n_grads) if not (n_grads == 1 and dev.is_output(grad_out)) else (grad_out,)
            names = ["grad_out"] if n_grads == 1 else [f"grad_out[{i}]" for i in range(n_grads)]
            self.grads = tuple(self._buffer(b, shape, dtype, n) for b, n in zip(bufs, names))
        elif grad_out is not None:
            raise ValueError("grad_out= needs grad=True")

    def _buffer(self, buf: Any, shape: Tuple[int, ...], dtype: np.dtype, name: str) -> Any:
        if buf is None:
            return self.xp.empty(shape, dtype)
        if not self.dev.is_output(buf):
            raise TypeError(f"{name} must be a GPU array on the logits' device; got {type(buf).__name__}")
        if buf.shape != tuple(shape) or buf.dtype != dtype:
            raise ValueError(f"{name} must have shape {tuple(shape)} and dtype {dtype}; got shape {buf.shape} and dtype {buf.dtype}")
        if not buf.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous array")
        return buf

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
        return (value, *self.grads) if self.grads else value


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
    s_arr, t_arr = _logits(dev, s, "s"), _logits(dev, t, "t")
    if s_arr.shape != t_arr.shape:
        raise ValueError(f"s and t must have the same shape; got {s_arr.shape} and {t_arr.shape}")
    reduction = A.check_reduction(reduction)
    grad = A.check_flag(grad, "grad")
    inv_tau = 1.0 / _check_temperature(A.check_number(temperature, "temperature"))
    beta = A.check_number(beta, "beta")
    if kind == "js":
        _check_unit(beta, "beta")
    shape = tuple(s_arr.shape)
    with dev.on(_same_device(dev, [(s_arr, "s"), (t_arr, "t")])):
        dtype = A.common_dtype(s_arr, t_arr)
        s2, s_stride = _rows(dev, s_arr.astype(dtype, copy=False), shape[-1])
        t2, t_stride = _rows(dev, t_arr.astype(dtype, copy=False), shape[-1])
        mask, m_stride = (None, 0) if where is None else _broadcast(dev, where, shape, "where", True)
        run = _Run(dev, shape, shape[:-1], dtype, reduction, out, grad_out, 2, grad)
        head: List[Any] = [_ptr(dev, s2), np.int64(s_stride), _ptr(dev, t2), np.int64(t_stride), _ptr(dev, mask),
                           np.int64(m_stride)]
        params: List[Any] = [np.int64(run.rows), np.int64(run.cols), np.int32(_PAIR_KINDS[kind]), np.float64(inv_tau)]
        scale = np.float64(run.grad_scale() * inv_tau)
        if kind.startswith("sigmoid"):
            w, w_stride = (None, 0) if weights is None else _broadcast(dev, weights, shape, "weights", False)
            head += [_ptr(dev, w), np.int64(w_stride)] + params + [scale, run.grad(0), run.grad(1)]
            run.rows_kernel(f"sigmoid_pair<{run.T}>", head, (1, 3))
            if weights is not None:
                run.check(lambda r: _describe(dev, r, [("weights", w, _non_negative, "be finite and ≥ 0")]))
        else:
            head += params + [np.float64(beta), scale, run.grad(0), run.grad(1)]
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


@_gpu_doc("kl")
def _no_extension(what: str, asked: bool) -> None:
    """The options the CuPy kernels do not have yet: refused, never silently ignored."""
    if asked:
        raise NotImplementedError(f"{what}: no CuPy kernel yet; pass NumPy arrays (or CPU tensors)")


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


def _loss_logits(dev: Any, logits: Any, reduction: str, grad: Any) -> Tuple[Any, str, bool]:
    return _logits(dev, logits, "logits"), A.check_reduction(reduction), A.check_flag(grad, "grad")


@_gpu_doc("softmax_ce")
def softmax_ce(logits: Any, target: Any, *, label_smoothing: float = 0.0, ignore_index: int = -100,
               temperature: float = 1.0, weight: Any = None, z_loss: float = 0.0, softcap: Optional[float] = None,
               return_z_loss: bool = False, return_accuracy: bool = False, where: Any = None,
               reduction: str = "none", grad: bool = False, out: Any = None, grad_out: Any = None) -> Any:
    _no_extension("weight, z_loss, softcap, return_z_loss and return_accuracy",
                  weight is not None or softcap is not None or bool(return_z_loss) or bool(return_accuracy)
                  or not (type(z_loss) in (int, float) and z_loss == 0))
    dev = _device()
    arr, reduction, grad = _loss_logits(dev, logits, reduction, grad)
    shape, dtype, lead = tuple(arr.shape), arr.dtype, tuple(arr.shape[:-1])
    ignore_index = A.check_int(ignore_index, "ignore_index")
    eps = _check_unit(A.check_number(label_smoothing, "label_smoothing"), "label_smoothing")
    inv_tau = 1.0 / _check_temperature(A.check_number(temperature, "temperature"))
    with dev.on(dev.device_id(arr)):
        xp = dev.xp
        tgt = dev.aux(target, "target")
        labels = probs = None
        p_stride = 0
        U = "float"
        if A.softmax_target_kind(tgt.dtype, tgt.shape, shape) == "classes":
            labels = xp.ascontiguousarray(tgt.astype(np.int64, copy=False).reshape(-1))
        else:
            probs, p_stride = _rows(dev, _probabilities(tgt, dtype, "target"), shape[-1])
            U = S.TARGET_TYPES[probs.dtype.name]
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


def _dense_target(dev: Any, target: Any, shape: Tuple[int, ...], dtype: np.dtype) -> Tuple[Any, int, str]:
    tgt = dev.aux(target, "target")
    if tuple(tgt.shape) != shape:
        raise ValueError(f"target must have the logits' shape {shape}; got shape {tgt.shape}")
    probs, stride = _rows(dev, _probabilities(tgt, dtype, "target"), shape[-1])
    return probs, stride, S.TARGET_TYPES[probs.dtype.name]


@_gpu_doc("bce")
def bce(logits: Any, target: Any, *, pos_weight: Any = None, weights: Any = None, where: Any = None,
        reduction: str = "none", grad: bool = False, out: Any = None, grad_out: Any = None) -> Any:
    dev = _device()
    arr, reduction, grad = _loss_logits(dev, logits, reduction, grad)
    shape, dtype, lead = tuple(arr.shape), arr.dtype, tuple(arr.shape[:-1])
    with dev.on(dev.device_id(arr)):
        y, y_stride, U = _dense_target(dev, target, shape, dtype)
        pw, pw_stride = (None, 0) if pos_weight is None else _broadcast(dev, pos_weight, shape, "pos_weight", False)
        w, w_stride = (None, 0) if weights is None else _broadcast(dev, weights, shape, "weights", False)
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
    arr, reduction, grad = _loss_logits(dev, logits, reduction, grad)
    shape, dtype, lead = tuple(arr.shape), arr.dtype, tuple(arr.shape[:-1])
    with dev.on(dev.device_id(arr)):
        y, y_stride, U = _dense_target(dev, target, shape, dtype)
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


sparse_multilabel_ce = _not_on_gpu("sparse_multilabel_ce")
globalpointer_ce = _not_on_gpu("globalpointer_ce")
gamma_ce = _not_on_gpu("gamma_ce")
kd_loss = _not_on_gpu("kd_loss")
rdrop_loss = _not_on_gpu("rdrop_loss")

