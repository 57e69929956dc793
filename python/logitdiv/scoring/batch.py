"""Batch offline consistency scoring: ``ld.score(a, b)``.

Two models (a model and its quantised copy, two runs, teacher and student) wrote logits for the
same rows. `score` reads both in chunks of whole rows (memory bounded by the chunk, whatever the
size of the inputs), computes per-row metrics with the library's own kernels, and summarises them
the way llama.cpp's KL-divergence mode does for quantised models: mean ± standard error, median,
p90, p99, p99.9, max, top-1 agreement, non-finite rows, the worst rows.
"""

from __future__ import annotations

import contextlib
import os

from typing import Any, Callable, Dict, Iterable, NamedTuple, Optional, Tuple, Union

import numpy as np

from .. import _arrays as A
from .progress import make_progress
from .readers import open_source
from .sources import Source
from .metrics import DEFAULT_METRICS, Metric
from .scorer import Scorer, ScoreOptions, to_host
from .tokens import check_tokens
from .sketch import DEFAULT_EXACT_ROWS
from .summary import Summary
from .writers import score_format, streaming_scores

__all__ = ["score", "score_sources", "check_run", "ScoreResult", "CHUNK_BYTES", "default_chunk_rows"]

#: Bytes of each input a chunk holds when `chunk_rows` is not given.
CHUNK_BYTES = 16 * 1024 * 1024


class ScoreResult(NamedTuple):
    """``scores``: metric name → 1-D per-row array (row i = the i-th row in C order over the
    leading axes); ``summary``: the `Summary`. Unpacks as ``scores, summary = ld.score(a, b)``."""

    scores: Optional[Dict[str, np.ndarray]]
    summary: Summary


