"""Readers of logit arrays for consistency scoring.

`open_source(x, key=None, name="a")` turns what the user passed into a `Source`: a 2-D view of
``rows × classes`` logits (every leading axis is a row, the last axis holds the classes) that
yields its rows in chunks of whole rows, so the memory a run needs is bounded by the chunk size,
not by the file size:

================================  ===========================================================
input                             how it is read
================================  ===========================================================
NumPy array (any array-like)      views of the array (no copy for C-contiguous rows)
``np.memmap`` / np.load(mmap)     views of the array through its own mapping (what it holds,
                                  copy-on-write changes included); the mapped file's size is
                                  checked before each chunk and a shared map's pages released
                                  after it
``.npy`` path                     a fresh memory-mapped window of the open file per chunk,
                                  unmapped after it (a Fortran-order file: one mapping, read
                                  slab by slab, its pages released after each)
``.npz`` path or ``NpzFile``      the member (``key``, default: the only one) streamed from the
                                  zip archive, stored or deflated (a Fortran-order member: one
                                  pass over it per chunk, gathering the chunk's rows)
``.safetensors`` path             the tensor (``key``) read as memory-mapped windows; F16,
                                  BF16 (needs ml_dtypes), F32, F64. No package needed to read.
``.parquet`` path, ParquetFile    a fixed-size-list column (``key``) streamed in record
                                  batches (needs pyarrow: ``pip install 'logitdiv[arrow]'``)
``.arrow``/``.feather`` path      an Arrow IPC file or stream, batch by batch (needs pyarrow)
pyarrow Table, RecordBatch,       a fixed-size-list column (``key``), chunk by chunk
ChunkedArray, Array
other sliceable arrays            ``x[i:j]`` read slab by slab along the first axis: dask,
(dask, zarr, h5py, torch…)        zarr, h5py arrays and CPU tensors stream without a full load
================================  ===========================================================

Paths are recognised by their extension, else by the file's first bytes; only regular files are
read (a FIFO is refused, never waited on), each opened once. Errors are
`FileNotFoundError`/`OSError` (missing or unreadable file), `KeyError`-free `ValueError` (missing
key, bad shape, null values, a malformed or truncated file) and `TypeError` (not floating-point
logits), each with a one-line message naming the input. Importing this module imports no optional package.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import zipfile
import zlib
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np

from .. import _arrays as A
from .. import _layout as L
from .llama import KldBaseSource
from .sources import FLOATS, Source, open_regular

__all__ = ["open_source", "logits_dtype", "need_pyarrow"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_PARQUET_MAGIC = b"PAR1"
_ARROW_MAGIC = b"ARROW1"

# ---------------------------------------------------------------------------------------------
# sources


def _rechunk(blocks: Iterable[np.ndarray], chunk_rows: int, classes: int, dtype: np.dtype) -> Iterator[np.ndarray]:
    """Re-cuts a stream of (n_i, classes) blocks into blocks of exactly `chunk_rows` rows (views
    where a block already holds enough, a copy where a chunk straddles blocks)."""
    buf: Optional[np.ndarray] = None
    fill = 0
    for blk in blocks:
        pos, n = 0, blk.shape[0]
        while pos < n:
            if fill == 0 and n - pos >= chunk_rows:
                yield blk[pos : pos + chunk_rows]
                pos += chunk_rows
                continue
            if buf is None:
                buf = np.empty((chunk_rows, classes), dtype=dtype)
            take = min(chunk_rows - fill, n - pos)
            buf[fill : fill + take] = blk[pos : pos + take]
            fill += take
            pos += take
            if fill == chunk_rows:
                yield buf
                buf, fill = None, 0
    if buf is not None and fill:
        yield buf[:fill]


class ArraySource(Source):
    """An in-memory NumPy array (views, no copies when rows are contiguous)."""

    def __init__(self, arr: np.ndarray, name: str, description: str = "array") -> None:
        super().__init__(name, arr.shape, arr.dtype, description)
        self._arr = arr

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        arr = self._arr
        if arr.ndim == 2:
            for lo in range(0, self.rows, chunk_rows):
                yield arr[lo : lo + chunk_rows]
            return
        try:
            flat = arr.view()
            flat.shape = (self.rows, self.classes)  # raises when that needs a copy
        except (AttributeError, ValueError):
            yield from _rechunk(_slabs(arr, chunk_rows, self.classes), chunk_rows, self.classes, self.dtype)
            return
        for lo in range(0, self.rows, chunk_rows):
            yield flat[lo : lo + chunk_rows]


def _slabs(x: Any, chunk_rows: int, classes: int, convert: Callable[[Any], np.ndarray] = np.asarray) -> Iterator[np.ndarray]:
    """Reads x[i:j] along the first axis, about `chunk_rows` rows at a time, as 2-D blocks."""
    shape = tuple(x.shape)
    if len(shape) == 1:
        yield convert(x[:]).reshape(1, classes)
        return
    per = 1
    for d in shape[1:-1]:
        per *= int(d)
    step = max(1, chunk_rows // max(per, 1))
    for lo in range(0, int(shape[0]), step):
        blk = convert(x[lo : lo + step])
        yield np.asarray(blk).reshape(-1, classes)


class SliceableSource(Source):
    """Any object with .shape, .dtype and slicing along the first axis (dask, zarr, h5py, torch…)."""

    def __init__(self, x: Any, name: str, description: str) -> None:
        dtype = logits_dtype(x, name)
        super().__init__(name, tuple(x.shape), dtype, description)
        self._x = x

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        if len(self.shape) == 1:
            yield _to_numpy(self._x[:]).reshape(1, self.classes)
            return
        yield from _rechunk(_slabs(self._x, chunk_rows, self.classes, _to_numpy), chunk_rows, self.classes, self.dtype)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):  # a torch tensor
        return A.torch_to_numpy(x)
    return np.asarray(x)


def logits_dtype(x: Any, name: str) -> np.dtype:
    """The NumPy dtype of logits held in any array type (NumPy, torch, ...): float16, bfloat16,
    float32 or float64, or a TypeError naming `name`."""
    dt = getattr(x, "dtype", None)
    s = str(dt)
    if s.startswith("torch."):
        s = s[len("torch."):]
    if s == "bfloat16":
        try:
            import ml_dtypes  # noqa: F401
        except ImportError:
            raise TypeError(f"{name} holds bfloat16 values; reading them needs ml_dtypes (pip install ml_dtypes)") from None
        return np.dtype("bfloat16")
    try:
        out = np.dtype(s if s in FLOATS else dt)
    except TypeError:
        out = None
    if out is None or out.name not in FLOATS:
        raise TypeError(f"{name} has dtype {dt}; logits must be float16, bfloat16, float32 or float64")
    return out


class MemmapFileSource(Source):
    """Rows stored C-contiguously in a file at a byte offset: a fresh memory-mapped window per
    chunk, unmapped once the chunk is dropped, so resident memory stays at about one chunk. The
    file is opened once (windows of that open file, so a file replaced under its name is not
    mixed in), and its size is checked before every window (a file truncated meanwhile is a
    ValueError, never SIGBUS)."""

    def __init__(self, file: Any, offset: int, shape: Tuple[int, ...], dtype: np.dtype, name: str, description: str,
                 owns: bool = True) -> None:
        stored = np.dtype(dtype)
        super().__init__(name, shape, stored.newbyteorder("="), description)
        self.stored = stored  # a non-native byte order is swapped chunk by chunk
        self._file, self._owns = file, owns
        self.path = getattr(file, "name", description)
        self.offset = int(offset)
        self._check_size(self.offset + self.rows * self.classes * self.dtype.itemsize)

    def _check_size(self, need: int) -> None:
        L.check_covers(os.fstat(self._file.fileno()).st_size, need, self.name, self.description, self.shape)

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        row_bytes = self.classes * self.dtype.itemsize
        for lo in range(0, self.rows, chunk_rows):
            n = min(chunk_rows, self.rows - lo)
            if n * row_bytes == 0:
                yield np.empty((n, self.classes), self.dtype)
                continue
            start = self.offset + lo * row_bytes
            self._check_size(start + n * row_bytes)
            window = np.memmap(self._file, dtype=self.stored, mode="r", offset=start, shape=(n, self.classes))
            yield window if self.stored.isnative else window.astype(self.dtype)
            del window

    def close(self) -> None:
        if self._owns:
            self._file.close()


class MappedArraySource(ArraySource):
    """An array that lives in a memory mapping (an ``np.memmap``, a view of one, a Fortran-order
    .npy file): read through that mapping — what the array holds, including changes made to a
    copy-on-write map and whatever file now has its name — with the mapped file's size checked
    before every chunk, so a file truncated after mapping is a ValueError, not SIGBUS. The pages
    of a shared mapping ("r", "r+") are released after each chunk, so resident memory stays at
    about one chunk; a copy-on-write mapping ("c") keeps them (they may hold the only copy of
    changed values)."""

    def __init__(self, arr: np.ndarray, mapping: "L.Mapping", name: str, description: str) -> None:
        super().__init__(arr, name, description)
        self._mapping = mapping
        if mapping is not None:
            mapping.check(arr, name, description)

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        mapping = self._mapping
        if mapping is None:
            yield from super().chunks(chunk_rows)
            return
        it = super().chunks(chunk_rows)
        while True:
            # before each chunk is read: a view is read after it is yielded, a slab gathered from
            # rows that are not contiguous (a copy) while it is made
            mapping.check(self._arr, self.name, self.description)
            try:
                chunk = next(it)
            except StopIteration:
                return
            yield chunk
            mapping.release(chunk if mapping.holds(chunk) else self._arr)


# -- .npy ---------------------------------------------------------------------------------------


def _read_npy_header(fp: Any, name: str, description: str) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported format version {version}")
    except (OSError, *_ZIP_ERRORS):  # the file itself cannot be read: the caller names it
        raise
    except Exception as e:  # whatever NumPy's header parser raises on a damaged header (TokenError, …)
        raise ValueError(f"{name} ({description}) is not a valid .npy array: {' '.join(str(e).split()) or type(e).__name__}") from None
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"{name} ({description}) is not a valid .npy array: its header gives shape {shape!r}; dimensions must be integers ≥ 0")
    if dtype.hasobject:
        raise TypeError(f"{name} ({description}) holds Python objects; logits must be float16, float32 or float64")
    return tuple(shape), bool(fortran), dtype


def _npy_source(f: Any, path: str, name: str) -> Source:
    """A .npy file already open as `f` (the source owns it)."""
    f.seek(0)
    shape, fortran, dtype = _read_npy_header(f, name, path)
    offset = f.tell()
    if fortran and len(shape) > 1:
        # Rows are not contiguous in a Fortran-order file: read through one mapping of the file,
        # its size checked before every chunk and its pages released after each.
        count = 1
        for d in shape:
            count *= d
        L.check_covers(os.fstat(f.fileno()).st_size, offset + count * dtype.itemsize, name, path, shape)
        if count == 0:
            f.close()
            return ArraySource(np.empty(shape, dtype.newbyteorder("=")), name, f"{path} (Fortran order)")
        try:
            mm = np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape, order="F")
        finally:
            f.close()  # the mapping keeps its own descriptor
        return MappedArraySource(mm, L.Mapping.of(mm), name, f"{path} (Fortran order)")
    return MemmapFileSource(f, offset, shape, dtype, name, path)


def _memmap_source(arr: np.memmap, name: str) -> Source:
    """An np.memmap (e.g. from np.load(..., mmap_mode="r")) or a view of one: read through its own
    mapping — what the array holds, never its file reopened by name — with the file's size
    checked before every chunk."""
    mapping = L.Mapping.of(arr)
    description = f"memory-mapped {getattr(arr, 'filename', None) or 'array'}"
    if mapping is None:
        return ArraySource(np.asarray(arr), name, "memory-mapped array")
    return MappedArraySource(np.asarray(arr), mapping, name, description)


# -- .npz ---------------------------------------------------------------------------------------


def _member_name(names: Sequence[str], key: Optional[str], name: str, description: str) -> str:
    arrays = [n[:-4] if n.endswith(".npy") else n for n in names]
    if key is None:
        if len(arrays) == 1:
            return names[0]
        raise ValueError(f"{name} ({description}) holds {len(arrays)} arrays ({_listing(arrays)}); choose one with key=/--key")
    for n, a in zip(names, arrays):
        if key in (n, a):
            return n
    raise ValueError(f"{name} ({description}) has no array {key!r}; it holds {_listing(arrays)}")


def _listing(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


# What a damaged or unsupported zip member raises while it is read; each becomes a ValueError
# naming the archive and the member.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


class NpzMemberSource(Source):
    """A .npy member of a zip archive, streamed: stored and deflated members alike. A member in
    Fortran order (rows not contiguous) is streamed once per chunk, gathering that chunk's rows:
    memory stays bounded by the chunk, at the cost of decompressing the member once per chunk."""

    def __init__(self, zf: zipfile.ZipFile, member: str, name: str, description: str, owns: bool, file: Any = None) -> None:
        self._zf, self._member, self._owns, self._file = zf, member, owns, file
        self.name, self.description = name, description
        with self._open() as fp:
            try:
                shape, fortran, dtype = _read_npy_header(fp, name, description)
            except _ZIP_ERRORS as e:
                raise self._damaged(e) from None
            self._data_start = fp.tell()
        super().__init__(name, shape, dtype.newbyteorder("="), description)
        self._stored = dtype
        self._fortran = fortran and len(shape) > 1

    def _open(self) -> Any:
        try:
            return self._zf.open(self._member)
        except _ZIP_ERRORS as e:
            raise self._damaged(e) from None

    def _damaged(self, e: BaseException) -> ValueError:
        return ValueError(f"{self.name} ({self.description}) cannot be read from the archive: {' '.join(str(e).split()) or type(e).__name__}")

    def _read_exactly(self, fp: Any, nbytes: int, rows_done: int) -> bytearray:
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            try:
                k = fp.readinto(view[got:])
            except _ZIP_ERRORS as e:
                raise self._damaged(e) from None
            if not k:
                row_bytes = self.classes * self.dtype.itemsize
                raise ValueError(f"{self.name} ({self.description}) ends after {rows_done + got // max(row_bytes, 1)} rows of {self.rows}")
            got += k
        return buf

    def _skip(self, fp: Any, nbytes: int) -> None:
        step = 1 << 20
        while nbytes > 0:
            n = min(step, nbytes)
            self._read_exactly(fp, n, 0)
            nbytes -= n

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        if self._fortran:
            yield from self._fortran_chunks(chunk_rows)
            return
        row_bytes = self.classes * self.dtype.itemsize
        with self._open() as fp:
            self._skip(fp, self._data_start)
            for lo in range(0, self.rows, chunk_rows):
                n = min(chunk_rows, self.rows - lo)
                buf = self._read_exactly(fp, n * row_bytes, lo)
                chunk = np.frombuffer(buf, dtype=self._stored).reshape(n, self.classes)
                yield chunk if self._stored.isnative else chunk.astype(self.dtype)

    def _fortran_chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        """Fortran order stores class 0 of every row, then class 1, …; the leading axes within a
        class in Fortran order too. Each chunk is one pass over the member, gathering its rows'
        elements class by class, a bounded piece at a time."""
        lead = self.shape[:-1]
        item = self.dtype.itemsize
        piece = max(1, (4 << 20) // item)  # elements decompressed at a time
        for lo in range(0, self.rows, chunk_rows):
            n = min(chunk_rows, self.rows - lo)
            # where each row of the chunk (C order over the leading axes) sits within a class block
            pos = np.ravel_multi_index(np.unravel_index(np.arange(lo, lo + n), lead), lead, order="F")
            order = np.argsort(pos, kind="stable")
            sorted_pos = pos[order]
            out = np.empty((n, self.classes), dtype=self.dtype)
            with self._open() as fp:
                self._skip(fp, self._data_start)
                for c in range(self.classes):
                    done = 0
                    while done < self.rows:
                        k = min(piece, self.rows - done)
                        block = np.frombuffer(self._read_exactly(fp, k * item, 0), dtype=self._stored)
                        a, b = np.searchsorted(sorted_pos, [done, done + k])
                        if b > a:
                            out[order[a:b], c] = block[sorted_pos[a:b] - done]
                        done += k
            yield out

    def close(self) -> None:
        if self._owns:
            self._zf.close()
            if self._file is not None:
                self._file.close()


def _npz_source(zf_or_path: Any, key: Optional[str], name: str, file: Any = None) -> Source:
    if file is not None:
        path = os.fspath(zf_or_path)
        try:
            file.seek(0)
            zf = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, *_ZIP_ERRORS, ValueError) as e:
            file.close()
            raise ValueError(f"{name} ({path}) is not a readable .npz archive: {e}") from None
        owns = True
    else:  # np.lib.npyio.NpzFile
        zf = zf_or_path.zip
        path = getattr(zf_or_path, "fid", None)
        path = getattr(path, "name", None) or "npz archive"
        owns = False
    try:
        member = _member_name(zf.namelist(), key, name, path)
        description = f"{path}[{member[:-4] if member.endswith('.npy') else member}]"
        return NpzMemberSource(zf, member, name, description, owns, file)
    except BaseException:
        if owns:
            zf.close()
            file.close()
        raise


# -- .safetensors -------------------------------------------------------------------------------

_ST_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


# Bytes per element of every safetensors dtype (to check each tensor's offsets against its shape).
_ST_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
             "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def _safetensors_header(f: Any, path: str, name: str) -> Tuple[dict, int]:
    """The validated header of a safetensors file and the byte where its data section starts:
    every tensor entry an object with a dtype, a shape of integers ≥ 0 and two data offsets
    within the data section, its bytes matching dtype × shape, no two tensors overlapping."""

    def bad(what: str) -> ValueError:
        return ValueError(f"{name} ({path}) is not a valid safetensors file: {what}")

    head = f.read(8)
    if len(head) < 8:
        raise bad("too short")
    (n,) = struct.unpack("<Q", head)
    size = os.fstat(f.fileno()).st_size
    if n > size - 8 or n > 100 * 1024 * 1024:
        raise bad(f"header length {n} does not fit the file of {size} bytes")
    try:
        header = json.loads(f.read(n))
    except (ValueError, RecursionError) as e:
        raise bad(f"the header is not JSON ({' '.join(str(e).split())})") from None
    if not isinstance(header, dict):
        raise bad(f"the header is a JSON {type(header).__name__}, not an object")
    data_size = size - 8 - n
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"the entry of tensor {key!r} is a JSON {type(info).__name__}, not an object")
        dt, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dt, str):
            raise bad(f"tensor {key!r} has no dtype (got {dt!r})")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise bad(f"tensor {key!r} has shape {shape!r}; a shape is a list of integers ≥ 0")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise bad(f"tensor {key!r} has data_offsets {offsets!r}; they must be two integers [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise bad(f"tensor {key!r} has data_offsets [{begin}, {end}], outside the data section of {data_size} bytes")
        if dt in _ST_SIZES:
            count = 1
            for d in shape:
                count *= d
            if end - begin != count * _ST_SIZES[dt]:
                raise bad(f"tensor {key!r} ({dt}, shape {tuple(shape)}) needs {count * _ST_SIZES[dt]} bytes; its data_offsets [{begin}, {end}] hold {end - begin}")
        spans.append((begin, end, key))
    spans.sort()
    for (b0, e0, k0), (b1, e1, k1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise bad(f"tensors {k0!r} [{b0}, {e0}] and {k1!r} [{b1}, {e1}] overlap")
    return header, 8 + n


def _safetensors_source(f: Any, path: str, key: Optional[str], name: str) -> Source:
    """A tensor of a safetensors file already open as `f` (the source owns it)."""
    f.seek(0)
    header, data_start = _safetensors_header(f, path, name)
    tensors = [k for k in header if k != "__metadata__"]
    if key is None:
        if len(tensors) != 1:
            raise ValueError(f"{name} ({path}) holds {len(tensors)} tensors ({_listing(tensors)}); choose one with key=/--key")
        key = tensors[0]
    elif key not in tensors:
        raise ValueError(f"{name} ({path}) has no tensor {key!r}; it holds {_listing(tensors)}")
    info = header[key]
    st_dtype = info["dtype"]
    if st_dtype not in _ST_DTYPES:
        raise TypeError(f"{name} ({path}[{key}]) holds {st_dtype} values; logits must be F16, BF16, F32 or F64")
    dtype_name = _ST_DTYPES[st_dtype]
    if dtype_name == "bfloat16":
        try:
            import ml_dtypes  # noqa: F401  (registers np.dtype("bfloat16"))
        except ImportError:
            raise TypeError(f"{name} ({path}[{key}]) holds BF16 values; reading them needs ml_dtypes (pip install ml_dtypes)") from None
    dtype = np.dtype(dtype_name).newbyteorder("<")
    shape = tuple(info["shape"])
    begin = info["data_offsets"][0]
    return MemmapFileSource(f, data_start + begin, shape, dtype, name, f"{path}[{key}]")


# -- Arrow / Parquet ----------------------------------------------------------------------------


def need_pyarrow(what: str) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError(f"{what} needs pyarrow: pip install 'logitdiv[arrow]'") from None
    return pyarrow


def _fsl_type(pa: Any, typ: Any, name: str, description: str) -> Tuple[int, np.dtype]:
    if not pa.types.is_fixed_size_list(typ):
        raise TypeError(
            f"{name} ({description}) has type {typ}; logits must be a fixed_size_list<float> column "
            "(pyarrow.FixedSizeListArray, one list of C classes per row)"
        )
    vt = typ.value_type
    if not pa.types.is_floating(vt):
        raise TypeError(f"{name} ({description}) holds lists of {vt}; logits must be float16, float32 or float64")
    return int(typ.list_size), np.dtype(vt.to_pandas_dtype())


def _fsl_to_numpy(arr: Any, classes: int, name: str, description: str) -> np.ndarray:
    """A FixedSizeListArray (or a ChunkedArray of them) as a (rows, classes) NumPy array."""
    if type(arr).__name__ == "ChunkedArray":
        parts = [_fsl_to_numpy(c, classes, name, description) for c in arr.chunks]
        return np.concatenate(parts) if parts else np.empty((0, classes))
    if arr.null_count:
        raise ValueError(f"{name} ({description}) has {arr.null_count} null rows; every row needs its logits")
    values = arr.flatten()
    if values.null_count:
        raise ValueError(f"{name} ({description}) has {values.null_count} null logits")
    return values.to_numpy(zero_copy_only=False).reshape(len(arr), classes)


def _pick_column(names: Sequence[str], key: Optional[str], name: str, description: str) -> str:
    if key is None:
        if len(names) == 1:
            return names[0]
        raise ValueError(f"{name} ({description}) has {len(names)} columns ({_listing(list(names))}); choose one with key=/--key")
    if key not in names:
        raise ValueError(f"{name} ({description}) has no column {key!r}; it has {_listing(list(names))}")
    return key


class ArrowArraySource(Source):
    """An in-memory pyarrow fixed-size-list array (Array or ChunkedArray), chunk by chunk."""

    def __init__(self, arr: Any, name: str, description: str) -> None:
        pa = need_pyarrow("reading Arrow data")
        classes, dtype = _fsl_type(pa, arr.type, name, description)
        super().__init__(name, (len(arr), classes), dtype, description)
        self._arr = arr

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        pieces = self._arr.chunks if type(self._arr).__name__ == "ChunkedArray" else [self._arr]

        def blocks() -> Iterator[np.ndarray]:
            for piece in pieces:
                for lo in range(0, len(piece), chunk_rows):
                    yield _fsl_to_numpy(piece.slice(lo, chunk_rows), self.classes, self.name, self.description)

        yield from _rechunk(blocks(), chunk_rows, self.classes, self.dtype)


class ParquetSource(Source):
    """A fixed-size-list column of a Parquet file, streamed in record batches."""

    def __init__(self, pf: Any, key: Optional[str], name: str, description: str, owns: bool) -> None:
        pa = need_pyarrow("reading Parquet files")
        schema = pf.schema_arrow
        col = _pick_column(schema.names, key, name, description)
        classes, dtype = _fsl_type(pa, schema.field(col).type, name, f"{description}[{col}]")
        super().__init__(name, (pf.metadata.num_rows, classes), dtype, f"{description}[{col}]")
        self._pf, self._col, self._owns = pf, col, owns

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        def blocks() -> Iterator[np.ndarray]:
            for batch in self._pf.iter_batches(batch_size=chunk_rows, columns=[self._col]):
                yield _fsl_to_numpy(batch.column(0), self.classes, self.name, self.description)

        yield from _rechunk(blocks(), chunk_rows, self.classes, self.dtype)

    def close(self) -> None:
        if self._owns:
            self._pf.close()


class ArrowIpcSource(Source):
    """A fixed-size-list column of an Arrow IPC file (Feather v2) or stream, batch by batch."""

    def __init__(self, path: str, key: Optional[str], name: str) -> None:
        pa = need_pyarrow("reading Arrow IPC files")
        import pyarrow.ipc as ipc

        self._path = path
        try:
            with pa.memory_map(path, "r") as src:  # rows from the metadata only
                reader = ipc.open_file(src)
                schema = reader.schema
                rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            self._stream = False
        except pa.ArrowInvalid:
            try:
                with pa.OSFile(path, "rb") as src:
                    reader = ipc.open_stream(src)
                    schema = reader.schema
                    rows = sum(b.num_rows for b in reader)  # a first pass over the stream
            except pa.ArrowInvalid as e:
                raise ValueError(f"{name} ({path}) is not an Arrow IPC file or stream: {e}") from None
            self._stream = True
        col = _pick_column(schema.names, key, name, path)
        classes, dtype = _fsl_type(pa, schema.field(col).type, name, f"{path}[{col}]")
        super().__init__(name, (rows, classes), dtype, f"{path}[{col}]")
        self._col_index = schema.get_field_index(col)

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        def blocks() -> Iterator[np.ndarray]:
            with pa.OSFile(self._path, "rb") as src:  # read, not mapped: memory stays per batch
                if self._stream:
                    batches: Iterable[Any] = ipc.open_stream(src)
                else:
                    reader = ipc.open_file(src)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                for batch in batches:
                    col = batch.column(self._col_index)
                    for lo in range(0, len(col), chunk_rows):
                        yield _fsl_to_numpy(col.slice(lo, chunk_rows), self.classes, self.name, self.description)

        yield from _rechunk(blocks(), chunk_rows, self.classes, self.dtype)


def _arrow_object_source(x: Any, key: Optional[str], name: str) -> Source:
    pa = need_pyarrow("reading Arrow data")
    tname = type(x).__name__
    if tname == "ParquetFile":
        return ParquetSource(x, key, name, "Parquet file", owns=False)
    if isinstance(x, (pa.Table, pa.RecordBatch)):
        col = _pick_column(x.schema.names, key, name, f"Arrow {tname}")
        return ArrowArraySource(x.column(col), name, f"Arrow {tname}[{col}]")
    if isinstance(x, (pa.Array, pa.ChunkedArray)):
        return ArrowArraySource(x, name, f"Arrow {tname}")
    raise TypeError(f"{name} is a pyarrow {tname}; pass a Table, RecordBatch, (Chunked)Array of fixed-size lists, or a ParquetFile")


# ---------------------------------------------------------------------------------------------
# dispatch

_EXTENSIONS = {
    ".npy": "npy",
    ".npz": "npz",
    ".safetensors": "safetensors",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrow",
}


def _sniff(f: Any, path: str, name: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if ext == ".kld":
        return "kld"
    head = f.read(16)
    if head.startswith(b"_logits_"):
        return "kld"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if head.startswith(_ARROW_MAGIC) or head[:4] == b"\xff\xff\xff\xff":
        return "arrow"
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors"
    raise ValueError(
        f"{name} ({path}): unknown file format; logitdiv reads .npy, .npz, .safetensors, .parquet and .arrow/.feather"
    )


def _path_source(path: str, key: Optional[str], name: str) -> Source:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name}: no such file: {path}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path} is a directory, not a file of logits")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{name}: cannot read {path}: permission denied")
    f = open_regular(path, name)  # opened once: a FIFO is refused, never waited on
    try:
        kind = _sniff(f, path, name)
        if kind == "kld":
            f.close()
            return KldBaseSource(path, name)
        if kind == "npy":
            return _npy_source(f, path, name)
        if kind == "npz":
            return _npz_source(path, key, name, file=f)
        if kind == "safetensors":
            return _safetensors_source(f, path, key, name)
    except BaseException:
        f.close()
        raise
    f.close()  # pyarrow opens Parquet and Arrow files itself
    if kind == "parquet":
        need_pyarrow("reading Parquet files")
        import pyarrow.parquet as pq
        import pyarrow as pa

        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{name} ({path}) is not a readable Parquet file: {e}") from None
        try:
            return ParquetSource(pf, key, name, path, owns=True)
        except BaseException:
            pf.close()
            raise
    return ArrowIpcSource(path, key, name)


def open_source(x: Any, key: Optional[str] = None, name: str = "a") -> Source:
    """A `Source` for logits given as an array, a path, or an open file object (see the module
    docstring). `key` picks the array of an .npz, the tensor of a .safetensors, the column of a
    Parquet/Arrow input; it is ignored by inputs that hold a single array. `name` labels errors."""
    if isinstance(x, Source):
        return x
    if isinstance(x, (str, os.PathLike)):
        return _path_source(os.fspath(x), key, name)
    if isinstance(x, np.memmap):
        return _memmap_source(x, name)
    if isinstance(x, np.ndarray):
        return ArraySource(x, name)
    if type(x).__name__ == "NpzFile" and hasattr(x, "zip"):
        return _npz_source(x, key, name)
    module = type(x).__module__ or ""
    if module.split(".")[0] == "pyarrow":
        return _arrow_object_source(x, key, name)
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a GPU array; score on the CPU with a NumPy array (or copy it to the host)")
    if hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "__getitem__"):
        return SliceableSource(x, name, type(x).__name__)
    try:
        arr = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{name} could not be read as an array of logits: {e}") from None
    return ArraySource(arr, name)
