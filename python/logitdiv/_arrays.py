"""Argument checking and normalisation: the one set of rules by which the NumPy API and the CuPy
backend turn their arguments into checked arrays (logits of a float type, labels, masks and
weights in the types the kernels read, output buffers, at least one class, shapes, dtypes).

The rules take a *side*, the array module of a call (`_layout.Side`): `_layout.HOST` is NumPy's,
used by divergences.py and losses.py; `logitdiv.cuda` passes its device. What the two paths do
apart is only the layout they hand on: 2-D row views for the native core (`_layout.rows_view`),
device pointers and element strides for the CUDA kernels (`logitdiv.cuda`)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Tuple

import numpy as np

from . import _layout as L

# The storage type the core reads for each accepted dtype, and the dtype of per-row values.
# Dtype objects compare and hash faster than names: the small-call path checks these first.
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NATIVE_FLOATS = frozenset((np.dtype(np.float16), _F32, _F64))
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
REDUCTIONS = ("none", "sum", "mean", "batchmean")


# ---------------------------------------------------------------------------------------------
# logits


def check_logits(arr: Any, name: str) -> Any:
    """`arr` (of either module) if it holds logits: float16, bfloat16, float32 or float64, with at
    least one axis, and (a memory-mapped NumPy array) wholly in its file."""
    if arr.dtype not in _NATIVE_FLOATS and arr.dtype.name != "bfloat16":
        raise TypeError(
            f"{name} must hold floating-point logits (float16, bfloat16, float32 or float64); "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the classes); got a 0-d array")
    L.check_mapped(arr, name)
    return arr


def as_float_array(x: Any, name: str) -> np.ndarray:
    """`x` as a NumPy array of float16, bfloat16, float32 or float64 with at least one axis."""
    return check_logits(L.host_array(x, name), name)


def logits(side: L.Side, x: Any, name: str) -> Any:
    """`x` as checked logits of the side's module (`check_logits`)."""
    return check_logits(side.logits(x, name), name)


def check_classes(shape: Tuple[int, ...], names: str) -> None:
    """The rule that logits have a class axis with at least one class (the NumPy, CuPy and JAX
    façades all call it)."""
    if not shape or shape[-1] == 0:
        raise ValueError(f"{names} must have at least one class on the last axis; got shape {tuple(shape)}")


def class_logits(side: L.Side, x: Any, name: str) -> Any:
    """Checked logits with at least one class (the losses' logits)."""
    arr = logits(side, x, name)
    check_classes(arr.shape, name)
    return arr


def loss_args(side: L.Side, x: Any, reduction: str, grad: Any) -> Tuple[Any, str, bool]:
    """A loss's logits, `reduction` and `grad`, checked."""
    return class_logits(side, x, "logits"), check_reduction(reduction), check_flag(grad, "grad")


def logits_pair(side: L.Side, a: Any, b: Any, names: Tuple[str, str]) -> Tuple[Any, Any]:
    """Two loss logit arrays of one shape (distillation, R-Drop), in their common dtype."""
    x, y = class_logits(side, a, names[0]), class_logits(side, b, names[1])
    check_same_shape(x.shape, y.shape, names)
    dtype = common_dtype(x, y)
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)


class DivergenceArgs(NamedTuple):
    s: Any  # the logits as given (cast to `dtype` by the caller, on its device)
    t: Any
    dtype: np.dtype
    reduction: str
    grad: bool
    temperature: float
    beta: float


def divergence_args(side: L.Side, s: Any, t: Any, reduction: str, grad: Any, temperature: Any,
                    beta: Any) -> DivergenceArgs:
    """The arguments every divergence checks (the kernels check the ranges of the numbers)."""
    s_arr, t_arr = logits(side, s, "s"), logits(side, t, "t")
    check_same_shape(s_arr.shape, t_arr.shape, ("s", "t"))
    reduction = check_reduction(reduction)
    grad = check_flag(grad, "grad")
    temperature = check_number(temperature, "temperature")
    beta = check_number(beta, "beta")
    check_classes(s_arr.shape, "s and t")
    return DivergenceArgs(s_arr, t_arr, common_dtype(s_arr, t_arr), reduction, grad, temperature, beta)


# ---------------------------------------------------------------------------------------------
# labels, masks and weights


def probabilities(arr: Any, logits_dtype: Any, name: str) -> Any:
    """Labels of the logits' shape (either module) in the machine's byte order and the type the
    kernels read (`probability_dtype`)."""
    arr = L.native_order(arr)
    return arr.astype(probability_dtype(arr.dtype, logits_dtype, name), copy=False)


