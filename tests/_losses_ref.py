"""Independent references for the loss tests: float64 NumPy transcriptions of bert4keras' multilabel
formulas (bert4keras/backend.py) and of GPLinker's GlobalPointer loss, mpmath evaluations, and
central finite differences."""

from __future__ import annotations

import mpmath
import numpy as np

BIG = 1e12  # bert4keras' masking constant
K_EPSILON = 1e-7  # K.epsilon(), the clip of the sparse formula


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """K.logsumexp in float64, −inf entries contributing 0."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def b4k_multilabel_hard(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """bert4keras' original `multilabel_categorical_crossentropy` (0/1 labels, ±1e12 masking)."""
    y_pred = (1 - 2 * y_true) * y_pred
    y_pred_neg = y_pred - y_true * BIG
    y_pred_pos = y_pred - (1 - y_true) * BIG
    zeros = np.zeros_like(y_pred[..., :1])
    y_pred_neg = np.concatenate([y_pred_neg, zeros], axis=-1)
    y_pred_pos = np.concatenate([y_pred_pos, zeros], axis=-1)
    return logsumexp(y_pred_neg) + logsumexp(y_pred_pos)


def b4k_multilabel_soft(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """bert4keras' soft-label `multilabel_categorical_crossentropy` (kexue.fm/archives/9064):
    labels in [0, 1], −inf logits masked."""
    y_mask = y_pred != -np.inf
    with np.errstate(divide="ignore"):
        y_neg = np.where(y_mask, y_pred, -np.inf) + np.log(1 - y_true)
        y_pos = np.where(y_mask, -y_pred, -np.inf) + np.log(y_true)
    zeros = np.zeros_like(y_pred[..., :1])
    y_neg = np.concatenate([y_neg, zeros], axis=-1)
    y_pos = np.concatenate([y_pos, zeros], axis=-1)
    return logsumexp(y_neg) + logsumexp(y_pos)


def b4k_sparse(y_true: np.ndarray, y_pred: np.ndarray, mask_zero: bool = False) -> np.ndarray:
    """bert4keras' `sparse_multilabel_categorical_crossentropy`: the negative term as
    lse(all) + log(clip(1 − e^{lse(pos) − lse(all)}, 1e-7, 1))."""
    zeros = np.zeros_like(y_pred[..., :1])
    y_pred = np.concatenate([y_pred, zeros], axis=-1)
    if mask_zero:
        infs = zeros + np.inf
        y_pred = np.concatenate([infs, y_pred[..., 1:]], axis=-1)
    y_pos_2 = np.take_along_axis(y_pred, y_true, axis=-1)
    y_pos_1 = np.concatenate([y_pos_2, zeros], axis=-1)
    if mask_zero:
        y_pred = np.concatenate([-infs, y_pred[..., 1:]], axis=-1)
        y_pos_2 = np.take_along_axis(y_pred, y_true, axis=-1)
    pos_loss = logsumexp(-y_pos_1)
    all_loss = logsumexp(y_pred)
    aux_loss = logsumexp(y_pos_2) - all_loss
    aux_loss = np.clip(1 - np.exp(aux_loss), K_EPSILON, 1)
    neg_loss = all_loss + np.log(aux_loss)
    return pos_loss + neg_loss


def b4k_global_pointer_ner(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """bert4keras' NER `global_pointer_crossentropy`: K.mean over batch × heads of the dense
    multilabel CE of the (already masked) logits."""
    bh = y_pred.shape[0] * y_pred.shape[1]
    return float(np.mean(b4k_multilabel_soft(y_true.reshape(bh, -1), y_pred.reshape(bh, -1))))


def gplinker_globalpointer(spans: np.ndarray, y_pred: np.ndarray) -> float:
    """GPLinker's `globalpointer_crossentropy`: spans (B, heads, K, 2) padded with (0, 0), flat
    index start·L + end, sparse CE with mask_zero=True, K.mean(K.sum(loss, axis=1))."""
    b, h, length, _ = y_pred.shape
    y_true = spans[..., 0] * length + spans[..., 1]
    loss = b4k_sparse(y_true, y_pred.reshape(b, h, length * length), mask_zero=True)
    return float(np.mean(np.sum(loss, axis=1)))


def mp_multilabel_sparse(row, positives, dps: int = 50) -> mpmath.mpf:
    """log(1 + Σ_{i∉P} e^{s_i}) + log(1 + Σ_{j∈P} e^{−s_j}) in mpmath."""
    with mpmath.workdps(dps):
        pos = set(int(p) for p in positives)
        neg = mpmath.fsum(mpmath.exp(mpmath.mpf(float(x))) for i, x in enumerate(row) if i not in pos)
        psum = mpmath.fsum(mpmath.exp(-mpmath.mpf(float(row[j]))) for j in pos)
        return mpmath.log1p(neg) + mpmath.log1p(psum)


def mp_softmax_nll(row, label: int, dps: int = 50) -> mpmath.mpf:
    """−log softmax(row)[label] in mpmath."""
    with mpmath.workdps(dps):
        x = [mpmath.mpf(float(v)) for v in row]
        return mpmath.log(mpmath.fsum(mpmath.exp(v - x[label]) for v in x))


def fd_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function f at x (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = float(f(x))
        flat[i] = old - h
        down = float(f(x))
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


def assert_grad_matches(f, x: np.ndarray, grad: np.ndarray, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    np.testing.assert_allclose(grad, fd_grad(f, x), rtol=rtol, atol=atol)
