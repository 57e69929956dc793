"""The GPU backend on a GPU: every case of _cuda_cases.py computed by logitdiv.cuda on CuPy arrays
agrees with the CPU core (values and gradients, within the output type's rounding), across the
warp-per-row, block-per-row and split-row launches; results stay on the device; the public API and
logitdiv.torch route GPU inputs here. Skipped, with the reason, where CuPy or a GPU is missing."""

from __future__ import annotations

import numpy as np
import pytest

import logitdiv as ld
import logitdiv.cuda as ldc
from logitdiv._cuda import launch as L

import _cuda_cases as C

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install 'logitdiv[cuda]'); GPU tests skipped")
pytestmark = pytest.mark.skipif(not ldc.available(), reason="no GPU visible to CuPy; GPU tests skipped")

# CuPy has no bfloat16 arrays: the bfloat16 kernels are checked by the emulator only
DTYPES: list = [np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16)]
CASES = C.all_cases(DTYPES)


def to_host(a):
    """A result back on the host, checking it was a CuPy array on the current device."""
    assert isinstance(a, cupy.ndarray), f"a GPU result must be a CuPy array; got {type(a).__name__}"
    assert a.device.id == cupy.cuda.Device().id
    return cupy.asnumpy(a)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gpu_agrees_with_the_cpu_core(case) -> None:
    C.compare(case, ldc, cupy.asarray, to_host)


@pytest.mark.parametrize("split_cols", [1, 7, 300])
@pytest.mark.parametrize("case", [c for c in CASES if not c[0].endswith("-long")][::4], ids=lambda c: c[0])
def test_gpu_split_rows_agree_with_the_cpu_core(monkeypatch, case, split_cols) -> None:
    monkeypatch.setattr(L, "SPLIT_COLS", split_cols)
    C.compare(case, ldc, cupy.asarray, to_host)


ROW_LENGTHS = [1, 2, 31, 32, 33, 100, 1023, 1024, 1025, 4097, 32000]


@pytest.mark.parametrize("cols", ROW_LENGTHS)
@pytest.mark.parametrize("fn", ["kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl", "softmax_ce", "bce",
                                "multilabel_ce"])
def test_thread_reductions_at_every_row_length(fn, cols) -> None:
    """Warp-per-row (≤ 1024 classes) and block-per-row launches, with rows whose extremes and
    −inf classes fall on every lane: the shuffles and shared-memory merges give the CPU's result."""
    rng = np.random.default_rng(cols)
    rows = 9
    s = (rng.normal(size=(rows, cols)) * 4).astype(np.float32)
    t = (s + rng.normal(size=(rows, cols))).astype(np.float32)
    s[1, rng.integers(0, cols)] = 60.0                     # a far maximum on one lane
    s[2, :: max(1, cols // 7)] = -np.inf                   # absent classes
    t[2, :: max(1, cols // 7)] = -np.inf
    s[3, cols // 2] = np.nan                               # a NaN row
    args: tuple
    if fn == "softmax_ce":
        args = (s, rng.integers(0, cols, size=rows))
    elif fn in ("bce", "multilabel_ce"):
        args = (s, (rng.random((rows, cols)) < 0.2).astype(np.float32))
    else:
        args = (s, t)
    for red in ("none", "mean"):
        C.compare((f"{fn}-{cols}-{red}", fn, args, dict(grad=True, reduction=red)), ldc, cupy.asarray, to_host)


def test_public_api_dispatches_cupy_arrays() -> None:
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(4, 50)), rng.normal(size=(4, 50))
    v = ld.kl(cupy.asarray(s), cupy.asarray(t), reduction="sum")
    assert isinstance(v, cupy.ndarray) and v.shape == ()
    assert float(v) == pytest.approx(float(ld.kl(s, t, reduction="sum")), rel=1e-12)
    y = cupy.asarray(rng.integers(0, 50, size=4))
    _, g = ld.softmax_ce(cupy.asarray(s), y, grad=True)
    np.testing.assert_allclose(cupy.asnumpy(g), ld.softmax_ce(s, cupy.asnumpy(y), grad=True)[1], rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="GPU array"):
        ld.kl(s, cupy.asarray(t))  # host and device mixed
    with pytest.raises(NotImplementedError, match="gamma_ce"):
        ld.gamma_ce(cupy.asarray(s), y, gamma=0.5)


def test_buffers_and_determinism() -> None:
    rng = np.random.default_rng(1)
    s = cupy.asarray(rng.normal(size=(300, 777)).astype(np.float32))
    t = cupy.asarray(rng.normal(size=(300, 777)).astype(np.float32))
    out, gs, gt = cupy.empty(300, np.float32), cupy.empty_like(s), cupy.empty_like(t)
    v, a, b = ldc.js(s, t, grad=True, out=out, grad_out=(gs, gt))
    assert v is out and a is gs and b is gt
    again = ldc.js(s, t, grad=True)
    for x, y in zip((v, a, b), again):
        assert cupy.array_equal(x, y)  # fixed merge order: bit-identical runs


def test_invalid_labels_raise_on_the_gpu() -> None:
    x = cupy.zeros((3, 4))
    with pytest.raises(ValueError, match=r"target at row 2 is 9"):
        ldc.softmax_ce(x, cupy.asarray([0, 1, 9]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; got 2.0 at row 0, class 0"):
        ldc.bce(x, cupy.asarray([[2.0, 0, 0, 0]] * 3))


def test_torch_cuda_tensors_through_logitdiv_torch() -> None:
    torch = pytest.importorskip("torch")
    ldt = pytest.importorskip("logitdiv.torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no GPU")
    rng = np.random.default_rng(2)
    s0, t0 = rng.normal(size=(6, 33)), rng.normal(size=(6, 33))
    for dtype in (torch.float32, torch.float64):
        grads = []
        for device in ("cpu", "cuda"):
            s = torch.tensor(s0, dtype=dtype, device=device, requires_grad=True)
            t = torch.tensor(t0, dtype=dtype, device=device, requires_grad=True)
            loss = ldt.sym_kl(s, t, reduction="batchmean") + ldt.softmax_ce(
                s, torch.arange(6, device=device), reduction="mean")
            loss.backward()
            assert loss.device.type == device
            grads.append((loss.item(), s.grad.cpu().numpy(), t.grad.cpu().numpy()))
        (lc, gsc, gtc), (lg, gsg, gtg) = grads
        rtol = 1e-5 if dtype == torch.float32 else 1e-10
        assert lg == pytest.approx(lc, rel=rtol)
        np.testing.assert_allclose(gsg, gsc, rtol=rtol, atol=rtol * np.abs(gsc).max())
        np.testing.assert_allclose(gtg, gtc, rtol=rtol, atol=rtol * np.abs(gtc).max())
