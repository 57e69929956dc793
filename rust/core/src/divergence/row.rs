//! The row kernels as their callers run them: the SIMD fast path where it takes the row, else the
//! f64 reference kernel (`softmax.rs`, `sigmoid.rs`), which stays free of the fast paths so that
//! it can be their tests' oracle.

use super::params::{PairKind, RowParams};
use super::{sigmoid, sigmoid_simd, softmax, softmax_simd};
use crate::element::Elem;
use crate::parallel::{grad_pieces, map_pieces, RowValue};
use crate::rows::{GradRows, fill};

/// One softmax-family row. Gradients are written as `G`: the input type, or f64 where a loss adds
/// further terms to them.
pub(crate) fn softmax_row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    prm: &RowParams,
    mut grads: GradRows<'_, G>,
) -> RowValue {
    // Clean rows (no mask; every logit finite, checked there) of f32/f16/bf16 take the SIMD path.
    if mask.is_none() {
        if let Some(v) = softmax_simd::row(kind, s, t, prm, &mut grads) {
            return v;
        }
    }
    softmax::row(kind, s, t, mask, prm, grads)
}

/// One sigmoid-family row, as [`softmax_row`].
pub(crate) fn sigmoid_row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    weights: Option<&[f64]>,
    prm: &RowParams,
    mut grads: GradRows<'_, G>,
) -> RowValue {
    // f32/f16/bf16 rows without a mask: the SIMD fast path, which declines special rows.
    if let Some(v) = sigmoid_simd::try_row(kind, s, t, mask, weights, prm, &mut grads) {
        return v;
    }
    sigmoid::row(kind, s, t, mask, weights, prm, grads)
}

/// A long sigmoid row in pieces on several threads: its value is a sum over classes and each
/// gradient element depends on its own class only, so the pieces are rows of their own whose
/// values add (in piece order: the same whatever the thread count). The row's conventions are
/// kept: it counts when a piece does, and a total of NaN or +inf makes every gradient NaN.
pub(crate) fn sigmoid_row_in_pieces<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    weights: Option<&[f64]>,
    prm: &RowParams,
    mut grads: GradRows<'_, G>,
) -> RowValue {
    let cols = s.len();
    let parts = map_pieces(grad_pieces(&mut grads, cols), |(r, g)| {
        let (m, w) = (mask.map(|m| &m[r.clone()]), weights.map(|w| &w[r.clone()]));
        sigmoid_row(kind, &s[r.clone()], &t[r], m, w, prm, g)
    });
    let value = parts.iter().map(|p| p.value).sum::<f64>();
    if !value.is_finite() {
        fill(&mut grads, f64::NAN);
    }
    RowValue { value, counts: parts.iter().any(|p| p.counts) }
}
