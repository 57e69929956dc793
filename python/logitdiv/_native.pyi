# Type stubs of the compiled extension (rust/python), checked against it by mypy.stubtest
# (tests/test_packaging.py). Arrays are NumPy arrays with contiguous rows; the logits' dtype (float16,
# bfloat16, float32 or float64) picks the kernel. Options are keyword-only, except in the two per-call
# hot paths, pair_divergence and softmax_ce, which the package calls by position (a keyword costs
# about 0.1 us a call). Defaults are the public API's; those written `...` are ones the extension's
# signatures cannot spell: reduction "none", ignore_index -100, pad -1. The keywords the losses share
# are stated once, as TypedDicts taken with **Unpack (PEP 692); stubtest checks each of their keys
# as a keyword-only parameter (all optional: their defaults are None, reduction's "none").
from typing import Optional, Tuple

from typing_extensions import TypedDict, Unpack

import numpy as np

__version__: str
MAX_THREADS: int  # the core's limit on worker threads (check::MAX_THREADS)
__all__ = [
    "__version__",
    "MAX_THREADS",
    "_after_fork_in_child",
    "available_simd_paths",
    "bce",
    "gamma_ce",
    "get_num_threads",
    "globalpointer_ce",
    "kd_loss",
    "multilabel_ce",
    "pair_divergence",
    "rdrop_loss",
    "set_num_threads",
    "set_simd_path",
    "simd_path",
    "softmax_ce",
    "sparse_multilabel_ce",
    "xla_handler",
]

def _after_fork_in_child() -> int: ...  # registered with os.register_at_fork; releases stale borrows
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_path() -> str: ...
def available_simd_paths() -> list[str]: ...
def set_simd_path(name: Optional[str] = None) -> None: ...
def xla_handler() -> int: ...
def pair_divergence(
    kind: str,
    s: np.ndarray,
    t: np.ndarray,
    mask: Optional[np.ndarray] = None,
    weights: Optional[np.ndarray] = None,
    temperature: float = 1.0,
    beta: float = 0.5,
    reduction: str = ...,
    softcap: Optional[float] = None,
    out: Optional[np.ndarray] = None,
    grad_s: Optional[np.ndarray] = None,
    grad_t: Optional[np.ndarray] = None,
) -> Tuple[float, int]: ...
def softmax_ce(
    logits: np.ndarray,
    labels: Optional[np.ndarray] = None,
    probs: Optional[np.ndarray] = None,
    ignore_index: int = ...,
    label_smoothing: float = 0.0,
    temperature: float = 1.0,
    class_mask: Optional[np.ndarray] = None,
    row_mask: Optional[np.ndarray] = None,
    reduction: str = ...,
    out: Optional[np.ndarray] = None,
    grad: Optional[np.ndarray] = None,
    weight: Optional[np.ndarray] = None,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    z_out: Optional[np.ndarray] = None,
    correct_out: Optional[np.ndarray] = None,
    accuracy: bool = False,
) -> Tuple[float, int, float, int, float]: ...
class _Reduced(TypedDict, total=False):
    """The keywords of every loss below: the reduction and the buffer of the per-row values."""

    reduction: str
    out: Optional[np.ndarray]

class _Masked(_Reduced, total=False):
    """... and, for all but globalpointer_ce, the class and row masks."""

    class_mask: Optional[np.ndarray]
    row_mask: Optional[np.ndarray]

class _OneGrad(_Masked, total=False):
    """... and, for the losses of one logit array, the buffer of its gradient."""

    grad: Optional[np.ndarray]

def bce(
    logits: np.ndarray,
    target: np.ndarray,
    *,
    pos_weight: Optional[np.ndarray] = None,
    weights: Optional[np.ndarray] = None,
    **options: Unpack[_OneGrad],
) -> Tuple[float, int]: ...
def multilabel_ce(logits: np.ndarray, target: np.ndarray, **options: Unpack[_OneGrad]) -> Tuple[float, int]: ...
def sparse_multilabel_ce(
    logits: np.ndarray, positives: np.ndarray, *, pad: int = ..., **options: Unpack[_OneGrad]
) -> Tuple[float, int]: ...
def globalpointer_ce(
    logits: np.ndarray,
    positives: np.ndarray,
    *,
    heads: int,
    pad: int = ...,
    spans: bool = False,
    mask: Optional[np.ndarray] = None,
    grad: Optional[np.ndarray] = None,
    **options: Unpack[_Reduced],
) -> Tuple[float, int]: ...
def gamma_ce(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    gamma: float,
    threshold: Optional[float] = None,
    ignore_index: int = ...,
    **options: Unpack[_OneGrad],
) -> Tuple[float, int]: ...
def kd_loss(
    student: np.ndarray,
    teacher: np.ndarray,
    *,
    temperature: float,
    alpha: float,
    labels: Optional[np.ndarray] = None,
    probs: Optional[np.ndarray] = None,
    ignore_index: int = ...,
    t2: bool = True,
    label_smoothing: float = 0.0,
    grad_student: Optional[np.ndarray] = None,
    grad_teacher: Optional[np.ndarray] = None,
    **options: Unpack[_Masked],
) -> Tuple[float, int]: ...
def rdrop_loss(
    kind: str,
    s1: np.ndarray,
    s2: np.ndarray,
    *,
    alpha: float,
    labels: Optional[np.ndarray] = None,
    probs: Optional[np.ndarray] = None,
    ignore_index: int = ...,
    label_smoothing: float = 0.0,
    grad1: Optional[np.ndarray] = None,
    grad2: Optional[np.ndarray] = None,
    **options: Unpack[_Masked],
) -> Tuple[float, int]: ...
