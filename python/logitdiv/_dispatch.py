"""Routes GPU arrays from the public API to the CuPy backend, `logitdiv.cuda`.

The public functions call ``on_gpu`` only for inputs that are not NumPy arrays, so the CPU path
pays one type check; GPU arrays are recognised by ``__cuda_array_interface__`` without importing
CuPy. Without CuPy, `logitdiv.cuda` raises TypeError saying how to install it."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ._cuda.device import is_device_array


def on_gpu(*arrays: Any) -> bool:
    """Whether any of the arrays is a GPU array."""
    return any(is_device_array(a) for a in arrays)


def gpu() -> ModuleType:
    """The GPU backend module (imported on first use)."""
    from . import cuda

    return cuda
