"""logitdiv: divergences and losses straight from logits, with their gradients, in Rust.

>>> import numpy as np, logitdiv as ld
>>> s, t = np.array([[2.0, 1.0, 0.1]]), np.array([[2.0, 1.1, 0.0]])
>>> v, gs, gt = ld.kl(s, t, grad=True)
>>> v.shape, gs.shape
((1,), (1, 3))
"""

from __future__ import annotations

import numpy as np

from . import _native
from .divergences import gp_kl, js, kl, sigmoid_kl, sigmoid_sym_kl, sym_kl, tv
from .scoring import Scorer, ScoreResult, Summary, score
from .losses import (
    bce,
    gamma_ce,
    globalpointer_ce,
    kd_loss,
    multilabel_ce,
    rdrop_loss,
    softmax_ce,
    sparse_multilabel_ce,
)

__version__: str = _native.__version__

__all__ = [
    "__version__",
    "bce",
    "gamma_ce",
    "get_num_threads",
    "globalpointer_ce",
    "gp_kl",
    "js",
    "kd_loss",
    "kl",
    "score",
    "Scorer",
    "ScoreResult",
    "Summary",
    "multilabel_ce",
    "rdrop_loss",
    "set_num_threads",
    "sigmoid_kl",
    "sigmoid_sym_kl",
    "softmax_ce",
    "sparse_multilabel_ce",
    "sym_kl",
    "tv",
]


def set_num_threads(n: int) -> None:
    """Sets the number of worker threads the kernels use (0 restores the default: the environment
    variable LOGITDIV_NUM_THREADS, else the number of CPUs; at most 4096, a ValueError beyond — the
    core's rule)."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int ≥ 0; got {n!r}")
    _native.set_num_threads(int(n))  # the core checks the limit, for any int


def get_num_threads() -> int:
    """The number of worker threads the kernels use."""
    return _native.get_num_threads()
