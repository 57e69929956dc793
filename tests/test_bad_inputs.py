"""The bad-input matrix (README, "Guarantees"): every public function — the five divergences and
gp_kl, the eight losses, ld.score — against every kind of input a user can get wrong, each case
asserting the exact documented outcome: the exception type and a message fragment naming the
expected and the actual value, or the exact values and NaN pattern.

Part 1 crosses 15 functions with the ways their (first) logits can be wrong or unusual: 0-d, Python
scalars, 0 classes, wrong dtypes, ragged lists (errors); lists, non-contiguous, negative-stride,
read-only and misaligned arrays, empty batches (the same results as a clean C-contiguous array);
NaN, +inf and out-of-domain values (that row NaN, every other row unchanged, bit for bit); −inf and
NaN under a mask (exactly as the mask). Part 2 lists the options and labels of each function.
Existing finer checks of the divergences' options live in test_api_errors.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

import ml_dtypes
import numpy as np
import pytest

import logitdiv as ld

S = np.array([[0.5, -1.0, 2.0, 0.1], [0.0, 1.0, -0.5, 0.3], [1.0, 1.0, 1.0, -2.0]])
T = np.array([[0.0, 1.0, 1.5, 0.2], [1.0, 0.0, -1.0, 0.0], [0.5, 0.5, 2.0, 0.0]])
Y = np.array([0, 3, 1])
P = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 0.5, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25]])
D = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
POS = np.array([[0, 2], [1, 3], [-1, -1]])
G = np.linspace(-2.0, 2.0, 36).reshape(2, 2, 3, 3)  # GlobalPointer logits (B, heads, L, L)
SPANS = np.array([[[[0, 1]], [[1, 2]]], [[[-1, -1]], [[0, 0]]]])
FLOAT_MSG = "must hold floating-point logits (float16, bfloat16, float32 or float64); got dtype "


def shape_of(x: Any, default: tuple) -> tuple:
    try:
        return np.shape(x)
    except ValueError:  # ragged
        return default


def lead(x: Any, default: tuple) -> tuple:
    shape = shape_of(x, default)
    return shape[:-1] if len(shape) else ()


@dataclass(frozen=True)
class Fn:
    """A public function with everything but its first logits fixed (labels follow their shape)."""

    name: str
    call: Callable[..., Any]
    arg: str  # the first argument's name in messages
    base: np.ndarray
    grad: bool = True  # takes grad=True
    where: bool = True  # takes where=
    pair: Optional[str] = None  # the second logits' name, if any
    bad_row: tuple = (1, 2)  # an element of row 1 that is a present class

    def __call__(self, x, **kw):
        return self.call(x, **kw)

    def values(self, res):
        """The per-row values of a result (the scores of ld.score)."""
        if self.name == "score":
            return res.scores["kl"]
        return res[0] if isinstance(res, tuple) else res


def _t(x):
    """Second logits for `x`: T resized to its shape, in its float dtype (float64 otherwise)."""
    dtype = x.dtype if isinstance(x, np.ndarray) and x.dtype.kind == "f" else np.float64
    return np.resize(T, shape_of(x, S.shape)).astype(dtype)


FNS = [
    Fn("kl", lambda x, **k: ld.kl(x, _t(x), **k), "s", S, pair="t"),
    Fn("sym_kl", lambda x, **k: ld.sym_kl(x, _t(x), **k), "s", S, pair="t"),
    Fn("js", lambda x, **k: ld.js(x, _t(x), beta=0.3, **k), "s", S, pair="t"),
    Fn("sigmoid_kl", lambda x, **k: ld.sigmoid_kl(x, _t(x), **k), "s", S, pair="t"),
    Fn("sigmoid_sym_kl", lambda x, **k: ld.sigmoid_sym_kl(x, _t(x), **k), "s", S, pair="t"),
    Fn("gp_kl", lambda x, **k: ld.gp_kl(x, _t(x), **k), "s", S, pair="t"),
    Fn("softmax_ce", lambda x, **k: ld.softmax_ce(x, np.resize(Y, lead(x, S.shape)), label_smoothing=0.1, **k), "logits", S),
    Fn("bce", lambda x, **k: ld.bce(x, np.resize(D, shape_of(x, S.shape)), pos_weight=np.full(4, 2.0), **k), "logits", S),
    Fn("multilabel_ce", lambda x, **k: ld.multilabel_ce(x, np.resize(D, shape_of(x, S.shape)), **k), "logits", S),
    Fn("sparse_multilabel_ce", lambda x, **k: ld.sparse_multilabel_ce(x, np.resize(POS, lead(x, S.shape) + (2,)), **k),
       "logits", S),
    Fn("globalpointer_ce", lambda x, **k: ld.globalpointer_ce(x, np.resize(SPANS, lead(x, G.shape)[:2] + (1, 2)), **k),
       "logits", G, where=False, bad_row=(0, 1, 0, 1)),
    Fn("gamma_ce", lambda x, **k: ld.gamma_ce(x, np.resize(Y, lead(x, S.shape)), gamma=0.3, **k), "logits", S),
    Fn("kd_loss", lambda x, **k: ld.kd_loss(x, _t(x), np.resize(Y, lead(x, S.shape)), temperature=2.0, alpha=0.6, **k),
       "student", S, pair="teacher"),
    Fn("rdrop_loss", lambda x, **k: ld.rdrop_loss(x, _t(x), np.resize(Y, lead(x, S.shape)), alpha=1.0, **k), "s1", S,
       pair="s2"),
    Fn("score", lambda x, **k: ld.score(x, _t(x), metrics=("kl", "js", "top1"), **k), "a", S, grad=False, where=False),
]
FN_IDS = [f.name for f in FNS]


def same(a, b) -> bool:
    """Bit-identical arrays (NaN equal to NaN), dtype and shape included."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def outputs(fn: Fn, res) -> list:
    """Every array a call returned (values and gradients; the scores of ld.score)."""
    if fn.name == "score":
        return [res.scores[k] for k in sorted(res.scores)]
    return list(res) if isinstance(res, tuple) else [res]


def full_call(fn: Fn, x, **kw):
    return fn(x, grad=True, **kw) if fn.grad else fn(x, **kw)


# ------------------------------------------------------------------------------------------------
# Part 1: the logits, for every function


