//! Divergences between two logit rows: the softmax family (`kl`, `sym_kl`, `js`) and the sigmoid
//! family (`sigmoid_kl`, `sigmoid_sym_kl`), with temperature, class mask, per-class weights
//! (sigmoid family), the four reductions and fused gradients with respect to both inputs.
//!
//! Conventions (MATH.md, "−inf, masks and bad values"):
//! - a class that is masked out, or −inf in both rows, contributes exactly 0 to value and gradients;
//! - −inf in one row only gives +inf where the mathematics does (KL with p_i > 0 = q_i);
//! - a row whose value is +inf, or that holds NaN or +inf, gets NaN gradients;
//! - a finite logit whose scaled value |x/τ| exceeds [`MAX_SCALED_LOGIT`] (1e300; overflow to ±inf
//!   included) is out of the kernels' domain: its row is NaN, as for a NaN logit;
//! - a row with no class present gives 0 and does not count for `Reduction::Mean`; a softmax row
//!   where one side has every present class at −inf has no distribution and gives NaN.

mod params;
pub(crate) mod row;
pub(crate) mod sigmoid;
mod sigmoid_simd;
pub(crate) mod softmax;
mod softmax_onepass;
pub(crate) mod softmax_simd;
mod softmax_split;
mod softmax_sweep;

use crate::check::{check_non_negative, check_same, check_softcap, check_temperature, check_unit};
use crate::element::Elem;
use crate::error::{bad_argument, bad_shape, Error};
use crate::parallel::{reduce_rows, SPLIT_COLS};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::{Rows, RowsMut};

pub use crate::math::MAX_SCALED_LOGIT;
pub use params::PairKind;
pub(crate) use params::RowParams;
use row::{sigmoid_row, sigmoid_row_in_pieces, softmax_row};

/// Options of a divergence call.
#[derive(Debug, Clone, Copy)]
pub struct PairOptions<'a> {
    /// τ > 0: both logit rows are divided by it.
    pub temperature: f64,
    /// β ∈ [0, 1] of `Js` (ignored otherwise).
    pub beta: f64,
    /// Classes to keep (non-zero) or exclude (0), one per class; stride 0 repeats one row.
    pub mask: Option<Rows<'a, u8>>,
    /// Per-class weights ≥ 0 of the sigmoid family; stride 0 repeats one row.
    pub weights: Option<Rows<'a, f64>>,
    pub reduction: Reduction,
    /// Logit soft-capping c > 0 of the softmax divergences: every finite logit of both rows becomes
    /// c · tanh(x / c) before the temperature, with exact gradients through the cap. `None`: no cap.
    pub softcap: Option<f64>,
}

impl Default for PairOptions<'_> {
    fn default() -> Self {
        PairOptions { temperature: 1.0, beta: 0.5, mask: None, weights: None, reduction: Reduction::None, softcap: None }
    }
}

/// Where results go; `None` means "don't compute it". `values` receives one value per row.
#[derive(Debug, Default)]
pub struct PairOutputs<'a, E, V> {
    pub values: Option<&'a mut [V]>,
    pub grad_s: Option<RowsMut<'a, E>>,
    pub grad_t: Option<RowsMut<'a, E>>,
}

fn validate<E, V>(kind: PairKind, s: &Rows<'_, E>, t: &Rows<'_, E>, opts: &PairOptions<'_>, out: &PairOutputs<'_, E, V>) -> Result<(), Error> {
    let (rows, cols) = (s.rows(), s.cols());
    if (t.rows(), t.cols()) != (rows, cols) {
        return Err(bad_shape(format!(
            "the two logit arrays differ in shape: ({rows}, {cols}) and ({}, {})",
            t.rows(),
            t.cols()
        )));
    }
    check_temperature(opts.temperature)?;
    if kind == PairKind::Js {
        check_unit("beta", opts.beta)?;
    }
    if let Some(m) = &opts.mask {
        check_same("the mask", rows, cols, m.rows(), m.cols())?;
    }
    if opts.softcap.is_some() && kind.is_sigmoid() {
        return Err(bad_argument("softcap applies to the softmax divergences (kl, sym_kl, js, tv) only"));
    }
    check_softcap(opts.softcap)?;
    if let Some(w) = &opts.weights {
        if !kind.is_sigmoid() {
            return Err(bad_argument("per-class weights apply to the sigmoid divergences only"));
        }
        check_non_negative("weights", w, rows, cols)?;
    }
    if let Some(v) = &out.values {
        if v.len() != rows {
            return Err(bad_shape(format!("the value output holds {} values; expected {rows}, one per row", v.len())));
        }
    }
    for (name, g) in [("grad_s", &out.grad_s), ("grad_t", &out.grad_t)] {
        if let Some(g) = g {
            check_same(name, rows, cols, g.rows(), g.cols())?;
        }
    }
    Ok(())
}

/// Computes a divergence for every row of `s` and `t`, writing what `out` asks for, and returns
/// the reduced value (for `Reduction::None`, the sum of the row values).
pub fn pair_divergence<E: Elem, V: Elem>(
    kind: PairKind,
    s: Rows<'_, E>,
    t: Rows<'_, E>,
    opts: &PairOptions<'_>,
    out: PairOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    validate(kind, &s, &t, opts, &out)?;
    let rows = s.rows();
    let inv_tau = 1.0 / opts.temperature;
    let params = RowParams { inv_tau, beta: opts.beta, grad_scale: opts.reduction.grad_scale(rows) * inv_tau };
    let (mask, weights, cap) = (opts.mask, opts.weights, opts.softcap);
    let row_kernel = |r: usize, g: GradRows<'_, E>| {
        let m = mask.as_ref().map(|m| m.row(r));
        if kind.is_sigmoid() {
            let w = weights.as_ref().map(|w| w.row(r));
            if s.cols() >= SPLIT_COLS {
                return sigmoid_row_in_pieces(kind, s.row(r), t.row(r), m, w, &params, g);
            }
            sigmoid_row(kind, s.row(r), t.row(r), m, w, &params, g)
        } else if let Some(c) = cap {
            softmax::capped_row(kind, s.row(r), t.row(r), m, c, &params, g)
        } else {
            softmax_row(kind, s.row(r), t.row(r), m, &params, g)
        }
    };
    Ok(reduce_rows(opts.reduction, rows, s.cols(), out.values, [out.grad_s, out.grad_t], row_kernel))
}

#[cfg(test)]
mod tests;
