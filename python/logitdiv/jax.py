"""JAX integration: logitdiv's divergences and losses as differentiable JAX functions.

Each function is a `jax.custom_vjp` whose forward calls the native core once for the value and
the gradients (the fused pass) and whose backward only scales the saved gradients by the
cotangent. They work under `jax.jit`, `jax.grad` / `jax.value_and_grad` and `jax.vmap`, and any
composition of them (no higher-order derivatives: the gradient has no derivative of its own).

The core is reached through `jax.pure_callback` (`vmap_method="broadcast_all"`; a vmapped call
runs the core once per batch element, so every reduction stays per element), on the CPU. Not
(yet) through XLA's FFI: an FFI handler is native code with XLA's C calling convention, which
has to live in the wheel's compiled extension; see README, "From JAX".

Options (temperature, reduction, alpha, ...) are static Python values; labels, masks and weights
are arrays and are never differentiated. `pip install 'logitdiv[jax]'`.

>>> import jax, jax.numpy as jnp, logitdiv.jax as ldj
>>> s, t = jnp.zeros((4, 10)), jnp.ones((4, 10))
>>> float(ldj.kl(s, t, reduction="batchmean"))
0.0
>>> jax.jit(jax.grad(lambda s: ldj.softmax_ce(s, jnp.array([1, 0, 3, 9]), reduction="mean")))(s).shape
(4, 10)
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

import logitdiv as _ld
from logitdiv import _arrays as A

__all__ = [
    "kl", "sym_kl", "js", "tv", "sigmoid_kl", "sigmoid_sym_kl", "gp_kl",
    "softmax_ce", "bce", "multilabel_ce", "sparse_multilabel_ce", "globalpointer_ce", "gamma_ce",
    "kd_loss", "rdrop_loss",
]

Array = Any  # a jax.Array or anything jnp.asarray takes
_LOGITS = {"kl": ("s", "t"), "sym_kl": ("s", "t"), "js": ("s", "t"), "tv": ("s", "t"), "sigmoid_kl": ("s", "t"),
           "sigmoid_sym_kl": ("s", "t"), "kd_loss": ("student", "teacher"), "rdrop_loss": ("s1", "s2")}


def _static(value: Any, name: str) -> Any:
    if isinstance(value, jax.core.Tracer):
        raise TypeError(f"{name} must be a Python value (a static option), not a traced array")
    return value


# extra outputs after the value (never differentiated), and the flags that ask for them
_EXTRAS = {"softmax_ce": ("return_z_loss", "return_accuracy")}


def _n_extras(name: str, static: Dict[str, Any]) -> int:
    return sum(bool(static.get(flag)) for flag in _EXTRAS.get(name, ()))


def _host(name: str, ndim: int, treedef: Any, static: Dict[str, Any], k: int, want: Tuple[bool, ...],
          *flat: np.ndarray) -> Tuple[np.ndarray, ...]:
    """The NumPy API on the callback's arrays. Under vmap every operand carries the same leading
    batch axes (``broadcast_all``); each batch element is one call, so reductions stay per element."""
    flat = tuple(np.asarray(x) for x in flat)  # the callback gets jax Arrays on the host: NumPy views
    batch = flat[0].shape[:flat[0].ndim - ndim]
    if batch:
        n = int(np.prod(batch))
        items = [x.reshape((n,) + x.shape[len(batch):]) for x in flat]
        outs = [_host(name, ndim, treedef, static, k, want, *(x[i] for x in items)) for i in range(n)]
        return tuple(np.stack(o).reshape(batch + o[0].shape) for o in zip(*outs))
    xs = flat[:k]
    labels, options = jax.tree_util.tree_unflatten(treedef, flat[k:])
    fn = getattr(_ld, name)
    n_extras = _n_extras(name, static)
    if not any(want):
        res = fn(*xs, *labels, **options, **static)
        return tuple(np.asarray(r) for r in res) if n_extras else (np.asarray(res),)
    extra = {"grad_teacher": want[1]} if name == "kd_loss" else {}
    value, *rest = fn(*xs, *labels, grad=True, **options, **static, **extra)
    # (value, *extras, *grads) from the NumPy API; the callback returns (value, *grads, *extras)
    extras, grads = rest[:n_extras], rest[n_extras:]
    return (np.asarray(value), *grads, *(np.asarray(e) for e in extras))


def _apply(name: str, xs: Sequence[Array], labels: Sequence[Any], options: Dict[str, Any],
           static: Dict[str, Any]) -> jax.Array:
    """``logitdiv.<name>(*xs, *labels, **options, **static)`` as a differentiable JAX function of `xs`."""
    xs = tuple(jnp.asarray(x) for x in xs)
    aux = (tuple(None if y is None else jnp.asarray(y) for y in labels),
           {key: None if v is None else jnp.asarray(v) for key, v in options.items()})
    leaves, treedef = jax.tree_util.tree_flatten(aux)
    static = {key: _static(v, key) for key, v in static.items()}
    k = len(xs)
    # the NumPy API's dtype rules, on empty stand-ins: a clear TypeError before any tracing
    empty = [A.as_float_array(np.empty(0, x.dtype), n) for x, n in zip(xs, _LOGITS.get(name, ("logits",)))]
    common = empty[0].dtype if k == 1 else A.common_dtype(*empty)
    avals = [(x.shape, x.dtype) for x in xs]
    vshape = jax.ShapeDtypeStruct(A.value_shape(name, xs[0].shape, static.get("reduction", "none")),
                                  A.value_dtype(common))
    gshape = jax.ShapeDtypeStruct(xs[0].shape, common)
    n_extras = _n_extras(name, static)

    def run(want: Tuple[bool, ...], xs: Tuple[jax.Array, ...], leaves: Sequence[jax.Array]) -> Tuple[jax.Array, ...]:
        shapes = (vshape, *(gshape for w in want if w)) if any(want) else (vshape,)
        shapes += (vshape,) * n_extras
        host = partial(_host, name, xs[0].ndim, treedef, static, k, want)
        return jax.pure_callback(host, shapes, *xs, *leaves, vmap_method="broadcast_all")

    @partial(jax.custom_vjp)
    def f(xs: Tuple[jax.Array, ...], leaves: Sequence[jax.Array]) -> Any:
        out = run((False,) * k, xs, leaves)
        return tuple(out) if n_extras else out[0]

    def fwd(xs: Tuple[Any, ...], leaves: Any) -> Tuple[Any, Tuple[jax.Array, ...]]:
        # symbolic zeros: the inputs arrive as CustomVJPPrimal(value, perturbed)
        perturbed = [x.perturbed for x in xs]
        want = (True, perturbed[1]) if name == "kd_loss" else (True,) * k
        value, *rest = run(want, tuple(x.value for x in xs), [y.value for y in leaves])
        grads, extras = rest[:len(rest) - n_extras], rest[len(rest) - n_extras:]
        return ((value, *extras) if n_extras else value), tuple(grads)

    def bwd(grads: Tuple[jax.Array, ...], ct: Any) -> Tuple[Any, None]:
        if n_extras:
            ct = ct[0]  # the extras (z-term, accuracy) are not differentiated
        if isinstance(ct, jax.custom_derivatives.SymbolicZero):
            return tuple(jnp.zeros(shape, dtype) for shape, dtype in avals), None
        out = []
        for i, (shape, dtype) in enumerate(avals):
            if i >= len(grads):
                out.append(jnp.zeros(shape, dtype))  # kd_loss: the teacher held constant
                continue
            g = grads[i]
            c = ct.astype(g.dtype).reshape(ct.shape + (1,) * (g.ndim - ct.ndim))
            out.append((g * c).astype(dtype))
        return tuple(out), None

    f.defvjp(fwd, bwd, symbolic_zeros=True)
    return f(xs, leaves)


# ----------------------------------------------------------------------------------------------
# divergences


def kl(s: Array, t: Array, *, temperature: float = 1.0, where: Optional[Array] = None,
       reduction: str = "none", softcap: Optional[float] = None) -> jax.Array:
    """KL(softmax(s/τ) ‖ softmax(t/τ)) per row, differentiable in s and t (see `logitdiv.kl`);
    `softcap` c caps both inputs at c · tanh(x / c) first."""
    return _apply("kl", (s, t), (), dict(where=where), dict(temperature=temperature, reduction=reduction,
                                                             softcap=softcap))


def sym_kl(s: Array, t: Array, *, temperature: float = 1.0, where: Optional[Array] = None,
           reduction: str = "none", softcap: Optional[float] = None) -> jax.Array:
    """KL(p‖q) + KL(q‖p) per row (see `logitdiv.sym_kl`)."""
    return _apply("sym_kl", (s, t), (), dict(where=where), dict(temperature=temperature, reduction=reduction,
                                                                 softcap=softcap))


def js(s: Array, t: Array, *, beta: float = 0.5, temperature: float = 1.0, where: Optional[Array] = None,
       reduction: str = "none", softcap: Optional[float] = None) -> jax.Array:
    """β KL(p‖m) + (1−β) KL(q‖m) per row, m = βp + (1−β)q (see `logitdiv.js`)."""
    return _apply("js", (s, t), (), dict(where=where), dict(beta=beta, temperature=temperature, reduction=reduction,
                                                             softcap=softcap))


def tv(s: Array, t: Array, *, temperature: float = 1.0, where: Optional[Array] = None,
       reduction: str = "none", softcap: Optional[float] = None) -> jax.Array:
    """The total variation distance ½ Σ |p − q| per row, with its subgradients (see `logitdiv.tv`)."""
    return _apply("tv", (s, t), (), dict(where=where), dict(temperature=temperature, reduction=reduction,
                                                             softcap=softcap))


def sigmoid_kl(s: Array, t: Array, *, weights: Optional[Array] = None, temperature: float = 1.0,
               where: Optional[Array] = None, reduction: str = "none") -> jax.Array:
    """Σ_i w_i KL(Bern(σ(s_i/τ)) ‖ Bern(σ(t_i/τ))) per row (see `logitdiv.sigmoid_kl`)."""
    return _apply("sigmoid_kl", (s, t), (), dict(weights=weights, where=where),
                  dict(temperature=temperature, reduction=reduction))


def sigmoid_sym_kl(s: Array, t: Array, *, weights: Optional[Array] = None, temperature: float = 1.0,
                   where: Optional[Array] = None, reduction: str = "none") -> jax.Array:
    """The GlobalPointer KL Σ_i w_i (σ(s'_i) − σ(t'_i))(s'_i − t'_i) per row (see `logitdiv.sigmoid_sym_kl`)."""
    return _apply("sigmoid_sym_kl", (s, t), (), dict(weights=weights, where=where),
                  dict(temperature=temperature, reduction=reduction))


gp_kl = sigmoid_sym_kl


# ----------------------------------------------------------------------------------------------
# losses (differentiable in the logits; labels, masks and weights are not differentiated)


def softmax_ce(logits: Array, target: Array, *, label_smoothing: float = 0.0, ignore_index: int = -100,
               temperature: float = 1.0, weight: Optional[Array] = None, z_loss: float = 0.0,
               softcap: Optional[float] = None, return_z_loss: bool = False, return_accuracy: bool = False,
               where: Optional[Array] = None, reduction: str = "none") -> Any:
    """Softmax cross-entropy per row against class indices (leading shape) or probabilities (the
    logits' shape) (see `logitdiv.softmax_ce`): per-class `weight` (optax's
    `softmax_cross_entropy` has none), `z_loss` (z · lse² per row), `softcap`. With
    ``return_z_loss`` / ``return_accuracy`` it returns the tuple (loss, [z_term], [accuracy]); those
    extras are not differentiated."""
    static = dict(label_smoothing=label_smoothing, ignore_index=ignore_index, temperature=temperature,
                  reduction=reduction)
    # the options only when set: a plain call stays the plain call
    for key, value, off in (("z_loss", z_loss, 0.0), ("softcap", softcap, None),
                            ("return_z_loss", return_z_loss, False), ("return_accuracy", return_accuracy, False)):
        if value is not off and value != off:
            static[key] = value
    return _apply("softmax_ce", (logits,), (target,), dict(where=where, weight=weight), static)


def bce(logits: Array, target: Array, *, pos_weight: Optional[Array] = None, weights: Optional[Array] = None,
        where: Optional[Array] = None, reduction: str = "none") -> jax.Array:
    """Binary cross-entropy with logits, summed over the classes of each row (see `logitdiv.bce`)."""
    return _apply("bce", (logits,), (target,), dict(pos_weight=pos_weight, weights=weights, where=where),
                  dict(reduction=reduction))


def multilabel_ce(logits: Array, target: Array, *, where: Optional[Array] = None,
                  reduction: str = "none") -> jax.Array:
    """Su's multilabel softmax cross-entropy per row, labels in [0, 1] (see `logitdiv.multilabel_ce`)."""
    return _apply("multilabel_ce", (logits,), (target,), dict(where=where), dict(reduction=reduction))