def err_zero_d(fn: Fn, what: str) -> str:
    if fn.name == "score":
        return re.escape(f"a ({what}) is a scalar; logits need at least one axis (the classes)")
    return re.escape(f"{fn.arg} must have at least one axis (the classes); got a 0-d array")


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
@pytest.mark.parametrize("x, what", [(np.float64(1.5), "float64"), (1.5, "array"), (np.array(1.5), "array")],
                         ids=["numpy-scalar", "python-scalar", "0-d-array"])
def test_zero_d_logits_are_value_errors(fn, x, what):
    with pytest.raises(ValueError, match=err_zero_d(fn, what)):
        fn(x)


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
def test_zero_classes_are_value_errors(fn):
    x = np.zeros(fn.base.shape[:-1] + (0,)) if fn.name != "globalpointer_ce" else np.zeros((2, 2, 0, 0))
    if fn.name == "score":
        msg = re.escape("a (array) has shape (3, 0): no classes on the last axis")
    elif fn.pair == "t":
        msg = re.escape("s and t must have at least one class on the last axis; got shape (3, 0)")
    else:
        msg = re.escape(f"{fn.arg} must have at least one class on the last axis; got shape {x.shape}")
    with pytest.raises(ValueError, match=msg):
        fn(x)


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.complex128, np.bool_, object, np.str_],
                         ids=["int64", "uint8", "complex128", "bool", "object", "str"])
def test_non_float_logits_are_type_errors(fn, dtype):
    x = fn.base.astype(dtype)
    if fn.name == "score":
        msg = re.escape(f"a (array) holds {x.dtype} values; logits must be float16, bfloat16, float32 or float64")
    else:
        msg = re.escape(f"{fn.arg} {FLOAT_MSG}{x.dtype}")
    with pytest.raises(TypeError, match=msg):
        fn(x)


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
def test_ragged_lists_are_type_errors(fn):
    ragged = [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]]
    what = "a could not be read as an array of logits" if fn.name == "score" else f"{fn.arg} could not be read as an array"
    with pytest.raises(TypeError, match=re.escape(what) + ".*inhomogeneous"):
        fn(ragged)


def misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of `a` at an address one byte past an aligned one (np.frombuffer at offset 1)."""
    buf = bytearray(a.nbytes + a.itemsize)
    m = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    m[...] = a
    assert not m.flags.aligned and m.flags.c_contiguous
    return m


def read_only(a: np.ndarray) -> np.ndarray:
    r = a.copy()
    r.flags.writeable = False
    return r


LAYOUTS = {
    "list": lambda a: a.tolist(),
    "class-stride-2": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "negative-class-stride": lambda a: np.flip(np.flip(a, -1).copy(), -1),
    "negative-row-stride": lambda a: np.flip(np.flip(a, 0).copy(), 0),
    "fortran-order": lambda a: np.asfortranarray(a),
    "read-only": read_only,
    "misaligned": misaligned,
    "misaligned-float32": lambda a: misaligned(a.astype(np.float32)),
    "misaligned-float16": lambda a: misaligned(a.astype(np.float16)),
}


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layouts_give_the_results_of_a_contiguous_copy(fn, layout):
    x = LAYOUTS[layout](fn.base)
    before = np.array(x)  # a fresh C-contiguous, aligned copy
    got = full_call(fn, x)
    want = full_call(fn, before)
    for g, w in zip(outputs(fn, got), outputs(fn, want)):
        assert same(g, w), layout
    assert same(np.asarray(x), before)  # inputs are never written


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
def test_misaligned_second_inputs_and_labels_are_copied_not_misread(fn):
    """The other array arguments (t, labels, probabilities, weights) misaligned: the same result."""
    x = fn.base
    if fn.pair:
        mk = {"kl": ld.kl, "sym_kl": ld.sym_kl, "js": ld.js, "sigmoid_kl": ld.sigmoid_kl,
              "sigmoid_sym_kl": ld.sigmoid_sym_kl, "gp_kl": ld.gp_kl}
        if fn.name in mk:
            got, want = mk[fn.name](x, misaligned(T), grad=True), mk[fn.name](x, T, grad=True)
        elif fn.name == "kd_loss":
            got = ld.kd_loss(x, misaligned(T), misaligned(Y), temperature=2.0, alpha=0.6, grad=True)
            want = ld.kd_loss(x, T, Y, temperature=2.0, alpha=0.6, grad=True)
        else:
            got = ld.rdrop_loss(x, misaligned(T), misaligned(P), alpha=1.0, grad=True)
            want = ld.rdrop_loss(x, T, P, alpha=1.0, grad=True)
    elif fn.name == "softmax_ce":
        got, want = ld.softmax_ce(x, misaligned(Y), grad=True), ld.softmax_ce(x, Y, grad=True)
        assert same(ld.softmax_ce(x, misaligned(P)), ld.softmax_ce(x, P))
    elif fn.name == "bce":
        got = ld.bce(x, misaligned(D), pos_weight=misaligned(np.full(4, 2.0)), weights=misaligned(np.ones((3, 4))),
                     grad=True)
        want = ld.bce(x, D, pos_weight=np.full(4, 2.0), weights=np.ones((3, 4)), grad=True)
    elif fn.name == "multilabel_ce":
        got, want = ld.multilabel_ce(x, misaligned(D), grad=True), ld.multilabel_ce(x, D, grad=True)
    elif fn.name == "sparse_multilabel_ce":
        got, want = ld.sparse_multilabel_ce(x, misaligned(POS), grad=True), ld.sparse_multilabel_ce(x, POS, grad=True)
    elif fn.name == "globalpointer_ce":
        mask = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
        got = ld.globalpointer_ce(x, misaligned(SPANS), mask=misaligned(mask), grad=True)
        want = ld.globalpointer_ce(x, SPANS, mask=mask, grad=True)
    elif fn.name == "gamma_ce":
        got, want = ld.gamma_ce(x, misaligned(Y), gamma=0.3, grad=True), ld.gamma_ce(x, Y, gamma=0.3, grad=True)
    else:  # score
        got, want = ld.score(x, misaligned(T)).scores["kl"], ld.score(x, T).scores["kl"]
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        assert same(g, w)
    if fn.name in ("sigmoid_kl", "sigmoid_sym_kl", "gp_kl"):
        w = np.array([1.0, 0.5, 2.0, 0.0])
        assert same(ld.sigmoid_kl(x, T, weights=misaligned(w)), ld.sigmoid_kl(x, T, weights=w))


OUT_FNS = [f for f in FNS if f.grad]  # ld.score has no out=: its scores are always fresh arrays


@pytest.mark.parametrize("fn", OUT_FNS, ids=[f.name for f in OUT_FNS])
def test_misaligned_outputs_are_value_errors(fn):
    lead_shape = fn.base.shape[:-1] if fn.name != "globalpointer_ce" else fn.base.shape[:2]
    out = misaligned(np.zeros(lead_shape))
    with pytest.raises(ValueError, match=re.escape("out must be aligned to its element size (8 bytes)")):
        fn(fn.base, out=out)
    grad = misaligned(np.zeros(fn.base.shape))
    n = 2 if fn.pair and fn.name != "kd_loss" else 1
    grad_out = (grad, np.zeros(fn.base.shape)) if n == 2 else grad
    name = "grad_out[0]" if n == 2 else "grad_out"
    with pytest.raises(ValueError, match=re.escape(f"{name} must be aligned to its element size (8 bytes)")):
        fn(fn.base, grad=True, grad_out=grad_out)


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
def test_empty_batches_give_empty_results(fn):
    x = np.zeros((0,) + fn.base.shape[1:])
    if fn.name == "score":
        res = fn(x)
        assert res.scores["kl"].shape == (0,) and res.summary.rows == 0 and res.summary["kl"].mean is None
        return
    res = fn(x, grad=True)
    lead_shape = x.shape[:-1] if fn.name != "globalpointer_ce" else x.shape[:2]
    assert res[0].shape == lead_shape and all(g.shape == x.shape for g in res[1:])
    for reduction in ("sum", "mean", "batchmean"):
        v = fn(x, reduction=reduction)
        assert np.ndim(v) == 0 and v == 0.0


def bad_value_case(fn: Fn, value: float):
    x = fn.base.copy()
    x[fn.bad_row] = value
    return x


def row_index(fn: Fn) -> tuple:
    """The index of the bad element's row among the per-row values."""
    return fn.bad_row[:2] if fn.name == "globalpointer_ce" else fn.bad_row[:1]


