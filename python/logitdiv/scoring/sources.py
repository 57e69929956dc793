"""What a source of logits is (`Source`: rows × classes read in chunks of whole rows), and how a
file is opened for reading (regular files only: a FIFO is refused, never waited on). The readers
(`logitdiv.scoring.readers`, `logitdiv.scoring.llama`) build on it."""

from __future__ import annotations

import os
import stat
from typing import Any, Iterator, Tuple

import numpy as np

__all__ = ["FLOATS", "Source", "open_regular", "file_kind"]

#: The logit dtypes a source may hold.
FLOATS = ("float16", "bfloat16", "float32", "float64")


class Source:
    """Logits as ``rows × classes``, read in chunks of whole rows."""

    def __init__(self, name: str, shape: Tuple[int, ...], dtype: np.dtype, description: str) -> None:
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        if self.dtype.byteorder not in ("=", "|"):  # chunks of another byte order are swapped when read
            self.dtype = self.dtype.newbyteorder("=")
        self.description = description
        if len(self.shape) == 0:
            raise ValueError(f"{name} ({description}) is a scalar; logits need at least one axis (the classes)")
        if self.dtype.name not in FLOATS:
            raise TypeError(
                f"{name} ({description}) holds {self.dtype} values; logits must be float16, bfloat16, float32 or float64"
            )
        self.classes = self.shape[-1]
        rows = 1
        for d in self.shape[:-1]:
            rows *= d
        self.rows = rows
        if self.classes == 0 and self.rows:
            raise ValueError(f"{name} ({description}) has shape {self.shape}: no classes on the last axis")

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        """Yields 2-D (n, classes) arrays of exactly `chunk_rows` rows (the last may be shorter)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.description}, shape {self.shape}, {self.dtype}>"


def open_regular(path: str, name: str) -> Any:
    """`path` opened for reading as a binary file object, refusing anything that is not a regular
    file (a FIFO, a socket, a device): opened without blocking, then checked, so a FIFO with no
    writer never hangs the reader."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{name} ({path}) is {file_kind(st.st_mode)}, not a regular file; logitdiv reads files of logits")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_kind(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"