def sparse_multilabel_ce(logits: Array, positives: Array, *, pad: int = -1, where: Optional[Array] = None,
                         reduction: str = "none") -> jax.Array:
    """`multilabel_ce` with the positives as class indices (..., K) padded with `pad` (see
    `logitdiv.sparse_multilabel_ce`)."""
    return _apply("sparse_multilabel_ce", (logits,), (positives,), dict(where=where),
                  dict(pad=pad, reduction=reduction))


def globalpointer_ce(logits: Array, spans_or_positives: Array, *, mask: Optional[Array] = None, pad: int = -1,
                     reduction: str = "none") -> jax.Array:
    """The GlobalPointer loss of logits (B, heads, L, L) (see `logitdiv.globalpointer_ce`)."""
    return _apply("globalpointer_ce", (logits,), (spans_or_positives,), dict(mask=mask),
                  dict(pad=pad, reduction=reduction))


def gamma_ce(logits: Array, target: Array, *, gamma: float, threshold: Optional[float] = None,
             ignore_index: int = -100, where: Optional[Array] = None, reduction: str = "none") -> jax.Array:
    """Su's γ-cross-entropy per row (see `logitdiv.gamma_ce`; with a `threshold` the gradient is
    the documented surrogate, not the value's derivative)."""
    return _apply("gamma_ce", (logits,), (target,), dict(where=where), dict(
        gamma=gamma, threshold=threshold, ignore_index=ignore_index, reduction=reduction))


