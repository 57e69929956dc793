"""JAX integration: logitdiv's divergences and losses as differentiable JAX functions.

Each function is a `jax.custom_vjp` whose forward calls the native core once for the value and
the gradients (the fused pass) and whose backward only scales the saved gradients by the
cotangent. They work under `jax.jit`, `jax.grad` / `jax.value_and_grad` and `jax.vmap`, and any
composition of them (no higher-order derivatives: the gradient has no derivative of its own).

The core is reached through XLA's foreign-function interface: one native handler
(rust/python/src/xla.rs, registered as the XLA target "logitdiv" on first use) that reads XLA's
buffers in place and calls the C ABI — no host callback, no copy, the GIL never taken. The
backward multiplies the saved gradients by the cotangent in their own buffer, and not at all for
a cotangent of 1 (a loss differentiated as it is). Under `jax.vmap` each batch element is one
native call (``vmap_method="sequential"``), so every reduction stays per element. Inputs in
float16/bfloat16 are widened to float32 (exactly) for the call, their gradients rounded back.

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

from logitdiv import _arrays as A
from logitdiv import _native

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


# ----------------------------------------------------------------------------------------------
# the call into the native handler (rust/python/src/xla.rs): operands by role, options as numbers

_TARGET = "logitdiv"
_IN_ROLES = ("x0", "x1", "labels", "target", "mask", "weights", "row_mask", "pos_weight", "class_weight")
_OUT_ROLES = ("values", "result", "grad0", "grad1", "z_values", "z_result", "correct", "accuracy")
# ld_options' numeric fields (the handler's `Opt` order) and their defaults (the C ABI's)
_OPTS = {"temperature": 1.0, "beta": 0.5, "reduction": 0, "label_smoothing": 0.0, "ignore_index": -100, "gamma": 0.0,
         "threshold": float("nan"), "alpha": float("nan"), "t2": 1, "kind": 0, "pad": -1, "z_loss": 0.0, "softcap": 0.0,
         "layout": 0}
_REDUCTION_CODES = {"none": 0, "sum": 1, "mean": 2, "batchmean": 3, "sum_heads_mean_batch": 4}
_RDROP_KINDS = {"softmax": 0, "sigmoid": 1}
_registered = False


def _register() -> None:
    """Registers the handler with XLA once (the first call of any function)."""
    global _registered
    if not _registered:
        jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(_native.xla_handler()), platform="cpu")
        _registered = True


def _float_array(x: Any, name: str) -> jax.Array:
    """Weights and the like as float32 or float64 (the handler widens float32)."""
    x = jnp.asarray(x)
    if x.dtype.kind not in "fiub" and x.dtype != jnp.bfloat16:
        raise TypeError(f"{name} must be a real numeric array; got dtype {x.dtype}")
    return x if x.dtype in (jnp.float32, jnp.float64) else x.astype(jnp.float32)


def _per_class(x: Any, shape: Tuple[int, ...], name: str) -> jax.Array:
    """Weights broadcastable to the logits: one row of C when they are per class, else the whole shape."""
    x = _float_array(x, name)
    A.check_broadcasts(x.shape, shape, name)
    if x.size == shape[-1] and x.shape[-1:] == shape[-1:]:
        return x.reshape(-1)
    return jnp.broadcast_to(x, shape)


def _int_labels(x: Any, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.dtype == jnp.bool_ or x.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices; got dtype {x.dtype}")
    return x if x.dtype in (jnp.int32, jnp.int64) else x.astype(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)


def _where(ins: Dict[str, Any], where: Any, shape: Tuple[int, ...], rows: bool = True) -> None:
    """`where` as the class mask, or (losses, last axis of length 1) the row mask."""
    if where is None:
        return
    w = jnp.asarray(where)
    if rows and A.where_masks_rows(w.shape, w.dtype, shape):
        ins["row_mask"] = jnp.broadcast_to(w if w.ndim == 0 else w[..., 0], shape[:-1])
        return
    if w.dtype != jnp.bool_:
        raise TypeError(f"where must be a boolean array; got dtype {w.dtype}")
    A.check_broadcasts(w.shape, shape, "where")
    ins["mask"] = jnp.broadcast_to(w, shape)


def _softmax_target(ins: Dict[str, Any], target: Any, shape: Tuple[int, ...], dtype: Any, name: str = "target") -> None:
    target = jnp.asarray(target)
    if A.softmax_target_kind(target.dtype, target.shape, shape, name) == "classes":
        ins["labels"] = _int_labels(target, name)
    else:
        ins["target"] = target.astype(dtype)


def _operands(name: str, shape: Tuple[int, ...], dtype: Any, labels: Sequence[Any], options: Dict[str, Any],
              static: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, float]]:
    """The operands (by role) besides the logits and the options of one call, with the NumPy API's
    checks of what only Python sees (shapes, types); values are checked by the C ABI."""
    ins: Dict[str, Any] = {}
    opts: Dict[str, float] = {}
    reduction = static.get("reduction", "none")
    if name == "globalpointer_ce":
        if reduction not in _REDUCTION_CODES:
            raise ValueError(f"reduction must be one of {', '.join(map(repr, _REDUCTION_CODES))}; got {reduction!r}")
    else:
        reduction = A.check_reduction(reduction)
    opts["reduction"] = _REDUCTION_CODES[reduction]
    for key in ("temperature", "beta", "label_smoothing", "alpha", "gamma", "z_loss"):
        if key in static:
            opts[key] = A.check_number(static[key], key)
    for key in ("ignore_index", "pad"):
        if key in static:
            opts[key] = A.check_int(static[key], key)
    if static.get("softcap") is not None:
        opts["softcap"] = A.check_number(static["softcap"], "softcap")
    if static.get("threshold") is not None:
        opts["threshold"] = A.check_number(static["threshold"], "threshold")
    if "t2" in static:
        opts["t2"] = int(A.check_flag(static["t2"], "t2"))
    where = options.get("where")
    if name in ("kl", "sym_kl", "js", "tv", "sigmoid_kl", "sigmoid_sym_kl"):
        _where(ins, where, shape, rows=False)
        if options.get("weights") is not None:
            ins["weights"] = _per_class(options["weights"], shape, "weights")
    elif name in ("softmax_ce", "gamma_ce"):
        if name == "gamma_ce":
            ins["labels"] = _int_labels(labels[0], "target")
            A.softmax_target_kind(ins["labels"].dtype, ins["labels"].shape, shape)
        else:
            _softmax_target(ins, labels[0], shape, dtype)
        _where(ins, where, shape)
        if options.get("weight") is not None:
            w = _float_array(options["weight"], "weight")
            if w.ndim != 1:
                raise ValueError(f"weight must be a 1-D array of one weight per class ({shape[-1]}); got shape {w.shape}")
            ins["class_weight"] = w
    elif name in ("bce", "multilabel_ce"):
        target = jnp.asarray(labels[0])
        if target.shape != tuple(shape):
            raise ValueError(f"target must have the logits' shape {shape}; got shape {target.shape}")
        ins["target"] = target.astype(dtype)
        _where(ins, where, shape)
        for key in ("pos_weight", "weights"):
            if options.get(key) is not None:
                ins[key] = _per_class(options[key], shape, key)
    elif name == "sparse_multilabel_ce":
        pos = _int_labels(labels[0], "positives")
        A.check_positives_shape(pos.shape, shape)
        ins["labels"] = pos
        _where(ins, where, shape)
    elif name == "globalpointer_ce":
        A.check_globalpointer_logits(shape)
        pos = _int_labels(labels[0], "spans_or_positives")
        opts["layout"] = int(A.globalpointer_layout(shape, pos.shape))
        ins["labels"] = pos
        mask = options.get("mask")
        if mask is not None:
            m = jnp.asarray(mask)
            A.check_token_mask(m.shape, m.dtype, shape[0], shape[2])
            ins["mask"] = m != 0
    elif name in ("kd_loss", "rdrop_loss"):
        target = labels[0]
        if name == "rdrop_loss":
            kind = static.get("kind", "softmax")
            if kind not in _RDROP_KINDS:
                raise ValueError(f"kind must be 'softmax' or 'sigmoid'; got {kind!r}")
            opts["kind"] = _RDROP_KINDS[kind]
        if name == "rdrop_loss" and opts["kind"] == 1:
            target = jnp.asarray(target)
            if target.shape != tuple(shape):
                raise ValueError(f"target must have the logits' shape {shape}; got shape {target.shape}")
            ins["target"] = target.astype(dtype)
        elif target is not None:
            _softmax_target(ins, target, shape, dtype)
        _where(ins, where, shape)
    return ins, opts


def _call(operands: Sequence[jax.Array], results: Sequence[Tuple[str, Any]], fn: str, roles: Sequence[str],
          opts: Dict[str, float], aliases: Optional[Dict[int, int]] = None) -> Sequence[jax.Array]:
    """One call of the native handler: `operands` in the input roles `roles`, `results` as (role, shape)."""
    out_roles = [r for r, _ in results]
    call = jax.ffi.ffi_call(_TARGET, tuple(spec for _, spec in results), vmap_method="sequential",
                            input_output_aliases=aliases)
    return call(*operands, fn=fn,
                ins=np.array([roles.index(r) if r in roles else -1 for r in _IN_ROLES], np.int64),
                outs=np.array([out_roles.index(r) if r in out_roles else -1 for r in _OUT_ROLES], np.int64),
                opts=np.array([float(opts.get(key, default)) for key, default in _OPTS.items()], np.float64))


def _scaled(g: jax.Array, ct: jax.Array) -> jax.Array:
    """g times the cotangent (one value, or one per row), in g's buffer: for a cotangent of 1 (a
    loss differentiated as it is) nothing is written at all, where ``g * ct`` would allocate and
    write a whole new gradient."""
    g2 = g.reshape((ct.size, g.size // ct.size)) if ct.ndim else g
    (out,) = _call((g2, ct.reshape(-1) if ct.ndim else ct), [("grad0", jax.ShapeDtypeStruct(g2.shape, g2.dtype))],
                   "scale", ("x0", "x1"), {}, aliases={0: 0})
    return out.reshape(g.shape)


def _apply(name: str, xs: Sequence[Array], labels: Sequence[Any], options: Dict[str, Any],
           static: Dict[str, Any]) -> jax.Array:
    """``logitdiv.<name>(*xs, *labels, **options, **static)`` as a differentiable JAX function of `xs`."""
    xs = tuple(jnp.asarray(x) for x in xs)
    aux = (tuple(None if y is None else jnp.asarray(y) for y in labels),
           {key: None if v is None else jnp.asarray(v) for key, v in options.items()})
    leaves, treedef = jax.tree_util.tree_flatten(aux)
    static = {key: _static(v, key) for key, v in static.items()}
    k = len(xs)
    names = _LOGITS.get(name, ("logits",))
    # the NumPy API's dtype rules, on empty stand-ins: a clear TypeError before any tracing
    empty = [A.as_float_array(np.empty(0, x.dtype), n) for x, n in zip(xs, names)]
    common = empty[0].dtype if k == 1 else A.common_dtype(*empty)
    shape = xs[0].shape
    if k == 2:
        A.check_same_shape(shape, xs[1].shape, names)
    A.check_classes(shape, names[0])
    # the handler computes in float32 or float64; half-precision inputs are widened (exactly)
    compute = common if common == np.float64 else np.dtype(np.float32)
    reduction = static.get("reduction", "none")
    vdtype = A.value_dtype(common)
    vshape = A.value_shape(name, shape, reduction)
    n_extras = _n_extras(name, static)
    avals = [(x.shape, x.dtype) for x in xs]
    _register()

    def run(want: Tuple[bool, ...], xs: Tuple[jax.Array, ...], leaves: Sequence[jax.Array]) -> Tuple[jax.Array, ...]:
        labels, options = jax.tree_util.tree_unflatten(treedef, leaves)
        ins, opts = _operands(name, shape, compute, labels, options, static)
        operands = [x.astype(compute) for x in xs] + [ins[r] for r in _IN_ROLES[2:] if r in ins]
        roles = [r for r in _IN_ROLES[:k]] + [r for r in _IN_ROLES[2:] if r in ins]
        outs = [("values" if reduction == "none" else "result", jax.ShapeDtypeStruct(vshape, vdtype))]
        outs += [(f"grad{i}", jax.ShapeDtypeStruct(shape, compute)) for i, w in enumerate(want) if w]
        per_row = "none" == reduction
        if static.get("return_z_loss"):
            outs.append(("z_values" if per_row else "z_result", jax.ShapeDtypeStruct(vshape, vdtype)))
        if static.get("return_accuracy"):
            outs.append(("correct" if per_row else "accuracy", jax.ShapeDtypeStruct(vshape, vdtype)))
        res = _call(operands, outs, name, roles, opts)
        value, rest = res[0], list(res[1:])
        n_grads = sum(want)
        grads = [g.astype(common) for g in rest[:n_grads]]
        return (value, *grads, *rest[n_grads:])

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
            if g.dtype == ct.dtype and g.dtype in (np.float32, np.float64) and g.size:
                out.append(_scaled(g, ct).astype(dtype))
                continue
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