@pytest.mark.parametrize("fn", FNS, ids=FN_IDS)
@pytest.mark.parametrize("value", [np.nan, np.inf, 1e301, -1e301], ids=["nan", "+inf", "1e301", "-1e301"])
def test_a_bad_logit_makes_its_row_nan_and_no_other(fn, value):
    """NaN, +inf, or a finite logit beyond ±1e300 (the kernels' domain): that row's value and
    gradients are NaN, every other row is bit-identical to the clean call."""
    x = bad_value_case(fn, value)
    got, clean = full_call(fn, x), full_call(fn, fn.base)
    r = row_index(fn)
    mask = np.zeros(fn.values(clean).shape, bool)
    mask[r] = True
    if fn.name == "score":
        for name in ("kl", "js"):
            g, c = got.scores[name], clean.scores[name]
            assert np.isnan(g[mask]).all() and same(g[~mask], c[~mask]), name
    else:
        for k, (g, c) in enumerate(zip(outputs(fn, got), outputs(fn, clean))):
            if g.shape == mask.shape:  # values
                assert np.isnan(g[mask]).all() and same(g[~mask], c[~mask]), k
            else:  # gradients: that row all NaN, the others unchanged
                rows_g, rows_c = g.reshape(mask.size, -1), c.reshape(mask.size, -1)
                bad = np.flatnonzero(mask.ravel())
                assert np.isnan(rows_g[bad]).all(), k
                assert same(np.delete(rows_g, bad, 0), np.delete(rows_c, bad, 0)), k
    if fn.name == "score":
        assert got.summary["kl"].nonfinite == 1
    else:
        assert np.isnan(fn(x, reduction="sum")) and np.isnan(fn(x, reduction="mean"))


WHERE_FNS = [f for f in FNS if f.where]


@pytest.mark.parametrize("fn", WHERE_FNS, ids=[f.name for f in WHERE_FNS])
def test_minus_inf_is_exactly_an_excluded_class(fn):
    """−inf (in both inputs of a divergence) gives bit for bit what where= excluding it gives, with
    a zero gradient there."""
    x = bad_value_case(fn, -np.inf)
    keep = np.ones(S.shape, bool)
    keep[fn.bad_row] = False
    if fn.pair:
        t = T.copy()
        t[fn.bad_row] = -np.inf
        call = {"t": lambda a, b, **k: getattr(ld, fn.name)(a, b, **({"beta": 0.3} if fn.name == "js" else {}), **k),
                "teacher": lambda a, b, **k: ld.kd_loss(a, b, Y, temperature=2.0, alpha=0.6, grad_teacher=k.get("grad", False), **k),
                "s2": lambda a, b, **k: ld.rdrop_loss(a, b, Y, alpha=1.0, **k)}[fn.pair]
        got, want = call(x, t, grad=True), call(fn.base, T, grad=True, where=keep)
    else:
        got, want = fn(x, grad=True), fn(fn.base, grad=True, where=keep)
    for g, w in zip(got, want):
        assert same(g, w)
    assert np.isfinite(got[0]).all() and all((g[fn.bad_row] == 0).all() for g in got[1:])


@pytest.mark.parametrize("fn", WHERE_FNS, ids=[f.name for f in WHERE_FNS])
def test_nan_under_the_mask_is_never_read(fn):
    x = bad_value_case(fn, np.nan)
    keep = np.ones(S.shape, bool)
    keep[fn.bad_row] = False
    got, want = fn(x, grad=True, where=keep), fn(fn.base, grad=True, where=keep)
    for g, w in zip(got, want):
        assert same(g, w)


