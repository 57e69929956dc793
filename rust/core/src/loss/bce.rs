//! Binary cross-entropy with logits, PyTorch's `BCEWithLogitsLoss` summed over the classes of a row:
//! Σ_i w_i [pw_i y_i softplus(−x_i) + (1 − y_i) softplus(x_i)], gradient
//! w_i [(1 − y_i) σ(x_i) − pw_i y_i σ(−x_i)] (each part free of cancellation; with pw = 1 it is
//! σ(x) − y). Targets are probabilities in [0, 1].

use super::labels::{bad_probability, valid_probability};
use crate::check::{check_masks, check_non_negative, check_outputs, check_same};
use super::outputs::{fill_one, FirstError, LossOutputs, Masks};
use crate::math::out_of_domain;
use crate::element::Elem;
use crate::error::Error;
use crate::math::{sigmoid, softplus};
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::Rows;

/// Options of [`bce`].
#[derive(Debug, Clone, Copy)]
pub struct BceOptions<'a> {
    /// pw ≥ 0 per class (stride 0 repeats one row): weights the positive part, as in PyTorch.
    pub pos_weight: Option<Rows<'a, f64>>,
    /// w ≥ 0 per class (stride 0 repeats one row): weights the whole term; 0 excludes a class.
    pub weights: Option<Rows<'a, f64>>,
    pub masks: Masks<'a>,
    pub reduction: Reduction,
}

impl Default for BceOptions<'_> {
    fn default() -> Self {
        BceOptions { pos_weight: None, weights: None, masks: Masks::default(), reduction: Reduction::None }
    }
}

/// c · f, taken as 0 when c = 0 whatever f is (f may be +inf).
#[inline]
fn times(c: f64, f: f64) -> f64 {
    if c == 0.0 {
        0.0
    } else {
        c * f
    }
}

/// Binary cross-entropy of every row of `logits` against `target` (same shape, values in [0, 1]);
/// returns the reduced value (for `Reduction::None`, the sum of the row values).
pub fn bce<E: Elem, T: Elem, V: Elem>(
    logits: Rows<'_, E>,
    target: Rows<'_, T>,
    opts: &BceOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (logits.rows(), logits.cols());
    check_same("the target", rows, cols, target.rows(), target.cols())?;
    check_masks(&opts.masks, rows, cols)?;
    check_outputs(&out, rows, cols, false)?;
    if let Some(pw) = &opts.pos_weight {
        check_non_negative("pos_weight", pw, rows, cols)?;
    }
    if let Some(w) = &opts.weights {
        check_non_negative("weights", w, rows, cols)?;
    }
    let (pos_weight, weights, masks) = (opts.pos_weight, opts.weights, opts.masks);
    let scale = opts.reduction.grad_scale(rows);
    let errors = FirstError::default();
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let grad = g[0].as_deref_mut();
        if !masks.row_kept(r) {
            fill_one(grad, 0.0);
            return RowValue { value: 0.0, counts: false };
        }
        let (s, y_row, mask) = (logits.row(r), target.row(r), masks.class_row(r));
        let (pw, w) = (pos_weight.as_ref().map(|p| p.row(r)), weights.as_ref().map(|w| w.row(r)));
        let mut value = 0.0;
        let mut n_present = 0usize;
        let mut bad = false;
        let mut grad = grad;
        if pw.is_none() && w.is_none() && mask.is_none() {
            if let Some(v) = super::bce_simd::try_row(s, y_row, scale, grad.as_deref_mut()) {
                return v;
            }
        }
        for i in 0..s.len() {
            let y = y_row[i].to_f64();
            if !valid_probability(y, true) {
                errors.report(r, bad_probability(r, y_row, true));
                fill_one(grad, f64::NAN);
                return RowValue { value: f64::NAN, counts: true };
            }
            let weight = w.map_or(1.0, |w| w[i]);
            let x = s[i].to_f64();
            let pos = pw.map_or(1.0, |p| p[i]) * y;
            let d = if mask.is_some_and(|m| m[i] == 0) || weight == 0.0 {
                0.0
            } else if out_of_domain(x, x) {
                bad = true;
                0.0
            } else if x == f64::NEG_INFINITY {
                // an absent class: nothing, unless the target puts positive mass on it
                if pos > 0.0 {
                    value = f64::INFINITY;
                }
                0.0
            } else {
                n_present += 1;
                value += weight * (times(pos, softplus(-x)) + times(1.0 - y, softplus(x)));
                weight * (times(1.0 - y, sigmoid(x)) - times(pos, sigmoid(-x)))
            };
            if let Some(g) = grad.as_deref_mut() {
                g[i] = E::from_f64(scale * d);
            }
        }
        if bad || !value.is_finite() {
            fill_one(grad, f64::NAN);
            let value = if bad { f64::NAN } else { value };
            return RowValue { value, counts: true };
        }
        RowValue { value, counts: n_present > 0 }
    };
    let reduced = reduce_rows(opts.reduction, rows, cols, out.values, [out.grad, None], kernel);
    errors.into_result(reduced)
}
