"""The CUDA kernels, compiled for the host and run one thread per block (tests/cuda_emu), agree
with the CPU core on every case of _cuda_cases.py, including rows split across blocks. This checks
the kernels' arithmetic, conventions, merges and cuda.py's launches without a GPU; what only a GPU
can check (thread-parallel reductions, CuPy) is in test_cuda_gpu.py."""

from __future__ import annotations

import numpy as np
import pytest

import logitdiv as ld
import logitdiv.cuda as ldc
from logitdiv._cuda import launch as L

import _cuda_cases as C
from cuda_emu import emulator

pytestmark = pytest.mark.skipif(emulator.compiler() is None, reason="no C++ compiler (g++) to build the CUDA emulator")

DTYPES = [np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16), C.BF16]
CASES = C.all_cases(DTYPES)


@pytest.fixture(scope="module")
def device():
    dev = emulator.EmulatedDevice(emulator.build())
    previous = ldc._set_device(dev)
    yield dev
    ldc._set_device(previous)


def _identity(a):
    return a


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_emulated_kernels_agree_with_the_cpu_core(device, case) -> None:
    C.compare(case, ldc, _identity, np.asarray)


@pytest.mark.parametrize("split_cols", [1, 5, 16])
@pytest.mark.parametrize("case", [c for c in CASES if c[2][0].dtype in (np.float64, np.float32)
                                  and not c[0].endswith("-long")][::3], ids=lambda c: c[0])
def test_split_rows_agree_with_the_cpu_core(device, monkeypatch, case, split_cols) -> None:
    """Rows cut into chunks of a few classes: every partial state merges into the whole row's."""
    monkeypatch.setattr(L, "SPLIT_COLS", split_cols)
    before = len(device.launches)
    C.compare(case, ldc, _identity, np.asarray)
    cols = case[2][0].shape[-1]
    if cols > split_cols and case[2][0].size:
        chunked = [g for name, g, _ in device.launches[before:] if not name.startswith(("reduce", "rescale"))]
        assert len(chunked) >= 2, "a split row runs its kernel in several phases"


def test_long_rows_are_split_by_default(device) -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=(2, L.SPLIT_COLS + 1))
    before = len(device.launches)
    ldc.kl(s, s[::-1].copy(), grad=True)
    kernels = [x for x in device.launches[before:] if x[0].startswith("softmax_pair")]
    assert [g for _, g, _ in kernels] == [4, 4, 4]  # 2 rows × 2 chunks, phases 1, 2, 3


def test_half_precision_outputs_round_from_float64(device) -> None:
    """float16/bfloat16 gradients are rounded once, from float64, to nearest even, as the CPU's."""
    rng = np.random.default_rng(3)
    for dtype in (np.float16, C.BF16):
        s = (rng.normal(size=(64, 50)) * 4).astype(dtype)
        t = (rng.normal(size=(64, 50)) * 4).astype(dtype)
        for kind in ("kl", "sigmoid_sym_kl"):
            _, gs, gt = getattr(ldc, kind)(s, t, grad=True)
            # the CPU core's float64 kernel on the same (exactly widened) inputs, rounded to the half
            # type: the CPU's own half-precision path computes in float32 lanes, so it is not the
            # reference for "rounded once from float64"
            _, cs, ct = getattr(ld, kind)(s.astype(np.float64), t.astype(np.float64), grad=True)
            cs, ct = cs.astype(dtype), ct.astype(dtype)
            # the same float64 gradient rounds to the same bits; a difference in the last float64
            # digits may move a tie, so allow a few elements one unit apart
            for g, c in ((gs, cs), (gt, ct)):
                diff = g.view(np.uint16).astype(np.int32) - c.view(np.uint16).astype(np.int32)
                assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.02


