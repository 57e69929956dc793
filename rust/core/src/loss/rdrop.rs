//! R-Drop (Liang et al. 2021): two forward passes s1, s2 of the same inputs under dropout,
//! CE(s1, y) + CE(s2, y) + α/2 · (KL(p1‖p2) + KL(p2‖p1)). The sigmoid kind (kexue.fm/archives/9039,
//! for GlobalPointer and multilabel heads) uses the multilabel CE and the sigmoid symmetric KL
//! Σ (σ(s1) − σ(s2))(s1 − s2). A softmax row against a class label (no smoothing, no class mask,
//! α > 0) runs as one sweep of both rows, the CE terms beside the symmetric KL's
//! (`softmax_onepass::rdrop_row`); otherwise, and for the rows that sweep declines, the symmetric KL
//! is the divergence module's row kernel and the CE kernels add their gradients to its in f64 (the
//! sum is rounded to the storage type once).

use super::labels::{RowTarget, Target};
use super::multilabel::multilabel_row;
use super::ce_params::CeParams;
use super::softmax_ce::{ce_row, ignored_row, validate_target};
use crate::check::{check_outputs, check_same, check_unit};
use super::outputs::{fill_one, with_f64_grads, FirstError, LossOutputs, Masks};
use crate::divergence::row::{sigmoid_row, softmax_row};
use crate::divergence::{softmax_simd, PairKind, RowParams};
use crate::element::Elem;
use crate::error::{bad_argument, Error};
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::Rows;

/// Which R-Drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdropKind {
    /// Softmax CE (class indices or probabilities) and the softmax symmetric KL.
    Softmax,
    /// Multilabel CE (dense labels in [0, 1]) and the sigmoid symmetric KL.
    Sigmoid,
}

impl RdropKind {
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name {
            "softmax" => Ok(RdropKind::Softmax),
            "sigmoid" => Ok(RdropKind::Sigmoid),
            other => Err(bad_argument(format!("kind must be 'softmax' or 'sigmoid'; got {other:?}"))),
        }
    }
}

/// Options of [`rdrop_loss`].
#[derive(Debug, Clone, Copy)]
pub struct RdropOptions<'a> {
    /// α ≥ 0: the weight of the symmetric KL (times ½).
    pub alpha: f64,
    pub kind: RdropKind,
    /// ε ∈ [0, 1] of the CE terms (softmax kind only).
    pub label_smoothing: f64,
    pub masks: Masks<'a>,
    pub reduction: Reduction,
}

impl Default for RdropOptions<'_> {
    fn default() -> Self {
        RdropOptions {
            alpha: 1.0,
            kind: RdropKind::Softmax,
            label_smoothing: 0.0,
            masks: Masks::default(),
            reduction: Reduction::None,
        }
    }
}

/// The R-Drop loss of every row of `s1`, `s2` against `target` (softmax kind: class indices or
/// probabilities; sigmoid kind: dense labels of the logits' shape). `out.grad` receives the gradient
/// w.r.t. s1, `out.grad_second` the one w.r.t. s2. A row labelled `ignore_index` is ignored whole.
/// Returns the reduced value.
pub fn rdrop_loss<E: Elem, T: Elem, V: Elem>(
    s1: Rows<'_, E>,
    s2: Rows<'_, E>,
    target: Target<'_, T>,
    opts: &RdropOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (s1.rows(), s1.cols());
    check_same("the second logits", rows, cols, s2.rows(), s2.cols())?;
    validate_target(&target, &opts.masks, rows, cols)?;
    check_outputs(&out, rows, cols, true)?;
    if !(opts.alpha.is_finite() && opts.alpha >= 0.0) {
        return Err(bad_argument(format!("alpha must be finite and ≥ 0; got {}", opts.alpha)));
    }
    check_unit("label_smoothing", opts.label_smoothing)?;
    if opts.kind == RdropKind::Sigmoid {
        if matches!(target, Target::Classes { .. }) {
            return Err(bad_argument(
                "the sigmoid kind takes dense labels in [0, 1] of the logits' shape, not class indices",
            ));
        }
        if opts.label_smoothing != 0.0 {
            return Err(bad_argument("label_smoothing applies to the softmax kind only"));
        }
    }
    let (alpha, kind, masks) = (opts.alpha, opts.kind, opts.masks);
    let scale = opts.reduction.grad_scale(rows);
    let half = alpha / 2.0;
    let kl_params = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: scale * half };
    let add = alpha > 0.0;
    // the rows R-Drop's one-sweep kernel is for (`softmax_simd::rdrop_row`), given a class label
    // and no class mask
    let one_sweep = kind == RdropKind::Softmax && add && opts.label_smoothing == 0.0;
    let ce_params = CeParams { inv_tau: 1.0, eps: opts.label_smoothing, grad_scale: scale, add };
    let errors = FirstError::default();
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let Some(label) = masks.row_kept(r).then(|| target.row(r)).flatten() else {
            return ignored_row(&mut g);
        };
        let mask = masks.class_row(r);
        let (a, b) = (s1.row(r), s2.row(r));
        if let (true, RowTarget::Class(y), None) = (one_sweep, label, mask) {
            // the two cross-entropies and the symmetric KL from one sweep of both rows
            if let Some(v) = softmax_simd::rdrop_row(a, b, y, half, &kl_params, &mut g) {
                return v;
            }
        }
        with_f64_grads(&mut g, cols, |[mut g1, mut g2]| {
            let (mut value, mut counts) = (0.0, false);
            if alpha > 0.0 {
                let grads = [g1.as_deref_mut(), g2.as_deref_mut()];
                let kl = match kind {
                    RdropKind::Softmax => softmax_row(PairKind::SymKl, a, b, mask, &kl_params, grads),
                    RdropKind::Sigmoid => sigmoid_row(PairKind::SigmoidSymKl, a, b, mask, None, &kl_params, grads),
                };
                value += half * kl.value;
                counts |= kl.counts;
            }
            for (s, grad) in [(a, g1.as_deref_mut()), (b, g2.as_deref_mut())] {
                let ce = match (kind, label) {
                    (RdropKind::Softmax, _) => ce_row(s, label, mask, &ce_params, grad, r),
                    (RdropKind::Sigmoid, RowTarget::Probs(y)) => multilabel_row(s, y, mask, scale, add, grad, r),
                    (RdropKind::Sigmoid, RowTarget::Class(_)) => unreachable!("rejected before the kernels run"),
                };
                match ce {
                    Ok(ce) => {
                        value += ce.value;
                        counts |= ce.counts;
                    }
                    Err(e) => {
                        errors.report(r, e);
                        return RowValue { value: f64::NAN, counts: true };
                    }
                }
            }
            if !value.is_finite() {
                // a row that is NaN or +inf has NaN gradients for both inputs, whichever term made
                // it so (with α = 0 a NaN in s1 would otherwise leave s2's CE gradient finite)
                fill_one(g1, f64::NAN);
                fill_one(g2, f64::NAN);
            }
            RowValue { value, counts }
        })
    };
    let reduced = reduce_rows(opts.reduction, rows, cols, out.values, [out.grad, out.grad_second], kernel);
    errors.into_result(reduced)
}
