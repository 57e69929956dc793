"""Routes GPU arrays from the public API to the CuPy backend, `logitdiv.cuda`.

A public function declares which of its array arguments decide where it runs with
``@routes_gpu("s", "t")``: when any of them is a GPU array (it has ``__cuda_array_interface__``,
recognised without importing CuPy), the call goes, unchanged, to the function of the same name in
`logitdiv.cuda`; otherwise to the function itself. The NumPy path pays one
``type(x) is np.ndarray`` check per named argument. Without CuPy, `logitdiv.cuda` raises
TypeError saying how to install it."""

from __future__ import annotations

import functools
import inspect
from types import ModuleType
from typing import Any, Callable, TypeVar

import numpy as np

from ._cuda.device import is_device_array

F = TypeVar("F", bound=Callable[..., Any])


def gpu() -> ModuleType:
    """The GPU backend module (imported on first use)."""
    from . import cuda

    return cuda


def routes_gpu(*names: str) -> Callable[[F], F]:
    """Sends a call to `logitdiv.cuda` when one of the arguments `names` is a GPU array.

    The wrapper keeps the function's name, docstring and signature (``inspect.signature`` follows
    ``__wrapped__``), and finds each argument by its position, or by its name among the keywords,
    without binding the signature per call."""

    def decorate(f: F) -> F:
        params = inspect.signature(f).parameters.values()
        position = {p.name: i for i, p in enumerate(params) if p.kind is p.POSITIONAL_OR_KEYWORD}
        missing = [name for name in names if name not in position]
        if missing:
            raise TypeError(f"routes_gpu: {f.__name__} has no positional-or-keyword argument {missing[0]!r}")
        routed_slots = tuple((position[name], name) for name in names)
        function = f.__name__

        @functools.wraps(f)
        def route(*args: Any, **kwargs: Any) -> Any:
            n = len(args)
            for i, name in routed_slots:
                x = args[i] if i < n else kwargs.get(name)
                if type(x) is not np.ndarray and is_device_array(x):
                    return getattr(gpu(), function)(*args, **kwargs)
            return f(*args, **kwargs)

        return route  # type: ignore[return-value]

    return decorate
