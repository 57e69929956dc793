//! Su's multilabel softmax cross-entropy (kexue.fm/archives/7359, soft labels 9064), dense labels:
//! lse([x + log(1−y)] ∪ {0}) + lse([−x + log y] ∪ {0}) = log Z_neg + log Z_pos with
//! Z_neg = 1 + Σ (1−y_i) e^{x_i}, Z_pos = 1 + Σ y_i e^{−x_i}; gradient
//! (1−y_i) e^{x_i}/Z_neg − y_i e^{−x_i}/Z_pos. Labels lie in [0, 1] (0/1 for hard labels).

use super::labels::{bad_probability, valid_probability};
use super::online::Log1pSumExp;
use crate::check::{check_masks, check_outputs, check_same};
use super::outputs::{fill_one, store, FirstError, LossOutputs, Masks};
use crate::math::out_of_domain;
use crate::element::Elem;
use crate::error::Error;
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::Rows;

/// Options of [`multilabel_ce`].
#[derive(Debug, Clone, Copy)]
pub struct MultilabelOptions<'a> {
    pub masks: Masks<'a>,
    pub reduction: Reduction,
}

impl Default for MultilabelOptions<'_> {
    fn default() -> Self {
        MultilabelOptions { masks: Masks::default(), reduction: Reduction::None }
    }
}

/// The multilabel CE of one row that is not ignored, its gradient scaled by `scale` (added to what
/// the row holds when `add`); `Err` for a label outside [0, 1].
pub(crate) fn multilabel_row<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    y_row: &[T],
    mask: Option<&[u8]>,
    scale: f64,
    add: bool,
    grad: Option<&mut [G]>,
    row: usize,
) -> Result<RowValue, Error> {
    // f32/f16/bf16 rows without a mask: the SIMD fast path, which declines special rows.
    let mut grad = grad;
    if let Some(v) = super::multilabel_simd::try_row(s, y_row, mask, scale, add, grad.as_deref_mut()) {
        return Ok(v);
    }
    let (mut neg, mut pos) = (Log1pSumExp::EMPTY, Log1pSumExp::EMPTY);
    let (mut n_present, mut bad, mut unsupported) = (0usize, false, false);
    for i in 0..s.len() {
        let y = y_row[i].to_f64();
        if !valid_probability(y, true) {
            return Err(bad_probability(row, y_row, true));
        }
        let x = s[i].to_f64();
        if mask.is_some_and(|m| m[i] == 0) {
            unsupported |= y > 0.0;
            continue;
        }
        if out_of_domain(x, x) {
            bad = true;
            continue;
        }
        if x == f64::NEG_INFINITY {
            unsupported |= y > 0.0;
            continue;
        }
        n_present += 1;
        if y < 1.0 {
            neg.push(x, 1.0 - y);
        }
        if y > 0.0 {
            pos.push(-x, y);
        }
    }
    if bad {
        fill_one(grad, f64::NAN);
        return Ok(RowValue { value: f64::NAN, counts: true });
    }
    if unsupported {
        fill_one(grad, f64::NAN);
        return Ok(RowValue { value: f64::INFINITY, counts: true });
    }
    let (log_zneg, log_zpos) = (neg.value(), pos.value());
    if let Some(g) = grad {
        for i in 0..s.len() {
            let x = s[i].to_f64();
            let d = if mask.is_some_and(|m| m[i] == 0) || x == f64::NEG_INFINITY {
                0.0
            } else {
                let y = y_row[i].to_f64();
                let mut d = 0.0;
                if y < 1.0 {
                    d += (1.0 - y) * (x - log_zneg).exp();
                }
                if y > 0.0 {
                    d -= y * (-x - log_zpos).exp();
                }
                d
            };
            store(&mut g[i], scale * d, add);
        }
    }
    Ok(RowValue { value: log_zneg + log_zpos, counts: n_present > 0 })
}

/// Multilabel softmax cross-entropy of every row of `logits` against dense labels `target` (same
/// shape, values in [0, 1]); returns the reduced value (for `Reduction::None`, the sum of the row
/// values).
pub fn multilabel_ce<E: Elem, T: Elem, V: Elem>(
    logits: Rows<'_, E>,
    target: Rows<'_, T>,
    opts: &MultilabelOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (logits.rows(), logits.cols());
    check_same("the target", rows, cols, target.rows(), target.cols())?;
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
        multilabel_row(logits.row(r), target.row(r), masks.class_row(r), scale, false, grad, r).unwrap_or_else(|e| {
            errors.report(r, e);
            RowValue { value: f64::NAN, counts: true }
        })
    };
    let reduced = reduce_rows(opts.reduction, rows, cols, out.values, [out.grad, None], kernel);
    errors.into_result(reduced)
}