def default_chunk_rows(classes: int, itemsize: int) -> int:
    """Rows per chunk so that one chunk of one input holds about `CHUNK_BYTES`."""
    return max(1, CHUNK_BYTES // max(1, classes * itemsize))


def _keys(key: Any) -> Tuple[Optional[str], Optional[str]]:
    if key is None or isinstance(key, str):
        return key, key
    if isinstance(key, (tuple, list)) and len(key) == 2 and all(k is None or isinstance(k, str) for k in key):
        return key[0], key[1]
    raise TypeError(f"key must be a name, or a pair (key_a, key_b); got {key!r}")


def check_pair(sa: Source, sb: Source) -> None:
    if (sa.rows, sa.classes) != (sb.rows, sb.classes):
        what = "class counts" if sa.classes != sb.classes else "row counts"
        raise ValueError(
            f"{sa.name} and {sb.name} must hold logits for the same rows and classes; got shapes "
            f"{sa.shape} ({sa.rows} rows × {sa.classes} classes) and {sb.shape} "
            f"({sb.rows} rows × {sb.classes} classes): the {what} differ"
        )


def score(
    a: Any,
    b: Any,
    *,
    metrics: Union[str, Iterable[Union[str, Metric]]] = DEFAULT_METRICS,
    temperature: float = 1.0,
    key: Union[None, str, Tuple[Optional[str], Optional[str]]] = None,
    chunk_rows: Optional[int] = None,
    progress: Union[bool, Callable[[int, int], Any]] = False,
    top_k_worst: int = 10,
    threshold: Optional[float] = None,
    keep_scores: bool = True,
    exact_rows: int = DEFAULT_EXACT_ROWS,
    out: Optional[str] = None,
    tokens: Any = None,
) -> ScoreResult:
    """Scores every row of two logit arrays against each other and summarises the scores.

    Parameters
    ----------
    a, b : array_like, path or open object, shape (..., C)
        The base (reference) and candidate logits: NumPy arrays (any leading axes are rows), paths
        to .npy (memory-mapped), .npz, .safetensors, .parquet or .arrow/.feather files, an
        ``np.load`` NpzFile or memmap, pyarrow Tables/RecordBatches/arrays of fixed-size lists or a
        ParquetFile, or any sliceable array (dask, zarr, h5py). Both must have the same number of
        rows and classes; their dtypes may differ (float16/bfloat16/float32/float64).
    metrics : sequence of str, or a comma-separated str, default ("kl", "sym_kl", "js", "top1")
        Any of "kl" (KL(a‖b), llama.cpp's KLD), "rkl" (KL(b‖a)), "sym_kl", "js", "sigmoid_kl",
        "sigmoid_sym_kl", "top1" (argmax agreement), "topK" for K ≥ 2 (top-K overlap, e.g. "top5").
    temperature : float, default 1.0
        Both inputs are divided by it before the softmax/sigmoid (the top-k metrics ignore it).
    key : str or (str, str), optional
        The array of an .npz, tensor of a .safetensors, column of a Parquet/Arrow input; a pair
        gives one for `a` and one for `b`. Inputs holding a single array ignore it.
    chunk_rows : int, optional
        Rows per chunk; by default about 16 MiB of each input. Results do not depend on it.
    progress : bool or callable, default False
        True shows a progress bar on stderr (tqdm or rich if installed, else a built-in one); a
        callable is called as ``progress(rows_done, rows_total)`` after every chunk.
    top_k_worst : int, default 10
        How many of the worst rows each metric's summary lists.
    threshold : float, optional
        Also count, for each divergence, the rows whose value exceeds it.
    keep_scores : bool, default True
        False keeps no per-row scores (``scores`` is then None): memory stays bounded whatever the
        rows; quantiles are exact up to `exact_rows` finite values per metric, then from a sketch
        with a stated rank-error bound (see `logitdiv.Scorer`).
    exact_rows : int, default 2**22
        See `keep_scores`.
    tokens : array_like of ints or path to a .npy, optional
        The evaluated token of every row (one per row, class indices): adds the token-aware
        statistics, ``summary.tokens`` (`logitdiv.scoring.tokens`: each model's PPL, their ratio and
        correlation, Δp, top-1 = token — llama.cpp's --kl-divergence statistics).
    out : path, optional
        Write the per-row scores there as they are computed (.npy, .csv or .parquet, as
        `logitdiv.scoring.writers.write_scores`), renamed onto the path once complete.

    Returns
    -------
    ScoreResult(scores, summary)
        ``scores[name]`` a 1-D array of per-row values (float64 for float64 logits, float32
        otherwise; agreement metrics float32), ``summary`` a `logitdiv.scoring.summary.Summary`.

    The per-row divergences are the library's own (``ld.kl(a, b)`` etc. on the whole arrays give
    the same values bit for bit); the summary is exact and independent of `chunk_rows` — see
    `logitdiv.scoring.summary` for its definitions (quantiles: NumPy's "linear" method over the finite rows).

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> rng = np.random.default_rng(0)
    >>> a = rng.standard_normal((1000, 50)); b = a + 0.01 * rng.standard_normal(a.shape)
    >>> scores, summary = ld.score(a, b, metrics=("kl", "top1"))
    >>> scores["kl"].shape, summary.rows
    ((1000,), 1000)
    >>> bool(np.array_equal(scores["kl"], ld.kl(a, b)))
    True
    """
    options = ScoreOptions.checked(metrics, temperature, threshold, top_k_worst, keep_scores, exact_rows)
    check_run(chunk_rows, out)
    key_a, key_b = _keys(key)
    sa = open_source(a, key_a, "a")
    try:
        sb = open_source(b, key_b, "b")
        try:
            return score_sources(sa, sb, options, chunk_rows=chunk_rows, progress=progress, out=out, tokens=tokens)
        finally:
            if sb is not b:
                sb.close()
    finally:
        if sa is not a:
            sa.close()


def check_run(chunk_rows: Any, out: Any, *, names: Optional[Dict[str, str]] = None) -> None:
    """The run's own options, checked before any work: `chunk_rows` an int ≥ 1 (or None), `out` a
    path of a score format whose package is installed (or None). `names` as `ScoreOptions.checked`."""
    said = {"chunk_rows": "chunk_rows", **(names or {})}
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
        raise ValueError(f"{said['chunk_rows']} must be an int ≥ 1; got {chunk_rows!r}")
    if out is not None:
        score_format(out)


def open_tokens(tokens: Any, rows: int, name: str = "tokens") -> np.ndarray:
    """Token ids as a 1-D integer array of `rows` entries (a .npy path is memory-mapped; values
    are range-checked per chunk)."""
    if isinstance(tokens, (str, os.PathLike)):
        name = os.fspath(tokens)
        try:
            t = np.load(name, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{name}: cannot read token ids from it as a .npy file: {e}") from None
    else:
        t = np.asarray(to_host(tokens, name))
    if t.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids; got dtype {t.dtype}")
    if t.size != rows:
        raise ValueError(f"{name} must give one token per row: expected {rows}, got {t.size}")
    return t.reshape(-1)


def score_sources(sa: Source, sb: Source, options: ScoreOptions, *, chunk_rows: Optional[int] = None,
                  progress: Any = False, out: Optional[str] = None, tokens: Any = None) -> ScoreResult:
    """Scores two open sources with options checked before (`ScoreOptions.checked`, `check_run`):
    the run behind `score` and the command line."""
    check_pair(sa, sb)
    scorer = Scorer.of(options)
    rows, classes = sa.rows, sa.classes
    if tokens is None and getattr(sa, "tokens", None) is not None:  # a llama.cpp base file carries them
        tokens = sa.tokens
    tok = None if tokens is None else open_tokens(tokens, rows)
    tok_name = os.fspath(tokens) if isinstance(tokens, (str, os.PathLike)) else "tokens"
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(classes, max(sa.dtype.itemsize, sb.dtype.itemsize))
    chunk_rows = int(min(chunk_rows, max(rows, 1)))
    scorer._layout(classes, sa.dtype, sb.dtype)
    scorer._reserve(rows)
    bar = make_progress(progress, rows)
    done = 0
    with contextlib.ExitStack() as stack:
        write = None
        if out is not None:
            write = stack.enter_context(streaming_scores(out, scorer._vdt, rows))
        try:
            for ca, cb in zip(sa.chunks(chunk_rows), sb.chunks(chunk_rows)):
                n = ca.shape[0]
                if cb.shape[0] != n:  # both sources cut at the same rows; anything else is a reader bug
                    raise RuntimeError(f"chunks out of step at row {done}: {n} and {cb.shape[0]} rows")
                t = None if tok is None else check_tokens(tok[done : done + n], n, classes, tok_name)
                views = scorer._add_block(ca, cb, t)
                del ca, cb  # drop the chunks (and unmap file windows) before reading the next
                if write is not None:
                    write(views)
                done += n
                bar.update(done)
        finally:
            bar.close()
        if done != rows:
            raise ValueError(f"{sa.name} and {sb.name} ended after {done} of {rows} rows")
    return ScoreResult(scorer.scores, scorer.summary())
