"""Losses against labels, straight from logits, with their gradients: softmax cross-entropy, binary
cross-entropy, Su's multilabel softmax cross-entropy (dense, sparse, GlobalPointer), the
γ-cross-entropy, knowledge distillation and R-Drop. The mathematics is in MATH.md (section 2); the
computation is in the Rust core, which sums non-negative terms with a bounded error (f32
lanes of at most 8 to 32 terms, then float64: docs/MATH.md §7).

Conventions shared by every loss here (and with the divergences):

- rows are all leading axes, the last axis holds the C classes; ``reduction`` defaults to
  ``"none"`` (one value per row), the project's convention — PyTorch's losses default to
  ``"mean"``, so pass ``reduction="mean"`` to compare;
- ``"mean"`` averages over the rows that count: a row labelled ``ignore_index``, excluded by a row
  mask, or with no class present does not; ``"batchmean"`` divides the sum by the number of rows;
- a logit of −inf is an absent class: it contributes exactly 0 to value and gradient, unless the
  label puts mass on it, which makes the row +inf (with NaN gradients), as the formulas do;
- NaN or +inf among a row's logits makes that row NaN (with NaN gradients) and no other, and so
  does a finite logit beyond ±1e300 (after dividing by τ: the kernels' domain);
- labels are checked: a class index out of range, a negative or non-finite probability, a
  duplicated positive are ``ValueError`` naming the row (counted over the flattened leading axes)
  and the value; labels of the wrong kind are ``TypeError``; shapes that do not fit are
  ``ValueError`` showing both shapes.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _arrays as A
from . import _layout as L
from . import _native
from ._dispatch import routes_gpu
from .divergences import Result


# ----------------------------------------------------------------------------------------------
# argument handling: the rules are `_arrays`' (shared with the CuPy backend); what is here is the
# layout the core reads (2-D row views, flat values). The native functions take the arrays as they
# are (their dtype picks the kernel) and the options by keyword.


def _softmax_target(target: Any, shape: Tuple[int, ...], dtype: np.dtype) -> Tuple[Any, Any]:
    """(labels int64 1-D or None, probabilities as 2-D rows or None): `A.softmax_target`."""
    labels, probs = A.softmax_target(L.HOST, target, shape, dtype)
    return labels, None if probs is None else L.rows_view(probs)


def _dense_target(target: Any, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return L.rows_view(A.dense_target(L.HOST, target, shape, dtype))


def _masks(where: Any, shape: Tuple[int, ...]) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """`where` as (class mask rows uint8, None) or (None, row mask): `A.loss_masks`."""
    class_mask, row_mask = A.loss_masks(L.HOST, where, shape)
    return (None if class_mask is None else L.rows_view(class_mask).view(np.uint8)), row_mask


class _Outputs(A.Outputs):
    """The buffers of one call, as the core takes them."""

    __slots__ = ()

    def value_arg(self) -> Optional[np.ndarray]:
        v = self.values
        return None if v is None else v if v.ndim == 1 else v.reshape(-1)

    def grad_arg(self, i: int, cols: Optional[int] = None) -> Optional[np.ndarray]:
        if i >= len(self.grads):
            return None
        g = self.grads[i]
        return g if cols is None and g.ndim == 2 else g.reshape(-1, cols or g.shape[-1])

    def value(self, total: float) -> Any:
        """The per-row values, or the core's total as a NumPy scalar of the value type."""
        return self.values if self.values is not None else self.vdtype.type(total)

    def result(self, total: float) -> Result:
        return self.returned(self.value(total))


def _shared_args(where: Any, out: Any, grad_out: Any, shape: Tuple[int, ...], dtype: np.dtype, reduction: str,
                 grad: bool, grad_names: Tuple[str, ...] = ("grad",),
                 n_grads: Optional[int] = None) -> Tuple[_Outputs, Dict[str, Any]]:
    """The checked `where` and buffers of a loss with per-row values, and the keywords its native
    function takes for them (the masks, the reduction, `out` and the gradients `grad_names`)."""
    class_mask, row_mask = _masks(where, shape)
    n = len(grad_names) if n_grads is None else n_grads
    outs = _Outputs(L.HOST, out, grad_out, shape, shape[:-1], dtype, reduction, n, grad)
    args = {"class_mask": class_mask, "row_mask": row_mask, "reduction": reduction, "out": outs.value_arg()}
    args.update((name, outs.grad_arg(i)) for i, name in enumerate(grad_names))
    return outs, args


