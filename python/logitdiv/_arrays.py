"""Argument checking and normalisation: every public function turns its inputs into 2-D row views
(rows = all leading axes, columns = classes) that the native core can read without copying."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")
# The storage type the core reads for each accepted dtype, and the dtype of per-row values.
_ELEM = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
# Dtype objects compare and hash faster than names: the small-call path checks these first.
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_NATIVE_FLOATS = frozenset((np.dtype(np.float16), _F32, _F64))
REDUCTIONS = ("none", "sum", "mean", "batchmean")


def _reject_device_array(x: Any, name: str) -> None:
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(
            f"{name} is a GPU array; the CPU core cannot read it. Pass a NumPy array, "
            "or install the CuPy backend (pip install 'logitdiv[cuda]')."
        )


def as_float_array(x: Any, name: str) -> np.ndarray:
    """`x` as a NumPy array of float16, bfloat16, float32 or float64 with at least one axis."""
    if type(x) is np.ndarray:
        arr = x
    else:
        _reject_device_array(x, name)
        try:
            arr = np.asarray(x)
        except Exception as e:  # e.g. a torch tensor that requires grad
            raise TypeError(f"{name} could not be read as an array: {e}") from e
    if not arr.dtype.isnative:
        arr = native_order(arr)
    if arr.dtype not in _NATIVE_FLOATS and arr.dtype.name != "bfloat16":
        raise TypeError(
            f"{name} must hold floating-point logits (float16, bfloat16, float32 or float64); "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the classes); got a 0-d array")
    check_mapped(arr, name)
    return arr


def native_order(arr: np.ndarray) -> np.ndarray:
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


def common_dtype(a: np.ndarray, b: np.ndarray) -> np.dtype:
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


def rows_view(arr: np.ndarray) -> np.ndarray:
    """A 2-D (rows, classes) view with contiguous rows and a non-negative row stride, copying only
    when the layout cannot be expressed that way."""
    cols = arr.shape[-1]
    two_d = arr.reshape(-1, cols) if arr.ndim != 2 else arr
    item = two_d.dtype.itemsize
    if two_d.size == 0:
        # NumPy gives empty arrays zero strides, which the core's layout check rejects; no element
        # is ever read, so regular C strides are safe.
        return np.lib.stride_tricks.as_strided(two_d, strides=(cols * item, item))
    row_stride = two_d.strides[0]
    # Rows may repeat (stride 0, a broadcast row) but not partly overlap (0 < stride < a row, e.g.
    # sliding_window_view), which the core rejects: such views are copied. So are arrays that are
    # not aligned to their element size (np.frombuffer at an odd offset): the core never reads
    # misaligned memory.
    ok = (
        two_d.flags.aligned
        and (cols <= 1 or two_d.strides[1] == item)
        and (two_d.shape[0] <= 1 or (row_stride % item == 0 and (row_stride == 0 or row_stride >= cols * item)))
    )
    return two_d if ok else aligned_copy(two_d)


def aligned_copy(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous, aligned copy (np.ascontiguousarray keeps a misaligned contiguous array as is)."""
    return np.require(arr, requirements=("C", "A"))


def raw(arr: np.ndarray) -> np.ndarray:
    """The array as the core reads it: half-precision types travel as their uint16 bits."""
    return arr.view(np.uint16) if arr.dtype.itemsize == 2 else arr


_ELEM_BY_DTYPE = {np.dtype(np.float16): "f16", _F32: "f32", _F64: "f64"}


def elem_name(dtype: np.dtype) -> str:
    # a dtype lookup first: `dtype.name` is slow for a per-call path
    return _ELEM_BY_DTYPE.get(dtype) or _ELEM[dtype.name]


def broadcast_rows(x: Any, shape: Tuple[int, ...], name: str, dtype: Any) -> np.ndarray:
    """`x` broadcast to the logits' shape as a 2-D row view; a per-class vector keeps row stride 0."""
    arr = np.asarray(x)
    if dtype is bool and arr.dtype != np.bool_:
        raise TypeError(f"{name} must be a boolean array; got dtype {arr.dtype}")
    if dtype is not bool:
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
        arr = arr.astype(dtype, copy=False)
    check_broadcasts(arr.shape, shape, name)
    return rows_view(np.broadcast_to(arr, shape))


def check_int(value: Any, name: str) -> int:
    """An int option (ignore_index, pad): a Python or NumPy integer, not a bool, within int64."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if not -(2**63) <= int(value) < 2**63:
        raise ValueError(f"{name} must fit in int64 (labels are compared as int64); got {value!r}")
    return int(value)


def probability_dtype(dtype: Any, logits_dtype: Any, name: str) -> np.dtype:
    """The type labels of the logits' shape are read in (NumPy and CuPy paths): float32 and float64
    as they are, float16/bfloat16 as float32 (exact), integers and bools as the values' precision."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        return _F64 if np.dtype(logits_dtype) == _F64 else _F32
    if dtype.name in ("float32", "float64"):
        return dtype
    if dtype.name in ("float16", "bfloat16"):
        return _F32
    raise TypeError(f"{name} must hold real numbers; got dtype {dtype}")


def check_broadcasts(x_shape: Tuple[int, ...], shape: Tuple[int, ...], name: str) -> None:
    """ValueError unless an array of `x_shape` broadcasts to the logits' `shape`."""
    try:
        full = np.broadcast_shapes(tuple(x_shape), tuple(shape))
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(x_shape)}, which does not broadcast to the logits' shape {tuple(shape)}")


def where_masks_rows(where_shape: Tuple[int, ...], where_dtype: Any, shape: Tuple[int, ...]) -> bool:
    """The rule of the losses' `where` (NumPy and JAX façades): a boolean array broadcastable to
    the logits; True when it masks rows (a scalar, or a last axis of length 1), False for classes."""
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


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")
    return reduction


def check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_number(value: Any, name: str) -> float:
    """A real option as a float64: an integer beyond float64's range rounds to ±inf (as
    float("1e400") does), which the option's range check then refuses or accepts."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {value!r}"[:200])
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def value_buffer(out: Any, lead_shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(lead_shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array; got {type(out).__name__}")
    if out.shape != lead_shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {lead_shape} and dtype {dtype}; got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")
    _check_aligned(out, "out")
    return out


def _check_aligned(out: np.ndarray, name: str) -> None:
    if not out.flags.aligned:
        raise ValueError(
            f"{name} must be aligned to its element size ({out.dtype.itemsize} bytes); got an array at address "
            f"{out.ctypes.data:#x}, e.g. from np.frombuffer at an odd offset"
        )


def grad_buffer(out: Any, shape: Tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array; got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{name} must have shape {shape} and dtype {dtype}; got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    _check_aligned(out, name)
    return out


def grad_outs(grad_out: Any, n: int) -> Tuple[Any, ...]:
    """`grad_out` as a tuple of `n` buffers (or Nones)."""
    if grad_out is None:
        return (None,) * n
    if n == 1 and isinstance(grad_out, np.ndarray):
        return (grad_out,)
    if not isinstance(grad_out, (tuple, list)) or len(grad_out) != n:
        raise TypeError(f"grad_out must be a tuple of {n} arrays (or None); got {grad_out!r}"[:200])
    return tuple(grad_out)


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
