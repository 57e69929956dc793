"""The GPU backend's pure-Python parts, on CPU: dispatch from the public API, the errors without
CuPy, the functions with no GPU kernel, the launch arithmetic, and the contract with
logitdiv.torch's DLPack backend."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

import logitdiv as ld
import logitdiv.cuda as ldc
from logitdiv import _dispatch
from logitdiv._cuda import launch as L

try:
    import cupy  # noqa: F401

    HAVE_CUPY = True
except ImportError:
    HAVE_CUPY = False


class FakeGpuArray:
    """Quacks like a GPU array (the CUDA array interface) without being one."""

    def __init__(self, shape=(2, 3)):
        self.shape = shape

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": "<f4", "data": (0, False), "version": 3}


PAIRS = ["kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl"]
LOSSES = ["softmax_ce", "bce", "multilabel_ce", "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce",
          "kd_loss", "rdrop_loss"]
NOT_ON_GPU = ["tv", "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce", "kd_loss", "rdrop_loss"]


def test_importing_the_backend_does_not_import_cupy() -> None:
    code = "import logitdiv, logitdiv.cuda, sys; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_numpy_arrays_never_reach_the_gpu_backend(monkeypatch) -> None:
    def refuse():
        raise AssertionError("a NumPy call went to the GPU backend")

    monkeypatch.setattr(_dispatch, "gpu", refuse)
    s = np.random.default_rng(0).normal(size=(2, 5))
    for name in PAIRS:
        getattr(ld, name)(s, s + 0.1)
    ld.softmax_ce(s, np.array([0, 1]))
    ld.bce(s, np.zeros_like(s))
    ld.multilabel_ce(s, np.zeros_like(s))
    ld.kl(s.tolist(), s.tolist())  # array-likes too


def test_gpu_arrays_are_routed_to_the_backend(monkeypatch) -> None:
    """A GPU array among the arguments that decide (`_dispatch.routes_gpu`) sends the call to the
    backend's function of the same name unchanged: the same positional arguments and keywords."""
    seen = []

    class Backend:
        def __getattr__(self, name):
            def f(*args, **kwargs):
                seen.append((name, args, kwargs))
                return "from-gpu"
            return f

    monkeypatch.setattr(_dispatch, "gpu", lambda: Backend())
    x = FakeGpuArray()
    for name in PAIRS + ["tv"]:
        assert getattr(ld, name)(x, x, reduction="sum") == "from-gpu"
        assert seen[-1] == (name, (x, x), {"reduction": "sum"})
    assert ld.js(x, x, beta=0.3)
    assert seen[-1] == ("js", (x, x), {"beta": 0.3})
    assert ld.gp_kl(x, x, weights="w") and seen[-1] == ("sigmoid_sym_kl", (x, x), {"weights": "w"})
    assert ld.softmax_ce(x, "y", label_smoothing=0.1) == "from-gpu"
    assert seen[-1] == ("softmax_ce", (x, "y"), {"label_smoothing": 0.1})
    for name in LOSSES:
        sig = inspect.signature(getattr(ld, name))
        positional = [p for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        args = tuple(x if i == 0 else f"{p.name}-value" for i, p in enumerate(positional))
        # every option, each with its own value, reaches the backend as it was given
        kwargs = {p.name: f"{p.name}-value" for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}
        assert getattr(ld, name)(*args, **kwargs) == "from-gpu", name
        assert seen[-1] == (name, args, kwargs), name
        # the deciding array given by keyword is found too, and passed on as a keyword
        first = positional[0].name
        assert getattr(ld, name)(**{first: x}, **{p.name: "v" for p in positional[1:]}, **kwargs) == "from-gpu"
        assert seen[-1][0] == name and seen[-1][1] == () and seen[-1][2][first] is x, name
    # a GPU second argument alone also goes to the backend (which then refuses the host first one)
    assert ld.kl(np.zeros((2, 3)), x) == "from-gpu"
    assert ld.sym_kl(s=np.zeros((2, 3)), t=x) == "from-gpu" and seen[-1][2]["t"] is x
    # a loss is routed by its logits only: a GPU label with host logits is the CPU path's TypeError
    with pytest.raises(TypeError, match="target is a GPU array; the CPU core cannot read it"):
        ld.softmax_ce(np.zeros((2, 3)), x)


def test_routing_keeps_the_public_functions_signatures_and_docs() -> None:
    """docs/gen_api.py and logitdiv.torch read the public functions' signatures: the routing
    wrapper must show the real parameters, name and docstring."""
    assert list(inspect.signature(ld.kl).parameters)[:3] == ["s", "t", "temperature"]
    assert list(inspect.signature(ld.kd_loss).parameters)[:3] == ["student", "teacher", "target"]
    for name in PAIRS + LOSSES + ["tv"]:
        f = getattr(ld, name)
        assert f.__wrapped__.__name__ == f.__name__, name
        assert inspect.signature(f) == inspect.signature(f.__wrapped__), name
        assert "Examples" in f.__doc__ and "[common]" not in f.__doc__, name
    with pytest.raises(TypeError, match="positional-or-keyword"):
        _dispatch.routes_gpu("grad")(ld.kl.__wrapped__)


@pytest.mark.skipif(HAVE_CUPY, reason="checks the message given when CuPy is not installed")
def test_without_cupy_a_gpu_array_is_a_clear_type_error() -> None:
    x = FakeGpuArray()
    for call in (lambda: ld.kl(x, x), lambda: ld.softmax_ce(x, np.array([0, 1])), lambda: ldc.bce(x, x)):
        with pytest.raises(TypeError, match=r"pip install 'logitdiv\[cuda\]'"):
            call()
    assert ldc.available() is False


def test_functions_without_a_gpu_kernel_say_so() -> None:
    for name in NOT_ON_GPU:
        with pytest.raises(NotImplementedError, match=f"no GPU kernel for {name}"):
            getattr(ldc, name)(FakeGpuArray(), None)
        assert getattr(ldc, name).__name__ == name
        # and through the public API, which routes them there (never a silent CPU fallback)
        with pytest.raises(NotImplementedError, match=f"no GPU kernel for {name}"):
            getattr(ld, name)(FakeGpuArray(), FakeGpuArray(), None, gamma=0.5, temperature=2.0, alpha=0.5)


def test_backend_signatures_match_the_numpy_api() -> None:
    """logitdiv.torch's _DLPack calls logitdiv.cuda.<name>(*arrays, *labels, grad=..., grad_out=...,
    **options) exactly as it calls the NumPy API: the parameters must be the same."""
    for name in PAIRS + ["gp_kl", "softmax_ce", "bce", "multilabel_ce"]:
        assert inspect.signature(getattr(ldc, name)).parameters.keys() == \
            inspect.signature(getattr(ld, name)).parameters.keys(), name
        for p_gpu, p_cpu in zip(inspect.signature(getattr(ldc, name)).parameters.values(),
                                inspect.signature(getattr(ld, name)).parameters.values()):
            assert (p_gpu.kind, p_gpu.default) == (p_cpu.kind, p_cpu.default), (name, p_gpu.name)
    assert set(ldc.__all__) >= set(PAIRS + LOSSES + ["gp_kl"])


def test_torch_routes_cuda_tensors_to_this_module() -> None:
    torch_mod = pytest.importorskip("logitdiv.torch")
    backend = torch_mod._cuda_backend()
    if HAVE_CUPY:
        assert backend is not None and backend.module is ldc
        assert backend.function("kl") is ldc.kl
    else:
        # without CuPy a CUDA tensor is the clear TypeError of _backend_for, not an ImportError
        assert backend is None
    assert "does not yet" not in (torch_mod.__doc__ or "") and "not yet" not in (torch_mod.__doc__ or "")


# ----------------------------------------------------------------------------------------------
# launch arithmetic


@pytest.mark.parametrize("cols", [1, 10, 100, 1024])
def test_short_rows_take_one_warp_each(cols: int) -> None:
    p = L.plan(1000, cols)
    assert p.warp_rows and p.chunks == 1 and p.chunk_len == cols
    assert p.threads % 32 == 0 and p.grid * (p.threads // 32) >= 1000 > (p.grid - 1) * (p.threads // 32)


@pytest.mark.parametrize("cols,threads", [(1025, 128), (2048, 128), (4096, 256), (32000, 1024), (65536, 1024)])
def test_long_rows_take_a_block_each(cols: int, threads: int) -> None:
    p = L.plan(7, cols)
    assert not p.warp_rows and p.chunks == 1 and p.grid == 7 and p.threads == threads
    assert p.threads & (p.threads - 1) == 0


@pytest.mark.parametrize("cols", [65537, 100_000, 131072, 131073, 10**6, 9 * 512 * 512])
def test_rows_beyond_split_cols_are_cut_into_even_chunks(cols: int) -> None:
    p = L.plan(3, cols)
    assert p.chunks == -(-cols // L.SPLIT_COLS) >= 2
    assert p.chunk_len <= L.SPLIT_COLS
    # every chunk holds classes, and together they cover the row exactly once
    starts = [c * p.chunk_len for c in range(p.chunks)]
    ends = [min(cols, s + p.chunk_len) for s in starts]
    assert all(e > s for s, e in zip(starts, ends)) and ends[-1] == cols
    assert sum(e - s for s, e in zip(starts, ends)) == cols
    assert p.grid == 3 * p.chunks and not p.warp_rows


def test_split_cols_can_be_lowered_and_is_checked() -> None:
    p = L.plan(2, 10, split_cols=3)
    assert (p.chunks, p.chunk_len, p.grid) == (4, 3, 8)
    assert L.plan(2, 10, split_cols=1).chunks == 10
    with pytest.raises(ValueError, match="split_cols"):
        L.plan(2, 10, split_cols=0)
    with pytest.raises(ValueError, match="cols ≥ 1"):
        L.plan(2, 0)
    assert L.plan(0, 5).grid == 0


def test_grid_limits_and_reduction_threads() -> None:
    with pytest.raises(ValueError, match="more blocks than a CUDA grid"):
        L.plan(2**31, 2000)
    assert [L.reduce_threads(n) for n in (0, 1, 33, 1000, 10**6)] == [32, 32, 64, 1024, 1024]
    assert L.elementwise_grid(1) == 1 and L.elementwise_grid(10**9) == L.ELEMENTWISE_MAX_BLOCKS
