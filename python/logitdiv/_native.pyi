# Type stubs of the compiled extension (rust/python). Arguments are normalised by the Python layer:
# 2-D arrays with contiguous rows; half-precision types travel as uint16 bits with `elem` naming them.
from typing import Optional, Tuple

import numpy as np

__version__: str
__all__ = [
    "__version__",
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
    "softmax_ce_ext",
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
    elem: str,
    s: np.ndarray,
    t: np.ndarray,
    mask: Optional[np.ndarray],
    weights: Optional[np.ndarray],
    temperature: float,
    beta: float,
    reduction: str,
    values: Optional[np.ndarray],
    grad_s: Optional[np.ndarray],
    grad_t: Optional[np.ndarray],
    softcap: Optional[float] = None,
) -> Tuple[float, int]: ...
def softmax_ce(
    elem: str,
    telem: str,
    logits: np.ndarray,
    labels: Optional[np.ndarray],
    probs: Optional[np.ndarray],
    ignore_index: int,
    label_smoothing: float,
    temperature: float,
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad: Optional[np.ndarray],
) -> Tuple[float, int]: ...
def softmax_ce_ext(
    elem: str,
    telem: str,
    logits: np.ndarray,
    labels: Optional[np.ndarray],
    probs: Optional[np.ndarray],
    ignore_index: int,
    label_smoothing: float,
    temperature: float,
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad: Optional[np.ndarray],
    weight: Optional[np.ndarray],
    z_loss: float,
    softcap: Optional[float],
    z_values: Optional[np.ndarray],
    correct: Optional[np.ndarray],
    accuracy: bool,
) -> Tuple[float, int, float, int, float]: ...
def bce(
    elem: str,
    telem: str,
    logits: np.ndarray,
    target: np.ndarray,
    pos_weight: Optional[np.ndarray],
    weights: Optional[np.ndarray],
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad: Optional[np.ndarray],
) -> Tuple[float, int]: ...
def multilabel_ce(
    elem: str,
    telem: str,
    logits: np.ndarray,
    target: np.ndarray,
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad: Optional[np.ndarray],
) -> Tuple[float, int]: ...
def sparse_multilabel_ce(
    elem: str,
    logits: np.ndarray,
    positives: np.ndarray,
    pad: int,
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad: Optional[np.ndarray],
) -> Tuple[float, int]: ...
def globalpointer_ce(
    elem: str,
    logits: np.ndarray,
    positives: np.ndarray,
    pad: int,
    heads: int,
    spans: bool,
    mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad: Optional[np.ndarray],
) -> Tuple[float, int]: ...
def gamma_ce(
    elem: str,
    logits: np.ndarray,
    labels: np.ndarray,
    ignore_index: int,
    gamma: float,
    threshold: Optional[float],
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad: Optional[np.ndarray],
) -> Tuple[float, int]: ...
def kd_loss(
    elem: str,
    telem: str,
    student: np.ndarray,
    teacher: np.ndarray,
    labels: Optional[np.ndarray],
    probs: Optional[np.ndarray],
    ignore_index: int,
    temperature: float,
    alpha: float,
    t2: bool,
    label_smoothing: float,
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad_student: Optional[np.ndarray],
    grad_teacher: Optional[np.ndarray],
) -> Tuple[float, int]: ...
def rdrop_loss(
    elem: str,
    telem: str,
    kind: str,
    s1: np.ndarray,
    s2: np.ndarray,
    labels: Optional[np.ndarray],
    probs: Optional[np.ndarray],
    ignore_index: int,
    alpha: float,
    label_smoothing: float,
    class_mask: Optional[np.ndarray],
    row_mask: Optional[np.ndarray],
    reduction: str,
    values: Optional[np.ndarray],
    grad1: Optional[np.ndarray],
    grad2: Optional[np.ndarray],
) -> Tuple[float, int]: ...
