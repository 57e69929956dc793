"""A CPU stand-in for the CuPy device of `logitdiv.cuda`: the same kernel source compiled as host
C++ (emu.cpp, shim.h) and launched one thread per block, over NumPy arrays.

What it checks on a machine without a GPU: the kernels' arithmetic (every accurate form, the −inf
and NaN conventions, the label checks), the merging of split rows' partial states, the reductions,
and cuda.py's argument packing (each argument's size against the kernel's parameter). What it
cannot check: the warp shuffles and shared-memory reductions across threads, the warp-per-row
mode, CuPy itself, and speed — those need a GPU (tests/test_cuda_gpu.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any, Optional, Sequence

import numpy as np

from logitdiv._cuda import launch as L
from logitdiv._cuda import source as S

HERE = pathlib.Path(__file__).parent


def compiler() -> Optional[str]:
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def build(cache_dir: Optional[pathlib.Path] = None) -> pathlib.Path:
    """Compiles the kernels with the host compiler into a shared library (cached by content)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) to build the CUDA emulator")
    text = S.source()
    shim = (HERE / "shim.h").read_text() + (HERE / "emu.cpp").read_text()
    key = hashlib.sha256((text + shim).encode()).hexdigest()[:16]
    cache_dir = cache_dir or pathlib.Path(tempfile.gettempdir()) / "logitdiv_cuda_emu"
    cache_dir.mkdir(parents=True, exist_ok=True)
    lib = cache_dir / f"ld_emu_{key}.so"
    if lib.exists():
        return lib
    src = cache_dir / f"kernels_{key}.cu"
    src.write_text(text)
    tmp = cache_dir / f"ld_emu_{key}.{os.getpid()}.so"
    cmd = [cxx, "-std=c++14", "-O1", "-shared", "-fPIC", "-Wall", "-Wno-unused-function", "-Werror",
           f"-I{HERE}", f'-DLD_KERNEL_SOURCE="{src}"', str(HERE / "emu.cpp"), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building the CUDA emulator failed:\n{' '.join(cmd)}\n{proc.stderr}")
    os.replace(tmp, lib)
    return lib


class _PoisonedNumpy:
    """NumPy whose `empty` buffers hold garbage-like bits (0xFF bytes: NaN for floats, every status
    bit set), so that an element a kernel forgets to write shows up in the comparisons."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def empty(shape: Any, dtype: Any = float) -> np.ndarray:
        a = np.empty(shape, dtype)
        a.reshape(-1).view(np.uint8)[...] = 0xFF
        return a

    @classmethod
    def empty_like(cls, a: np.ndarray) -> np.ndarray:
        return cls.empty(a.shape, a.dtype)


class EmulatedDevice:
    """The device interface of logitdiv._cuda.device.CupyDevice, over NumPy arrays on the CPU."""

    xp = _PoisonedNumpy()

    def __init__(self, lib_path: pathlib.Path) -> None:
        self.lib = ctypes.CDLL(str(lib_path))
        self.lib.ld_emu_launch.restype = ctypes.c_int
        self.lib.ld_emu_launch.argtypes = [ctypes.c_char_p, ctypes.c_longlong, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_longlong), ctypes.c_int]
        self.launches: list = []  # (name, grid, threads) of every launch, for the tests

    def logits(self, x: Any, name: str) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a GPU array (here: the emulator's NumPy array); got {type(x).__name__}")
        return x

    def aux(self, x: Any, name: str) -> np.ndarray:
        return np.asarray(x)

    def is_output(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    @staticmethod
    def ptr(a: np.ndarray) -> int:
        return int(a.ctypes.data)

    @staticmethod
    def device_id(a: Any) -> int:
        return 0

    def on(self, device_id: int) -> Any:
        return contextlib.nullcontext()

    @staticmethod
    def to_host(a: Any) -> np.ndarray:
        return np.asarray(a)

    def plan(self, rows: int, cols: int) -> L.Plan:
        # one thread per block, so never a warp per row; chunks as on the GPU (tests lower SPLIT_COLS)
        return dataclasses.replace(L.plan(rows, cols, warp_cols=0), threads=1)

    def reduce_threads(self, rows: int) -> int:
        return 1

    def elementwise(self, n: int) -> tuple:
        return 1, 1

    def launch(self, name: str, grid: int, threads: int, args: Sequence[Any]) -> None:
        assert threads == 1, f"the emulator runs one thread per block; got {threads}"
        assert name in S.name_expressions(), f"{name} is not among the compiled name expressions"
        for i, a in enumerate(args):
            # CuPy packs numpy scalars by their dtype: every argument must say its C type exactly
            assert isinstance(a, np.generic), f"argument {i} of {name} is {type(a).__name__}, not a numpy scalar"
        bufs = [ctypes.create_string_buffer(a.tobytes(), a.nbytes) for a in args]
        ptrs = (ctypes.c_void_p * len(args))(*[ctypes.addressof(b) for b in bufs])
        sizes = (ctypes.c_longlong * len(args))(*[a.nbytes for a in args])
        rc = self.lib.ld_emu_launch(name.encode(), int(grid), ptrs, sizes, len(args))
        if rc == -1:
            raise AssertionError(f"the emulator does not know {name}")
        if rc == 1:
            raise AssertionError(f"{name}: wrong number of arguments ({len(args)})")
        if rc >= 2:
            raise AssertionError(f"{name}: argument {rc - 2} has the wrong size ({args[rc - 2].nbytes} bytes)")
        self.launches.append((name, int(grid), threads))
