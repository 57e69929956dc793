"""llama.cpp's KL-divergence base file (``llama-perplexity --kl-divergence-base FILE``): read it as
the base input of a scoring run, streaming (`KldBaseSource`); `logitdiv.scoring.writers.write_kld_base`
writes one from your own logits.

Layout (little-endian), as llama.cpp's perplexity tool writes it:

    b"_logits_"                    8 bytes, the magic
    n_ctx, n_vocab, n_chunk        int32 each
    tokens                         n_chunk · n_ctx int32: the evaluated text, chunk by chunk
    records                        per chunk, one per scored position j = n_ctx//2 … n_ctx − 2:
                                   nv = 2·((n_vocab + 1)//2) + 4 uint16 values:
                                     float32 scale, float32 min_log_prob (the first 4 uint16),
                                     n_vocab uint16 q_i, padding to an even count

Position j of a chunk holds the model's prediction of the chunk's token j + 1 (the token of that
row). For a row of logits x: M = max x, m = max(min x, M − 16), scale = (M − m) / 65535,
min_log_prob = m − logsumexp(x), q_i = round((x_i − m) / scale) where x_i > m, else 0. The
log-probability is read back as log p_i ≈ scale · q_i + min_log_prob.

The quantisation's effect: log-probabilities within 16 nats of the top one are kept to
±scale/2 ≤ 16/131070 ≈ 1.2e-4 nats (absolute); everything lower is clamped to the floor. As
llama.cpp does, classes read back at or below −16 nats are dropped (probability 0) — all but the
row's evaluated token, kept for its NLL as llama.cpp reads it: the base's distribution loses at
most n_vocab · e^−16 ≈ n_vocab · 1.1e-7 of its mass. Read back here, a row
is softmax(log p) over the kept classes (renormalised, where llama.cpp sums p_i unrenormalised),
so per-row KL against the original logits differs by O(1e-4) nats and the tail mass above.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Iterator, Optional, Tuple

import numpy as np

from .sources import Source, open_regular

__all__ = ["KldBaseSource", "read_kld_header", "quantise_rows", "dequantise_rows", "MAGIC"]

MAGIC = b"_logits_"
_FLOOR = -16.0


def _nv(n_vocab: int) -> int:
    return 2 * ((n_vocab + 1) // 2) + 4


def read_kld_header(f: Any, path: str) -> Tuple[int, int, int, np.ndarray, int]:
    """(n_ctx, n_vocab, n_chunk, tokens, offset of the first record); ValueError naming `path`."""
    magic = f.read(8)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a llama.cpp KL-divergence base file (expected the magic {MAGIC!r}, got {magic!r})")
    head = f.read(12)
    if len(head) != 12:
        raise ValueError(f"{path}: truncated header (expected 12 bytes of n_ctx, n_vocab, n_chunk; got {len(head)})")
    n_ctx, n_vocab, n_chunk = struct.unpack("<iii", head)
    if n_ctx < 2 or n_vocab < 1 or n_chunk < 0:
        raise ValueError(f"{path}: bad header: n_ctx={n_ctx} (expected ≥ 2), n_vocab={n_vocab} (≥ 1), n_chunk={n_chunk} (≥ 0)")
    nt = n_ctx * n_chunk
    raw = f.read(4 * nt)
    if len(raw) != 4 * nt:
        raise ValueError(f"{path}: truncated tokens (expected {nt} int32 tokens, {4 * nt} bytes; got {len(raw)} bytes)")
    tokens = np.frombuffer(raw, dtype="<i4").astype(np.int64)
    return n_ctx, n_vocab, n_chunk, tokens, 20 + 4 * nt


def quantise_rows(logits: np.ndarray) -> np.ndarray:
    """llama.cpp's 16-bit record of each row of float32 logits: (rows, nv) uint16."""
    x = np.asarray(logits, dtype=np.float32)
    n, v = x.shape
    out = np.zeros((n, _nv(v)), dtype=np.uint16)
    mx = x.max(axis=1)
    mn = np.maximum(x.min(axis=1), mx - np.float32(16))
    lse = np.log(np.exp((x - mx[:, None]).astype(np.float64)).sum(axis=1)).astype(np.float32)
    min_log_prob = (mn - mx - lse).astype(np.float32)
    scale = ((mx - mn) / np.float32(65535)).astype(np.float32)
    head = np.empty((n, 2), dtype="<f4")
    head[:, 0], head[:, 1] = scale, min_log_prob
    out[:, :4] = head.view("<u2")
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(x > mn[:, None], np.rint((x - mn[:, None]) * (np.float32(1) / scale)[:, None]), 0)
    q = np.where(scale[:, None] > 0, q, 0)
    out[:, 4 : 4 + v] = np.clip(q, 0, 65535).astype(np.uint16)
    return out


