# Type stubs of the compiled extension (rust/python). Arguments are normalised by the Python layer:
# 2-D arrays with contiguous rows; half-precision types travel as uint16 bits with `elem` naming them.
from typing import Optional, Tuple

import numpy as np

__version__: str
__all__ = ["__version__", "get_num_threads", "pair_divergence", "set_num_threads"]

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
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
) -> Tuple[float, int]: ...
