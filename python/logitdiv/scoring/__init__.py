"""Consistency scoring: two models' logits for the same rows, compared row by row and summarised.

``ld.score(a, b)`` scores arrays or files in chunks; ``ld.Scorer`` streams batches and merges;
``logitdiv.scoring.dask.score`` scores Dask arrays; ``logitdiv score`` is the command line. The
modules, each one concern, each importing only those above it:

==============  ==========================================================================
module          what it holds
==============  ==========================================================================
``text``        how numbers and tables are written (text report and JSON)
``metrics``     the metrics and their kinds (divergence, agreement); one block's values
``stats``       the streaming, exactly mergeable statistics of per-row values
``sketch``      the mergeable quantile sketch beyond the exact-rows budget
``summary``     the result schema (`Summary`, JSON form) and its text report
``tokens``      the token-aware statistics (each model's PPL, Δp; llama.cpp's)
``sources``     what a source of logits is; regular files only
``llama``       llama.cpp's KL-divergence base file: its layout, read as a source
``readers``     the logit sources: arrays, .npy, .npz, .safetensors, Parquet, Arrow, …
``writers``     the per-row score files (.npy, .csv, .parquet) and llama.cpp base files
``scorer``      `Scorer`: the streaming scorer, and the scoring options' checks
``progress``    progress bars for long runs
``batch``       `score`: the chunked run over two sources
``dask``        `score` over Dask arrays, one task per block
``plot``        the histogram of per-row divergences (matplotlib)
``demo``        the built-in example of ``logitdiv demo``
``cli``         the ``logitdiv`` command line
==============  ==========================================================================
"""

from __future__ import annotations

from .batch import ScoreResult, score
from .metrics import Metric, parse_metrics
from .scorer import Scorer
from .summary import MetricSummary, Summary

__all__ = ["score", "ScoreResult", "Scorer", "Summary", "MetricSummary", "Metric", "parse_metrics"]
