"""The CuPy device: turns arguments into CuPy arrays, compiles the kernels once per GPU, and
launches them on CuPy's current stream. CuPy is imported here, lazily (`CupyDevice()`), never by
``import logitdiv``.

`logitdiv.cuda` talks to a device through the few methods below; the CPU tests put an emulator
in its place (tests/cuda_emu), which runs the same kernels compiled for the host.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

from . import launch as L
from . import source as S

INSTALL_HINT = "pip install 'logitdiv[cuda]'"


def is_device_array(x: Any) -> bool:
    """Whether `x` is a GPU array (CUDA array interface), without importing CuPy. An object whose
    interface raises (a torch tensor that requires grad) counts as one: the backend reports it."""
    try:
        return hasattr(x, "__cuda_array_interface__")
    except Exception:
        return True


class CupyDevice:
    """CuPy arrays and the kernels compiled by NVRTC (cupy.RawModule), one module per GPU."""

    def __init__(self) -> None:
        try:
            import cupy
        except ImportError as e:
            raise TypeError(
                f"GPU arrays need the CuPy backend, and CuPy is not installed ({INSTALL_HINT}): {e}"
            ) from e
        self.xp = cupy
        self._modules: Dict[int, Any] = {}

    # arrays ------------------------------------------------------------------------------------

    def logits(self, x: Any, name: str) -> Any:
        """A GPU array as a CuPy array (zero-copy); anything else is a TypeError."""
        if isinstance(x, self.xp.ndarray):
            return x
        if not is_device_array(x):
            raise TypeError(
                f"{name} must be a GPU array (CuPy, or any object with __cuda_array_interface__); got "
                f"{type(x).__module__}.{type(x).__name__}. For host arrays call the same function of logitdiv."
            )
        try:
            return self.xp.asarray(x)
        except Exception as e:
            raise TypeError(f"{name} could not be read as a GPU array: {e}") from e

    def aux(self, x: Any, name: str) -> Any:
        """A label-like argument on the GPU: device arrays as they are, host ones copied over."""
        if isinstance(x, self.xp.ndarray):
            return x
        if is_device_array(x):
            try:
                return self.xp.asarray(x)
            except Exception as e:
                raise TypeError(f"{name} could not be read as a GPU array: {e}") from e
        return self.xp.asarray(np.asarray(x))

    def is_output(self, x: Any) -> bool:
        return isinstance(x, self.xp.ndarray)

    @staticmethod
    def ptr(a: Any) -> int:
        return int(a.data.ptr)

    @staticmethod
    def device_id(a: Any) -> int:
        return int(a.device.id)

    def on(self, device_id: int) -> Any:
        """A context in which allocations and launches go to that GPU."""
        return self.xp.cuda.Device(device_id)

    def to_host(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a)

    # kernels -----------------------------------------------------------------------------------

    def plan(self, rows: int, cols: int) -> L.Plan:
        return L.plan(rows, cols)

    def reduce_threads(self, rows: int) -> int:
        return L.reduce_threads(rows)

    def elementwise(self, n: int) -> tuple:
        return L.elementwise_grid(n), L.ELEMENTWISE_THREADS

    def _module(self) -> Any:
        device = self.xp.cuda.Device().id
        module = self._modules.get(device)
        if module is None:
            module = self.xp.RawModule(code=S.source(), options=S.OPTIONS, name_expressions=S.name_expressions())
            self._modules[device] = module
        return module

    def launch(self, name: str, grid: int, threads: int, args: Sequence[Any]) -> None:
        """Launches kernel `name` (a name expression) with numpy-scalar arguments (pointers as uint64)."""
        self._module().get_function(name)((grid,), (threads,), tuple(args))


