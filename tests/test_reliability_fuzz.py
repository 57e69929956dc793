"""Fuzzing the public Python API with hypothesis: arbitrary arrays (any dtype, 0 to 3 axes, empty
axes, NaN, ±inf, huge and subnormal values, non-contiguous, negative-stride, Fortran-order,
read-only and misaligned layouts, lists), arbitrary options (out-of-range, NaN, wrong types) and
labels (out of range, wrong dtype or shape), for every public function. A call may only return
a result of the documented shapes and dtypes, or raise TypeError or ValueError — never crash, hang
or raise anything else — and on clean inputs (finite logits of moderate size, valid options) the
result is finite, ≥ 0, with finite gradients.

Budget: the "reliability-fuzz" profile, LOGITDIV_FUZZ_EXAMPLES examples per function (default 250:
about 20–30 s for the whole module on 2 cores, run by the test command); derandomized so CI runs
are reproducible — set LOGITDIV_FUZZ_RANDOM=1 for a fresh random campaign and
LOGITDIV_FUZZ_EXAMPLES=20000 for a long one. A failing example found this way belongs in
test_bad_inputs.py (or REGRESSIONS below) as a fixed case.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import logitdiv as ld

settings.register_profile(
    "reliability-fuzz",
    max_examples=int(os.environ.get("LOGITDIV_FUZZ_EXAMPLES", "250")),
    deadline=None,
    derandomize=os.environ.get("LOGITDIV_FUZZ_RANDOM", "") != "1",
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
FUZZ = settings.get_profile("reliability-fuzz")
BF16 = np.dtype(ml_dtypes.bfloat16)
FLOATS = [np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16), BF16]
ALLOWED = (TypeError, ValueError)

# ------------------------------------------------------------------------------------------------
# strategies

SPECIAL = np.array([np.nan, np.inf, -np.inf, -np.inf, 0.0, -0.0, 1e-310, 5e-324, 1e300, -1e300, 1e301, 1.7e308,
                    -1.7e308, 65504.0, 1e38, 40.0, -40.0, 746.0])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
LAYOUTS = ["c", "c", "c", "fortran", "reversed", "strided", "misaligned", "readonly", "list"]


def relayout(a: np.ndarray, layout: str) -> Any:
    """The same values in another memory layout (or as nested lists)."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "reversed" and a.ndim:
        return np.flip(np.flip(a, -1).copy(), -1)
    if layout == "strided" and a.ndim:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if layout == "misaligned" and a.dtype.kind in "fiuc" and a.itemsize > 1:
        buf = bytearray(a.nbytes + a.itemsize)
        m = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        m[...] = a
        return m
    if layout == "readonly":
        r = a.copy()
        r.flags.writeable = False
        return r
    if layout == "list" and a.dtype.kind == "f" and a.dtype.itemsize >= 4:
        return a.tolist()
    return a


@st.composite
def float_arrays(draw, shape=None, dtype=None):
    """Values drawn from a seeded generator (cheap to draw, and hypothesis still shrinks the seed,
    the scale and the share of special values): normal logits at a random scale, a share of them
    replaced by NaN, ±inf, zeros, subnormals and huge values."""
    shape = draw(shapes) if shape is None else shape
    dtype = draw(st.sampled_from(FLOATS)) if dtype is None else dtype
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([3.0, 3.0, 30.0, 1e-3, 1e4, 1e300]))
    special = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3, 1.0]))
    values = np.asarray(rng.normal(0.0, scale, shape))
    pick = rng.random(shape) < special
    values[pick] = rng.choice(SPECIAL, int(pick.sum()))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        arr = values.astype(dtype)
    return relayout(arr, draw(st.sampled_from(LAYOUTS)))


