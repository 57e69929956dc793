"""Divergences between two logit arrays: softmax KL, symmetric KL, Jensen–Shannon, and the sigmoid
("GlobalPointer") KL and symmetric KL. The mathematics is in MATH.md; the computation is in the
Rust core, which sums non-negative terms free of cancellation (float32 lanes of at most 8 terms,
then float64: docs/MATH.md §7)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple, Union, cast

import numpy as np

from . import _arrays as A
from . import _layout as L
from ._dispatch import routes_gpu
from . import _native

Result = Union[np.ndarray, np.floating, Tuple[Any, ...]]
if TYPE_CHECKING:  # (typing has them from Python 3.10)
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")


def _pair(kind: str, s: Any, t: Any, temperature: Any, where: Any, weights: Any, beta: Any, reduction: str,
          grad: Any, out: Optional[np.ndarray], grad_out: Any, softcap: Any = None) -> Result:
    """The divergence `kind` on the host. The public functions pass their arguments by position
    (keywords cost 80 ns a call), and 2-D arrays skip the reshapes (200 ns each)."""
    if softcap is not None:
        softcap = A.check_number(softcap, "softcap")
    if _is_plain_call(s, t, where, weights, temperature, beta, reduction, grad, out, grad_out):
        # the common call: the checks of `_is_plain_call` are all it needs, and it has no buffers
        shape, dtype = s.shape, s.dtype
        s2, t2 = (s, t) if len(shape) == 2 else (s.reshape(-1, shape[-1]), t.reshape(-1, shape[-1]))
        mask2 = weights2 = None
        if s.base is not None or t.base is not None:  # views: of a mapped file that shrank?
            L.check_mapped(s, "s")
            L.check_mapped(t, "t")
        temperature = float(temperature) if type(temperature) is float else A.check_number(temperature, "temperature")
        beta = float(beta) if type(beta) is float else A.check_number(beta, "beta")
        vdtype = A.value_dtype(dtype)
        values = np.empty(shape[:-1], vdtype) if reduction == "none" else None
        gs, gt = (np.empty(shape, dtype), np.empty(shape, dtype)) if grad else (None, None)
    else:
        args = A.divergence_args(L.HOST, s, t, reduction, grad, temperature, beta)
        reduction, grad, temperature, beta = args.reduction, args.grad, args.temperature, args.beta
        shape, dtype = args.s.shape, args.dtype
        s2 = L.rows_view(args.s.astype(dtype, copy=False))
        t2 = L.rows_view(args.t.astype(dtype, copy=False))
        mask2 = None if where is None else A.broadcast_rows(where, shape, "where", bool).view(np.uint8)
        weights2 = None if weights is None else A.broadcast_rows(weights, shape, "weights", np.float64)
        outs = A.Outputs(L.HOST, out, grad_out, shape, shape[:-1], dtype, reduction, 2, grad)
        vdtype, values = outs.vdtype, outs.values
        gs, gt = outs.grads or (None, None)

    # by position, in the signature's order (kind, s, t, mask, weights, temperature, beta, reduction,
    # softcap, out, grad_s, grad_t): keywords would cost about 1 us on this per-call path
    total, _counted = _native.pair_divergence(
        kind, s2, t2, mask2, weights2, temperature, beta, reduction, softcap,
        None if values is None else values if values.ndim == 1 else values.reshape(-1),
        None if gs is None else gs if gs.ndim == 2 else gs.reshape(-1, shape[-1]),
        None if gt is None else gt if gt.ndim == 2 else gt.reshape(-1, shape[-1]),
    )
    value = values if values is not None else vdtype.type(total)
    return (value, gs, gt) if grad else value


# The common call, recognised in a few attribute reads: two C-contiguous, aligned arrays of one
# shape and one native float dtype, plain numbers, no mask, weights or buffers. Anything else takes
# the general checks in `_pair` (same results, and every error message).
_PLAIN_DTYPES = frozenset((np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)))
_PLAIN_NUMBER = (int, float)


def _is_plain_call(s, t, where, weights, temperature, beta, reduction, grad, out, grad_out) -> bool:
    if type(s) is not np.ndarray or type(t) is not np.ndarray or where is not None or weights is not None:
        return False
    if out is not None or grad_out is not None or (grad is not True and grad is not False):
        return False
    shape = s.shape
    if s.dtype not in _PLAIN_DTYPES or t.dtype != s.dtype or t.shape != shape or not shape or s.size == 0:
        return False
    if type(temperature) not in _PLAIN_NUMBER or type(beta) not in _PLAIN_NUMBER or reduction not in A.REDUCTIONS:
        return False
    sf, tf = s.flags, t.flags
    return sf.c_contiguous and tf.c_contiguous and sf.aligned and tf.aligned


_COMMON = """
    Parameters
    ----------
    s, t : array_like, shape (..., C)
        Logits (float16, bfloat16, float32 or float64); the last axis holds the C classes and every
        leading axis indexes rows. Both must have the same shape.
    temperature : float, default 1.0
        τ > 0; both inputs are divided by it first.
    softcap : float, optional
        The softmax divergences (kl, sym_kl, js, tv) only: c > 0 caps every finite logit of both
        inputs at c · tanh(x / c) (Gemma 2's logit soft-capping) before the temperature; the
        gradients go through the cap exactly (times sech²(x / c)). −inf stays −inf (absent).
    where : array_like of bool, optional
        Classes to include, broadcastable to the logits' shape; an excluded class counts exactly as
        if it were −inf in both rows.
    reduction : {"none", "sum", "mean", "batchmean"}, default "none"
        "none" gives one value per row (shape = the leading axes); "mean" averages over the rows that
        have at least one class present; "batchmean" divides the sum by the number of rows.
    grad : bool, default False
        Also return the gradients of the returned value with respect to s and t (for "none", of
        the sum of the row values), computed in the same pass.
    out : ndarray, optional
        Buffer for the per-row values (reduction "none"): shape (...), float64 for float64 input,
        float32 otherwise.
    grad_out : (ndarray, ndarray), optional
        Buffers for the two gradients (shape and dtype of the logits, C-contiguous).

    Returns
    -------
    value, or (value, grad_s, grad_t) when grad=True. Values are float64 for float64 input and
    float32 otherwise; gradients have the logits' dtype.

    Conventions: a class that is −inf in both rows (or excluded by `where`) contributes exactly 0;
    a row with no class present gives 0. NaN or +inf in a row gives NaN for that row only, and so
    does a finite logit beyond ±1e300 after dividing by τ (the kernels' domain); a row whose value
    is +inf (support mismatch) gets NaN gradients. Bad inputs raise TypeError or ValueError (see
    the README, "Guarantees").
"""


def _public(f: Any, name: str, summary: str, examples: str) -> Any:
    """Names the divergence `f` `name`, gives it its docstring, summary + the common parameters +
    examples, and routes it to the GPU for GPU arrays."""
    f.__name__ = f.__qualname__ = name
    f.__doc__ = summary + _COMMON + examples
    return routes_gpu("s", "t")(f)


def _described(summary: str, examples: str) -> Callable[[Callable[P, Result]], Callable[P, Result]]:
    """`_public` as a decorator, for a divergence with a signature of its own (js)."""
    return lambda f: cast("Callable[P, Result]", _public(f, f.__name__, summary, examples))


def _of_kind(body: Callable[Concatenate[str, P], Result], kind: str, summary: str,
             examples: str) -> Callable[P, Result]:
    """The public divergence `kind` from a body shared by the divergences of one signature: the
    body with its first argument bound (its signature, for `inspect` and type checkers, is the
    body's without it)."""
    f = functools.partial(body, kind)
    f.__module__ = __name__  # type: ignore[attr-defined]
    return cast("Callable[P, Result]", _public(f, kind, summary, examples))


# One body per signature; the divergences that share it are made by `_of_kind`.


def _softmax_divergence(
    kind: str,
    s: Any,
    t: Any,
    *,
    temperature: float = 1.0,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
    softcap: Optional[float] = None,
) -> Result:
    """kl, sym_kl and tv: the softmax divergences without options of their own."""
    return _pair(kind, s, t, temperature, where, None, 0.5, reduction, grad, out, grad_out, softcap)


def _sigmoid_divergence(
    kind: str,
    s: Any,
    t: Any,
    *,
    weights: Any = None,
    temperature: float = 1.0,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """sigmoid_kl and sigmoid_sym_kl: per-class weights, no soft cap."""
    return _pair(kind, s, t, temperature, where, weights, 0.5, reduction, grad, out, grad_out)


kl = _of_kind(_softmax_divergence, "kl", """Kullback–Leibler divergence KL(p‖q) per row, p = softmax(s/τ), q = softmax(t/τ).

    KL(p‖q) = Σ_i p_i (log p_i − log q_i), computed as Σ_i p_i φ(w_i) with w_i = log p_i − log q_i
    and φ(w) = w − 1 + e^{−w} ≥ 0, so it is exactly 0 for equal rows, never negative, and keeps its
    digits when the rows nearly agree. Gradients (w.r.t. s/τ, times 1/τ): p_i (w_i − KL) for s,
    q_i − p_i for t. A class with p_i > 0 = q_i makes the row +inf.
    """, """
    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> round(float(ld.kl(np.array([0.0, 0.0]), np.array([0.0, np.log(3.0)]))), 12)  # KL([½,½]‖[¼,¾])
    0.143841036226
    """)


sym_kl = _of_kind(_softmax_divergence, "sym_kl", """Symmetric KL, KL(p‖q) + KL(q‖p) = Σ_i (p_i − q_i)(s_i − t_i)/τ per row.

    Computed as Σ_i |w_i| · max(p_i, q_i) · (1 − e^{−|w_i|}) with w_i = log p_i − log q_i, every
    term ≥ 0. Gradient w.r.t. s/τ: p ⊙ (δ − ⟨p, δ⟩) + (p − q), δ = (s − t)/τ; w.r.t. t/τ: by symmetry.
    """, """
    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s, t = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.0])
    >>> bool(np.isclose(ld.sym_kl(s, t), ld.kl(s, t) + ld.kl(t, s)))
    True
    """)


@_described("""Generalised Jensen–Shannon divergence β KL(p‖m) + (1−β) KL(q‖m), m = β p + (1−β) q, per row.

    β ∈ [0, 1] (default ½, the usual JS, bounded by log 2). Finite even where one row puts −inf on
    a class. Gradients: β p_i (a_i − KL(p‖m)) for s and (1−β) q_i (b_i − KL(q‖m)) for t, with
    a_i = log p_i − log m_i, b_i = log q_i − log m_i (times 1/τ).
    """, """
    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> v = ld.js(np.array([0.0, -np.inf]), np.array([-np.inf, 0.0]))  # disjoint supports
    >>> bool(np.isclose(v, np.log(2)))
    True
    """)
def js(
    s: Any,
    t: Any,
    *,
    beta: float = 0.5,
    temperature: float = 1.0,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
    softcap: Optional[float] = None,
) -> Result:
    return _pair("js", s, t, temperature, where, None, beta, reduction, grad, out, grad_out, softcap)


tv = _of_kind(_softmax_divergence, "tv", """Total variation distance ½ Σ_i |p_i − q_i| per row, p = softmax(s/τ), q = softmax(t/τ).

    Liger-Kernel's distillation loss ``LigerTVDLoss``, here from logits. Each |p_i − q_i| is formed
    without cancellation (p_i · |expm1(−w_i)|, w_i = log p_i − log q_i, where the rows nearly
    agree), so it is exactly 0 for equal rows and keeps its digits when they nearly agree; it lies
    in [0, 1] and stays finite where one row puts −inf on a class. Subgradients (sign(p_i − q_i)
    taken as 0 where p_i = q_i), σ = sign(p − q): ½ p_j (σ_j − Σ_i σ_i p_i) for s and
    −½ q_j (σ_j − Σ_i σ_i q_i) for t (times 1/τ), each formed from sums of one sign.
    """, """
    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> round(float(ld.tv(np.array([0.0, 0.0]), np.array([0.0, np.log(3.0)]))), 12)  # ½(¼ + ¼)
    0.25
    """)


sigmoid_kl = _of_kind(_sigmoid_divergence, "sigmoid_kl", """Sigmoid KL: Σ_i w_i KL(Bern(σ(s_i/τ)) ‖ Bern(σ(t_i/τ))) per row.

    Each class is an independent Bernoulli pair: softplus(t') − softplus(s') − σ(s')(t' − s'),
    computed as the two-class KL of [s', 0] against [t', 0] in non-negative parts. `weights`
    (≥ 0, broadcastable to the logits) multiply each class term; weight 0 excludes a class.
    Gradients: w_i σ'(s'_i)(s'_i − t'_i) for s and w_i (σ(t'_i) − σ(s'_i)) for t (times 1/τ).
    Not shift-invariant, unlike the softmax family.
    """, """
    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> p, q = 0.9, 0.5   # KL(Bern(0.9) ‖ Bern(0.5))
    >>> round(float(ld.sigmoid_kl(np.log([p / (1 - p)]), np.log([q / (1 - q)]))), 6)
    0.368064
    """)


sigmoid_sym_kl = _of_kind(_sigmoid_divergence, "sigmoid_sym_kl", """GlobalPointer KL: Σ_i w_i (σ(s_i/τ) − σ(t_i/τ)) (s_i − t_i)/τ per row (Su, kexue.fm 9039 eq. 6).

    The symmetric sigmoid KL, sigmoid_kl(s, t) + sigmoid_kl(t, s); every term ≥ 0, with
    σ(a) − σ(b) = σ(b) σ(−a) expm1(a − b) so near-equal logits keep their digits. Gradient w.r.t.
    s': w_i (σ'(s'_i)(s'_i − t'_i) + σ(s'_i) − σ(t'_i)); w.r.t. t' by symmetry. The seed's
    temperature variant Σ (σ(s/τ) − σ(t/τ))(s − t) equals τ · sigmoid_sym_kl(s, t, temperature=τ).
    """, """
    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> float(ld.sigmoid_sym_kl(np.array([0.0]), np.array([0.0])))
    0.0
    """)


gp_kl = sigmoid_sym_kl
