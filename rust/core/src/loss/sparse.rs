//! The multilabel softmax cross-entropy with positives given as class indices:
//! log(1 + Σ_{i ∉ P} e^{x_i}) + log(1 + Σ_{j ∈ P} e^{−x_j}). The negative term is summed over the
//! non-positive classes directly, walking the sorted positives beside the classes, never as
//! Σ_all − Σ_pos (bert4keras' `sparse_multilabel_categorical_crossentropy` forms
//! log(1 − e^{lse(pos) − lse(all)}) and clips it at 1e-7, which loses the negative term entirely when
//! the positives hold almost all the mass).
//!
//! The present classes of a row are given as ascending ranges, so that the same kernel serves the
//! GlobalPointer loss, whose present classes are the spans (i ≤ j) between unmasked tokens.

use std::ops::Range;

use super::labels::{Naming, Positives};
use super::online::Log1pSumExp;
use crate::check::{check_masks, check_outputs};
use super::outputs::{fill_one, FirstError, LossOutputs, Masks};
use crate::math::out_of_domain;
use crate::element::Elem;
use crate::error::Error;
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::Rows;

/// Options of [`sparse_multilabel_ce`].
#[derive(Debug, Clone, Copy)]
pub struct SparseMultilabelOptions<'a> {
    pub masks: Masks<'a>,
    pub reduction: Reduction,
}

impl Default for SparseMultilabelOptions<'_> {
    fn default() -> Self {
        SparseMultilabelOptions { masks: Masks::default(), reduction: Reduction::None }
    }
}

/// Walks the present classes (`segments`, ascending) beside the sorted `positives`, calling
/// `f(class, is_positive)` for each present class.
#[inline]
fn walk(segments: &[Range<usize>], positives: &[usize], mut f: impl FnMut(usize, bool)) {
    let mut k = 0;
    for seg in segments {
        for c in seg.clone() {
            while k < positives.len() && positives[k] < c {
                k += 1;
            }
            f(c, k < positives.len() && positives[k] == c);
        }
    }
}

/// The sparse multilabel CE of one row whose present classes are `segments` (ascending, disjoint)
/// and whose positives are `positives` (sorted, distinct); gradient scaled by `scale`, 0 on absent
/// classes. A positive that is absent (outside the segments, or −inf) makes the row +inf.
pub(crate) fn sparse_row<E: Elem>(
    s: &[E],
    segments: &[Range<usize>],
    positives: &[usize],
    scale: f64,
    grad: Option<&mut [E]>,
) -> RowValue {
    let (mut neg, mut pos) = (Log1pSumExp::EMPTY, Log1pSumExp::EMPTY);
    let (mut n_present, mut found, mut bad) = (0usize, 0usize, false);
    walk(segments, positives, |c, is_pos| {
        let x = s[c].to_f64();
        if out_of_domain(x, x) {
            bad = true;
            return;
        }
        if x == f64::NEG_INFINITY {
            return;
        }
        n_present += 1;
        if is_pos {
            found += 1;
            pos.push(-x, 1.0);
        } else {
            neg.push(x, 1.0);
        }
    });
    if bad {
        fill_one(grad, f64::NAN);
        return RowValue { value: f64::NAN, counts: true };
    }
    if found < positives.len() {
        fill_one(grad, f64::NAN);
        return RowValue { value: f64::INFINITY, counts: true };
    }
    let (log_zneg, log_zpos) = (neg.value(), pos.value());
    if let Some(g) = grad {
        g.fill(E::from_f64(0.0));
        walk(segments, positives, |c, is_pos| {
            let x = s[c].to_f64();
            let d = if x == f64::NEG_INFINITY {
                0.0
            } else if is_pos {
                -(-x - log_zpos).exp()
            } else {
                (x - log_zneg).exp()
            };
            g[c] = E::from_f64(scale * d);
        });
    }
    RowValue { value: log_zneg + log_zpos, counts: n_present > 0 }
}

/// The ascending runs of non-zero entries of a class mask.
pub(crate) fn runs(mask: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &m) in mask.iter().enumerate() {
        match (m != 0, start) {
            (true, None) => start = Some(i),
            (false, Some(a)) => {
                out.push(a..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        out.push(a..mask.len());
    }
    out
}

/// Sparse multilabel softmax cross-entropy of every row of `logits` against its positive classes;
/// returns the reduced value (for `Reduction::None`, the sum of the row values).
pub fn sparse_multilabel_ce<E: Elem, V: Elem>(
    logits: Rows<'_, E>,
    positives: Positives<'_>,
    opts: &SparseMultilabelOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (logits.rows(), logits.cols());
    positives.check_shape(rows, Naming::Flat)?;
    check_masks(&opts.masks, rows, cols)?;
    check_outputs(&out, rows, cols, false)?;
    let masks = opts.masks;
    let scale = opts.reduction.grad_scale(rows);
    let errors = FirstError::default();
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let grad = g[0].as_deref_mut();
        if !masks.row_kept(r) {
            fill_one(grad, 0.0);
            return RowValue { value: 0.0, counts: false };
        }
        let pos = match positives.sorted(r, cols, Naming::Flat) {
            Ok(p) => p,
            Err(e) => {
                errors.report(r, e);
                fill_one(grad, f64::NAN);
                return RowValue { value: f64::NAN, counts: true };
            }
        };
        let segments = match masks.class_row(r) {
            Some(m) => runs(m),
            None => std::iter::once(0..cols).collect(),
        };
        sparse_row(logits.row(r), &segments, &pos, scale, grad)
    };
    let reduced = reduce_rows(opts.reduction, rows, cols, out.values, [out.grad, None], kernel);
    errors.into_result(reduced)
}