@pytest.mark.parametrize("fn", [f for f in FNS if f.pair], ids=[f.name for f in FNS if f.pair])
def test_second_logits_of_another_shape_or_dtype(fn):
    if fn.name == "score":
        with pytest.raises(ValueError, match=re.escape(
                "a and b must hold logits for the same rows and classes; got shapes (3, 4) (3 rows × 4 classes) and "
                "(3, 5) (3 rows × 5 classes): the class counts differ")):
            ld.score(S, np.zeros((3, 5)))
        with pytest.raises(TypeError, match=re.escape("b (array) holds int64 values")):
            ld.score(S, T.astype(np.int64))
        return
    two = {"t": lambda b: getattr(ld, fn.name)(S, b),
           "teacher": lambda b: ld.kd_loss(S, b, Y, temperature=2.0, alpha=0.5),
           "s2": lambda b: ld.rdrop_loss(S, b, Y, alpha=1.0)}[fn.pair]
    first = fn.arg
    with pytest.raises(ValueError, match=re.escape(f"{first} and {fn.pair} must have the same shape; got (3, 4) and (3, 5)")):
        two(np.zeros((3, 5)))
    with pytest.raises(ValueError, match=re.escape(f"{first} and {fn.pair} must have the same shape; got (3, 4) and (4,)")):
        two(np.zeros(4))  # no broadcasting between the two logit arrays
    with pytest.raises(TypeError, match=re.escape(f"{fn.pair} {FLOAT_MSG}int64")):
        two(T.astype(np.int64))
    # different float types promote: float64 with float32 computes in float64
    assert np.asarray(two(T.astype(np.float32))).dtype == np.float64


# ------------------------------------------------------------------------------------------------
# Part 2: options and labels, function by function


@dataclass(frozen=True)
class Err:
    kind: type
    fragment: str  # an exact (escaped) fragment of the message


def _case(id_: str, thunk: Callable[[], Any], expect: Err):
    return pytest.param(thunk, expect, id=id_)


KL = lambda **k: ld.kl(S, T, **k)  # noqa: E731
CE = lambda y=Y, **k: ld.softmax_ce(S, y, **k)  # noqa: E731
TEMP = "temperature must be finite and > 0; got "
SUB = "temperature must be at least 1/f64::MAX ≈ 5.6e-309 (its reciprocal must be finite); got 1e-310"
OOR = "class indices must lie in [0, 4) or equal ignore_index (-100)"