@st.composite
def logits(draw, shape=None):
    """Mostly float logits; sometimes another dtype, a scalar or a ragged list."""
    kind = draw(st.sampled_from(["float"] * 12 + ["int", "bool", "complex", "object", "str", "scalar", "ragged"]))
    if kind == "float":
        return draw(float_arrays(shape=shape))
    if kind == "scalar":
        return draw(st.sampled_from([1.5, np.float64(2.0), np.array(0.5), None, "x"]))
    if kind == "ragged":
        return [[1.0, 2.0], [3.0]]
    shape = draw(shapes) if shape is None else shape
    dtype = {"int": np.int64, "bool": np.bool_, "complex": np.complex128, "object": object, "str": np.str_}[kind]
    return np.zeros(shape, dtype=dtype)


def shape_of(x) -> tuple:
    try:
        return np.shape(x)
    except ValueError:
        return (2,)


@st.composite
def second(draw, x):
    """Second logits: usually of x's shape, sometimes of another shape or a bad kind."""
    if draw(st.integers(0, 9)) == 0:
        return draw(logits())
    return draw(float_arrays(shape=shape_of(x)))


number = st.one_of(
    st.sampled_from([1.0, 0.5, 2.0, 0.0, 1.0, 1.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-1.0, 5e-324, 1e-310, np.float32(0.3), np.int64(1), 1, True, "1", None, np.array(1.0)]),
)
unit = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, -0.1, 1.5, np.nan, None, "0.5"]))
reduction = st.sampled_from(["none", "sum", "mean", "batchmean", "none", "avg", None, 1, "MEAN"])
flag = st.sampled_from([False, True, False, True, 1, None, "yes"])


@st.composite
def where(draw, shape):
    kind = draw(st.sampled_from(["none"] * 4 + ["full", "class", "row", "scalar", "int", "bad-shape"]))
    if kind == "none":
        return None
    if kind == "int":
        return np.ones(shape, dtype=np.int64)
    if kind == "scalar":
        return draw(st.booleans())
    if kind == "bad-shape":
        return np.ones(tuple(s + 1 for s in shape) or (3,), dtype=bool)
    sub = {"full": shape, "class": shape[-1:], "row": shape[:-1] + (1,) if shape else ()}[kind]
    return draw(hnp.arrays(np.bool_, sub))


@st.composite
def class_labels(draw, shape):
    """Integer class indices of the leading shape (sometimes out of range, of another dtype or shape)."""
    lead = shape[:-1] if shape else ()
    c = shape[-1] if shape else 1
    kind = draw(st.sampled_from(["ok"] * 6 + ["range", "dtype", "shape", "probs"]))
    if kind == "dtype":
        return draw(st.sampled_from([np.zeros(lead, dtype=bool), np.zeros(lead, dtype=float), np.zeros(lead, dtype=object)]))
    if kind == "shape":
        return np.zeros(lead + (2,), dtype=np.int64)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "probs":
        p = np.asarray(rng.random(shape))
        bad = rng.random(shape) < draw(st.sampled_from([0.0, 0.0, 0.1]))
        p[bad] = rng.choice([-0.5, np.nan, np.inf, 2.0], int(bad.sum()))
        return p
    hi = c + 2 if kind == "range" else max(c, 1)
    lo = -3 if kind == "range" else 0
    dtype = draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int64]))
    if dtype == np.uint8:
        lo = 0
    lab = np.asarray(rng.integers(lo, max(hi, lo + 1), lead)).astype(dtype)
    ignored = rng.random(lead) < 0.2
    lab[ignored] = 0 if dtype == np.uint8 else -100
    return relayout(lab, draw(st.sampled_from(["c", "misaligned", "readonly", "reversed"])))


