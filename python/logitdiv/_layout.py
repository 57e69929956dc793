"""Where the arrays of a call live and how the core and the kernels read them: the *sides* (the
array module of a call: `HOST`, NumPy's, here; logitdiv.cuda's device), the byte order, 2-D row
views without copies, and the checks of memory-mapped files (whose truncation would kill the process
with SIGBUS). The argument rules that use them are `_arrays`'; this module imports no other of the
package's."""

from __future__ import annotations

from typing import Any, Optional, Protocol, Tuple

import numpy as np


# ---------------------------------------------------------------------------------------------
# the sides: NumPy here, CuPy (or the tests' emulator) in logitdiv.cuda


class Side(Protocol):
    """The array module of a call, as the rules of `_arrays` use it (the interface of
    `logitdiv._cuda.device.CupyDevice`)."""

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


def native_order(arr: Any) -> Any:
    """`arr` in the machine's byte order: a byte-swapped copy of a big-endian array on a
    little-endian machine (e.g. ``np.load`` of a ``>f8`` file), the array itself otherwise."""
    if arr.dtype.isnative:
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


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