OPTION_CASES = [
    # temperature (every function that has one)
    *[_case(f"{n}-temperature-{v}", (lambda f=f, v=v: f(temperature=v)), Err(ValueError, TEMP + m))
      for n, f in [("kl", KL), ("js", lambda **k: ld.js(S, T, **k)), ("sigmoid_sym_kl", lambda **k: ld.gp_kl(S, T, **k)),
                   ("softmax_ce", lambda **k: CE(**k)),
                   ("kd_loss", lambda **k: ld.kd_loss(S, T, Y, alpha=0.5, **k)),
                   ("score", lambda **k: ld.score(S, T, **k))]
      for v, m in [(-1.0, "-1"), (0.0, "0"), (np.inf, "inf")]],
    _case("kl-temperature-nan", lambda: KL(temperature=np.nan), Err(ValueError, TEMP + "NaN")),
    _case("kl-temperature-subnormal", lambda: KL(temperature=1e-310), Err(ValueError, SUB)),
    _case("softmax_ce-temperature-subnormal", lambda: CE(temperature=1e-310), Err(ValueError, SUB)),
    _case("kd_loss-temperature-subnormal", lambda: ld.kd_loss(S, T, temperature=1e-310, alpha=0.5), Err(ValueError, SUB)),
    _case("score-temperature-subnormal", lambda: ld.score(S, T, temperature=1e-310), Err(ValueError, SUB)),
    _case("kl-temperature-str", lambda: KL(temperature="2"), Err(TypeError, "temperature must be a real number; got '2'")),
    _case("kl-temperature-array", lambda: KL(temperature=np.array(2.0)),
          Err(TypeError, "temperature must be a real number; got array(2.)")),
    # β of js
    _case("js-beta-1.5", lambda: ld.js(S, T, beta=1.5), Err(ValueError, "beta must lie in [0, 1]; got 1.5")),
    _case("js-beta--0.1", lambda: ld.js(S, T, beta=-0.1), Err(ValueError, "beta must lie in [0, 1]; got -0.1")),
    _case("js-beta-nan", lambda: ld.js(S, T, beta=np.nan), Err(ValueError, "beta must lie in [0, 1]; got NaN")),
    # reductions
    *[_case(f"{n}-reduction-{r}", (lambda f=f, r=r: f(reduction=r)),
            Err(ValueError, f"reduction must be one of 'none', 'sum', 'mean', 'batchmean'; got {r!r}"))
      for n, f in [("kl", KL), ("softmax_ce", lambda **k: CE(**k)), ("bce", lambda **k: ld.bce(S, D, **k)),
                   ("sparse_multilabel_ce", lambda **k: ld.sparse_multilabel_ce(S, POS, **k)),
                   ("rdrop_loss", lambda **k: ld.rdrop_loss(S, T, Y, alpha=1.0, **k))]
      for r in ["avg", "MEAN", None]],
    _case("globalpointer_ce-reduction", lambda: ld.globalpointer_ce(G, SPANS, reduction="avg"),
          Err(ValueError, "reduction must be one of 'none', 'sum', 'mean', 'batchmean', 'sum_heads_mean_batch'; got 'avg'")),
    # flags
    _case("kl-grad-1", lambda: KL(grad=1), Err(TypeError, "grad must be True or False; got 1")),
    _case("multilabel_ce-grad-str", lambda: ld.multilabel_ce(S, D, grad="yes"),
          Err(TypeError, "grad must be True or False; got 'yes'")),
    _case("kd_loss-t2-1", lambda: ld.kd_loss(S, T, Y, temperature=2.0, alpha=0.5, t2=1),
          Err(TypeError, "t2 must be True or False; got 1")),
    _case("kd_loss-grad_teacher-without-grad", lambda: ld.kd_loss(S, T, Y, temperature=2.0, alpha=0.5, grad_teacher=True),
          Err(ValueError, "grad_teacher=True needs grad=True")),
    # label smoothing
    *[_case(f"{n}-label_smoothing-{v}", (lambda f=f, v=v: f(label_smoothing=v)),
            Err(ValueError, f"label_smoothing must lie in [0, 1]; got {m}"))
      for n, f in [("softmax_ce", lambda **k: CE(**k)), ("kd_loss", lambda **k: ld.kd_loss(S, T, Y, temperature=2.0, alpha=0.5, **k)),
                   ("rdrop_loss", lambda **k: ld.rdrop_loss(S, T, Y, alpha=1.0, **k))]
      for v, m in [(1.5, "1.5"), (-0.1, "-0.1"), (np.nan, "NaN")]],
    _case("rdrop_loss-sigmoid-label_smoothing", lambda: ld.rdrop_loss(S, T, D, alpha=1.0, kind="sigmoid", label_smoothing=0.1),
          Err(ValueError, "label_smoothing applies to the softmax kind only")),
    # γ, threshold
    _case("gamma_ce-gamma-1", lambda: ld.gamma_ce(S, Y, gamma=1.0), Err(ValueError, "gamma must lie in [0, 1); got 1")),
    _case("gamma_ce-gamma-1.5", lambda: ld.gamma_ce(S, Y, gamma=1.5), Err(ValueError, "gamma must lie in [0, 1); got 1.5")),
    _case("gamma_ce-gamma--0.1", lambda: ld.gamma_ce(S, Y, gamma=-0.1), Err(ValueError, "gamma must lie in [0, 1); got -0.1")),
    _case("gamma_ce-gamma-nan", lambda: ld.gamma_ce(S, Y, gamma=np.nan), Err(ValueError, "gamma must lie in [0, 1); got NaN")),
    _case("gamma_ce-gamma-missing", lambda: ld.gamma_ce(S, Y), Err(TypeError, "missing 1 required keyword-only argument: 'gamma'")),
    _case("gamma_ce-threshold-2", lambda: ld.gamma_ce(S, Y, gamma=0.5, threshold=2.0),
          Err(ValueError, "threshold must lie in [0, 1]; got 2")),
    # α
    _case("kd_loss-alpha-2", lambda: ld.kd_loss(S, T, Y, temperature=2.0, alpha=2.0), Err(ValueError, "alpha must lie in [0, 1]; got 2")),
    _case("kd_loss-alpha-nan", lambda: ld.kd_loss(S, T, Y, temperature=2.0, alpha=np.nan),
          Err(ValueError, "alpha must lie in [0, 1]; got NaN")),
    _case("rdrop_loss-alpha--1", lambda: ld.rdrop_loss(S, T, Y, alpha=-1.0), Err(ValueError, "alpha must be finite and ≥ 0; got -1")),
    _case("rdrop_loss-alpha-inf", lambda: ld.rdrop_loss(S, T, Y, alpha=np.inf), Err(ValueError, "alpha must be finite and ≥ 0; got inf")),
    _case("rdrop_loss-kind", lambda: ld.rdrop_loss(S, T, Y, alpha=1.0, kind="tanh"),
          Err(ValueError, "kind must be 'softmax' or 'sigmoid'; got 'tanh'")),
    # weights and pos_weight
    *[_case(f"{n}-weights-length-3", (lambda f=f: f(weights=np.ones(3))),
            Err(ValueError, "weights has shape (3,), which does not broadcast to the logits' shape (3, 4)"))
      for n, f in [("sigmoid_kl", lambda **k: ld.sigmoid_kl(S, T, **k)), ("gp_kl", lambda **k: ld.gp_kl(S, T, **k)),
                   ("bce", lambda **k: ld.bce(S, D, **k))]],
    _case("bce-pos_weight-length-5", lambda: ld.bce(S, D, pos_weight=np.ones(5)),
          Err(ValueError, "pos_weight has shape (5,), which does not broadcast to the logits' shape (3, 4)")),
    _case("bce-pos_weight-negative", lambda: ld.bce(S, D, pos_weight=np.array([1.0, -1.0, 1.0, 1.0])),
          Err(ValueError, "pos_weight must be finite and ≥ 0; got -1 at row 0, class 1")),
    _case("bce-weights-nan", lambda: ld.bce(S, D, weights=np.array([1.0, 1.0, np.nan, 1.0])),
          Err(ValueError, "weights must be finite and ≥ 0; got NaN at row 0, class 2")),
    _case("sigmoid_kl-weights-inf-row-2", lambda: ld.sigmoid_kl(S, T, weights=np.where(np.arange(12).reshape(3, 4) == 9, np.inf, 1.0)),
          Err(ValueError, "weights must be finite and ≥ 0; got inf at row 2, class 1")),
    _case("sigmoid_kl-weights-bool", lambda: ld.sigmoid_kl(S, T, weights=np.ones(4, bool)),
          Err(TypeError, "weights must be a real numeric array; got dtype bool")),
    _case("bce-weights-complex", lambda: ld.bce(S, D, weights=np.ones(4, complex)),
          Err(TypeError, "weights must be a real numeric array; got dtype complex128")),
    # where
    _case("kl-where-int", lambda: KL(where=np.ones(4, np.int64)), Err(TypeError, "where must be a boolean array; got dtype int64")),
    _case("softmax_ce-where-float", lambda: CE(where=np.ones((3, 4))), Err(TypeError, "where must be a boolean array; got dtype float64")),
    _case("bce-where-shape", lambda: ld.bce(S, D, where=np.ones(5, bool)),
          Err(ValueError, "where has shape (5,), which does not broadcast to the logits' shape (3, 4)")),
    # out= / grad_out=
    _case("kl-out-shape", lambda: KL(out=np.empty(4)),
          Err(ValueError, "out must have shape (3,) and dtype float64; got shape (4,) and dtype float64")),
    _case("softmax_ce-out-dtype", lambda: CE(out=np.empty(3, np.float32)),
          Err(ValueError, "out must have shape (3,) and dtype float64; got shape (3,) and dtype float32")),
    _case("bce-out-read-only", lambda: ld.bce(S, D, out=read_only(np.empty(3))), Err(ValueError, "out must be a writeable C-contiguous array")),
    _case("gamma_ce-out-with-sum", lambda: ld.gamma_ce(S, Y, gamma=0.1, reduction="sum", out=np.empty(3)),
          Err(ValueError, "out= holds per-row values and needs reduction='none'; got reduction='sum'")),
    _case("multilabel_ce-out-list", lambda: ld.multilabel_ce(S, D, out=[0.0, 0.0, 0.0]), Err(TypeError, "out must be a NumPy array; got list")),
    _case("sparse-grad_out-strided", lambda: ld.sparse_multilabel_ce(S, POS, grad=True, grad_out=np.empty((4, 3)).T),
          Err(ValueError, "grad_out must be a writeable C-contiguous array")),
    _case("rdrop-grad_out-one", lambda: ld.rdrop_loss(S, T, Y, alpha=1.0, grad=True, grad_out=np.empty((3, 4))),
          Err(TypeError, "grad_out must be a tuple of 2 arrays (or None)")),
    _case("kd-grad_out-without-grad", lambda: ld.kd_loss(S, T, Y, temperature=2.0, alpha=0.5, grad_out=np.empty((3, 4))),
          Err(ValueError, "grad_out= needs grad=True")),
    _case("kl-out-aliases-s", lambda: (lambda s: ld.kl(s, T[:, :1].copy(), out=s[:, 0]))(S[:, :1].copy()),
          Err(ValueError, "(an output may not alias an input)")),
    _case("softmax_ce-grad_out-aliases-logits", lambda: (lambda s: ld.softmax_ce(s, Y, grad=True, grad_out=s))(S.copy()),
          Err(ValueError, "(an output may not alias an input)")),
    # class-index labels
    *[_case(f"{n}-label-{v}", (lambda f=f, v=v: f(np.array([0, v, 1]))),
            Err(ValueError, f"target at row 1 is {v}; {OOR}"))
      for n, f in [("softmax_ce", lambda y: ld.softmax_ce(S, y)), ("gamma_ce", lambda y: ld.gamma_ce(S, y, gamma=0.2)),
                   ("kd_loss", lambda y: ld.kd_loss(S, T, y, temperature=2.0, alpha=0.5)),
                   ("rdrop_loss", lambda y: ld.rdrop_loss(S, T, y, alpha=1.0))]
      for v in [4, -1, 2**40]],
    _case("softmax_ce-label-int32-max", lambda: CE(np.array([0, 2**31 - 1, 1], np.int32)),
          Err(ValueError, f"target at row 1 is 2147483647; {OOR}")),
    _case("softmax_ce-label-uint64-beyond-int64", lambda: CE(np.array([0, 2**64 - 1, 1], np.uint64)),
          Err(ValueError, "target holds 18446744073709551615, beyond the int64 range")),
    _case("softmax_ce-label-float-of-leading-shape", lambda: CE(np.array([0.0, 3.0, 1.0])),
          Err(ValueError, "target holds class probabilities and must have the logits' shape (3, 4); got shape (3,) "
                          "(for class indices pass an integer array)")),
    _case("softmax_ce-label-bool", lambda: CE(np.array([True, False, True])),
          Err(TypeError, "target must be integer class indices or floating-point probabilities; got dtype bool")),
    _case("softmax_ce-label-object", lambda: CE(np.array([0, 3, 1], object)),
          Err(TypeError, "target must be integer class indices or floating-point probabilities; got dtype object")),
    _case("softmax_ce-label-str", lambda: CE(np.array(["0", "3", "1"])),
          Err(TypeError, "target must be integer class indices or floating-point probabilities; got dtype <U1")),
    _case("softmax_ce-label-wrong-shape", lambda: CE(np.array([0, 1])),
          Err(ValueError, "target holds class indices and must have the logits' leading shape (3,); got shape (2,) (logits (3, 4))")),
    _case("gamma_ce-label-float", lambda: ld.gamma_ce(S, P, gamma=0.2),
          Err(TypeError, "gamma_ce takes integer class indices as target; got dtype float64")),
    _case("softmax_ce-ignore_index-float", lambda: CE(ignore_index=-100.0), Err(TypeError, "ignore_index must be an int; got -100.0")),
    _case("softmax_ce-ignore_index-beyond-int64", lambda: CE(ignore_index=2**70),
          Err(ValueError, f"ignore_index must fit in int64 (labels are compared as int64); got {2**70}")),
    # probability labels
    *[_case(f"{n}-probability-{v}", (lambda f=f, v=v: f(np.where(np.arange(12).reshape(3, 4) == 6, v, P))),
            Err(ValueError, f"target probabilities must be finite and ≥ 0; got {m} at row 1, class 2"))
      for n, f in [("softmax_ce", lambda y: ld.softmax_ce(S, y)), ("kd_loss", lambda y: ld.kd_loss(S, T, y, temperature=2.0, alpha=0.5)),
                   ("kd_loss-alpha-1", lambda y: ld.kd_loss(S, T, y, temperature=2.0, alpha=1.0)),
                   ("rdrop_loss", lambda y: ld.rdrop_loss(S, T, y, alpha=1.0))]
      for v, m in [(-0.5, "-0.5"), (np.nan, "NaN"), (np.inf, "inf")]],
    _case("softmax_ce-probabilities-shape", lambda: CE(P[:, :3]),
          Err(ValueError, "target holds class probabilities and must have the logits' shape (3, 4); got shape (3, 3)")),
    # dense labels in [0, 1]
    *[_case(f"{n}-dense-{v}", (lambda f=f, v=v: f(np.where(np.arange(12).reshape(3, 4) == 6, v, D))),
            Err(ValueError, f"target probabilities must lie in [0, 1]; got {m} at row 1, class 2"))
      for n, f in [("bce", lambda y: ld.bce(S, y)), ("multilabel_ce", lambda y: ld.multilabel_ce(S, y)),
                   ("rdrop_loss-sigmoid", lambda y: ld.rdrop_loss(S, T, y, alpha=1.0, kind="sigmoid"))]
      for v, m in [(1.5, "1.5"), (-0.5, "-0.5"), (np.nan, "NaN")]],
    _case("bce-target-int-2", lambda: ld.bce(S, np.where(np.arange(12).reshape(3, 4) == 6, 2, 0)),
          Err(ValueError, "target probabilities must lie in [0, 1]; got 2 at row 1, class 2")),
    _case("bce-target-shape", lambda: ld.bce(S, D[:, :3]), Err(ValueError, "target must have the logits' shape (3, 4); got shape (3, 3)")),
    _case("multilabel_ce-target-complex", lambda: ld.multilabel_ce(S, D.astype(complex)),
          Err(TypeError, "target must hold real numbers; got dtype complex128")),
    _case("rdrop_loss-sigmoid-class-indices", lambda: ld.rdrop_loss(S, T, Y, alpha=1.0, kind="sigmoid"),
          Err(ValueError, "target must have the logits' shape (3, 4); got shape (3,)")),
    # positives
    _case("sparse-positive-out-of-range", lambda: ld.sparse_multilabel_ce(S, np.array([[0, 2], [1, 9], [-1, -1]])),
          Err(ValueError, "positive class 9 at row 1 is out of range: class indices must lie in [0, 4) or equal pad (-1)")),
    _case("sparse-positive-twice", lambda: ld.sparse_multilabel_ce(S, np.array([[0, 2], [3, 3], [-1, -1]])),
          Err(ValueError, "class 3 is listed twice among the positives of row 1")),
    _case("sparse-positives-float", lambda: ld.sparse_multilabel_ce(S, POS.astype(float)),
          Err(TypeError, "positives must hold integer class indices; got dtype float64")),
    _case("sparse-positives-shape", lambda: ld.sparse_multilabel_ce(S, POS[:2]),
          Err(ValueError, "positives must have shape (3,) + (K,) for logits of shape (3, 4); got shape (2, 2)")),
    _case("sparse-pad-float", lambda: ld.sparse_multilabel_ce(S, POS, pad=-1.0), Err(TypeError, "pad must be an int; got -1.0")),
    _case("sparse-pad-beyond-int64", lambda: ld.sparse_multilabel_ce(S, POS, pad=-(2**63) - 1),
          Err(ValueError, f"pad must fit in int64 (labels are compared as int64); got {-(2**63) - 1}")),
    # GlobalPointer
    _case("gp-span-out-of-range", lambda: ld.globalpointer_ce(G, np.where(SPANS == 2, 3, SPANS)),
          Err(ValueError, "span (1, 3) of batch 0, head 1 is out of range: positions must lie in [0, 3) (or both equal pad, -1)")),
    _case("gp-span-twice", lambda: ld.globalpointer_ce(G, np.concatenate([SPANS, SPANS], axis=2)),
          Err(ValueError, "span (0, 1) is listed twice among the positives of batch 0, head 0")),
    _case("gp-spans-shape", lambda: ld.globalpointer_ce(G, SPANS[:1]),
          Err(ValueError, "spans_or_positives must have shape (2, 2, K, 2) (spans) or (2, 2, K) (flat indices) for logits of "
                          "shape (2, 2, 3, 3); got shape (1, 2, 1, 2)")),
    _case("gp-not-square", lambda: ld.globalpointer_ce(np.zeros((2, 2, 3, 4)), SPANS),
          Err(ValueError, "GlobalPointer logits must have shape (B, heads, L, L); got shape (2, 2, 3, 4)")),
    _case("gp-3d", lambda: ld.globalpointer_ce(np.zeros((2, 3, 3)), SPANS),
          Err(ValueError, "GlobalPointer logits must have shape (B, heads, L, L); got shape (2, 3, 3)")),
    _case("gp-mask-shape", lambda: ld.globalpointer_ce(G, SPANS, mask=np.ones((2, 4), bool)),
          Err(ValueError, "mask must have shape (2, 3) (batch, sequence length); got shape (2, 4)")),
    _case("gp-mask-2", lambda: ld.globalpointer_ce(G, SPANS, mask=np.full((2, 3), 2)), Err(ValueError, "mask must hold 0/1 values (or booleans)")),
    _case("gp-mask-str", lambda: ld.globalpointer_ce(G, SPANS, mask=np.full((2, 3), "1")),
          Err(TypeError, "mask must be boolean or 0/1 numbers; got dtype <U1")),
    # ld.score
    _case("score-metric", lambda: ld.score(S, T, metrics=("kl", "foo")),
          Err(ValueError, "unknown metric 'foo'; choose from kl, rkl, sym_kl, js, sigmoid_kl, sigmoid_sym_kl, top1, topK")),
    _case("score-no-metric", lambda: ld.score(S, T, metrics=()), Err(ValueError, "no metric given")),
    _case("score-chunk_rows-0", lambda: ld.score(S, T, chunk_rows=0), Err(ValueError, "chunk_rows must be an int ≥ 1; got 0")),
    _case("score-top_k_worst--1", lambda: ld.score(S, T, top_k_worst=-1), Err(ValueError, "top_k_worst must be an int ≥ 0; got -1")),
    _case("score-threshold-nan", lambda: ld.score(S, T, threshold=np.nan), Err(ValueError, "threshold must be a number, not NaN")),
    _case("score-key", lambda: ld.score(S, T, key=3), Err(TypeError, "key must be a name, or a pair (key_a, key_b); got 3")),
    _case("score-progress", lambda: ld.score(S, T, progress="yes"),
          Err(TypeError, "progress must be True, False or a callable(rows_done, rows_total); got 'yes'")),
    _case("score-missing-file", lambda: ld.score("/nonexistent/base.npy", T), Err(FileNotFoundError, "a: no such file: /nonexistent/base.npy")),
    # threads
    *[_case(f"set_num_threads-{v!r}", (lambda v=v: ld.set_num_threads(v)), Err(ValueError, f"n must be an int ≥ 0; got {v!r}"))
      for v in [-1, 1.5, True, "2", None]],
    _case("set_num_threads-beyond-4096", lambda: ld.set_num_threads(2**70),
          Err(ValueError, f"number of threads must be at most 4096; got {2**70}")),
]