def dequantise_rows(rec: np.ndarray, n_vocab: int, tokens: Optional[np.ndarray] = None) -> np.ndarray:
    """Float32 log-probabilities of records, classes at or below −16 nats set to −inf — except
    each row's evaluated token (`tokens`), whose stored value is kept, as llama.cpp reads it for
    the base NLL (its probability, < 1.2e-7, hardly moves the divergences)."""
    rec = np.ascontiguousarray(rec, dtype="<u2")
    head = rec[:, :4].copy().view("<f4")
    scale, mlp = head[:, 0:1], head[:, 1:2]
    lp = scale * rec[:, 4 : 4 + n_vocab].astype(np.float32) + mlp
    keep = None
    if tokens is not None:
        r = np.arange(lp.shape[0])
        keep = lp[r, tokens].copy()
    lp[lp <= np.float32(_FLOOR)] = -np.inf
    if keep is not None:
        lp[r, tokens] = keep
    return lp


class KldBaseSource(Source):
    """A llama.cpp base file as a `Source` of float32 log-probability rows (streamed: one chunk
    of records in memory at a time); `tokens` holds each row's evaluated token."""

    def __init__(self, path: str, name: str = "base") -> None:
        f = open_regular(path, name)
        try:
            self.n_ctx, n_vocab, self.n_chunk, all_tokens, self._offset = read_kld_header(f, path)
            self._per_chunk = self.n_ctx - 1 - self.n_ctx // 2
            rows = self.n_chunk * self._per_chunk
            self._nv = _nv(n_vocab)
            need = self._offset + 2 * self._nv * rows
            size = os.fstat(f.fileno()).st_size
            if size != need:
                raise ValueError(f"{path}: expected {need} bytes for n_ctx={self.n_ctx}, n_vocab={n_vocab}, "
                                 f"n_chunk={self.n_chunk}; the file has {size}")
            t = all_tokens.reshape(self.n_chunk, self.n_ctx)[:, self.n_ctx // 2 + 1 :]
            self.tokens = np.ascontiguousarray(t).reshape(-1)
            if self.tokens.size and (self.tokens.min() < 0 or self.tokens.max() >= n_vocab):
                raise ValueError(f"{path}: token ids must be in [0, {n_vocab}); got {int(self.tokens.min())}…{int(self.tokens.max())}")
        except BaseException:
            f.close()
            raise
        self._f = f
        self.path = path
        super().__init__(name, (rows, n_vocab), np.dtype(np.float32), "llama.cpp KL-divergence base file")

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        rows, v = self.shape
        for lo in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - lo)
            self._f.seek(self._offset + 2 * self._nv * lo)
            raw = self._f.read(2 * self._nv * n)
            if len(raw) != 2 * self._nv * n:
                raise ValueError(f"{self.path}: truncated at row {lo}")
            yield dequantise_rows(np.frombuffer(raw, dtype="<u2").reshape(n, self._nv), v, self.tokens[lo : lo + n])

    def close(self) -> None:
        self._f.close()
