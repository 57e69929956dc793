"""Argument checking and normalisation: the one set of rules by which the NumPy API and the CuPy
backend turn their arguments into checked arrays (logits of a float type, labels, masks and
weights in the types the kernels read, output buffers).

The rules take a *side*, the array module of a call, with the interface of
`logitdiv._cuda.device.CupyDevice` (the `Side` protocol below): `HOST` is NumPy's, used by
divergences.py and losses.py; `logitdiv.cuda` passes its device. What the two paths do apart is
only the layout they hand on: 2-D row views for the native core (`rows_view`), device pointers
and element strides for the CUDA kernels (`logitdiv.cuda`)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Protocol, Tuple

import numpy as np

# The storage type the core reads for each accepted dtype, and the dtype of per-row values.
# Dtype objects compare and hash faster than names: the small-call path checks these first.
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NATIVE_FLOATS = frozenset((np.dtype(np.float16), _F32, _F64))
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
REDUCTIONS = ("none", "sum", "mean", "batchmean")


# ---------------------------------------------------------------------------------------------
# the sides: NumPy here, CuPy (or the tests' emulator) in logitdiv.cuda


class Side(Protocol):
    """The array module of a call, as the rules below use it."""

    @property
    def xp(self) -> Any:
        """The module (numpy, cupy): its broadcast_to and empty."""

    def logits(self, x: Any, name: str) -> Any:
        """`x` as an array of the module, not yet checked."""

    def aux(self, x: Any, name: str) -> Any:
        """A label, mask or weights argument as an array of the module."""

    def is_output(self, x: Any) -> bool:
        """Whether `x` may be an output buffer (out=, grad_out=)."""


def reject_device_array(x: Any, name: str) -> None:
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(
            f"{name} is a GPU array; the CPU core cannot read it. Pass a NumPy array, "
            "or install the CuPy backend (pip install 'logitdiv[cuda]')."
        )


def host_array(x: Any, name: str) -> np.ndarray:
    """`x` as a NumPy array in the machine's byte order (not yet checked)."""
    if type(x) is np.ndarray:
        arr = x
    else:
        reject_device_array(x, name)
        try:
            arr = np.asarray(x)
        except Exception as e:  # e.g. a torch tensor that requires grad
            raise TypeError(f"{name} could not be read as an array: {e}") from e
    return arr if arr.dtype.isnative else native_order(arr)


class Host:
    """NumPy as a side: host arrays; a GPU array is a TypeError (the CPU core cannot read it)."""

    xp = np
    logits = staticmethod(host_array)

    @staticmethod
    def aux(x: Any, name: str) -> np.ndarray:
        reject_device_array(x, name)
        return np.asarray(x)

    @staticmethod
    def is_output(x: Any) -> bool:
        return isinstance(x, np.ndarray)


HOST = Host()


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
    check_mapped(arr, name)
    return arr


def as_float_array(x: Any, name: str) -> np.ndarray:
    """`x` as a NumPy array of float16, bfloat16, float32 or float64 with at least one axis."""
    return check_logits(host_array(x, name), name)


def logits(side: Side, x: Any, name: str) -> Any:
    """`x` as checked logits of the side's module (`check_logits`)."""
    return check_logits(side.logits(x, name), name)


def check_classes(shape: Tuple[int, ...], names: str) -> None:
    """The rule that logits have a class axis with at least one class (the NumPy, CuPy and JAX
    façades all call it)."""
    if not shape or shape[-1] == 0:
        raise ValueError(f"{names} must have at least one class on the last axis; got shape {tuple(shape)}")


def class_logits(side: Side, x: Any, name: str) -> Any:
    """Checked logits with at least one class (the losses' logits)."""
    arr = logits(side, x, name)
    check_classes(arr.shape, name)
    return arr


def loss_args(side: Side, x: Any, reduction: str, grad: Any) -> Tuple[Any, str, bool]:
    """A loss's logits, `reduction` and `grad`, checked."""
    return class_logits(side, x, "logits"), check_reduction(reduction), check_flag(grad, "grad")


def logits_pair(side: Side, a: Any, b: Any, names: Tuple[str, str]) -> Tuple[Any, Any]:
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


