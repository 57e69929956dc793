//! The options struct shared by every entry point.

use logitdiv_core::Reduction;

use crate::status::{ld_status, Fail};

/// How per-row values are combined.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ld_reduction {
    /// One value per row (written to `values`); `result` receives their sum.
    LD_REDUCTION_NONE = 0,
    LD_REDUCTION_SUM = 1,
    /// Mean over the rows that count (at least one class present, label not ignored).
    LD_REDUCTION_MEAN = 2,
    /// Sum divided by the number of rows.
    LD_REDUCTION_BATCHMEAN = 3,
}

/// The core reduction for a value read from C, which may hold any integer.
pub(crate) fn reduction(value: u32) -> Result<Reduction, Fail> {
    Ok(match value {
        0 => Reduction::None,
        1 => Reduction::Sum,
        2 => Reduction::Mean,
        3 => Reduction::BatchMean,
        other => {
            return Err(Fail::new(
                ld_status::LD_BAD_ARGUMENT,
                format!("options.reduction must be an ld_reduction (0 to 3); got {other}"),
            ))
        }
    })
}

/// Options of a call. Initialise with `ld_options_default()` and change what you need; a NULL
/// options pointer means the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ld_options {
    /// τ > 0; logits are divided by it first. Default 1.
    pub temperature: f64,
    /// β ∈ [0, 1] of the Jensen–Shannon divergence. Default 0.5.
    pub beta: f64,
    /// One of `ld_reduction` (held as an integer so any value C stores is checked, not trusted).
    pub reduction: u32,
    /// Optional class mask (non-zero = keep), `rows` rows of `cols` bytes `mask_stride` apart
    /// (0 repeats one row for every row). NULL: every class.
    pub mask: *const u8,
    pub mask_stride: usize,
    /// Optional per-class weights ≥ 0 of the sigmoid divergences, laid out like `mask`.
    pub weights: *const f64,
    pub weights_stride: usize,
}

/// The default options: temperature 1, β ½, reduction NONE, no mask, no weights.
#[no_mangle]
pub extern "C" fn ld_options_default() -> ld_options {
    ld_options {
        temperature: 1.0,
        beta: 0.5,
        reduction: ld_reduction::LD_REDUCTION_NONE as u32,
        mask: std::ptr::null(),
        mask_stride: 0,
        weights: std::ptr::null(),
        weights_stride: 0,
    }
}
