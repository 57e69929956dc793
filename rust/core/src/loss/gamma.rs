//! The γ-cross-entropy of kexue.fm/archives/9526: −log(γ + (1−γ) p_y)/(1−γ), γ ∈ [0, 1), which
//! is the softmax CE at γ = 0 and tends to −p_y as γ → 1; gradient r · (p − onehot(y)) with
//! r = p_y/(γ + (1−γ) p_y). With a threshold b the loss is the surrogate −max(b, r) · log p_y with
//! max(b, r) held constant, whose gradient is max(b, r) · (p − onehot(y)).
//!
//! The value is log1p(−(1−γ)(1−p_y)) when p_y > ½ (1 − p_y from [`super::online::MaxRest`], free of
//! cancellation) and logaddexp(log γ, log(1−γ) + log p_y) otherwise.

use super::labels::Target;
use super::softmax_ce::{grad_sweep, ignored_row, stats, validate_target};
use crate::check::check_outputs;
use super::outputs::{fill_one, LossOutputs, Masks};
use crate::element::Elem;
use crate::error::{bad_argument, Error};
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::Rows;

/// Options of [`gamma_ce`].
#[derive(Debug, Clone, Copy)]
pub struct GammaOptions<'a> {
    /// γ ∈ [0, 1).
    pub gamma: f64,
    /// b ∈ [0, 1]: the thresholded-gradient surrogate (None: the γ-CE itself).
    pub threshold: Option<f64>,
    pub ignore_index: i64,
    pub masks: Masks<'a>,
    pub reduction: Reduction,
}

impl Default for GammaOptions<'_> {
    fn default() -> Self {
        GammaOptions {
            gamma: 0.0,
            threshold: None,
            ignore_index: -100,
            masks: Masks::default(),
            reduction: Reduction::None,
        }
    }
}

#[inline]
fn logaddexp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        m
    } else {
        m + (-(a - b).abs()).exp().ln_1p()
    }
}

/// γ-CE value and r for a row with −log p_y = `nll` and 1 − p_y = `q` (accurate when p_y > ½).
fn gamma_value(gamma: f64, nll: f64, q: f64, p_large: bool) -> (f64, f64) {
    if gamma == 0.0 {
        return (nll, 1.0);
    }
    let keep = 1.0 - gamma;
    let value = if p_large { -(-keep * q).ln_1p() / keep } else { -logaddexp(gamma.ln(), keep.ln() - nll) / keep };
    // log(γ + (1−γ) p_y) = −(1−γ)·value, so r = exp(log p_y + (1−γ)·value)
    let r = (keep * value - nll).exp().min(1.0);
    (value, r)
}

/// γ-cross-entropy of every row of `logits` against the class indices `labels`; returns the
/// reduced value (for `Reduction::None`, the sum of the row values).
pub fn gamma_ce<E: Elem, V: Elem>(
    logits: Rows<'_, E>,
    labels: &[i64],
    opts: &GammaOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (logits.rows(), logits.cols());
    let target: Target<'_, f64> = Target::Classes { labels, ignore_index: opts.ignore_index };
    validate_target(&target, &opts.masks, rows, cols)?;
    check_outputs(&out, rows, cols, false)?;
    if !(0.0..1.0).contains(&opts.gamma) {
        return Err(bad_argument(format!("gamma must lie in [0, 1); got {}", opts.gamma)));
    }
    if let Some(b) = opts.threshold {
        if !(0.0..=1.0).contains(&b) {
            return Err(bad_argument(format!("threshold must lie in [0, 1]; got {b}")));
        }
    }
    let (gamma, threshold, masks) = (opts.gamma, opts.threshold, opts.masks);
    let scale = opts.reduction.grad_scale(rows);
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let Some(t) = masks.row_kept(r).then(|| target.row(r)).flatten() else {
            return ignored_row(&mut g);
        };
        let (s, mask) = (logits.row(r), masks.class_row(r));
        let grad = g[0].as_deref_mut();
        let st = stats(s, t, mask, 1.0, r).expect("class labels are validated before the kernels run");
        if st.bad {
            fill_one(grad, f64::NAN);
            return RowValue { value: f64::NAN, counts: true };
        }
        if st.n == 0 {
            fill_one(grad, 0.0);
            return RowValue { value: 0.0, counts: false };
        }
        if st.unsupported {
            fill_one(grad, f64::NAN);
            return RowValue { value: f64::INFINITY, counts: true };
        }
        let nll = st.lse.nll(st.x_label);
        let p_large = st.x_label == st.lse.max && st.lse.rest < 1.0;
        let (value, r_factor) = gamma_value(gamma, nll, st.lse.one_minus_prob(st.x_label), p_large);
        let (value, factor) = match threshold {
            None => (value, r_factor),
            Some(b) => {
                let w = b.max(r_factor);
                (w * nll, w)
            }
        };
        if let Some(g) = grad {
            grad_sweep(s, t, mask, 1.0, &st, 0.0, scale * factor, false, g);
        }
        RowValue { value, counts: true }
    };
    Ok(reduce_rows(opts.reduction, rows, cols, out.values, [out.grad, None], kernel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_value_branches_agree() {
        for &gamma in &[0.1, 0.5, 0.9] {
            for &p in &[0.55f64, 0.7, 0.95] {
                let (a, ra) = gamma_value(gamma, -p.ln(), 1.0 - p, true);
                let (b, rb) = gamma_value(gamma, -p.ln(), 1.0 - p, false);
                assert!((a - b).abs() < 1e-14 * a.abs().max(1e-300), "γ={gamma} p={p}: {a} vs {b}");
                assert!((ra - rb).abs() < 1e-14);
                let expect = -(gamma + (1.0 - gamma) * p).ln() / (1.0 - gamma);
                assert!((a - expect).abs() < 1e-14);
                assert!((ra - p / (gamma + (1.0 - gamma) * p)).abs() < 1e-14);
            }
        }
    }
}
