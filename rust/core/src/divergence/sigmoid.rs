//! The sigmoid family row kernel: every class is an independent Bernoulli pair, so value and
//! gradients come from one sweep.

use super::params::{PairKind, RowParams};
use crate::element::Elem;
use crate::math::{kl_term, log_sigmoid_ratio_d, out_of_domain, sigmoid, sigmoid_diff_d};
use crate::parallel::RowValue;
use crate::rows::{GradRows, fill};

/// σ'(x) · y, taken as 0 where σ'(x) is 0 (x = ±inf) whatever y is.
#[inline]
fn dsigmoid_times(x: f64, y: f64) -> f64 {
    let d = sigmoid(x) * sigmoid(-x);
    if d == 0.0 {
        0.0
    } else {
        d * y
    }
}

/// The f64 reference kernel (the SIMD path's oracle; `divergence::row::sigmoid_row` tries the SIMD
/// path first). Gradients are written as `G`: the input type, or f64 where a loss adds further terms to them.
pub(crate) fn row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    weights: Option<&[f64]>,
    prm: &RowParams,
    mut grads: GradRows<'_, G>,
) -> RowValue {
    let mut value = 0.0;
    let mut n_present = 0usize;
    let mut bad = false;
    for i in 0..s.len() {
        let weight = weights.map_or(1.0, |w| w[i]);
        let (x, y) = (s[i].to_f64(), t[i].to_f64());
        let (a, b) = (x * prm.inv_tau, y * prm.inv_tau);
        let excluded = mask.is_some_and(|m| m[i] == 0) || weight == 0.0;
        let (term, ds, dt) = if excluded {
            (0.0, 0.0, 0.0)
        } else if out_of_domain(x, a) || out_of_domain(y, b) {
            bad = true;
            (0.0, 0.0, 0.0)
        } else if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
            (0.0, 0.0, 0.0)
        } else {
            n_present += 1;
            // (s − t)/τ rather than s/τ − t/τ: no rounding error of the scaled logits, which
            // would dominate the difference on nearly identical rows
            let d = (x - y) * prm.inv_tau;
            match kind {
                PairKind::SigmoidKl => {
                    // the two-class KL of [a, 0] against [b, 0], each part non-negative
                    let on = kl_term(sigmoid(a), sigmoid(b), log_sigmoid_ratio_d(a, b, d));
                    let off = kl_term(sigmoid(-a), sigmoid(-b), log_sigmoid_ratio_d(-a, -b, -d));
                    (on + off, dsigmoid_times(a, d), sigmoid_diff_d(b, a, -d))
                }
                PairKind::SigmoidSymKl => {
                    let diff = sigmoid_diff_d(a, b, d);
                    // −inf in one row only is +inf, even where the other σ underflowed (∞ · 0)
                    let term = if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY { f64::INFINITY } else { d * diff };
                    (term, dsigmoid_times(a, d) + diff, dsigmoid_times(b, -d) - diff)
                }
                _ => unreachable!("softmax kinds use their own kernel"),
            }
        };
        value += weight * term;
        // scale · (weight · d), not (scale · weight) · d: a large weight times 1/τ may overflow,
        // and ∞ · 0 would turn a zero gradient into NaN
        let [gs, gt] = &mut grads;
        if let Some(gs) = gs.as_deref_mut() {
            gs[i] = G::from_f64(prm.grad_scale * (weight * ds));
        }
        if let Some(gt) = gt.as_deref_mut() {
            gt[i] = G::from_f64(prm.grad_scale * (weight * dt));
        }
    }
    if bad {
        fill(&mut grads, f64::NAN);
        return RowValue { value: f64::NAN, counts: true };
    }
    if !value.is_finite() {
        fill(&mut grads, f64::NAN);
    }
    RowValue { value, counts: n_present > 0 }
}
