"""Bad inputs raise clear errors naming the expected and the actual values: ValueError for shapes,
ranges and options, TypeError for dtypes (DESIGN.md, "The Python API")."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import BF16, KINDS, SIGMOID_KINDS, SOFTMAX_KINDS, call, fn

import logitdiv as ld
from logitdiv import _native

def num(x: float) -> str:
    """A regex for x as Python or Rust prints it (1.0 / 1, nan / NaN, inf)."""
    if np.isnan(x):
        return "(?i:nan)"
    if np.isinf(x):
        return "-inf" if x < 0 else "inf"
    return re.escape(repr(float(x))).replace(r"\.0", r"(\.0)?") if float(x).is_integer() else re.escape(repr(x))


S = np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]])
T = np.array([[0.0, 1.0, 1.5], [1.0, 0.0, -1.0]])


@pytest.mark.parametrize("kind", KINDS)
def test_shape_mismatch(kind):
    with pytest.raises(ValueError, match=re.escape("(2, 3) and (2, 4)")):
        call(kind, S, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=re.escape("(2, 3) and (3,)")):
        call(kind, S, np.zeros(3))  # no broadcasting between s and t


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.uint8, np.complex128, np.bool_, object])
@pytest.mark.parametrize("kind", KINDS)
def test_non_float_dtypes_are_type_errors(kind, bad):
    x = S.astype(bad)
    with pytest.raises(TypeError, match=f"got dtype {np.dtype(bad)}"):
        call(kind, x, T)
    with pytest.raises(TypeError, match=f"got dtype {np.dtype(bad)}"):
        call(kind, S, x)


def test_strings_and_ragged_lists_are_type_errors():
    with pytest.raises(TypeError, match="dtype"):
        ld.kl(np.array(["a", "b"]), np.array(["c", "d"]))
    with pytest.raises((TypeError, ValueError)):
        ld.kl([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0]])


@pytest.mark.parametrize("kind", KINDS)
def test_zero_d_and_zero_classes(kind):
    with pytest.raises(ValueError, match="0-d"):
        call(kind, np.float64(1.0), np.float64(2.0))
    with pytest.raises(ValueError, match=re.escape("at least one class") + ".*" + re.escape("(4, 0)")):
        call(kind, np.zeros((4, 0)), np.zeros((4, 0)))
    with pytest.raises(ValueError, match="at least one class"):
        call(kind, np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("kind", KINDS)
def test_bad_reduction(kind):
    with pytest.raises(ValueError, match=r"'none', 'sum', 'mean', 'batchmean'.*got 'avg'"):
        call(kind, S, T, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        call(kind, S, T, reduction=None)


@pytest.mark.parametrize("tau", [0.0, -1.0, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_temperature(kind, tau):
    with pytest.raises(ValueError, match=f"temperature must be finite and > 0; got {num(tau)}$"):
        call(kind, S, T, temperature=tau)


@pytest.mark.parametrize("kind", KINDS)
def test_temperature_and_grad_of_wrong_type(kind):
    with pytest.raises(TypeError, match="temperature must be a real number; got '2'"):
        call(kind, S, T, temperature="2")
    with pytest.raises(TypeError, match="temperature"):
        call(kind, S, T, temperature=True)
    with pytest.raises(TypeError, match="grad must be True or False; got 1"):
        call(kind, S, T, grad=1)


@pytest.mark.parametrize("beta", [-0.1, 1.5, np.nan, np.inf])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match=f"beta must lie in \\[0, 1\\]; got {num(beta)}$"):
        ld.js(S, T, beta=beta)
    with pytest.raises(TypeError, match="beta"):
        ld.js(S, T, beta="half")


@pytest.mark.parametrize("w", [-1.0, np.nan, np.inf])
@pytest.mark.parametrize("kind", SIGMOID_KINDS)
def test_bad_weights(kind, w):
    weights = np.ones((2, 3))
    weights[1, 2] = w
    with pytest.raises(ValueError, match=f"weights must be finite and ≥ 0; got {num(w)} at row 1, class 2"):
        call(kind, S, T, weights=weights)
    per_class = np.array([1.0, w, 1.0])
    with pytest.raises(ValueError, match=f"got {num(w)} at row 0, class 1"):
        call(kind, S, T, weights=per_class)


@pytest.mark.parametrize("kind", SIGMOID_KINDS)
def test_weights_of_wrong_shape_or_type(kind):
    with pytest.raises(ValueError, match=re.escape("weights has shape (4,), which does not broadcast to the logits' shape (2, 3)")):
        call(kind, S, T, weights=np.ones(4))
    with pytest.raises(TypeError, match="weights must be a real numeric array; got dtype complex128"):
        call(kind, S, T, weights=np.ones(3, complex))


@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_weights_are_rejected_by_the_softmax_family(kind):
    # the public functions have no weights parameter (DESIGN.md), so Python rejects the keyword ...
    with pytest.raises(TypeError, match="weights"):
        fn(kind)(S, T, weights=np.ones(3))
    # ... and the core rejects weights for a softmax divergence with a ValueError
    with pytest.raises(ValueError, match="weights apply to the sigmoid divergences only"):
        _native.pair_divergence(kind, S, T, weights=np.ones((2, 3)), reduction="none")


@pytest.mark.parametrize("kind", KINDS)
def test_bad_where(kind):
    with pytest.raises(TypeError, match="where must be a boolean array; got dtype int64"):
        call(kind, S, T, where=np.ones((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="where must be a boolean array; got dtype float64"):
        call(kind, S, T, where=np.ones(3))
    with pytest.raises(ValueError, match=re.escape("where has shape (2,), which does not broadcast to the logits' shape (2, 3)")):
        call(kind, S, T, where=np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        call(kind, S, T, where=np.ones((3, 3), dtype=bool))


@pytest.mark.parametrize("kind", KINDS)
def test_bad_out(kind):
    with pytest.raises(ValueError, match=re.escape("out must have shape (2,) and dtype float64; got shape (3,) and dtype float64")):
        call(kind, S, T, out=np.empty(3))
    with pytest.raises(ValueError, match=re.escape("out must have shape (2,) and dtype float64; got shape (2,) and dtype float32")):
        call(kind, S, T, out=np.empty(2, np.float32))
    with pytest.raises(ValueError, match=re.escape("shape (2,) and dtype float32")):  # float32 input: float32 values
        call(kind, S.astype(np.float32), T.astype(np.float32), out=np.empty(2))
    with pytest.raises(ValueError, match=re.escape("shape (2,) and dtype float32")):  # float16 input: float32 values
        call(kind, S.astype(np.float16), T.astype(np.float16), out=np.empty(2, np.float16))
    with pytest.raises(ValueError, match="needs reduction='none'; got reduction='sum'"):
        call(kind, S, T, out=np.empty(2), reduction="sum")
    with pytest.raises(TypeError, match="out must be a NumPy array; got list"):
        call(kind, S, T, out=[0.0, 0.0])
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        call(kind, S, T, out=np.empty(4)[::2])
    ro = np.empty(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        call(kind, S, T, out=ro)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_grad_out(kind):
    good = np.empty((2, 3))
    with pytest.raises(ValueError, match=re.escape("grad_out[0] must have shape (2, 3) and dtype float64; got shape (3, 2) and dtype float64")):
        call(kind, S, T, grad=True, grad_out=(np.empty((3, 2)), good))
    with pytest.raises(ValueError, match=re.escape("grad_out[1] must have shape (2, 3) and dtype float64; got shape (2, 3) and dtype float32")):
        call(kind, S, T, grad=True, grad_out=(good, np.empty((2, 3), np.float32)))
    with pytest.raises(ValueError, match=re.escape("grad_out[0] must have shape (2, 3) and dtype float16")):
        call(kind, S.astype(np.float16), T.astype(np.float16), grad=True,
             grad_out=(np.empty((2, 3), np.float32), np.empty((2, 3), np.float16)))
    with pytest.raises(TypeError, match="grad_out must be a tuple of 2 arrays"):
        call(kind, S, T, grad=True, grad_out=good)
    with pytest.raises(TypeError, match="grad_out must be a tuple of 2 arrays"):
        call(kind, S, T, grad=True, grad_out=(good,))
    with pytest.raises(ValueError, match="grad_out= needs grad=True"):
        call(kind, S, T, grad_out=(good, np.empty((2, 3))))
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        call(kind, S, T, grad=True, grad_out=(np.empty((3, 2)).T, good))


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_may_not_alias_inputs_or_each_other(kind):
    s = np.array([[0.5], [1.0], [-2.0]], dtype=np.float32)  # one class: out = s[:, 0] is contiguous
    t = np.array([[0.0], [1.5], [-1.0]], dtype=np.float32)
    s_before = s.copy()
    with pytest.raises(ValueError, match="alias"):
        call(kind, s, t, out=s[:, 0])
    assert np.array_equal(s, s_before)
    s2, t2 = S.copy(), T.copy()
    with pytest.raises(ValueError, match="alias"):
        call(kind, s2, t2, grad=True, grad_out=(s2, np.empty((2, 3))))
    with pytest.raises(ValueError, match="alias"):
        call(kind, s2, t2, grad=True, grad_out=(np.empty((2, 3)), t2))
    assert np.array_equal(s2, S) and np.array_equal(t2, T)
    g = np.empty((2, 3))
    with pytest.raises(ValueError, match="alias"):
        call(kind, s2, t2, grad=True, grad_out=(g, g))
    # half precision travels as uint16 views of the same memory: still caught
    h = S.astype(np.float16)
    with pytest.raises(ValueError, match="alias"):
        call(kind, h, T.astype(np.float16), grad=True, grad_out=(h, np.empty((2, 3), np.float16)))


def test_gpu_arrays_are_rejected_with_a_hint():
    class FakeCuda:
        __cuda_array_interface__ = {}

    with pytest.raises(TypeError, match="GPU array"):
        ld.kl(FakeCuda(), T)


def test_bad_thread_counts(threads_restored):
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=re.escape(f"n must be an int ≥ 0; got {bad!r}")):
            ld.set_num_threads(bad)
    with pytest.raises(ValueError, match="at most 4096; got 5000"):
        ld.set_num_threads(5000)  # the core's rule (check::check_threads), said once
    with pytest.raises(ValueError, match="at most 4096"):
        ld.set_num_threads(2**70)
    assert ld.get_num_threads() >= 1


def test_native_layer_checks_its_arguments():
    # the bindings' typed arguments check again rather than trust the Python layer
    with pytest.raises(ValueError, match="unknown divergence \"kll\"; expected one of kl, sym_kl"):
        _native.pair_divergence("kll", S, T)
    with pytest.raises(TypeError, match="(?s)float16, bfloat16, float32 or float64; got dtype complex128.*'s'"):
        _native.pair_divergence("kl", S.astype(complex), T)
    with pytest.raises(TypeError, match="(?s)NumPy array.*got list.*'t'"):
        _native.pair_divergence("kl", S, T.tolist())
    with pytest.raises(TypeError, match="s and t must have the same dtype; got float64 and float32"):
        _native.pair_divergence("kl", S, T.astype(np.float32))
    with pytest.raises(TypeError, match="expected a 2-D array"):
        _native.pair_divergence("kl", S.ravel(), T.ravel())
    with pytest.raises(ValueError, match="differ in shape"):
        _native.pair_divergence("kl", S, T[:, :2].copy())
    with pytest.raises(ValueError, match="rows must be contiguous"):
        _native.pair_divergence("kl", S[:, ::2], T[:, ::2])
    with pytest.raises(ValueError, match="holds 3 values; expected 2"):
        _native.pair_divergence("kl", S, T, reduction="none", out=np.empty(3))
    with pytest.raises(TypeError, match="expected a 1-D array of f64"):
        _native.pair_divergence("kl", S, T, reduction="none", out=np.empty(2, np.float32))
    with pytest.raises(ValueError, match="reduction must be one of"):
        _native.pair_divergence("kl", S, T, reduction="avg")
    with pytest.raises(TypeError, match="unexpected keyword argument 'elem'"):  # no element names any more
        _native.pair_divergence("kl", S, T, elem="f64")
    s = S.copy()
    with pytest.raises(ValueError, match="an output may not alias an input"):
        _native.pair_divergence("kl", s, T, grad_s=s, grad_t=np.empty_like(T))
    with pytest.raises(ValueError, match="kind must be 'softmax' or 'sigmoid'; got \"gauss\""):
        _native.rdrop_loss("gauss", S, T, alpha=1.0, labels=np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="float32 or float64; got dtype float16"):
        _native.bce(S, T.astype(np.float16))


def test_native_defaults_are_the_public_ones():
    # the native keyword defaults (documented in _native.pyi) give what the public function gives
    for kind in KINDS:
        assert _native.pair_divergence(kind, S, T)[0] == pytest.approx(float(fn(kind)(S, T).sum()), rel=1e-15)
    labels = np.array([0, 2], np.int64)
    assert _native.softmax_ce(S, labels=labels)[0] == pytest.approx(float(ld.softmax_ce(S, labels).sum()), rel=1e-15)


def test_half_precision_arrays_reach_the_core_as_themselves():
    # float16 and bfloat16 logits are read as their own dtype (no uint16 view) and give the value
    # of the same numbers in float32
    for half in (np.float16, BF16):
        s, t = S.astype(half), T.astype(half)
        direct = _native.pair_divergence("sym_kl", s, t, reduction="none", out=np.empty(2, np.float32))[0]
        wide = _native.pair_divergence("sym_kl", s.astype(np.float32), t.astype(np.float32), reduction="sum")[0]
        assert direct == pytest.approx(wide, rel=1e-6)


def test_bfloat16_is_accepted_and_mixed_half_types_promote():
    v = ld.kl(S.astype(BF16), T.astype(BF16))
    assert v.dtype == np.float32