def dense_target(side: L.Side, target: Any, shape: Tuple[int, ...], logits_dtype: Any) -> Any:
    """A target of the logits' shape (BCE, multilabel CE, R-Drop's sigmoid kind) as probabilities."""
    arr = side.aux(target, "target")
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"target must have the logits' shape {tuple(shape)}; got shape {tuple(arr.shape)}")
    return probabilities(arr, logits_dtype, "target")


def class_indices(arr: Any, name: str) -> Any:
    """Integer class indices (either module) as C-contiguous int64 of the same shape: TypeError
    for bools and floats, ValueError for uint64 values beyond int64."""
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices; got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.uint64(_I64_MAX):  # compared as uint64: exact
        raise ValueError(f"{name} holds {arr.max()}, beyond the int64 range")
    return L.contiguous(arr.astype(np.int64, copy=False))


def softmax_target(side: L.Side, target: Any, shape: Tuple[int, ...], logits_dtype: Any,
                   name: str = "target") -> Tuple[Any, Any]:
    """A softmax target: class indices of the logits' leading shape as (flat int64, None), or
    probabilities of the logits' shape as (None, probabilities)."""
    arr = side.aux(target, name)
    if softmax_target_kind(arr.dtype, arr.shape, shape, name) == "classes":
        return class_indices(arr, name).reshape(-1), None
    return None, probabilities(arr, logits_dtype, name)


def loss_masks(side: L.Side, where: Any, shape: Tuple[int, ...]) -> Tuple[Any, Any]:
    """The losses' `where` (`where_masks_rows`): (class mask, None), booleans broadcast to the
    logits' shape, or (None, row mask), one uint8 per row; (None, None) without one."""
    if where is None:
        return None, None
    arr = side.aux(where, "where")
    if where_masks_rows(arr.shape, arr.dtype, shape):
        per_row = arr if arr.ndim == 0 else arr[..., 0]
        return None, L.contiguous(side.xp.broadcast_to(per_row, shape[:-1])).reshape(-1).view(np.uint8)
    return side.xp.broadcast_to(arr, shape), None


def broadcast(side: L.Side, x: Any, shape: Tuple[int, ...], name: str, dtype: Any) -> Any:
    """A mask (`dtype` bool) or weights (`dtype` a float type) broadcast to the logits' shape."""
    arr = side.aux(x, name)
    if dtype is bool:
        if arr.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean array; got dtype {arr.dtype}")
    else:
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
        arr = arr.astype(dtype, copy=False)
    check_broadcasts(arr.shape, shape, name)
    return side.xp.broadcast_to(arr, shape)


def broadcast_rows(x: Any, shape: Tuple[int, ...], name: str, dtype: Any) -> np.ndarray:
    """`broadcast` on the host, as a 2-D row view; a per-class vector keeps row stride 0."""
    return L.rows_view(broadcast(L.HOST, x, shape, name, dtype))


# ---------------------------------------------------------------------------------------------
# output buffers


def buffer(side: L.Side, buf: Any, shape: Tuple[int, ...], dtype: np.dtype, name: str) -> Any:
    """An output buffer: a new array of the side's module, or `buf` if it fits (an array of that
    module of this shape and dtype, writeable, C-contiguous, aligned)."""
    if buf is None:
        return side.xp.empty(shape, dtype)
    if not side.is_output(buf):
        kind = "a NumPy array" if side is L.HOST else "a GPU array on the logits' device"
        raise TypeError(f"{name} must be {kind}; got {type(buf).__name__}")
    if buf.shape != tuple(shape) or buf.dtype != dtype:
        raise ValueError(f"{name} must have shape {tuple(shape)} and dtype {dtype}; got shape {buf.shape} and dtype {buf.dtype}")
    flags = buf.flags  # CuPy's flags say neither: device arrays are writeable and aligned
    if not flags.c_contiguous or not getattr(flags, "writeable", True):
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    if not getattr(flags, "aligned", True):
        raise ValueError(
            f"{name} must be aligned to its element size ({buf.dtype.itemsize} bytes); got an array at address "
            f"{buf.ctypes.data:#x}, e.g. from np.frombuffer at an odd offset"
        )
    return buf


def grad_outs(side: L.Side, grad_out: Any, n: int) -> Tuple[Any, ...]:
    """`grad_out` as a tuple of `n` buffers (or Nones)."""
    if grad_out is None:
        return (None,) * n
    if n == 1 and side.is_output(grad_out):
        return (grad_out,)
    if not isinstance(grad_out, (tuple, list)) or len(grad_out) != n:
        raise TypeError(f"grad_out must be a tuple of {n} arrays (or None); got {grad_out!r}"[:200])
    return tuple(grad_out)


_GRAD_OUT_NAMES = {1: ("grad_out",), 2: ("grad_out[0]", "grad_out[1]")}


