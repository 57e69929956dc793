"""The CUDA kernels compile with NVRTC, as CuPy will compile them on a GPU machine: every template
instantiation the backend may launch, for several architectures. Runs on CPU: NVRTC only needs its
shared library (the pip package nvidia-cuda-nvrtc that torch depends on), not a GPU."""

from __future__ import annotations

import ctypes
import glob
import os
import pathlib
import site
import sys
from typing import List, Optional

import pytest

from logitdiv._cuda import source as S


def _find_nvrtc() -> Optional[str]:
    """libnvrtc.so.* from the pip packages (nvidia-cuda-nvrtc for CUDA 12 or 13) or a toolkit."""
    roots = list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path
    patterns = [os.path.join(r, "nvidia", "**", "libnvrtc.so*") for r in roots if r and os.path.isdir(r)]
    patterns += ["/usr/local/cuda/lib64/libnvrtc.so*", "/usr/lib/x86_64-linux-gnu/libnvrtc.so*"]
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if "builtins" not in os.path.basename(path) and "alt" not in os.path.basename(path):
                return path
    return None


NVRTC_PATH = _find_nvrtc()
pytestmark = pytest.mark.skipif(NVRTC_PATH is None, reason="libnvrtc not found (pip install nvidia-cuda-nvrtc-cu12)")


class Nvrtc:
    """The few NVRTC entry points a compile check needs."""

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.nvrtcGetErrorString(status).decode()}")

    def version(self) -> tuple:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return major.value, minor.value

    def compile(self, src: str, options: List[str], names: List[str]) -> tuple:
        """Compiles `src`; returns (ok, log, {name expression: lowered name})."""
        prog = ctypes.c_void_p()
        self._check(
            self.lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"logitdiv_kernels.cu", 0, None, None),
            "nvrtcCreateProgram",
        )
        try:
            for n in names:
                self._check(self.lib.nvrtcAddNameExpression(prog, n.encode()), f"nvrtcAddNameExpression({n})")
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            status = self.lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            self.lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            self.lib.nvrtcGetProgramLog(prog, log)
            lowered = {}
            if status == 0:
                for n in names:
                    out = ctypes.c_char_p()
                    self._check(self.lib.nvrtcGetLoweredName(prog, n.encode(), ctypes.byref(out)), f"lowered {n}")
                    lowered[n] = out.value.decode()
                ptx_size = ctypes.c_size_t()
                self._check(self.lib.nvrtcGetPTXSize(prog, ctypes.byref(ptx_size)), "nvrtcGetPTXSize")
                assert ptx_size.value > 1000
            return status == 0, log.value.decode(errors="replace"), lowered
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(prog))


@pytest.fixture(scope="module")
def nvrtc() -> Nvrtc:
    assert NVRTC_PATH is not None
    return Nvrtc(NVRTC_PATH)


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_every_kernel_compiles_with_nvrtc(nvrtc: Nvrtc, arch: str) -> None:
    names = S.name_expressions()
    ok, log, lowered = nvrtc.compile(S.source(), list(S.OPTIONS) + [f"-arch={arch}"], names)
    assert ok, f"NVRTC {nvrtc.version()} ({NVRTC_PATH}) failed for {arch}:\n{log}"
    # a warning is a bug waiting on a GPU: the log must be clean
    assert "warning" not in log.lower(), log
    assert set(lowered) == set(names)
    assert all(v.startswith("_Z") for v in lowered.values())


def test_a_broken_source_fails_to_compile(nvrtc: Nvrtc) -> None:
    """The check above can fail: a type error is reported with its log."""
    ok, log, _ = nvrtc.compile(S.source() + "\n__global__ void broken() { undefined_thing(); }\n",
                               list(S.OPTIONS) + ["-arch=compute_80"], [])
    assert not ok and "undefined_thing" in log


def test_name_expressions_cover_every_kernel_and_type() -> None:
    names = S.name_expressions()
    assert len(names) == len(set(names))
    for kernel in S.KERNELS:
        assert any(n.startswith(kernel + "<") for n in names)
        text = S.source()
        assert f"{kernel}(" in text
    assert "softmax_ce<f16, float>" in names and "reduce_rows<double>" in names
    # the partial-slot size and status bits agree with the source
    assert f"#define LD_PARTIAL {S.PARTIAL_DOUBLES}" in S.source()
    assert f"#define LD_COUNTS {S.STATUS_COUNTS}" in S.source()
    assert f"#define LD_INVALID {S.STATUS_INVALID}" in S.source()
