"""Writers of per-row scores (.npy as a structured array, .csv and .parquet, streamed block by
block) and of llama.cpp's KL-divergence base file (`write_kld_base`): each file is written beside
its path and renamed onto it once complete (never half written, never over a file it was not
asked to replace)."""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
from typing import Any, Callable, Iterator, Tuple

import numpy as np

from .llama import MAGIC, quantise_rows
from .readers import need_pyarrow, open_source

__all__ = ["SCORE_FORMATS", "score_format", "replacing", "streaming_scores", "write_scores", "write_kld_base"]

SCORE_FORMATS = (".npy", ".csv", ".parquet")


def score_format(path: str) -> str:
    """The format named by `path`'s extension; ValueError for an unknown one, ImportError when its
    package is missing."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in SCORE_FORMATS:
        raise ValueError(f"cannot write scores to {path!r}: the extension must be one of {', '.join(SCORE_FORMATS)}")
    if ext == ".parquet":
        need_pyarrow("writing Parquet")
    return ext


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path`; when the block succeeds, the file written there is
    renamed onto `path` (atomically), else removed: an output is never left half written, and a
    file of that name is replaced only by a complete one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:  # created as a new file would be (mode 0666 less the umask), never over another
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover
        raise FileExistsError(f"cannot create a temporary file beside {path}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _csv_value(v: float) -> str:
    return repr(v) if np.isfinite(v) else ("nan" if np.isnan(v) else ("inf" if v > 0 else "-inf"))


@contextlib.contextmanager
def streaming_scores(path: str, dtypes: "dict[str, np.dtype]", rows: int) -> Iterator[Callable[["dict[str, np.ndarray]"], None]]:
    """Yields ``write(block)``, which appends a block of per-row scores (metric → 1-D array, the
    metrics and dtypes of `dtypes`) to `path`, in the format of its extension (see
    `write_scores`). The .npy header states the final row count, `rows`, up front; the file is
    written beside `path` and renamed onto it when the block exits normally having received
    exactly `rows` rows (else removed). Memory: one block."""
    ext = score_format(path)
    names = list(dtypes)
    rec_dtype = np.dtype([(n, np.dtype(dtypes[n])) for n in names])
    done = [0]
    with replacing(path) as tmp:
        writer = None
        with open(tmp, "wb") as f:
            if ext == ".npy":
                np.lib.format.write_array_header_1_0(
                    f, {"descr": np.lib.format.dtype_to_descr(rec_dtype), "fortran_order": False, "shape": (int(rows),)})
            elif ext == ".csv":
                f.write((",".join(["row"] + names) + "\n").encode("utf-8"))
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = pa.schema([("row", pa.int64())] + [(n, pa.from_numpy_dtype(np.dtype(dtypes[n]))) for n in names])
                writer = pq.ParquetWriter(f, schema)

            def write(block: "dict[str, np.ndarray]") -> None:
                cols = [np.asarray(block[n]).reshape(-1) for n in names]
                n = cols[0].size if cols else 0
                lo = done[0]
                if lo + n > rows:
                    raise ValueError(f"{path}: more than the {rows} rows announced")
                if ext == ".npy":
                    rec = np.empty(n, dtype=rec_dtype)
                    for name, c in zip(names, cols):
                        rec[name] = c
                    f.write(rec.tobytes())
                elif ext == ".csv":
                    step = 65536
                    for s in range(0, n, step):
                        block2 = np.column_stack([c[s : s + step].astype(np.float64) for c in cols])
                        idx = range(lo + s, lo + min(s + step, n))
                        lines = [",".join([str(i)] + [_csv_value(v) for v in r]) for i, r in zip(idx, block2.tolist())]
                        f.write(("\n".join(lines) + "\n").encode("utf-8"))
                else:
                    import pyarrow as pa

                    writer.write_table(pa.table({"row": pa.array(np.arange(lo, lo + n, dtype=np.int64)),
                                                 **{name: pa.array(c) for name, c in zip(names, cols)}}))
                done[0] = lo + n

            try:
                yield write
            finally:
                if writer is not None:
                    writer.close()
        if done[0] != rows:
            raise ValueError(f"{path}: {done[0]} rows written of the {rows} announced")


def write_scores(path: str, scores: "dict[str, np.ndarray]") -> str:
    """Writes per-row scores: ``.npy`` a structured array with one field per metric (row i is
    element i); ``.csv`` a header ``row,<metric>,…`` then one line per row (values printed with
    17 significant digits, round-trip exact); ``.parquet`` an int64 ``row`` column and one column
    per metric. The file is written beside `path` and renamed onto it once complete, and is
    written at `path` exactly (no extension added). Returns the format's extension. (One block of
    `streaming_scores`.)"""
    ext = score_format(path)
    cols = {n: np.asarray(c).reshape(-1) for n, c in scores.items()}
    rows = next(iter(cols.values())).size if cols else 0
    with streaming_scores(path, {n: c.dtype for n, c in cols.items()}, rows) as write:
        if rows:
            write(cols)
    return ext


def write_kld_base(path: str, logits: Any, tokens: Any, n_ctx: int, *, chunk_rows: int = 4096) -> Tuple[int, int]:
    """Writes a llama.cpp base file from `tokens` (n_chunk · n_ctx ids, the evaluated text in
    chunks of n_ctx) and `logits` (float rows, n_vocab classes): either one row per token
    (n_chunk · n_ctx rows; the scored positions n_ctx//2 … n_ctx − 2 of each chunk are taken) or
    one per scored position (n_chunk · (n_ctx − 1 − n_ctx//2) rows). Streams: `logits` may be a
    memory-mapped .npy. Returns (n_chunk, rows written)."""
    t = np.asarray(tokens).reshape(-1)
    if t.dtype.kind not in "iu":
        raise ValueError(f"tokens must hold integer ids; got dtype {t.dtype}")
    if isinstance(n_ctx, bool) or not isinstance(n_ctx, (int, np.integer)) or n_ctx < 2:
        raise ValueError(f"n_ctx must be an int ≥ 2; got {n_ctx!r}")
    if t.size % n_ctx:
        raise ValueError(f"tokens must be whole chunks of n_ctx={n_ctx}; got {t.size} tokens")
    n_chunk = t.size // n_ctx
    first = n_ctx // 2
    per = n_ctx - 1 - first
    src = open_source(logits, None, "logits")
    try:
        rows, v = src.rows, src.classes
        if rows == n_chunk * n_ctx:
            every = True
        elif rows == n_chunk * per:
            every = False
        else:
            raise ValueError(f"logits must have one row per token ({n_chunk * n_ctx}) or per scored position "
                             f"({n_chunk * per}) for {n_chunk} chunks of n_ctx={n_ctx}; got {rows} rows")
        if t.size and (t.min() < 0 or t.max() >= v):
            raise ValueError(f"tokens must be class indices in [0, {v}); got {int(t.min())}…{int(t.max())}")
        step = n_ctx if every else max(per, 1)
        with replacing(path) as tmp, open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<iii", n_ctx, v, n_chunk))
            f.write(t.astype("<i4").tobytes())
            for blk in src.chunks(step if every else max(1, (chunk_rows // step) * step)):
                blk = np.asarray(blk, dtype=np.float32)
                if every:
                    blk = blk.reshape(-1, n_ctx, v)[:, first : n_ctx - 1].reshape(-1, v)
                f.write(quantise_rows(blk).astype("<u2").tobytes())
    finally:
        if src is not logits:
            src.close()
    return n_chunk, n_chunk * per