@pytest.mark.parametrize("thunk, expect", OPTION_CASES)
def test_bad_options_and_labels(thunk, expect, threads_restored):
    with pytest.raises(expect.kind) as info:
        thunk()
    assert type(info.value) is expect.kind, f"{type(info.value).__name__}: {info.value}"
    assert expect.fragment in str(info.value), str(info.value)


def test_the_matrix_is_large_enough():
    """At least 40 distinct bad-input cases beyond the per-function logits matrix."""
    assert len(OPTION_CASES) >= 40


# ------------------------------------------------------------------------------------------------
# values, exactly


VALUE_CASES = [
    # −inf and absent classes (MATH.md, "−inf, masks and bad values")
    pytest.param(lambda: ld.kl([[0.0, -np.inf]], [[0.0, -np.inf]]), [0.0], id="kl-minus-inf-in-both-is-absent"),
    pytest.param(lambda: ld.kl([[0.0, 0.0]], [[0.0, -np.inf]]), [np.inf], id="kl-support-mismatch-is-inf"),
    pytest.param(lambda: ld.kl([[0.0, -np.inf]], [[0.0, 0.0]]), [np.log(2.0)], id="kl-p-zero-is-finite"),
    pytest.param(lambda: ld.sym_kl([[0.0, -np.inf]], [[0.0, 0.0]]), [np.inf], id="sym_kl-one-sided-minus-inf-is-inf"),
    pytest.param(lambda: ld.js([[0.0, -np.inf]], [[-np.inf, 0.0]]), [np.log(2.0)], id="js-disjoint-supports-is-log2"),
    pytest.param(lambda: ld.kl([[-np.inf, -np.inf]], [[-np.inf, -np.inf]]), [0.0], id="kl-no-class-present-is-0"),
    pytest.param(lambda: ld.kl([[-np.inf, -np.inf]], [[0.0, 0.0]]), [np.nan], id="kl-no-distribution-is-nan"),
    pytest.param(lambda: ld.sigmoid_kl([[0.0]], [[-np.inf]]), [np.inf], id="sigmoid_kl-finite-against-minus-inf-is-inf"),
    pytest.param(lambda: ld.sigmoid_kl([[-np.inf]], [[0.0]]), [np.log(2.0)], id="sigmoid_kl-minus-inf-against-finite"),
    pytest.param(lambda: ld.sigmoid_sym_kl([[0.0, 1.0]], [[0.0, -np.inf]]), [np.inf], id="gp_kl-one-sided-minus-inf-is-inf"),
    pytest.param(lambda: ld.softmax_ce([[0.0, -np.inf]], [1]), [np.inf], id="softmax_ce-label-on-absent-class-is-inf"),
    pytest.param(lambda: ld.softmax_ce([[0.0, -np.inf]], [0]), [0.0], id="softmax_ce-only-class-is-0"),
    pytest.param(lambda: ld.softmax_ce([[0.0, 0.0]], [-100]), [0.0], id="softmax_ce-ignored-row-is-0"),
    pytest.param(lambda: ld.bce([[-np.inf, 0.0]], [[0.0, 1.0]]), [np.log(2.0)], id="bce-minus-inf-with-target-0"),
    pytest.param(lambda: ld.bce([[-np.inf]], [[0.5]]), [np.inf], id="bce-minus-inf-with-positive-target-is-inf"),
    pytest.param(lambda: ld.multilabel_ce([[-np.inf, 0.0]], [[1.0, 0.0]]), [np.inf], id="multilabel-positive-absent-is-inf"),
    pytest.param(lambda: ld.sparse_multilabel_ce([[0.0, -np.inf]], [[1]]), [np.inf], id="sparse-positive-absent-is-inf"),
    pytest.param(lambda: ld.gamma_ce([[0.0, -np.inf]], [1], gamma=0.5), [np.inf], id="gamma-label-absent-is-inf"),
    # NaN only in its own row, also through a reduction
    pytest.param(lambda: ld.kl([[np.nan, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]]), [np.nan, 0.0], id="kl-nan-row"),
    pytest.param(lambda: ld.kl([[np.nan, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 1.0]], reduction="sum"), np.nan, id="kl-nan-sum"),
    pytest.param(lambda: ld.softmax_ce([[np.nan, 0.0], [0.0, 0.0]], [0, -100], reduction="mean"), np.nan, id="softmax_ce-nan-mean"),
    pytest.param(lambda: ld.softmax_ce([[np.nan, 0.0], [0.0, 0.0]], [-100, 0], reduction="mean"), np.log(2.0),
                 id="softmax_ce-nan-in-ignored-row-is-not-read"),
    pytest.param(lambda: ld.bce([[np.nan, 0.0]], [[1.0, 0.0]], weights=[0.0, 1.0]), [np.log(2.0)], id="bce-weight-0-is-not-read"),
    pytest.param(lambda: ld.sigmoid_kl([[np.nan, 0.0]], [[0.0, 0.0]], weights=[0.0, 1.0]), [0.0], id="sigmoid_kl-weight-0-is-not-read"),
    # out-of-domain logits (|x/τ| > 1e300) and their temperature
    pytest.param(lambda: ld.kl([[1e-7, 0.0]], [[0.0, 0.0]], temperature=1e-308), [np.nan], id="kl-scaled-beyond-1e300-is-nan"),
    pytest.param(lambda: ld.kl([[1e-9, 0.0]], [[0.0, 0.0]], temperature=1e-308), [np.log(2.0)], id="kl-scaled-to-1e299-is-in-domain"),
    pytest.param(lambda: ld.kl([[1e300, 0.0]], [[1e300, 0.0]]), [0.0], id="kl-at-1e300-is-in-domain"),
    pytest.param(lambda: ld.sym_kl([[1e300, 0.0]], [[-1e300, 0.0]]), [2e300], id="sym_kl-huge-in-domain"),
    pytest.param(lambda: ld.softmax_ce([[1e300, -1e300]], [0]), [0.0], id="softmax_ce-huge-confident"),
    # empty rows with reductions
    pytest.param(lambda: ld.kl(np.zeros((0, 3)), np.zeros((0, 3)), reduction="mean"), 0.0, id="kl-empty-mean-is-0"),
    pytest.param(lambda: ld.softmax_ce(np.zeros((2, 3)), [-100, -100], reduction="mean"), 0.0, id="softmax_ce-all-ignored-mean-is-0"),
    pytest.param(lambda: ld.softmax_ce(np.zeros((2, 3)), [-100, -100], reduction="batchmean"), 0.0, id="softmax_ce-all-ignored-batchmean-is-0"),
]


@pytest.mark.parametrize("thunk, expect", VALUE_CASES)
def test_exact_values(thunk, expect):
    got = thunk()
    # NaN and ±inf exactly where expected, 0 exactly, other values to the last few digits
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(expect, dtype=np.float64), rtol=1e-14, atol=0)


def test_float16_logits_keep_float32_values_and_float16_gradients():
    v, gs, gt = ld.kl(S.astype(np.float16), T.astype(np.float16), grad=True)
    assert v.dtype == np.float32 and gs.dtype == np.float16 and gt.dtype == np.float16
    bf = np.dtype(ml_dtypes.bfloat16)
    v, g = ld.softmax_ce(S.astype(bf), Y, grad=True)
    assert v.dtype == np.float32 and g.dtype == bf