def _documented(f):
    """Puts the shared parameter descriptions where the docstring says ``[common]`` (a docstring
    must be a plain literal, so it cannot be built with ``+``)."""
    f.__doc__ = f.__doc__.replace("    [common]\n", _COMMON.lstrip("\n"))
    return f


_COMMON = """
    where : array_like of bool, optional
        Broadcastable to the logits' shape. Where its last axis has length 1 (``mask[..., None]``)
        it is a *row* mask: an excluded row is ignored (value 0, zero gradient, not counted by
        "mean"). Otherwise it masks classes: an excluded class is absent, exactly as a −inf logit.
    reduction : {"none", "sum", "mean", "batchmean"}, default "none"
        "none" gives one value per row (shape = the leading axes); "mean" averages over the rows
        that count (not ignored, not masked, some class present); "batchmean" divides the sum by
        the number of rows.
    grad : bool, default False
        Also return the gradient of the returned value with respect to the logits (for "none", of
        the sum of the row values), computed in the same pass; it has the logits' shape and dtype.
    out : ndarray, optional
        Buffer for the per-row values (reduction "none"): float64 for float64 logits, float32
        otherwise.
    grad_out : ndarray, optional
        Buffer for the gradient (shape and dtype of the logits, C-contiguous).

    Returns
    -------
    value, or (value, grad) when grad=True.
"""


# ----------------------------------------------------------------------------------------------
# softmax cross-entropy


