//! Knowledge distillation (Hinton et al. 2015): (1−α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T))
//! for student logits s and teacher logits t; gradient w.r.t. s: (1−α)(p − y) + α·T·(p_T − q_T),
//! w.r.t. t (if asked): α·T·q_T ⊙ (w − KL), w = log q_T − log p_T. The KL term is the divergence
//! module's `kl` row kernel (teacher first), the CE term the softmax CE row kernel, which adds its
//! gradient to the KL one in f64 (the sum is rounded to the storage type once).

use super::labels::{bad_probability, valid_probability, RowTarget, Target};
use super::ce_params::CeParams;
use super::softmax_ce::{ce_row, ignored_row, validate_target};
use crate::check::{check_masks, check_outputs, check_same, check_temperature, check_unit};
use super::outputs::{fill_one, with_f64_grads, FirstError, LossOutputs, Masks};
use crate::divergence::row::softmax_row;
use crate::divergence::{PairKind, RowParams};
use crate::element::Elem;
use crate::error::Error;
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::Rows;

/// Options of [`kd_loss`].
#[derive(Debug, Clone, Copy)]
pub struct KdOptions<'a> {
    /// T > 0: both logit rows are divided by it in the KL term (not in the CE term).
    pub temperature: f64,
    /// α ∈ [0, 1]: the weight of the distillation term.
    pub alpha: f64,
    /// Multiply the distillation term by T² (Hinton's scaling, which keeps its gradients of the
    /// same size as T changes).
    pub t2: bool,
    /// ε ∈ [0, 1] of the CE term.
    pub label_smoothing: f64,
    pub masks: Masks<'a>,
    pub reduction: Reduction,
}

impl Default for KdOptions<'_> {
    fn default() -> Self {
        KdOptions {
            temperature: 1.0,
            alpha: 0.5,
            t2: true,
            label_smoothing: 0.0,
            masks: Masks::default(),
            reduction: Reduction::None,
        }
    }
}

/// The distillation loss of every row of `student` against `teacher` and, if given, `target`
/// (without one the CE term is left out and the value is α·T²·KL). `out.grad` receives the gradient
/// w.r.t. the student, `out.grad_second` the one w.r.t. the teacher. A row labelled `ignore_index`
/// is ignored whole (both terms). Returns the reduced value.
pub fn kd_loss<E: Elem, T: Elem, V: Elem>(
    student: Rows<'_, E>,
    teacher: Rows<'_, E>,
    target: Option<Target<'_, T>>,
    opts: &KdOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (student.rows(), student.cols());
    check_same("the teacher logits", rows, cols, teacher.rows(), teacher.cols())?;
    match &target {
        Some(t) => validate_target(t, &opts.masks, rows, cols)?,
        None => check_masks(&opts.masks, rows, cols)?,
    }
    check_outputs(&out, rows, cols, true)?;
    check_temperature(opts.temperature)?;
    check_unit("alpha", opts.alpha)?;
    check_unit("label_smoothing", opts.label_smoothing)?;
    let (alpha, masks) = (opts.alpha, opts.masks);
    let inv_tau = 1.0 / opts.temperature;
    let kl_weight = alpha * if opts.t2 { opts.temperature * opts.temperature } else { 1.0 };
    let scale = opts.reduction.grad_scale(rows);
    let kl_params = RowParams { inv_tau, beta: 0.5, grad_scale: scale * inv_tau * kl_weight };
    let ce_params =
        CeParams { inv_tau: 1.0, eps: opts.label_smoothing, grad_scale: scale * (1.0 - alpha), add: alpha > 0.0 };
    let errors = FirstError::default();
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let label = match &target {
            Some(t) => match t.row(r) {
                Some(l) => Some(l),
                None => return ignored_row(&mut g),
            },
            None => None,
        };
        if !masks.row_kept(r) {
            return ignored_row(&mut g);
        }
        let mask = masks.class_row(r);
        let (s, t) = (student.row(r), teacher.row(r));
        with_f64_grads(&mut g, cols, |[mut gs, mut gt]| {
            let (mut value, mut counts) = (0.0, false);
            if alpha > 0.0 {
                let kl = softmax_row(PairKind::Kl, t, s, mask, &kl_params, [gt.as_deref_mut(), gs.as_deref_mut()]);
                value += kl_weight * kl.value;
                counts |= kl.counts;
            } else {
                fill_one(gt.as_deref_mut(), 0.0);
            }
            match label {
                Some(l) if alpha < 1.0 => match ce_row(s, l, mask, &ce_params, gs.as_deref_mut(), r) {
                    Ok(ce) => {
                        value += (1.0 - alpha) * ce.value;
                        counts |= ce.counts;
                    }
                    Err(e) => {
                        errors.report(r, e);
                        value = f64::NAN;
                    }
                },
                Some(RowTarget::Probs(p)) if p.iter().any(|y| !valid_probability(y.to_f64(), false)) => {
                    // α = 1 leaves the CE term out; its labels are checked all the same
                    errors.report(r, bad_probability(r, p, false));
                    value = f64::NAN;
                }
                _ if alpha == 0.0 => fill_one(gs.as_deref_mut(), 0.0),
                _ => {}
            }
            if !value.is_finite() {
                // a row that is NaN or +inf has NaN gradients for both inputs, whichever term made it so
                fill_one(gs, f64::NAN);
                fill_one(gt, f64::NAN);
            }
            RowValue { value, counts }
        })
    };
    let reduced = reduce_rows(opts.reduction, rows, cols, out.values, [out.grad, out.grad_second], kernel);
    errors.into_result(reduced)
}
