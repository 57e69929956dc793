//! The argument rules of the core, in one place: shapes against the logits, masks, outputs,
//! per-class options, and the ranges of the options (temperature, soft cap, [0, 1] shares, the
//! thread count). Each returns the core's typed [`Error`] naming the expected and the actual
//! values; the kernels' entry points (divergence/mod.rs, loss/*.rs, parallel.rs) call them, and
//! the façades (the C ABI, the PyO3 extension) only translate the errors.

use crate::error::{bad_argument, bad_shape, Error};
use crate::loss::outputs::{LossOutputs, Masks};
use crate::rows::Rows;

/// The most worker threads a pool may have.
pub const MAX_THREADS: usize = 4096;

pub(crate) fn check_same(what: &str, rows: usize, cols: usize, r: usize, c: usize) -> Result<(), Error> {
    if (r, c) != (rows, cols) {
        return Err(bad_shape(format!("{what} has shape ({r}, {c}); expected ({rows}, {cols}) like the logits")));
    }
    Ok(())
}

pub(crate) fn check_masks(masks: &Masks<'_>, rows: usize, cols: usize) -> Result<(), Error> {
    if let Some(m) = &masks.classes {
        check_same("the class mask", rows, cols, m.rows(), m.cols())?;
    }
    if let Some(m) = masks.rows {
        if m.len() != rows {
            return Err(bad_shape(format!("the row mask holds {} values; expected {rows}, one per row", m.len())));
        }
    }
    Ok(())
}

pub(crate) fn check_outputs<E, V>(
    out: &LossOutputs<'_, E, V>,
    rows: usize,
    cols: usize,
    second: bool,
) -> Result<(), Error> {
    if let Some(v) = &out.values {
        if v.len() != rows {
            return Err(bad_shape(format!("the value output holds {} values; expected {rows}, one per row", v.len())));
        }
    }
    if let Some(g) = &out.grad {
        check_same("the gradient output", rows, cols, g.rows(), g.cols())?;
    }
    if let Some(g) = &out.grad_second {
        if !second {
            return Err(bad_argument("this loss has one logit input: there is no second gradient"));
        }
        check_same("the second gradient output", rows, cols, g.rows(), g.cols())?;
    }
    Ok(())
}

/// Checks that a per-class option (weights, pos_weight) is finite and ≥ 0 everywhere it is read.
pub(crate) fn check_non_negative(what: &str, w: &Rows<'_, f64>, rows: usize, cols: usize) -> Result<(), Error> {
    check_same(what, rows, cols, w.rows(), w.cols())?;
    let distinct_rows = if w.stride() == 0 { rows.min(1) } else { rows };
    for r in 0..distinct_rows {
        if let Some((i, x)) = w.row(r).iter().enumerate().find(|(_, x)| !(x.is_finite() && **x >= 0.0)) {
            return Err(bad_argument(format!("{what} must be finite and ≥ 0; got {x} at row {r}, class {i}")));
        }
    }
    Ok(())
}

/// τ must be finite and > 0, and 1/τ finite: the kernels multiply by 1/τ, and a subnormal τ
/// (below 1/f64::MAX ≈ 5.6e-309) would make it +inf and every logit NaN or ±inf.
pub(crate) fn check_temperature(t: f64) -> Result<(), Error> {
    if !(t.is_finite() && t > 0.0) {
        return Err(bad_argument(format!("temperature must be finite and > 0; got {t}")));
    }
    if !(1.0 / t).is_finite() {
        return Err(bad_argument(format!(
            "temperature must be at least 1/f64::MAX ≈ 5.6e-309 (its reciprocal must be finite); got {t:e}"
        )));
    }
    Ok(())
}

/// A soft cap c must be finite and > 0 (`None`: no cap).
pub(crate) fn check_softcap(c: Option<f64>) -> Result<(), Error> {
    match c {
        Some(c) if !(c.is_finite() && c > 0.0) => Err(bad_argument(format!("softcap must be finite and > 0; got {c}"))),
        _ => Ok(()),
    }
}

pub(crate) fn check_unit(what: &str, x: f64) -> Result<(), Error> {
    if !(0.0..=1.0).contains(&x) {
        return Err(bad_argument(format!("{what} must lie in [0, 1]; got {x}")));
    }
    Ok(())
}

/// A thread count (after 0 has been resolved to the default) must be at most [`MAX_THREADS`].
pub(crate) fn check_threads(threads: usize) -> Result<(), Error> {
    if threads > MAX_THREADS {
        return Err(bad_argument(format!("number of threads must be at most {MAX_THREADS}; got {threads}")));
    }
    Ok(())
}