def divergence_args(side: Side, s: Any, t: Any, reduction: str, grad: Any, temperature: Any,
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
    arr = native_order(arr)
    return arr.astype(probability_dtype(arr.dtype, logits_dtype, name), copy=False)


def dense_target(side: Side, target: Any, shape: Tuple[int, ...], logits_dtype: Any) -> Any:
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
    return contiguous(arr.astype(np.int64, copy=False))


def softmax_target(side: Side, target: Any, shape: Tuple[int, ...], logits_dtype: Any,
                   name: str = "target") -> Tuple[Any, Any]:
    """A softmax target: class indices of the logits' leading shape as (flat int64, None), or
    probabilities of the logits' shape as (None, probabilities)."""
    arr = side.aux(target, name)
    if softmax_target_kind(arr.dtype, arr.shape, shape, name) == "classes":
        return class_indices(arr, name).reshape(-1), None
    return None, probabilities(arr, logits_dtype, name)


def loss_masks(side: Side, where: Any, shape: Tuple[int, ...]) -> Tuple[Any, Any]:
    """The losses' `where` (`where_masks_rows`): (class mask, None), booleans broadcast to the
    logits' shape, or (None, row mask), one uint8 per row; (None, None) without one."""
    if where is None:
        return None, None
    arr = side.aux(where, "where")
    if where_masks_rows(arr.shape, arr.dtype, shape):
        per_row = arr if arr.ndim == 0 else arr[..., 0]
        return None, contiguous(side.xp.broadcast_to(per_row, shape[:-1])).reshape(-1).view(np.uint8)
    return side.xp.broadcast_to(arr, shape), None


def broadcast(side: Side, x: Any, shape: Tuple[int, ...], name: str, dtype: Any) -> Any:
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
    return rows_view(broadcast(HOST, x, shape, name, dtype))


# ---------------------------------------------------------------------------------------------
# output buffers


def buffer(side: Side, buf: Any, shape: Tuple[int, ...], dtype: np.dtype, name: str) -> Any:
    """An output buffer: a new array of the side's module, or `buf` if it fits (an array of that
    module of this shape and dtype, writeable, C-contiguous, aligned)."""
    if buf is None:
        return side.xp.empty(shape, dtype)
    if not side.is_output(buf):
        kind = "a NumPy array" if side is HOST else "a GPU array on the logits' device"
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


def grad_outs(side: Side, grad_out: Any, n: int) -> Tuple[Any, ...]:
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

    def __init__(self, side: Side, out: Any, grad_out: Any, shape: Tuple[int, ...], lead: Tuple[int, ...],
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


def native_order(arr: Any) -> Any:
    """`arr` in the machine's byte order: a byte-swapped copy of a big-endian array on a
    little-endian machine (e.g. ``np.load`` of a ``>f8`` file), the array itself otherwise."""
    if arr.dtype.isnative:
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


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
# layout


def rows_fit(two_d: Any, aligned: bool) -> bool:
    """Whether a 2-D (rows, classes) array (either module) has the layout the core and the
    kernels read: classes at unit stride, rows that repeat (stride 0, a broadcast row) or do not
    overlap (not 0 < stride < a row, e.g. sliding_window_view), aligned to the element size."""
    item = two_d.dtype.itemsize
    rows, cols = two_d.shape
    row_stride, class_stride = two_d.strides
    return aligned and (cols <= 1 or class_stride == item) and (
        rows <= 1 or (row_stride % item == 0 and (row_stride == 0 or row_stride >= cols * item)))


def rows_view(arr: np.ndarray) -> np.ndarray:
    """A 2-D (rows, classes) view with the layout of `rows_fit`, copying only when the array
    cannot be viewed that way (misaligned memory, e.g. np.frombuffer at an odd offset, included:
    the core never reads it)."""
    cols = arr.shape[-1]
    two_d = arr.reshape(-1, cols) if arr.ndim != 2 else arr
    if two_d.size == 0:
        # NumPy gives empty arrays zero strides, which the core's layout check rejects; no element
        # is ever read, so regular C strides are safe.
        item = two_d.dtype.itemsize
        return np.lib.stride_tricks.as_strided(two_d, strides=(cols * item, item))
    return two_d if rows_fit(two_d, two_d.flags.aligned) else contiguous(two_d)


def contiguous(arr: Any) -> Any:
    """`arr` (either module) if it is C-contiguous and aligned, else a copy that is (a new array
    is aligned; np.ascontiguousarray keeps a misaligned array as it is). CuPy's flags do not say
    `aligned`: device arrays always are."""
    flags = arr.flags
    return arr if flags.c_contiguous and getattr(flags, "aligned", True) else arr.copy(order="C")


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


# ---------------------------------------------------------------------------------------------
# memory-mapped arrays


def check_covers(size: int, need: int, name: str, description: str, shape: Tuple[int, ...]) -> None:
    """The one size rule of file-backed inputs: the file must hold every byte the array needs
    (reading a mapping past the end of its file kills the process with SIGBUS)."""
    if size < need:
        raise ValueError(f"{name} ({description}) is truncated: shape {tuple(shape)} needs {need} bytes of the file, it has {size}")


def _byte_bounds(arr: np.ndarray) -> Tuple[int, int]:
    try:
        from numpy.lib.array_utils import byte_bounds  # NumPy ≥ 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        byte_bounds = np.byte_bounds
    return byte_bounds(arr)


class Mapping:
    """The memory mapping an array's data lies in: a Python ``mmap.mmap`` whose first byte is
    byte `file_start` of its file."""

    def __init__(self, mm: Any, file_start: int, shared: bool, filename: Any = None) -> None:
        self.mm, self.file_start, self.shared, self.filename = mm, int(file_start), shared, filename
        self.base = np.frombuffer(mm, dtype=np.uint8).__array_interface__["data"][0] if len(mm) else 0

    @classmethod
    def of(cls, arr: np.ndarray) -> Optional["Mapping"]:
        """The mapping of an np.memmap (or of a view of one, through its bases), else None."""
        import mmap

        x: Any = arr
        for _ in range(64):
            if isinstance(x, np.memmap) and isinstance(getattr(x, "_mmap", None), mmap.mmap):
                offset = int(getattr(x, "offset", 0) or 0)
                mode = getattr(x, "mode", "c")
                try:
                    return cls(x._mmap, offset - offset % mmap.ALLOCATIONGRANULARITY, mode in ("r", "r+", "w+"),
                               getattr(x, "filename", None))
                except (ValueError, TypeError, BufferError):  # a closed mapping
                    return None
            x = getattr(x, "base", None)
            if x is None or not isinstance(x, np.ndarray):
                return None
        return None

    def check(self, arr: np.ndarray, name: str, description: str) -> None:
        if arr.size == 0:
            return
        lo, hi = _byte_bounds(arr)
        try:
            size = self.mm.size()  # the mapped file's size now (its own descriptor)
        except (OSError, ValueError) as e:
            raise ValueError(f"{name} ({description}): its mapped file cannot be checked: {e}") from None
        check_covers(size, self.file_start + hi - self.base, name, description, arr.shape)

    def holds(self, arr: np.ndarray) -> bool:
        """Whether `arr`'s bytes lie in this mapping."""
        if arr.size == 0:
            return False
        lo, hi = _byte_bounds(arr)
        return self.base <= lo and hi <= self.base + len(self.mm)

    def release(self, arr: np.ndarray) -> None:
        """Drops the pages of a shared mapping that `arr` covers (they are re-read on next use)."""
        import mmap

        advice = getattr(mmap, "MADV_DONTNEED", None)
        if not self.shared or advice is None or not self.holds(arr) or not hasattr(self.mm, "madvise"):
            return
        lo, hi = _byte_bounds(arr)
        page = mmap.PAGESIZE
        start = (lo - self.base) // page * page
        end = min(len(self.mm), hi - self.base)
        if end > start:
            try:
                self.mm.madvise(advice, start, end - start)
            except (OSError, ValueError):
                pass


def check_mapped(arr: np.ndarray, name: str) -> None:
    """ValueError when `arr` lies in a memory mapping whose file no longer holds all of it (a
    truncated file): reading it would kill the process with SIGBUS."""
    x = arr
    while not isinstance(x, np.memmap):  # the common case, an array that owns its data or views one: a few reads
        x = x.base
        if x is None or not isinstance(x, np.ndarray):
            return
    mapping = Mapping.of(arr)
    if mapping is not None:
        mapping.check(arr, name, f"memory-mapped {mapping.filename or 'file'}")