@st.composite
def dense_labels(draw, shape):
    kind = draw(st.sampled_from(["ok"] * 6 + ["bad", "int", "bool", "shape"]))
    if kind == "shape":
        return np.zeros(shape[:-1] if shape else (2,))
    if kind == "bool":
        return draw(hnp.arrays(np.bool_, shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "int":
        return np.asarray(rng.integers(-1, 3, shape))
    y = np.asarray(np.where(rng.random(shape) < 0.5, rng.random(shape), rng.integers(0, 2, shape).astype(float)))
    if kind == "bad":
        bad = rng.random(shape) < 0.2
        y[bad] = rng.choice([-0.5, 1.5, np.nan, np.inf], int(bad.sum()))
    return relayout(y, draw(st.sampled_from(["c", "misaligned", "readonly"])))


@st.composite
def weights(draw, shape):
    kind = draw(st.sampled_from(["none"] * 3 + ["class", "full", "bad", "shape"]))
    if kind == "none":
        return None
    if kind == "shape":
        return np.ones((shape[-1] + 1 if shape else 2,))
    sub = shape[-1:] if kind in ("class", "bad") else shape
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = np.asarray(rng.uniform(0, 10, sub) * (rng.random(sub) < 0.8))
    if kind == "bad":
        bad = rng.random(sub) < 0.3
        w[bad] = rng.choice([-1.0, np.nan, np.inf], int(bad.sum()))
    return relayout(w, draw(st.sampled_from(["c", "misaligned"])))


# ------------------------------------------------------------------------------------------------
# the oracle


def is_clean(*arrays) -> bool:
    """Float arrays of ≥ 1 axis and ≥ 1 class, finite, within ±1e4."""
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.dtype not in FLOATS or a.ndim == 0 or a.shape[-1] == 0:
            return False
        v = a.astype(np.float64)
        if not (np.isfinite(v).all() and (np.abs(v) <= 1e4).all()):
            return False
    return True


def moderate(x) -> bool:
    return isinstance(x, (float, int)) and not isinstance(x, bool) and 0.1 <= x <= 10


def check_result(res, x, lead, n_grads, clean: bool, reduction_none: bool) -> None:
    """Documented shapes and dtypes; finite, ≥ 0 results (and finite gradients) on clean input."""
    x = np.asarray(x)
    vals = res[0] if n_grads else res
    vals = np.asarray(vals)
    if reduction_none:
        assert vals.shape == lead, (vals.shape, lead)
    else:
        assert vals.shape == ()
    assert vals.dtype in (np.float32, np.float64)
    grads = res[1:] if n_grads else ()
    assert len(grads) == n_grads
    for g in grads:
        assert g.shape == x.shape, (g.shape, x.shape)
    if clean:
        with np.errstate(invalid="ignore"):
            assert np.isfinite(vals).all() and (vals >= 0).all(), vals
        for g in grads:
            assert np.isfinite(g.astype(np.float64)).all()


def guarded(call, allowed=ALLOWED):
    """Runs `call`: a documented exception is fine; anything else fails the example."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return call(), None
        except allowed as e:
            assert str(e), "an exception without a message"
            return None, e


def logits_and_labels(data, labels):
    """Draws logits, then labels for their shape from `labels(shape)`; returns (logits, shape,
    labels)."""
    x = data.draw(logits(), "logits")
    shape = shape_of(x)
    return x, shape, data.draw(labels(shape), "target")


def row_options(data, shape, **own) -> dict:
    """A function's own options (`own`, drawn by the caller first) and the three that every row-wise
    function takes, drawn after them in this order: reduction, grad, where."""
    return dict(own, reduction=data.draw(reduction, "reduction"), grad=data.draw(flag, "grad"),
                where=data.draw(where(shape), "where"))


def call_and_check(call, kw, x, lead, n_grads: int, clean) -> None:
    """Runs `call` guarded; where it returns, checks its result (check_result): `n_grads` gradients
    when kw["grad"] is True, per-row values of shape `lead` when kw["reduction"] is "none", and the
    clean-input bounds where `clean()` is true."""
    res, err = guarded(call)
    if err is None:
        check_result(res, x, lead, n_grads if kw["grad"] is True else 0, clean(), kw["reduction"] == "none")


# ------------------------------------------------------------------------------------------------
# the properties, one per function


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["kl", "sym_kl", "js", "sigmoid_kl", "sigmoid_sym_kl", "gp_kl"]))
def test_divergences_never_crash(data, kind):
    s = data.draw(logits(), "s")
    t = data.draw(second(s), "t")
    shape = shape_of(s)
    kw = row_options(data, shape, temperature=data.draw(number, "temperature"))
    if kind == "js":
        kw["beta"] = data.draw(st.one_of(unit, number), "beta")
    if kind in ("sigmoid_kl", "sigmoid_sym_kl", "gp_kl"):
        kw["weights"] = data.draw(weights(shape), "weights")
    call_and_check(lambda: getattr(ld, kind)(s, t, **kw), kw, s, shape[:-1], 2,
                   lambda: is_clean(s, t) and moderate(kw["temperature"]) and kw["where"] is None
                   and kw.get("weights") is None)


@FUZZ
@given(data=st.data())
def test_softmax_ce_never_crashes(data):
    x, shape, y = logits_and_labels(data, class_labels)
    kw = row_options(data, shape, label_smoothing=data.draw(unit, "label_smoothing"),
                     temperature=data.draw(number, "temperature"),
                     ignore_index=data.draw(st.sampled_from([-100, -1, 0, 2**70, -100.0]), "ignore_index"))
    call_and_check(lambda: ld.softmax_ce(x, y, **kw), kw, x, shape[:-1], 1,
                   lambda: is_clean(x) and moderate(kw["temperature"]) and kw["where"] is None)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["bce", "multilabel_ce"]))
def test_dense_label_losses_never_crash(data, kind):
    x, shape, y = logits_and_labels(data, dense_labels)
    kw = row_options(data, shape)
    if kind == "bce":
        kw["pos_weight"] = data.draw(weights(shape), "pos_weight")
        kw["weights"] = data.draw(weights(shape), "weights")
    call_and_check(lambda: getattr(ld, kind)(x, y, **kw), kw, x, shape[:-1], 1,
                   lambda: is_clean(x) and kw["where"] is None)


@FUZZ
@given(data=st.data())
def test_sparse_multilabel_ce_never_crashes(data):
    x = data.draw(logits(), "logits")
    shape = shape_of(x)
    lead, c = (shape[:-1], shape[-1]) if shape else ((), 1)
    k = data.draw(st.integers(0, 3), "K")
    pos = data.draw(st.one_of(
        hnp.arrays(np.int64, lead + (k,), elements=st.integers(-2, c + 1)),
        hnp.arrays(np.float64, lead + (k,)),
        hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3), elements=st.integers(-1, 3)),
    ), "positives")
    kw = row_options(data, shape, pad=data.draw(st.sampled_from([-1, 0, -1.0, 2**64]), "pad"))
    call_and_check(lambda: ld.sparse_multilabel_ce(x, pos, **kw), kw, x, shape[:-1], 1,
                   lambda: is_clean(x) and kw["where"] is None)


@FUZZ
@given(data=st.data())
def test_globalpointer_ce_never_crashes(data):
    b, h, length = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)), data.draw(st.integers(0, 4))
    shape = data.draw(st.sampled_from([(b, h, length, length)] * 6 + [(b, h, length, length + 1), (b, h, length)]), "shape")
    x = data.draw(logits(shape=shape), "logits")
    k = data.draw(st.integers(0, 3), "K")
    spans = data.draw(st.one_of(
        hnp.arrays(np.int64, (b, h, k, 2), elements=st.integers(-2, length + 1)),
        hnp.arrays(np.int64, (b, h, k), elements=st.integers(-2, length * length + 1)),
        hnp.arrays(np.float64, (b, h, k, 2)),
        hnp.arrays(np.int64, (b + 1, h, k, 2)),
    ), "spans")
    mask = data.draw(st.one_of(st.none(), hnp.arrays(np.bool_, (b, length)), hnp.arrays(np.int64, (b, length), elements=st.integers(0, 2)),
                               hnp.arrays(np.float64, (b, length + 1))), "mask")
    kw = dict(mask=mask, pad=data.draw(st.sampled_from([-1, 0]), "pad"),
              reduction=data.draw(st.sampled_from(["none", "sum", "mean", "batchmean", "sum_heads_mean_batch", "avg"]), "reduction"),
              grad=data.draw(flag, "grad"))
    res, err = guarded(lambda: ld.globalpointer_ce(x, spans, **kw))
    if err is None:
        # a positive on an absent span (i > j, or a masked token) makes its row +inf, as documented
        pad = kw["pad"]
        if spans.ndim == 4:
            real = ~((spans[..., 0] == pad) & (spans[..., 1] == pad))
            upper = (spans[..., 0] <= spans[..., 1])[real].all()
        else:
            real = spans != pad
            upper = (spans // max(length, 1) <= spans % max(length, 1))[real].all()
        clean = is_clean(x) and mask is None and bool(upper)
        lead = tuple(np.shape(x)[:2])
        check_result(res, x, lead, 1 if kw["grad"] is True else 0, clean, kw["reduction"] == "none")


@FUZZ
@given(data=st.data())
def test_gamma_ce_never_crashes(data):
    x, shape, y = logits_and_labels(data, class_labels)
    kw = row_options(data, shape, gamma=data.draw(st.one_of(st.floats(0, 0.999), number), "gamma"),
                     threshold=data.draw(st.one_of(st.none(), unit), "threshold"))
    call_and_check(lambda: ld.gamma_ce(x, y, **kw), kw, x, shape[:-1], 1, lambda: is_clean(x) and kw["where"] is None)


@FUZZ
@given(data=st.data(), kd=st.booleans())
def test_kd_and_rdrop_never_crash(data, kd):
    s = data.draw(logits(), "s")
    t = data.draw(second(s), "t")
    shape = shape_of(s)
    sigmoid = not kd and data.draw(st.booleans(), "sigmoid")
    y = data.draw(dense_labels(shape) if sigmoid else st.one_of(st.none(), class_labels(shape)), "target")
    grad = data.draw(flag, "grad")
    kw = dict(alpha=data.draw(st.one_of(unit, number), "alpha"), label_smoothing=data.draw(st.one_of(st.just(0.0), unit), "ls"),
              reduction=data.draw(reduction, "reduction"), grad=grad, where=data.draw(where(shape), "where"))
    if kd:
        kw.update(temperature=data.draw(number, "temperature"), t2=data.draw(flag, "t2"),
                  grad_teacher=data.draw(flag, "grad_teacher"))
        call = lambda: ld.kd_loss(s, t, y, **kw)  # noqa: E731
        n_grads = 2 if kw["grad_teacher"] is True else 1
    else:
        kw["kind"] = data.draw(st.sampled_from(["sigmoid", "tanh"]) if sigmoid else st.just("softmax"), "kind")
        call = lambda: ld.rdrop_loss(s, t, y, **kw)  # noqa: E731
        n_grads = 2
    call_and_check(call, kw, s, shape[:-1], n_grads,
                   lambda: is_clean(s, t) and kw["where"] is None and (not kd or moderate(kw["temperature"])))


@FUZZ
@given(data=st.data())
def test_score_never_crashes(data):
    a = data.draw(logits(), "a")
    b = data.draw(second(a), "b")
    kw = dict(metrics=data.draw(st.sampled_from([("kl", "top1"), ("js", "sigmoid_sym_kl", "top3"), "kl,rkl", ("foo",), ()]), "metrics"),
              temperature=data.draw(number, "temperature"), chunk_rows=data.draw(st.sampled_from([None, 1, 2, 0, -1, 2.5]), "chunk_rows"),
              top_k_worst=data.draw(st.sampled_from([0, 3, -1]), "top_k_worst"),
              threshold=data.draw(st.sampled_from([None, 0.1, np.nan, "x"]), "threshold"))
    # a string is a path to ld.score: one that does not exist is a FileNotFoundError
    res, err = guarded(lambda: ld.score(a, b, **kw), ALLOWED + (FileNotFoundError,))
    if err is None:
        rows = int(np.prod(shape_of(a)[:-1]))
        for name, v in res.scores.items():
            assert v.shape == (rows,)
        assert res.summary.rows == rows
        if is_clean(a, b) and moderate(kw["temperature"]):
            for v in res.scores.values():
                assert np.isfinite(v).all() and (v >= 0).all()


# ------------------------------------------------------------------------------------------------
# examples the fuzzing found, kept as fixed cases (their fixes are in the core and the Python layer)

REGRESSIONS = [
    # a subnormal temperature made 1/τ = inf: every logit NaN (now a ValueError)
    pytest.param(lambda: ld.kl([[0.0, 1.0]], [[0.0, 1.0]], temperature=5e-324), ValueError, id="subnormal-temperature"),
    # misaligned int64 labels reached the bindings ("must be C-contiguous"): now copied
    pytest.param(lambda: ld.softmax_ce(np.zeros((3, 4)), np.frombuffer(bytearray(25), np.int64, 3, 1)), None,
                 id="misaligned-labels"),
    # ignore_index beyond int64 raised OverflowError
    pytest.param(lambda: ld.softmax_ce(np.zeros((1, 2)), [0], ignore_index=2**70), ValueError, id="ignore-index-overflow"),
    # set_num_threads beyond usize raised OverflowError
    pytest.param(lambda: ld.set_num_threads(2**70), ValueError, id="threads-overflow"),
    # an empty GlobalPointer batch raised IndexError-like errors / was refused
    pytest.param(lambda: ld.globalpointer_ce(np.zeros((0, 2, 3, 3)), np.zeros((0, 2, 1, 2), np.int64)), None,
                 id="gp-empty-batch"),
    # the exact variance of scores near 1e299 overflowed float64: float(Fraction) raised OverflowError
    pytest.param(lambda: ld.score(np.array([[0.38, -0.40], [1.92, 0.31]]),
                                  np.array([[1.26e299, -1.32e299], [6.40e299, 1.05e299]]), metrics=("kl",)), None,
                 id="score-variance-beyond-float64"),
]


def test_score_summary_of_huge_values_is_finite_where_it_can_be():
    res = ld.score(np.array([[0.38, -0.40], [1.92, 0.31]]), np.array([[1.26e299, -1.32e299], [6.40e299, 1.05e299]]))
    s = res.summary["kl"]
    v = res.scores["kl"]
    assert np.isfinite([s.mean, s.std, s.sem]).all()
    assert np.isclose(s.std, abs(v[1] - v[0]) / np.sqrt(2), rtol=1e-12) and np.isclose(s.sem, s.std / np.sqrt(2), rtol=1e-12)


@pytest.mark.parametrize("thunk, raises", REGRESSIONS)
def test_regressions(thunk, raises, threads_restored):
    if raises is None:
        thunk()
    else:
        with pytest.raises(raises):
            thunk()


def test_kernel_regressions_from_the_rust_fuzzers():
    """Cases the proptest targets found in the core, through the Python API."""
    # KL of one class at a huge scaled logit was negative (−3e285): rounding of w ≫ |w|
    assert ld.kl(np.array([[28.98]]), np.array([[21.72]]), temperature=1e-298)[0] == 0.0
    # JS above its bound log 2 on logits of 1e33 (w lost its digits): now within it
    js = ld.js(np.array([[0.0, 0.0, 1e30, 1e30]]), np.array([[0.0, 0.0, -5.857, -np.inf]]), temperature=1e-3, beta=0.25)[0]
    h = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    assert 0 <= js <= h * (1 + 1e-12) and np.isclose(js, h, rtol=1e-9)
    # weight × (1/τ) overflowed: inf · 0 = NaN gradients on equal rows
    _, gs, gt = ld.sigmoid_sym_kl(np.zeros((1, 1)), np.zeros((1, 1)), weights=[1000.0], temperature=2.3e-308, grad=True)
    assert gs[0, 0] == 0 and gt[0, 0] == 0
    # kd_loss with alpha = 1 did not check its probability labels
    with pytest.raises(ValueError, match="target probabilities must be finite and ≥ 0; got -1"):
        ld.kd_loss(np.zeros((1, 2)), np.zeros((1, 2)), np.array([[-1.0, 2.0]]), temperature=1.0, alpha=1.0)
    # rdrop with alpha = 0: a NaN in s1 left s2's gradient finite in a NaN row
    v, g1, g2 = ld.rdrop_loss(np.array([[np.nan, 0.0]]), np.zeros((1, 2)), [1], alpha=0.0, grad=True)
    assert np.isnan(v[0]) and np.isnan(g1).all() and np.isnan(g2).all()