class Outputs:
    """The value and gradient buffers of one call: `values` (per row, None when reduced) and
    `grads` (`n_grads` arrays of the logits' shape and dtype, none without `want_grad`)."""

    __slots__ = ("vdtype", "values", "grads")

    def __init__(self, side: L.Side, out: Any, grad_out: Any, shape: Tuple[int, ...], lead: Tuple[int, ...],
                 dtype: np.dtype, reduction: str, n_grads: int, want_grad: bool) -> None:
        self.vdtype = vdtype = value_dtype(dtype)
        self.grads: Tuple[Any, ...] = ()
        if out is None and grad_out is None:
            # the common call, new buffers: nothing to check (spelt out, it costs a third of this)
            empty = side.xp.empty
            self.values = empty(lead, vdtype) if reduction == "none" else None
            if want_grad:
                self.grads = (empty(shape, dtype),) if n_grads == 1 else (empty(shape, dtype), empty(shape, dtype))
            return
        if out is not None and reduction != "none":
            raise ValueError(f"out= holds per-row values and needs reduction='none'; got reduction={reduction!r}")
        self.values = buffer(side, out, lead, vdtype, "out") if reduction == "none" else None
        if want_grad:
            bufs = grad_outs(side, grad_out, n_grads)
            self.grads = tuple(buffer(side, b, shape, dtype, n) for b, n in zip(bufs, _GRAD_OUT_NAMES[n_grads]))
        elif grad_out is not None:
            raise ValueError("grad_out= needs grad=True")

    def returned(self, value: Any) -> Any:
        """What the call returns: `value`, or (value, *grads)."""
        return (value, *self.grads) if self.grads else value


# ---------------------------------------------------------------------------------------------
# dtypes


def torch_to_numpy(x: Any) -> np.ndarray:
    """A torch tensor's values as a NumPy array (a view of a CPU tensor's memory; bfloat16
    through ml_dtypes, never widened)."""
    import torch

    x = x.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if x.dtype == torch.bfloat16:
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("bfloat16 tensors need the ml_dtypes package (pip install ml_dtypes)") from None
        return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return x.numpy()


def common_dtype(a: Any, b: Any) -> np.dtype:
    """The wider of two float dtypes (NumPy promotion; bfloat16 and float16 meet at float32)."""
    if a.dtype == b.dtype:
        return a.dtype
    if {a.dtype.name, b.dtype.name} == {"float16", "bfloat16"}:
        return np.dtype(np.float32)
    if a.dtype.name == "bfloat16":
        return b.dtype if b.dtype.itemsize > 2 else np.dtype(np.float32)
    if b.dtype.name == "bfloat16":
        return a.dtype if a.dtype.itemsize > 2 else np.dtype(np.float32)
    return np.result_type(a.dtype, b.dtype)


def value_dtype(dtype: np.dtype) -> np.dtype:
    """Per-row values are float64 for float64 input and float32 otherwise."""
    return _F64 if dtype == _F64 else _F32


def value_shape(function: str, shape: Tuple[Any, ...], reduction: str) -> Tuple[Any, ...]:
    """The shape of a function's value for logits of this shape (for the torch and JAX façades'
    shape-only evaluation): the leading axes for "none" ((B, heads) for `globalpointer_ce`), else ()."""
    if reduction != "none":
        return ()
    return tuple(shape[:-2] if function == "globalpointer_ce" else shape[:-1])


def probability_dtype(dtype: Any, logits_dtype: Any, name: str) -> np.dtype:
    """The type labels of the logits' shape are read in: float32 and float64 as they are,
    float16/bfloat16 as float32 (exact), integers and bools as the values' precision."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        return _F64 if np.dtype(logits_dtype) == _F64 else _F32
    if dtype.name in ("float32", "float64"):
        return dtype
    if dtype.name in ("float16", "bfloat16"):
        return _F32
    raise TypeError(f"{name} must hold real numbers; got dtype {dtype}")


# ---------------------------------------------------------------------------------------------
# options and shape rules (also of the JAX façade, whose traced arrays give shapes and dtypes)


def check_int(value: Any, name: str) -> int:
    """An int option (ignore_index, pad): a Python or NumPy integer, not a bool, within int64."""
    if type(value) is int and _I64_MIN <= value <= _I64_MAX:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if not _I64_MIN <= int(value) <= _I64_MAX:
        raise ValueError(f"{name} must fit in int64 (labels are compared as int64); got {value!r}")
    return int(value)


def check_number(value: Any, name: str) -> float:
    """A real option as a float64: an integer beyond float64's range rounds to ±inf (as
    float("1e400") does), which the option's range check then refuses or accepts."""
    if type(value) is float:
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {value!r}"[:200])
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")
    return reduction


