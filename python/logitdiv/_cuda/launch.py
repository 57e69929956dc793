"""Launch configurations: how many threads work on a row, and how long rows are split.

- Rows of at most ``WARP_COLS`` classes: one warp per row, ``ROW_BLOCK_THREADS // 32`` rows per
  block (group reductions are warp shuffles only).
- Longer rows: one block per row (or per chunk), with enough threads for about
  ``CLASSES_PER_THREAD`` classes each, a power of two in [128, 1024].
- Rows longer than ``SPLIT_COLS`` classes are cut into ``ceil(cols / SPLIT_COLS)`` chunks of equal
  length (the last one shorter), one block each; their partial states merge in a second and third
  launch (see kernels/pairs.cu). Tests lower ``SPLIT_COLS`` to exercise the split path on small rows.

Pure arithmetic, no CuPy: the CPU tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

WARP_COLS = 1024
ROW_BLOCK_THREADS = 256
CLASSES_PER_THREAD = 16
MIN_BLOCK_THREADS = 128
MAX_BLOCK_THREADS = 1024
SPLIT_COLS = 65536
MAX_GRID = 2**31 - 1
ELEMENTWISE_THREADS = 256
ELEMENTWISE_MAX_BLOCKS = 8192


@dataclass(frozen=True)
class Plan:
    """One row kernel's launch: `grid` blocks of `threads` threads."""

    threads: int
    grid: int
    warp_rows: bool  # one warp per row (else one block per row chunk)
    chunks: int      # chunks per row (1: the row is not split)
    chunk_len: int   # classes per chunk (the last chunk may be shorter)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def block_threads(classes: int) -> int:
    """Threads of a block working on `classes` classes of one row."""
    want = _pow2_at_least(_ceil_div(classes, CLASSES_PER_THREAD))
    return min(MAX_BLOCK_THREADS, max(MIN_BLOCK_THREADS, want))


def plan(rows: int, cols: int, *, split_cols: Optional[int] = None, warp_cols: Optional[int] = None) -> Plan:
    """The launch of a row kernel over `rows` rows of `cols` ≥ 1 classes."""
    if rows < 0 or cols < 1:
        raise ValueError(f"a row kernel needs rows ≥ 0 and cols ≥ 1; got rows={rows}, cols={cols}")
    split_cols = SPLIT_COLS if split_cols is None else split_cols
    warp_cols = WARP_COLS if warp_cols is None else warp_cols
    if split_cols < 1:
        raise ValueError(f"split_cols must be ≥ 1; got {split_cols}")
    if cols <= warp_cols and cols <= split_cols:
        per_block = ROW_BLOCK_THREADS // 32
        return Plan(ROW_BLOCK_THREADS, _ceil_div(rows, per_block), True, 1, cols)
    chunks = _ceil_div(cols, split_cols) if cols > split_cols else 1
    chunk_len = _ceil_div(cols, chunks)
    grid = rows * chunks
    if grid > MAX_GRID:
        raise ValueError(f"{rows} rows × {chunks} chunks is more blocks than a CUDA grid holds ({MAX_GRID})")
    return Plan(block_threads(chunk_len), grid, False, chunks, chunk_len)


def reduce_threads(rows: int) -> int:
    """Threads of the one block summing `rows` row values: a power of two in [32, 1024]."""
    return min(MAX_BLOCK_THREADS, max(32, _pow2_at_least(rows)))


def elementwise_grid(n: int) -> int:
    """Blocks of a grid-stride elementwise kernel over n elements (≥ 1)."""
    return max(1, min(ELEMENTWISE_MAX_BLOCKS, _ceil_div(n, ELEMENTWISE_THREADS)))