def kd_loss(student: Array, teacher: Array, target: Optional[Array] = None, *, temperature: float, alpha: float,
            t2: bool = True, label_smoothing: float = 0.0, ignore_index: int = -100, where: Optional[Array] = None,
            reduction: str = "none") -> jax.Array:
    """(1−α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)) per row (see `logitdiv.kd_loss`). The
    teacher's gradient is computed only when something differentiates with respect to it."""
    return _apply("kd_loss", (student, teacher), (target,), dict(where=where), dict(
        temperature=temperature, alpha=alpha, t2=t2, label_smoothing=label_smoothing, ignore_index=ignore_index,
        reduction=reduction))


def rdrop_loss(s1: Array, s2: Array, target: Array, *, alpha: float, kind: str = "softmax",
               label_smoothing: float = 0.0, ignore_index: int = -100, where: Optional[Array] = None,
               reduction: str = "none") -> jax.Array:
    """R-Drop CE(s1, y) + CE(s2, y) + α/2·(KL(p1‖p2) + KL(p2‖p1)) per row (see `logitdiv.rdrop_loss`)."""
    return _apply("rdrop_loss", (s1, s2), (target,), dict(where=where), dict(
        alpha=alpha, kind=kind, label_smoothing=label_smoothing, ignore_index=ignore_index, reduction=reduction))