def check_broadcasts(x_shape: Tuple[int, ...], shape: Tuple[int, ...], name: str) -> None:
    """ValueError unless an array of `x_shape` broadcasts to the logits' `shape`."""
    try:
        full = np.broadcast_shapes(tuple(x_shape), tuple(shape))
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(x_shape)}, which does not broadcast to the logits' shape {tuple(shape)}")


def where_masks_rows(where_shape: Tuple[int, ...], where_dtype: Any, shape: Tuple[int, ...]) -> bool:
    """The rule of the losses' `where`: a boolean array broadcastable to the logits; True when it
    masks rows (a scalar, or a last axis of length 1), False for classes."""
    if np.dtype(where_dtype) != np.bool_:
        raise TypeError(f"where must be a boolean array; got dtype {np.dtype(where_dtype)}")
    check_broadcasts(where_shape, shape, "where")
    return len(where_shape) == 0 or where_shape[-1] == 1


def softmax_target_kind(target_dtype: Any, target_shape: Tuple[int, ...], shape: Tuple[int, ...],
                        name: str = "target") -> str:
    """The rule of a softmax target (NumPy and JAX façades): "classes" for integer class indices
    of the logits' leading shape, "probs" for floating-point probabilities of the logits' shape."""
    dtype = np.dtype(target_dtype)
    lead, target_shape, shape = tuple(shape[:-1]), tuple(target_shape), tuple(shape)
    if dtype.kind in "iu":
        if target_shape != lead:
            raise ValueError(
                f"{name} holds class indices and must have the logits' leading shape {lead}; got shape {target_shape}"
                f" (logits {shape})"
            )
        return "classes"
    if dtype.kind == "f" or dtype.name == "bfloat16":
        if target_shape != shape:
            raise ValueError(
                f"{name} holds class probabilities and must have the logits' shape {shape}; got shape {target_shape}"
                + (" (for class indices pass an integer array)" if target_shape == lead else "")
            )
        return "probs"
    raise TypeError(f"{name} must be integer class indices or floating-point probabilities; got dtype {dtype}")


def check_same_shape(a_shape: Tuple[int, ...], b_shape: Tuple[int, ...], names: Tuple[str, str]) -> None:
    """The rule of two logit arrays (NumPy and JAX façades): one shape."""
    if tuple(a_shape) != tuple(b_shape):
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape; got {tuple(a_shape)} and {tuple(b_shape)}")


def check_positives_shape(pos_shape: Tuple[int, ...], shape: Tuple[int, ...]) -> None:
    """The rule of sparse positives (NumPy and JAX façades): the logits' leading shape + (K,)."""
    if len(pos_shape) != len(shape) or tuple(pos_shape[:-1]) != tuple(shape[:-1]):
        raise ValueError(
            f"positives must have shape {tuple(shape[:-1])} + (K,) for logits of shape {tuple(shape)}; got shape {tuple(pos_shape)}"
        )


def check_globalpointer_logits(shape: Tuple[int, ...]) -> None:
    """The rule of `globalpointer_ce`'s logits (NumPy and JAX façades): shape (B, heads, L, L)."""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f"GlobalPointer logits must have shape (B, heads, L, L); got shape {tuple(shape)}")


def globalpointer_layout(shape: Tuple[int, ...], pos_shape: Tuple[int, ...]) -> bool:
    """The rule of `globalpointer_ce`'s positives (NumPy and JAX façades), for logits of a checked
    shape (B, heads, L, L): (B, heads, K, 2) spans (True) or (B, heads, K) flat indices (False)."""
    b, heads = shape[:2]
    pos_shape = tuple(pos_shape)
    if len(pos_shape) == 4 and pos_shape[:2] == (b, heads) and pos_shape[3] == 2:
        spans = True
    elif len(pos_shape) == 3 and pos_shape[:2] == (b, heads):
        spans = False
    else:
        raise ValueError(
            f"spans_or_positives must have shape ({b}, {heads}, K, 2) (spans) or ({b}, {heads}, K) (flat indices)"
            f" for logits of shape {tuple(shape)}; got shape {pos_shape}"
        )
    return spans


def check_token_mask(mask_shape: Tuple[int, ...], mask_dtype: Any, b: int, length: int) -> None:
    """The rule of `globalpointer_ce`'s token mask (NumPy and JAX façades): shape (B, L), booleans
    or numbers (the NumPy API also checks the numbers are 0/1, which a traced JAX array cannot)."""
    if tuple(mask_shape) != (b, length):
        raise ValueError(f"mask must have shape ({b}, {length}) (batch, sequence length); got shape {tuple(mask_shape)}")
    dtype = np.dtype(mask_dtype)
    if dtype != np.bool_ and dtype.kind not in "iuf":
        raise TypeError(f"mask must be boolean or 0/1 numbers; got dtype {dtype}")


