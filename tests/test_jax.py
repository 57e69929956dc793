"""logitdiv.jax: values and gradients of every function against textbook formulas written in
float64 JAX (and jax.test_util's finite differences), under jit, grad, vmap and their compositions;
the kd teacher's gradient only when asked for; dtypes in JAX's default float32."""

from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Tuple

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.nn import log_sigmoid, log_softmax, sigmoid, softplus  # noqa: E402
from jax.scipy.special import logsumexp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import logitdiv.jax as ldj  # noqa: E402

B, C, H, L = 4, 7, 2, 3
REDUCTIONS = ("none", "sum", "mean", "batchmean")


@pytest.fixture(autouse=True)
def x64():
    """float64 JAX inside each test (restored after, for the other test modules)."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


# ----------------------------------------------------------------------------------------------
# textbook formulas, one value per row (jnp, float64)


def kl_rows(s, t):
    lp, lq = log_softmax(s), log_softmax(t)
    return (jnp.exp(lp) * (lp - lq)).sum(-1)


def js_rows(s, t, beta):
    lp, lq = log_softmax(s), log_softmax(t)
    lm = jnp.log(beta * jnp.exp(lp) + (1 - beta) * jnp.exp(lq))
    return beta * (jnp.exp(lp) * (lp - lm)).sum(-1) + (1 - beta) * (jnp.exp(lq) * (lq - lm)).sum(-1)


def ce_rows(s, y, eps=0.0, ignore=-100):
    ls = log_softmax(s)
    nll = -jnp.take_along_axis(ls, jnp.where(y == ignore, 0, y)[..., None], -1)[..., 0]
    v = (1 - eps) * nll - eps * ls.mean(-1)
    return jnp.where(y == ignore, 0.0, v)


def multilabel_rows(s, y):
    zeros = jnp.zeros_like(s[..., :1])
    neg = jnp.where(y < 1, s + jnp.log1p(-jnp.clip(y, 0, 1 - 1e-300)), -jnp.inf)
    pos = jnp.where(y > 0, -s + jnp.log(jnp.clip(y, 1e-300)), -jnp.inf)
    return logsumexp(jnp.concatenate([neg, zeros], -1), -1) + logsumexp(jnp.concatenate([pos, zeros], -1), -1)


def dense(positives, c, pad=-1):
    return jax.nn.one_hot(jnp.where(positives == pad, c, positives), c + 1).max(-2)[..., :c]


def gp_rows(s, spans, mask):
    b, h, length, _ = s.shape
    i = jnp.arange(length)
    valid = (i[:, None] <= i[None, :])[None, None] & (mask[:, None, :, None] > 0) & (mask[:, None, None, :] > 0)
    flat = jnp.where(valid, s, -jnp.inf).reshape(b, h, -1)
    idx = jnp.where(spans[..., 0] < 0, -1, spans[..., 0] * length + spans[..., 1])
    return multilabel_rows(flat, dense(idx, length * length))


# NumPy constants (float64 whatever JAX's x64 setting at import)
W = np.linspace(0.5, 1.5, C)
Y = np.array([0, 6, 3, -100])
Y_BIN = (np.arange(B * C).reshape(B, C) % 3 == 0).astype(np.float64)
P = np.exp(Y_BIN) / np.exp(Y_BIN).sum(-1, keepdims=True)
POS = np.array([[0, 2], [1, -1], [6, 3], [-1, -1]])
SPANS = np.array([[[[0, 1], [-1, -1]], [[2, 2], [0, 0]]], [[[1, 2], [-1, -1]], [[-1, -1], [-1, -1]]]])
MASK = np.array([[1, 1, 1], [0, 1, 1]])


class Case(NamedTuple):
    ld: Callable[..., jax.Array]            # (*logits, reduction) -> value
    ref: Callable[..., jax.Array]           # (*logits) -> per-row values
    n: int = 2                              # differentiable logits
    shape: Tuple[int, ...] = (B, C)
    counted: Callable[[], jax.Array] = lambda: jnp.ones(B)  # rows "mean" averages over


IGN = lambda: (Y != -100).astype(jnp.float64)  # noqa: E731
CASES: Dict[str, Case] = {
    "kl": Case(lambda s, t, r: ldj.kl(s, t, temperature=2.0, reduction=r), lambda s, t: kl_rows(s / 2, t / 2)),
    "sym_kl": Case(lambda s, t, r: ldj.sym_kl(s, t, reduction=r), lambda s, t: kl_rows(s, t) + kl_rows(t, s)),
    "js": Case(lambda s, t, r: ldj.js(s, t, beta=0.3, reduction=r), lambda s, t: js_rows(s, t, 0.3)),
    "sigmoid_kl": Case(lambda s, t, r: ldj.sigmoid_kl(s, t, weights=W, reduction=r),
                       lambda s, t: (W * (softplus(t) - softplus(s) - sigmoid(s) * (t - s))).sum(-1)),
    "sigmoid_sym_kl": Case(lambda s, t, r: ldj.gp_kl(s, t, temperature=0.5, reduction=r),
                           lambda s, t: ((sigmoid(2 * s) - sigmoid(2 * t)) * (2 * s - 2 * t)).sum(-1)),
    "softmax_ce": Case(lambda s, r: ldj.softmax_ce(s, Y, label_smoothing=0.1, reduction=r),
                       lambda s: ce_rows(s, Y, 0.1), 1, counted=IGN),
    "softmax_ce_probs": Case(lambda s, r: ldj.softmax_ce(s, P, reduction=r),
                             lambda s: -(P * log_softmax(s)).sum(-1), 1),
    "bce": Case(lambda s, r: ldj.bce(s, Y_BIN, pos_weight=W, reduction=r),
                lambda s: ((1 - Y_BIN) * s + (1 + (W - 1) * Y_BIN) * softplus(-s)).sum(-1), 1),
    "multilabel_ce": Case(lambda s, r: ldj.multilabel_ce(s, Y_BIN, reduction=r), lambda s: multilabel_rows(s, Y_BIN), 1),
    "sparse_multilabel_ce": Case(lambda s, r: ldj.sparse_multilabel_ce(s, POS, reduction=r),
                                 lambda s: multilabel_rows(s, dense(POS, C)), 1),
    "globalpointer_ce": Case(lambda s, r: ldj.globalpointer_ce(s, SPANS, mask=MASK, reduction=r),
                             lambda s: gp_rows(s, SPANS, MASK), 1, (2, H, L, L)),
    "gamma_ce": Case(lambda s, r: ldj.gamma_ce(s, Y, gamma=0.3, reduction=r),
                     lambda s: jnp.where(Y == -100, 0.0, -jnp.log(0.3 + 0.7 * jnp.exp(-ce_rows(s, Y))) / 0.7), 1,
                     counted=IGN),
    "kd_loss": Case(lambda s, t, r: ldj.kd_loss(s, t, Y, temperature=2.0, alpha=0.25, reduction=r),
                    lambda s, t: 0.75 * ce_rows(s, Y) + jnp.where(Y == -100, 0.0, 0.25 * 4 * kl_rows(t / 2, s / 2)),
                    counted=IGN),
    "rdrop_loss": Case(lambda s, t, r: ldj.rdrop_loss(s, t, Y, alpha=2.0, reduction=r),
                       lambda s, t: jnp.where(Y == -100, 0.0, ce_rows(s, Y) + ce_rows(t, Y) + kl_rows(s, t)
                                              + kl_rows(t, s)), counted=IGN),
}


def reduce(rows, reduction, counted):
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    if reduction == "batchmean":
        return rows.sum() / rows.size
    return rows.sum() / counted.sum()


def logits(case: Case, seed: int = 0):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.normal(size=case.shape) * 2) for _ in range(case.n))


def scalar(f, reduction, shape):
    """A scalar of the value: per-row values weighted (so the cotangent is not all ones)."""
    if reduction != "none":
        return f
    w = jnp.arange(1.0, 1 + np.prod(shape[:-2] if len(shape) == 4 else shape[:-1])).reshape(
        shape[:-2] if len(shape) == 4 else shape[:-1])
    return lambda *xs: (f(*xs) * w).sum()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CASES)
def test_values_and_gradients_equal_the_textbook_formula(name, reduction):
    case = CASES[name]
    xs = logits(case)
    mine = scalar(lambda *xs: case.ld(*xs, reduction), reduction, case.shape)
    ref = scalar(lambda *xs: reduce(case.ref(*xs), reduction, case.counted()), reduction, case.shape)
    argnums = tuple(range(case.n))
    np.testing.assert_allclose(case.ld(*xs, reduction), reduce(case.ref(*xs), reduction, case.counted()),
                               rtol=1e-12, atol=1e-13)
    v, g = jax.jit(jax.value_and_grad(mine, argnums))(*xs)
    v_ref, g_ref = jax.value_and_grad(ref, argnums)(*xs)
    assert v.dtype == jnp.float64
    np.testing.assert_allclose(v, v_ref, rtol=1e-12)
    for a, b in zip(g, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["kl", "js", "sigmoid_kl", "softmax_ce", "globalpointer_ce", "kd_loss", "rdrop_loss"])
def test_gradients_match_finite_differences(name):
    case = CASES[name]
    check_grads(lambda *xs: case.ld(*xs, "none"), logits(case, seed=1), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["sym_kl", "bce", "globalpointer_ce", "kd_loss", "rdrop_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_vmap_is_per_element_for_every_reduction(name, reduction):
    """vmap over a batch of inputs equals the calls one by one (reductions stay per element),
    under jit, for the value and for the gradient (jit(vmap(grad)))."""
    case = CASES[name]
    batches = [logits(case, seed=i) for i in range(3)]
    stacked = tuple(jnp.stack(x) for x in zip(*batches))
    f = lambda *xs: case.ld(*xs, reduction)  # noqa: E731
    got = jax.jit(jax.vmap(f))(*stacked)
    for i, xs in enumerate(batches):
        np.testing.assert_allclose(got[i], f(*xs), rtol=1e-13)
    g = scalar(f, reduction, case.shape)
    got_g = jax.jit(jax.vmap(jax.grad(g, tuple(range(case.n)))))(*stacked)
    for i, xs in enumerate(batches):
        for a, b in zip(got_g, jax.grad(g, tuple(range(case.n)))(*xs)):
            np.testing.assert_allclose(a[i], b, rtol=1e-13)


def test_vmap_with_an_unbatched_argument_and_nested_vmap():
    s = jnp.asarray(np.random.default_rng(2).normal(size=(3, 2, B, C)))
    t = jnp.asarray(np.random.default_rng(3).normal(size=(B, C)))
    f = lambda s, t: ldj.kl(s, t, reduction="batchmean")  # noqa: E731
    got = jax.vmap(jax.vmap(f, in_axes=(0, None)), in_axes=(0, None))(s, t)
    want = jnp.stack([jnp.stack([kl_rows(s[i, j], t).mean() for j in range(2)]) for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # batched labels, shared logits
    ys = jnp.array([[0, 1, 2, 3], [6, 5, 4, 3]])
    got = jax.vmap(lambda y: ldj.softmax_ce(t, y, reduction="mean"))(ys)
    np.testing.assert_allclose(got, [ce_rows(t, y).mean() for y in ys], rtol=1e-12)


def test_grad_of_a_function_that_vmaps_and_jits_inside():
    case = CASES["rdrop_loss"]
    s, t = logits(case)
    inner = jax.jit(lambda s, t: case.ld(s, t, "mean"))

    def outer(w):  # a loss over two "models" sharing a scale w
        return jax.vmap(inner)(jnp.stack([w * s, s]), jnp.stack([t, w * t])).sum() + inner(w * s, t)

    def outer_ref(w):
        f = lambda s, t: reduce(case.ref(s, t), "mean", case.counted())  # noqa: E731
        return f(w * s, t) + f(s, w * t) + f(w * s, t)

    np.testing.assert_allclose(jax.grad(outer)(1.3), jax.grad(outer_ref)(1.3), rtol=1e-10)
    np.testing.assert_allclose(jax.jit(jax.grad(outer))(0.7), jax.grad(outer_ref)(0.7), rtol=1e-10)


def ffi_result_counts(f, *args):
    """The number of results of each native call in the traced program of f (nested jaxprs too)."""
    counts = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "ffi_call" and dict(eqn.params["attributes"])["fn"] != "scale":
                counts.append(len(eqn.outvars))
            for p in eqn.params.values():
                for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        walk(inner)

    walk(jax.make_jaxpr(f)(*args).jaxpr)
    return counts


def test_kd_teacher_gradient_only_when_differentiated():
    case = CASES["kd_loss"]
    s, t = logits(case)
    # value and the student's gradient; value and both gradients only when t is differentiated
    assert ffi_result_counts(jax.grad(lambda s: case.ld(s, t, "sum")), s) == [2]
    assert ffi_result_counts(jax.grad(lambda t: case.ld(s, t, "sum")), t) == [3]
    assert ffi_result_counts(lambda s: case.ld(s, t, "sum"), s) == [1]
    g_t = jax.grad(lambda t: case.ld(s, t, "sum"))(t)
    np.testing.assert_allclose(g_t, jax.grad(lambda t: case.ref(s, t).sum())(t), rtol=1e-10, atol=1e-14)


def test_default_float32_and_bfloat16():
    jax.config.update("jax_enable_x64", False)
    s = jnp.asarray(np.random.default_rng(4).normal(size=(B, C)), dtype=jnp.bfloat16)
    t = jnp.asarray(np.random.default_rng(5).normal(size=(B, C)), dtype=jnp.float32)
    v, (gs, gt) = jax.value_and_grad(lambda s, t: ldj.sym_kl(s, t, reduction="sum"), (0, 1))(s, t)
    assert v.dtype == jnp.float32 and gs.dtype == jnp.bfloat16 and gt.dtype == jnp.float32
    want = (kl_rows(s.astype(jnp.float32), t) + kl_rows(t, s.astype(jnp.float32))).sum()
    np.testing.assert_allclose(v, want, rtol=1e-5)
    v = ldj.softmax_ce(t, jnp.array([0, 1, 2, 3]))  # int32 labels
    assert v.dtype == jnp.float32 and v.shape == (B,)


def test_errors():
    s = jnp.zeros((B, C))
    with pytest.raises(TypeError, match="static"):
        jax.jit(lambda s, tau: ldj.kl(s, s, temperature=tau))(s, 2.0)
    with pytest.raises(TypeError, match="floating-point"):
        ldj.kl(jnp.zeros((2, 3), dtype=jnp.int32), jnp.zeros((2, 3), dtype=jnp.int32))
    with pytest.raises(Exception, match="7"):  # the core's error for a label out of range, through XLA
        jax.block_until_ready(ldj.softmax_ce(s, jnp.array([0, 1, 2, 7])))


# ----------------------------------------------------------------------------------------------
# every option through XLA's FFI, against the NumPy API on the same inputs (the NumPy API is
# checked against mpmath and float64 references in the other test modules)

RNG = np.random.default_rng(11)
S2 = RNG.normal(size=(B, C)) * 3
T2 = S2 + RNG.normal(size=(B, C))
ROWS = np.array([True, False, True, True])[:, None]
CLASSES = RNG.random((B, C)) > 0.2
W_FULL = RNG.random((B, C)) * 2
GP_S = RNG.normal(size=(2, H, L, L))
GP_FLAT = np.array([[[0, 4, -1], [8, -1, -1]], [[5, -1, -1], [-1, -1, -1]]])
POS_K = np.array([[0, 2], [1, -1], [6, 3], [-1, -1]])
OPTION_CASES = {
    "softmax_ce all options": (lambda m, s, t, **k: m.softmax_ce(
        s, Y, weight=W, label_smoothing=0.2, z_loss=1e-3, softcap=4.0, temperature=1.5, return_z_loss=True,
        return_accuracy=True, **k), 1),
    "softmax_ce probs, class mask": (lambda m, s, t, **k: m.softmax_ce(s, P, where=CLASSES, **k), 1),
    "softmax_ce row mask": (lambda m, s, t, **k: m.softmax_ce(s, Y, where=ROWS, **k), 1),
    "kl softcap, mask, temperature": (lambda m, s, t, **k: m.kl(s, t, softcap=5.0, where=CLASSES, temperature=0.7,
                                                                **k), 2),
    "js beta": (lambda m, s, t, **k: m.js(s, t, beta=0.2, **k), 2),
    "tv": (lambda m, s, t, **k: m.tv(s, t, **k), 2),
    "sigmoid_kl full weights": (lambda m, s, t, **k: m.sigmoid_kl(s, t, weights=W_FULL, where=CLASSES, **k), 2),
    "sigmoid_sym_kl": (lambda m, s, t, **k: m.sigmoid_sym_kl(s, t, temperature=2.0, **k), 2),
    "bce pos_weight, weights, row mask": (lambda m, s, t, **k: m.bce(s, Y_BIN, pos_weight=W, weights=W_FULL,
                                                                     where=ROWS, **k), 1),
    "multilabel_ce class mask": (lambda m, s, t, **k: m.multilabel_ce(s, Y_BIN, where=CLASSES, **k), 1),
    "sparse_multilabel_ce": (lambda m, s, t, **k: m.sparse_multilabel_ce(s, POS_K, **k), 1),
    "gamma_ce threshold": (lambda m, s, t, **k: m.gamma_ce(s, Y, gamma=0.4, threshold=0.3, **k), 1),
    "kd_loss probs, no T², smoothing": (lambda m, s, t, **k: m.kd_loss(
        s, t, P, temperature=3.0, alpha=0.6, t2=False, label_smoothing=0.1, **k), 1),
    "kd_loss no labels": (lambda m, s, t, **k: m.kd_loss(s, t, temperature=2.0, alpha=1.0, **k), 1),
    "rdrop_loss sigmoid": (lambda m, s, t, **k: m.rdrop_loss(s, t, Y_BIN, alpha=1.5, kind="sigmoid", **k), 2),
    "rdrop_loss softmax smoothing": (lambda m, s, t, **k: m.rdrop_loss(s, t, Y, alpha=4.0, label_smoothing=0.1,
                                                                       where=ROWS, **k), 2),
}


@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("case", OPTION_CASES)
def test_every_option_matches_the_numpy_api(case, reduction):
    import logitdiv as ld
    f, n = OPTION_CASES[case]
    want_value, *want_rest = _as_tuple(f(ld, S2, T2, reduction=reduction, grad=True))
    n_extra = len(want_rest) - n
    got = f(ldj, jnp.asarray(S2), jnp.asarray(T2), reduction=reduction)
    got = _as_tuple(got)
    np.testing.assert_allclose(got[0], want_value, rtol=1e-12, atol=1e-15)
    for g, w in zip(got[1:], want_rest[:n_extra]):  # z-term, accuracy
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    weights = jnp.arange(1.0, 1 + S2.shape[0]) if reduction == "none" else 1.0
    loss = lambda *xs: (_as_tuple(f(ldj, *xs, **({} if n == 2 else {}), reduction=reduction))[0] * weights).sum()
    argnums = (0, 1) if n == 2 else 0
    grads = _as_tuple(jax.grad(lambda s, t: loss(s, t), argnums)(jnp.asarray(S2), jnp.asarray(T2)))
    for g, w in zip(grads, want_rest[n_extra:]):
        scale = np.asarray(weights)[:, None] if reduction == "none" else 1.0
        np.testing.assert_allclose(g, w * scale, rtol=1e-12, atol=1e-15)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@pytest.mark.parametrize("reduction", ["none", "sum_heads_mean_batch"])
def test_globalpointer_flat_positives_and_mask_match_the_numpy_api(reduction):
    import logitdiv as ld
    want, want_g = ld.globalpointer_ce(GP_S, GP_FLAT, mask=MASK, reduction=reduction, grad=True)
    got = ldj.globalpointer_ce(jnp.asarray(GP_S), GP_FLAT, mask=MASK, reduction=reduction)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    g = jax.grad(lambda s: ldj.globalpointer_ce(s, GP_FLAT, mask=MASK, reduction=reduction).sum())(jnp.asarray(GP_S))
    np.testing.assert_allclose(g, want_g, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_inputs_match_the_numpy_api(dtype):
    import ml_dtypes
    import logitdiv as ld
    npd = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    s, t = S2.astype(npd), T2.astype(npd)
    want, gs, gt = ld.sym_kl(s, t, grad=True)
    got = ldj.sym_kl(jnp.asarray(s), jnp.asarray(t))
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(got), want)
    g = jax.grad(lambda s, t: ldj.sym_kl(s, t).sum(), (0, 1))(jnp.asarray(s), jnp.asarray(t))
    assert g[0].dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(g[0]).astype(np.float32), gs.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(g[1]).astype(np.float32), gt.astype(np.float32))


def test_a_malformed_native_call_is_an_error_not_a_crash():
    """The handler checks every operand's size against the logits before the C ABI reads it."""
    ldj._register()
    s = jnp.zeros((4, 7))
    ins = np.array([0, 1, -1, -1, -1, -1, -1, -1, -1], np.int64)
    opts = np.array(list(ldj._OPTS.values()), np.float64)
    cases = {
        "second logits": ((s, jnp.zeros((4, 6))), "kl", np.array([0, -1, -1, -1, -1, -1, -1, -1], np.int64)),
        "unknown": ((s, s), "no_such_function", np.array([0, -1, -1, -1, -1, -1, -1, -1], np.int64)),
        "per-row output": ((s, s), "kl", np.array([0, -1, -1, -1, -1, -1, -1, -1], np.int64)),
    }
    for what, (operands, fn, outs) in cases.items():
        shape = (3,) if what == "per-row output" else (4,)
        call = jax.ffi.ffi_call("logitdiv", jax.ShapeDtypeStruct(shape, s.dtype))
        with pytest.raises(Exception, match="logitdiv: "):
            jax.block_until_ready(call(*operands, fn=fn, ins=ins, outs=outs, opts=opts))
    call = jax.ffi.ffi_call("logitdiv", jax.ShapeDtypeStruct((4,), s.dtype))
    with pytest.raises(Exception, match="attribute"):
        jax.block_until_ready(call(s, s, fn="kl", ins=ins[:3], outs=np.zeros(8, np.int64), opts=opts))


def test_a_vjp_called_again_gets_the_same_gradients():
    """The backward scales the saved gradients in their own buffer (an aliased native call): XLA
    must copy a residual that is used again, so a second cotangent sees the unscaled gradients."""
    s, t = logits(CASES["sym_kl"])
    for reduction, cts in (("none", (jnp.ones(B), jnp.arange(1.0, B + 1), jnp.ones(B))),
                           ("sum", (jnp.asarray(2.0), jnp.asarray(1.0), jnp.asarray(2.0)))):
        _, vjp = jax.vjp(lambda s, t: ldj.sym_kl(s, t, reduction=reduction), s, t)
        first, second, third = (vjp(ct) for ct in cts)
        want = jax.grad(lambda s: (kl_rows(s, t) + kl_rows(t, s)).sum())(s)
        for got, ct in ((first, cts[0]), (second, cts[1]), (third, cts[2])):
            scale = ct[:, None] if reduction == "none" else ct
            np.testing.assert_allclose(got[0], want * scale, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(first[0], third[0])