def test_invalid_labels_raise_the_cpu_errors(device) -> None:
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"target at row 1 is 7; class indices must lie in \[0, 4\)"):
        ldc.softmax_ce(x, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match=r"target at row 1 is"):
        ld.softmax_ce(x, np.array([0, 7, 1]))
    probs = np.full((3, 4), 0.25)
    probs[2, 3] = -1.0
    with pytest.raises(ValueError, match=r"must be finite and ≥ 0; got -1.0 at row 2, class 3"):
        ldc.softmax_ce(x, probs)
    y = np.zeros((3, 4))
    y[1, 2] = 1.5
    for name in ("bce", "multilabel_ce"):
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\]; got 1.5 at row 1, class 2"):
            getattr(ldc, name)(x, y)
    with pytest.raises(ValueError, match=r"pos_weight must be finite and ≥ 0; got -2.0 at row 0, class 1"):
        ldc.bce(x, np.zeros((3, 4)), pos_weight=np.array([1.0, -2.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"weights must be finite and ≥ 0; got nan at row 0, class 0"):
        ldc.sigmoid_kl(x, x, weights=np.array([np.nan, 1.0, 1.0, 1.0]))
    # an ignored row is not checked
    assert ldc.softmax_ce(x, np.array([0, -100, 1]), reduction="mean") == pytest.approx(np.log(4))


def test_out_and_grad_out_buffers_are_filled(device) -> None:
    rng = np.random.default_rng(4)
    s, t = rng.normal(size=(6, 9)).astype(np.float32), rng.normal(size=(6, 9)).astype(np.float32)
    out = np.empty(6, np.float32)
    gs, gt = np.empty_like(s), np.empty_like(t)
    v, a, b = ldc.sym_kl(s, t, grad=True, out=out, grad_out=(gs, gt))
    assert v is out and a is gs and b is gt
    np.testing.assert_allclose(out, ld.sym_kl(s, t), rtol=1e-6)
    g = np.empty_like(s)
    _, got = ldc.softmax_ce(s, np.arange(6), grad=True, grad_out=g)
    assert got is g
    with pytest.raises(ValueError, match="shape"):
        ldc.kl(s, t, out=np.empty(5, np.float32))


def test_strided_and_broadcast_inputs(device) -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(8, 40))
    s, t = base[::2, :30], base[1::2, 5:35]          # row strides beyond a row, offsets
    np.testing.assert_allclose(ldc.kl(s, t), ld.kl(s, t), rtol=1e-12)
    s_rev = base[::-1, ::-1]                            # negative strides: copied
    np.testing.assert_allclose(ldc.js(s_rev, base), ld.js(s_rev, base), rtol=1e-12)
    row = np.broadcast_to(base[0], (5, 40))             # a repeated row (stride 0)
    np.testing.assert_allclose(ldc.sym_kl(row, base[:5]), ld.sym_kl(row, base[:5]), rtol=1e-12)


def test_argument_errors_match_the_cpu(device) -> None:
    s = np.zeros((2, 3))
    for bad, exc in [(dict(reduction="avg"), ValueError), (dict(temperature=0.0), ValueError),
                     (dict(temperature=float("nan")), ValueError), (dict(grad=1), TypeError)]:
        with pytest.raises(exc):
            ldc.kl(s, s, **bad)
        with pytest.raises(exc):
            ld.kl(s, s, **bad)
    with pytest.raises(ValueError, match="beta must lie in"):
        ldc.js(s, s, beta=1.5)
    with pytest.raises(ValueError, match="same shape"):
        ldc.kl(s, np.zeros((2, 4)))
    with pytest.raises(TypeError, match="floating-point"):
        ldc.kl(s.astype(np.int64), s.astype(np.int64))
    with pytest.raises(ValueError, match="at least one class"):
        ldc.kl(np.zeros((2, 0)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match="does not broadcast"):
        ldc.kl(s, s, where=np.ones(4, bool))
    with pytest.raises(TypeError, match="boolean"):
        ldc.kl(s, s, where=np.ones(3))
    with pytest.raises(ValueError, match="grad_out= needs grad=True"):
        ldc.kl(s, s, grad_out=(s, s))
    with pytest.raises(ValueError, match="label_smoothing must lie in"):
        ldc.softmax_ce(s, np.array([0, 1]), label_smoothing=2.0)
    with pytest.raises(ValueError, match="leading shape"):
        ldc.softmax_ce(s, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="class indices or floating-point"):
        ldc.softmax_ce(s, np.array([True, False]))


def test_mean_over_no_counted_rows_is_zero(device) -> None:
    s = np.full((3, 4), -np.inf)
    v, g, _ = ldc.kl(s, s, reduction="mean", grad=True)
    assert float(v) == 0.0 and not g.any()
    v, g = ldc.softmax_ce(np.zeros((2, 3)), np.array([-100, -100]), reduction="mean", grad=True)
    assert float(v) == 0.0 and not g.any()