@_documented
@routes_gpu("logits")
def softmax_ce(
    logits: Any,
    target: Any,
    *,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    temperature: float = 1.0,
    weight: Any = None,
    z_loss: float = 0.0,
    softcap: Optional[float] = None,
    return_z_loss: bool = False,
    return_accuracy: bool = False,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """Softmax cross-entropy per row: −Σ_i t_i log p_i, p = softmax(logits/τ).

    With class indices y the target is t = (1−ε)·onehot(y) + ε/C, so the value is
    (1−ε)(lse(s') − s'_y) + ε(lse(s') − mean(s')), s' = logits/τ: PyTorch's
    ``F.cross_entropy(..., label_smoothing=ε, ignore_index=...)`` per row. With probabilities y
    (the logits' shape, finite and ≥ 0) the target is t = (1−ε)·y + ε/C and the value
    −Σ t_i log p_i (rows need not sum to 1, as in PyTorch). Gradient w.r.t. the logits:
    (Σt · p − t)/τ.

    C counts the classes present in the row (a −inf logit or a class masked by `where` is absent;
    a label on an absent class gives +inf). Evaluated as sums of non-negative terms with
    −log p_y = (max − s'_y) + log1p(Σ_{i≠argmax} e^{s'_i − max}), so a confident model's loss of
    1e-20 keeps its digits.

    The options of LLM training (PyTorch's and Liger-Kernel's cross-entropy):

    - ``weight`` w (one per class): the value becomes −Σ_i w_i t_i log p_i, PyTorch's
      ``F.cross_entropy(weight=w)`` per row (label smoothing included: (1−ε) w_y (−log p_y) +
      (ε/C) Σ_i w_i (−log p_i)); with class indices, ``reduction="mean"`` divides the sum by
      Σ w_y over the rows not ignored (PyTorch's mean over weighted targets); with probabilities it
      stays the mean over rows, as in PyTorch.
    - ``z_loss`` z ≥ 0 (PaLM's z-loss, Liger-Kernel's ``lse_square_scale``): z · lse(s')² is added
      to every row that counts (s' the logits the softmax sees, capped if `softcap`); under
      "mean" this term is divided by the number of rows that count, never by the weights, as in
      Liger-Kernel. ``return_z_loss=True`` also returns the z-term alone, reduced like its share
      of the loss (per row for "none").
    - ``softcap`` c > 0 (Gemma 2): every finite logit becomes c · tanh(x / c) before the
      temperature; the gradient goes through the cap exactly (times sech²(x / c), formed without
      cancellation). −inf stays absent.
    - ``return_accuracy=True`` also returns the accuracy: the share of the rows that count whose
      argmax (the first largest present logit) is the label (for probabilities: the first largest
      target probability); per row (1.0 or 0.0, 0.0 where the row does not count) for "none".

    Parameters
    ----------
    logits : array_like, shape (..., C)
        float16, bfloat16, float32 or float64.
    target : array_like
        Integer class indices of shape (...) (the leading axes), each in [0, C) or equal to
        `ignore_index`; or floating-point class probabilities of shape (..., C). Rows whose index is
        `ignore_index` are ignored. PyTorch cannot ignore rows of probability targets; here a row
        mask does it: ``where=keep[..., None]``.
    label_smoothing : float, default 0.0
        ε ∈ [0, 1].
    ignore_index : int, default -100
    temperature : float, default 1.0
        τ > 0; the logits are divided by it first.
    weight : array_like, shape (C,), optional
        Per-class weights, finite and ≥ 0.
    z_loss : float, default 0.0
        The z-loss scale z ≥ 0.
    softcap : float, optional
        The soft cap c > 0; None: no cap.
    return_z_loss, return_accuracy : bool, default False
        Also return the z-term, the accuracy.
    [common]
    With `return_z_loss` / `return_accuracy` the result is the tuple (value, [z_term],
    [accuracy], [grad]) of what was asked for, in that order. The z-term and the accuracy are
    float64 for float64 logits and float32 otherwise (Python floats' NumPy types when reduced).

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    >>> ld.softmax_ce(s, np.array([0, 1]))
    array([0.41703002, 0.15317821])
    >>> float(ld.softmax_ce(s, np.array([0, -100]), reduction="mean"))  # the ignored row does not count
    0.41703001627783354
    >>> v, z, acc = ld.softmax_ce(s, np.array([0, 2]), z_loss=1e-4, return_z_loss=True,
    ...                           return_accuracy=True, reduction="mean")
    >>> float(acc)    # row 0 predicts its label, row 1 does not
    0.5
    """
    extended = (weight is not None or softcap is not None or return_z_loss is not False
                or return_accuracy is not False or not (type(z_loss) in (int, float) and z_loss == 0))
    arr, reduction, grad = A.loss_args(L.HOST, logits, reduction, grad)
    shape, dtype = arr.shape, arr.dtype
    labels, probs = _softmax_target(target, shape, dtype)
    class_mask, row_mask = _masks(where, shape)
    outs = _Outputs(L.HOST, out, grad_out, shape, shape[:-1], dtype, reduction, 1, grad)
    # by position, in the signature's order (logits, labels, probs, ignore_index, label_smoothing,
    # temperature, class_mask, row_mask, reduction, out, grad): keywords cost about 0.1 us each a call
    args = (
        L.rows_view(arr), labels, probs, A.check_int(ignore_index, "ignore_index"),
        A.check_number(label_smoothing, "label_smoothing"), A.check_number(temperature, "temperature"),
        class_mask, row_mask, reduction, outs.value_arg(), outs.grad_arg(0),
    )
    if not extended:
        return outs.result(_native.softmax_ce(*args)[0])
    want_z = A.check_flag(return_z_loss, "return_z_loss")
    want_acc = A.check_flag(return_accuracy, "return_accuracy")
    w = None
    if weight is not None:
        w = np.asarray(weight)
        if w.dtype.kind not in "fiu":
            raise TypeError(f"weight must be a real numeric array; got dtype {w.dtype}")
        if w.ndim != 1:
            raise ValueError(f"weight must be a 1-D array of one weight per class ({shape[-1]}); got shape {w.shape}")
        w = np.ascontiguousarray(w, dtype=np.float64)
    cap = None if softcap is None else A.check_number(softcap, "softcap")
    per_row = reduction == "none"
    z_rows = np.empty(shape[:-1], outs.vdtype) if want_z and per_row else None
    acc_rows = np.empty(shape[:-1], outs.vdtype) if want_acc and per_row else None
    total, _, z_total, _, accuracy = _native.softmax_ce(
        *args, weight=w, z_loss=A.check_number(z_loss, "z_loss"), softcap=cap,
        z_out=None if z_rows is None else z_rows.reshape(-1),
        correct_out=None if acc_rows is None else acc_rows.reshape(-1), accuracy=want_acc,
    )
    extra = []
    if want_z:
        extra.append(z_rows if per_row else outs.vdtype.type(z_total))
    if want_acc:
        extra.append(acc_rows if per_row else outs.vdtype.type(accuracy))
    return (outs.value(total), *extra, *outs.grads) if extra or outs.grads else outs.value(total)


# ----------------------------------------------------------------------------------------------
# binary and multilabel cross-entropy


@_documented
@routes_gpu("logits")
def bce(
    logits: Any,
    target: Any,
    *,
    pos_weight: Any = None,
    weights: Any = None,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """Binary cross-entropy with logits, summed over the classes of each row:
    Σ_i w_i [pw_i y_i softplus(−s_i) + (1 − y_i) softplus(s_i)].

    PyTorch's ``F.binary_cross_entropy_with_logits(s, y, weight=w, pos_weight=pw, reduction="none")``
    summed over the last axis; PyTorch's "mean" (over every element) is this "sum" divided by the
    number of elements. Gradient: w_i [(1 − y_i) σ(s_i) − pw_i y_i σ(−s_i)] (σ(s) − y when pw = 1),
    each part free of cancellation. A −inf logit contributes 0 when its target is 0 and +inf
    otherwise.

    Parameters
    ----------
    logits : array_like, shape (..., C)
    target : array_like, shape (..., C)
        Probabilities in [0, 1] (bool and integer 0/1 labels are accepted).
    pos_weight : array_like, optional
        pw ≥ 0, broadcastable to the logits (typically one per class, shape (C,)).
    weights : array_like, optional
        w ≥ 0, broadcastable to the logits; a weight of 0 excludes the element.
    [common]

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s, y = np.array([[1.0, -2.0, 0.5]]), np.array([[1.0, 0.0, 1.0]])
    >>> v = ld.bce(s, y)
    >>> sp = lambda x: np.log1p(np.exp(x))   # softplus
    >>> bool(np.isclose(v[0], sp(-1.0) + sp(-2.0) + sp(-0.5)))
    True
    """
    arr, reduction, grad = A.loss_args(L.HOST, logits, reduction, grad)
    shape, dtype = arr.shape, arr.dtype
    tgt = _dense_target(target, shape, dtype)
    pw = None if pos_weight is None else A.broadcast_rows(pos_weight, shape, "pos_weight", np.float64)
    w = None if weights is None else A.broadcast_rows(weights, shape, "weights", np.float64)
    outs, shared = _shared_args(where, out, grad_out, shape, dtype, reduction, grad)
    total, _ = _native.bce(L.rows_view(arr), tgt, pos_weight=pw, weights=w, **shared)
    return outs.result(total)


@_documented
@routes_gpu("logits")
def multilabel_ce(
    logits: Any,
    target: Any,
    *,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """Multilabel softmax cross-entropy (Su, kexue.fm/archives/7359; soft labels 9064), per row:
    lse([s + log(1−y)] ∪ {0}) + lse([−s + log y] ∪ {0}).

    With 0/1 labels: log(1 + Σ_neg e^{s_i}) + log(1 + Σ_pos e^{−s_j}) — bert4keras'
    ``multilabel_categorical_crossentropy``. A class is predicted positive when its logit is > 0.
    Gradient: (1−y_i) e^{s_i}/Z_neg − y_i e^{−s_i}/Z_pos, Z the two sums including the 1. Both logs
    are formed as log1p of the sums, so tiny losses keep their digits; no ±1e12 constants are used.
    With one positive j it is log(e^{CE_j} + Σ_neg e^{s_i}), CE_j the softmax CE of class j against
    the negatives and a zero logit.

    Parameters
    ----------
    logits : array_like, shape (..., C)
    target : array_like, shape (..., C)
        Labels in [0, 1]: 0/1 (bool and integers accepted) or soft labels.
    [common]

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s, y = np.array([[2.0, -1.0, 0.5]]), np.array([[1, 0, 0]])
    >>> v = ld.multilabel_ce(s, y)
    >>> bool(np.isclose(v[0], np.log(1 + np.exp(-1.0) + np.exp(0.5)) + np.log(1 + np.exp(-2.0))))
    True
    """
    arr, reduction, grad = A.loss_args(L.HOST, logits, reduction, grad)
    shape, dtype = arr.shape, arr.dtype
    tgt = _dense_target(target, shape, dtype)
    outs, shared = _shared_args(where, out, grad_out, shape, dtype, reduction, grad)
    total, _ = _native.multilabel_ce(L.rows_view(arr), tgt, **shared)
    return outs.result(total)


@_documented
@routes_gpu("logits")
def sparse_multilabel_ce(
    logits: Any,
    positives: Any,
    *,
    pad: int = -1,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """Multilabel softmax cross-entropy with the positives given as class indices, per row:
    log(1 + Σ_{i∉P} e^{s_i}) + log(1 + Σ_{j∈P} e^{−s_j}).

    Equal to `multilabel_ce` with the 0/1 labels of P. The negative term is summed over the
    non-positive classes directly. bert4keras' ``sparse_multilabel_categorical_crossentropy``
    instead forms it as lse(all) + log(1 − e^{lse(P) − lse(all)}) with the argument clipped at 1e-7,
    which loses it (relative errors up to 100 %, or a constant log 1e-7 offset) when the positives
    hold almost all the mass. Gradient as for `multilabel_ce`, 0 on absent classes.

    Parameters
    ----------
    logits : array_like, shape (..., C)
    positives : array_like of int, shape (..., K)
        The positive classes of each row, in [0, C); entries equal to `pad` are padding, so rows
        may have different numbers of positives. A class listed twice is an error.
    pad : int, default -1
    [common]

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s = np.array([[2.0, -1.0, 0.5, 3.0]])
    >>> v = ld.sparse_multilabel_ce(s, np.array([[0, 3, -1]]))
    >>> bool(np.isclose(v[0], ld.multilabel_ce(s, np.array([[1, 0, 0, 1]]))[0]))
    True
    """
    arr, reduction, grad = A.loss_args(L.HOST, logits, reduction, grad)
    shape, dtype = arr.shape, arr.dtype
    pos = L.HOST.aux(positives, "positives")
    A.check_positives_shape(pos.shape, shape)
    pos2 = A.class_indices(pos, "positives").reshape(int(np.prod(shape[:-1], dtype=np.int64)), pos.shape[-1])
    outs, shared = _shared_args(where, out, grad_out, shape, dtype, reduction, grad)
    total, _ = _native.sparse_multilabel_ce(L.rows_view(arr), pos2, pad=A.check_int(pad, "pad"), **shared)
    return outs.result(total)


_GP_REDUCTIONS = ("none", "sum", "mean", "batchmean", "sum_heads_mean_batch")


@routes_gpu("logits")
def globalpointer_ce(
    logits: Any,
    spans_or_positives: Any,
    *,
    mask: Any = None,
    pad: int = -1,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """The GlobalPointer loss: the sparse multilabel CE of every (batch, head) over the spans
    (i, j), i ≤ j, whose tokens are both unmasked.

    For logits of shape (B, heads, L, L), the row of (b, h) has the L·L span logits; the spans with
    i > j and those touching a masked token are absent classes, applied inside the kernel (no
    ±1e12 constants, which overflow float16). The value equals `multilabel_ce` of the logits set to
    −inf on those spans, flattened to (B, heads, L·L); the gradient is 0 there. A positive on an
    absent span makes its row +inf.

    Parameters
    ----------
    logits : array_like, shape (B, heads, L, L)
    spans_or_positives : array_like of int
        Either (start, end) spans, shape (B, heads, K, 2), with positions in [0, L) — padding
        spans have both entries equal to `pad` — or flat indices start·L + end, shape (B, heads, K),
        in [0, L·L) or equal to `pad`. A span listed twice is an error.
    mask : array_like, shape (B, L), optional
        Token mask (bool, or 0/1 integers or floats as tokenizers and bert4keras give it): False
        or 0 marks padding.
    pad : int, default -1
    reduction : {"none", "sum", "mean", "batchmean", "sum_heads_mean_batch"}, default "none"
        "none" gives the (B, heads) row values; "sum" their sum; "mean" their mean over the rows
        with some span present; "batchmean" the sum / (B·heads) — bert4keras' NER
        ``global_pointer_crossentropy`` (``K.mean`` over batch × heads); "sum_heads_mean_batch"
        the sum over heads averaged over the batch, sum / B — GPLinker's
        ``globalpointer_crossentropy`` (``K.mean(K.sum(loss, axis=1))``). GPLinker pads its spans
        with (0, 0) and drops that class with ``mask_zero=True``; the same here is ``pad=0`` with
        the (0, 0) logits set to −inf (tested against a transcription of GPLinker's loss).
    grad, out, grad_out
        As for the other losses; the gradient has the logits' shape (B, heads, L, L).

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(size=(1, 2, 3, 3))                  # B=1, heads=2, L=3
    >>> spans = np.array([[[[0, 1]], [[-1, -1]]]])          # head 0: span (0, 1); head 1: none
    >>> mask = np.array([[True, True, False]])              # token 2 is padding
    >>> v = ld.globalpointer_ce(s, spans, mask=mask)
    >>> dense = np.full((1, 2, 9), -np.inf)
    >>> keep = [0, 1, 4]                                    # spans (0,0), (0,1), (1,1)
    >>> dense[..., keep] = s.reshape(1, 2, 9)[..., keep]
    >>> y = np.zeros((1, 2, 9)); y[0, 0, 1] = 1
    >>> bool(np.allclose(v, ld.multilabel_ce(dense, y)))
    True
    """
    arr = A.class_logits(L.HOST, logits, "logits")
    if reduction not in _GP_REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, _GP_REDUCTIONS))}; got {reduction!r}")
    grad = A.check_flag(grad, "grad")
    A.check_globalpointer_logits(arr.shape)
    b, heads, length, _ = arr.shape
    dtype = arr.dtype
    pos = L.HOST.aux(spans_or_positives, "spans_or_positives")
    spans = A.globalpointer_layout(arr.shape, pos.shape)
    pos2 = A.class_indices(pos, "spans_or_positives").reshape(b * heads, pos.shape[2] * (2 if spans else 1))
    pad = A.check_int(pad, "pad")
    token_mask = None
    if mask is not None:
        m = np.asarray(mask)
        A.check_token_mask(m.shape, m.dtype, b, length)
        if m.dtype != np.bool_ and not np.isin(m, (0, 1)).all():
            raise ValueError("mask must hold 0/1 values (or booleans)")
        token_mask = np.ascontiguousarray(m != 0).view(np.uint8)
    rows2 = L.rows_view(arr.reshape(b * heads, length * length))
    outs = _Outputs(L.HOST, out, grad_out, arr.shape, (b, heads), dtype, reduction, 1, grad)
    if b * heads == 0:
        # an empty batch (or no head): nothing to compute, like an empty batch of any other loss
        return outs.result(0.0)
    total, _ = _native.globalpointer_ce(
        rows2, pos2, heads=heads, pad=pad, spans=spans, mask=token_mask, reduction=reduction,
        out=outs.value_arg(), grad=outs.grad_arg(0, length * length),
    )
    return outs.result(total)


# ----------------------------------------------------------------------------------------------
# γ-cross-entropy


@_documented
@routes_gpu("logits")
def gamma_ce(
    logits: Any,
    target: Any,
    *,
    gamma: float,
    threshold: Optional[float] = None,
    ignore_index: int = -100,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """The γ-cross-entropy of Su (kexue.fm/archives/9526, after arXiv 2302.13344), per row:
    −log(γ + (1−γ) p_y)/(1−γ), p = softmax(logits), γ ∈ [0, 1).

    γ = 0 is the softmax CE; as γ → 1 it tends to 1 − p_y, so confident rows weigh less (a remedy
    for over-confidence). Evaluated as −logaddexp(log γ, log(1−γ) + log p_y)/(1−γ), or as
    −log1p(−(1−γ)(1−p_y))/(1−γ) when p_y > ½. Gradient: r·(p − onehot(y)), r = p_y/(γ + (1−γ) p_y).

    With a threshold b, the loss is the thresholded-gradient surrogate: value −max(b, r)·log p_y
    with max(b, r) held constant (a stop-gradient), gradient max(b, r)·(p − onehot(y)).

    Parameters
    ----------
    logits : array_like, shape (..., C)
    target : array_like of int, shape (...)
        Class indices in [0, C), or `ignore_index`.
    gamma : float
        γ ∈ [0, 1).
    threshold : float, optional
        b ∈ [0, 1].
    ignore_index : int, default -100
    [common]

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s, y = np.array([[2.0, 1.0, 0.1]]), np.array([0])
    >>> bool(np.isclose(ld.gamma_ce(s, y, gamma=0.0)[0], ld.softmax_ce(s, y)[0]))
    True
    >>> p0 = np.exp(2.0) / np.exp(s).sum()
    >>> bool(np.isclose(ld.gamma_ce(s, y, gamma=0.5)[0], -np.log(0.5 + 0.5 * p0) / 0.5))
    True
    """
    arr, reduction, grad = A.loss_args(L.HOST, logits, reduction, grad)
    shape, dtype = arr.shape, arr.dtype
    target = L.HOST.aux(target, "target")
    if target.dtype == np.bool_ or target.dtype.kind not in "iu":
        raise TypeError(f"gamma_ce takes integer class indices as target; got dtype {target.dtype}")
    labels, _ = _softmax_target(target, shape, dtype)
    outs, shared = _shared_args(where, out, grad_out, shape, dtype, reduction, grad)
    b = None if threshold is None else A.check_number(threshold, "threshold")
    total, _ = _native.gamma_ce(
        L.rows_view(arr), labels, gamma=A.check_number(gamma, "gamma"), threshold=b,
        ignore_index=A.check_int(ignore_index, "ignore_index"), **shared,
    )
    return outs.result(total)


# ----------------------------------------------------------------------------------------------
# distillation and R-Drop


@_documented
@routes_gpu("student")
def kd_loss(
    student: Any,
    teacher: Any,
    target: Any = None,
    *,
    temperature: float,
    alpha: float,
    t2: bool = True,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    grad_teacher: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """Knowledge-distillation loss (Hinton et al. 2015), per row:
    (1−α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)), s the student, t the teacher logits.

    The CE term is `softmax_ce` at temperature 1 (class indices or probabilities, with
    `label_smoothing` and `ignore_index`); without a target it is left out and the value is
    α·T²·KL. ``t2=False`` drops the T² factor. A row labelled `ignore_index` is ignored whole (both
    terms), as padding tokens should be. Gradient w.r.t. the student:
    (1−α)(p − y) + α·T·(p_T − q_T) (with T² scaling); w.r.t. the teacher (``grad_teacher=True``):
    α·T·q_T ⊙ (w − KL), w = log q_T − log p_T. As T grows, T²·KL → Σ(z − v)²/(2C) for zero-mean
    logits (Hinton's limit).

    Parameters
    ----------
    student, teacher : array_like, shape (..., C)
    target : array_like, optional
        Integer class indices of shape (...) or probabilities of shape (..., C).
    temperature : float
        T > 0 of the distillation term.
    alpha : float
        α ∈ [0, 1]: the weight of the distillation term.
    t2 : bool, default True
    label_smoothing : float, default 0.0
    ignore_index : int, default -100
    grad_teacher : bool, default False
        With grad=True, also return the gradient w.r.t. the teacher.
    [common]
    With grad=True: (value, grad_student) or, with grad_teacher=True,
    (value, grad_student, grad_teacher); grad_out is then one array or a pair.

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s, t = np.array([[1.0, 0.5, -1.0]]), np.array([[2.0, 0.0, -1.0]])
    >>> v = ld.kd_loss(s, t, np.array([0]), temperature=2.0, alpha=0.5)
    >>> ref = 0.5 * ld.softmax_ce(s, np.array([0])) + 0.5 * 4.0 * ld.kl(t, s, temperature=2.0)
    >>> bool(np.allclose(v, ref))
    True
    """
    s_arr, t_arr = A.logits_pair(L.HOST, student, teacher, ("student", "teacher"))
    reduction = A.check_reduction(reduction)
    grad = A.check_flag(grad, "grad")
    grad_teacher = A.check_flag(grad_teacher, "grad_teacher")
    if grad_teacher and not grad:
        raise ValueError("grad_teacher=True needs grad=True")
    shape, dtype = s_arr.shape, s_arr.dtype
    labels = probs = None
    if target is not None:
        labels, probs = _softmax_target(target, shape, dtype)
    outs, shared = _shared_args(where, out, grad_out, shape, dtype, reduction, grad,
                                ("grad_student", "grad_teacher"), 2 if grad_teacher else 1)
    total, _ = _native.kd_loss(
        L.rows_view(s_arr), L.rows_view(t_arr), labels=labels, probs=probs,
        ignore_index=A.check_int(ignore_index, "ignore_index"), temperature=A.check_number(temperature, "temperature"),
        alpha=A.check_number(alpha, "alpha"), t2=A.check_flag(t2, "t2"),
        label_smoothing=A.check_number(label_smoothing, "label_smoothing"), **shared,
    )
    return outs.result(total)


@_documented
@routes_gpu("s1")
def rdrop_loss(
    s1: Any,
    s2: Any,
    target: Any,
    *,
    alpha: float,
    kind: str = "softmax",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    where: Any = None,
    reduction: str = "none",
    grad: bool = False,
    out: Optional[np.ndarray] = None,
    grad_out: Any = None,
) -> Result:
    """R-Drop loss (Liang et al. 2021) of two dropout passes s1, s2 of the same inputs, per row:
    CE(s1, y) + CE(s2, y) + α/2 · (KL(p1‖p2) + KL(p2‖p1)).

    ``kind="softmax"``: `softmax_ce` against class indices or probabilities (with
    `label_smoothing`, `ignore_index`; an ignored row is ignored whole) and the softmax symmetric
    KL, Σ (p1 − p2)(s1 − s2). ``kind="sigmoid"`` (for multilabel and GlobalPointer heads, Su
    kexue.fm/archives/9039): `multilabel_ce` against dense labels in [0, 1] of the logits' shape and
    the sigmoid symmetric KL Σ (σ(s1) − σ(s2))(s1 − s2) (`sigmoid_sym_kl`). Gradients for s1 and
    s2 come from one pass.

    Parameters
    ----------
    s1, s2 : array_like, shape (..., C)
    target : array_like
        softmax kind: integer class indices of shape (...) or probabilities of shape (..., C);
        sigmoid kind: labels in [0, 1] of shape (..., C).
    alpha : float
        α ≥ 0.
    kind : {"softmax", "sigmoid"}, default "softmax"
    label_smoothing : float, default 0.0
        softmax kind only.
    ignore_index : int, default -100
    [common]
    With grad=True: (value, grad_s1, grad_s2); grad_out is a pair.

    Examples
    --------
    >>> import numpy as np, logitdiv as ld
    >>> s1, s2, y = np.array([[1.0, 0.2, -0.5]]), np.array([[0.8, 0.4, -0.3]]), np.array([0])
    >>> v = ld.rdrop_loss(s1, s2, y, alpha=4.0)
    >>> ref = ld.softmax_ce(s1, y) + ld.softmax_ce(s2, y) + 2.0 * ld.sym_kl(s1, s2)
    >>> bool(np.allclose(v, ref))
    True
    """
    a, b = A.logits_pair(L.HOST, s1, s2, ("s1", "s2"))
    reduction = A.check_reduction(reduction)
    grad = A.check_flag(grad, "grad")
    if kind not in ("softmax", "sigmoid"):
        raise ValueError(f"kind must be 'softmax' or 'sigmoid'; got {kind!r}")
    shape, dtype = a.shape, a.dtype
    if kind == "softmax":
        labels, probs = _softmax_target(target, shape, dtype)
    else:
        labels, probs = None, _dense_target(target, shape, dtype)
    outs, shared = _shared_args(where, out, grad_out, shape, dtype, reduction, grad, ("grad1", "grad2"))
    total, _ = _native.rdrop_loss(
        kind, L.rows_view(a), L.rows_view(b), labels=labels, probs=probs,
        ignore_index=A.check_int(ignore_index, "ignore_index"), alpha=A.check_number(alpha, "alpha"),
        label_smoothing=A.check_number(label_smoothing, "label_smoothing"), **shared,
    )
    return outs.result(total)
