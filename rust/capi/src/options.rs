//! The options struct shared by every entry point, and its validation: integer fields standing for
//! enums or flags are checked against their allowed values (C may store any integer there), and an
//! option the called function does not read must hold its default, so a setting is never silently
//! ignored (as a Python keyword a function does not take is an error).

use logitdiv_core::{GpReduction, Reduction};

use crate::status::{ld_status, Fail};

/// How per-row values are combined.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ld_reduction {
    /// One value per row (written to `values`); `result` receives their sum.
    LD_REDUCTION_NONE = 0,
    LD_REDUCTION_SUM = 1,
    /// Mean over the rows that count (at least one class present, label not ignored, row not masked).
    LD_REDUCTION_MEAN = 2,
    /// Sum divided by the number of rows.
    LD_REDUCTION_BATCHMEAN = 3,
    /// `ld_globalpointer_ce_*` only: the sum over heads averaged over the batch (sum / B), GPLinker's
    /// `globalpointer_crossentropy`.
    LD_REDUCTION_SUM_HEADS_MEAN_BATCH = 4,
}

/// The two R-Drop losses (`options.kind` of `ld_rdrop_loss_*`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ld_rdrop_kind {
    /// Softmax CE (class indices or probabilities) and the softmax symmetric KL.
    LD_RDROP_SOFTMAX = 0,
    /// Multilabel CE (dense labels in [0, 1]) and the sigmoid symmetric KL.
    LD_RDROP_SIGMOID = 1,
}

/// How a row of positives of `ld_globalpointer_ce_*` names its spans (its `positives_layout`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ld_positives {
    /// `npos` flat indices start·L + end per row, in [0, L·L) or equal to `options.pad`.
    LD_POSITIVES_FLAT = 0,
    /// `npos` (start, end) pairs per row (2·npos numbers), positions in [0, L); a pair with both
    /// entries equal to `options.pad` is padding.
    LD_POSITIVES_SPANS = 1,
}

const GP_ONLY: &str = "LD_REDUCTION_SUM_HEADS_MEAN_BATCH (4) applies to ld_globalpointer_ce only";

/// The core reduction for a value read from C, which may hold any integer.
pub(crate) fn reduction(value: u32) -> Result<Reduction, Fail> {
    Ok(match value {
        0 => Reduction::None,
        1 => Reduction::Sum,
        2 => Reduction::Mean,
        3 => Reduction::BatchMean,
        4 => return Err(Fail::new(ld_status::LD_BAD_ARGUMENT, format!("options.reduction: {GP_ONLY}; got 4"))),
        other => {
            return Err(Fail::new(
                ld_status::LD_BAD_ARGUMENT,
                format!("options.reduction must be an ld_reduction (0 to 3); got {other}"),
            ))
        }
    })
}

/// The GlobalPointer reduction for a value read from C: one of the row reductions, or 4.
pub(crate) fn gp_reduction(value: u32) -> Result<GpReduction, Fail> {
    match value {
        4 => Ok(GpReduction::SumHeadsMeanBatch),
        0..=3 => reduction(value).map(GpReduction::Rows),
        other => Err(Fail::new(
            ld_status::LD_BAD_ARGUMENT,
            format!("options.reduction must be an ld_reduction (0 to 4 for ld_globalpointer_ce); got {other}"),
        )),
    }
}

/// A 0/1 flag read from C, which may hold any integer.
pub(crate) fn flag(what: &str, value: u32) -> Result<bool, Fail> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Fail::new(ld_status::LD_BAD_ARGUMENT, format!("{what} must be 0 or 1; got {other}"))),
    }
}

/// The R-Drop kind read from C.
pub(crate) fn rdrop_kind(value: u32) -> Result<logitdiv_core::RdropKind, Fail> {
    match value {
        0 => Ok(logitdiv_core::RdropKind::Softmax),
        1 => Ok(logitdiv_core::RdropKind::Sigmoid),
        other => Err(Fail::new(
            ld_status::LD_BAD_ARGUMENT,
            format!("options.kind must be an ld_rdrop_kind (0: LD_RDROP_SOFTMAX, 1: LD_RDROP_SIGMOID); got {other}"),
        )),
    }
}

/// Whether positives come as (start, end) pairs, read from C.
pub(crate) fn positives_layout(value: u32) -> Result<bool, Fail> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Fail::new(
            ld_status::LD_BAD_ARGUMENT,
            format!(
                "positives_layout must be an ld_positives (0: LD_POSITIVES_FLAT, 1: LD_POSITIVES_SPANS); got {other}"
            ),
        )),
    }
}

/// Options of a call. Initialise with `ld_options_default()` and change what you need; a NULL
/// options pointer means the defaults. Each function's comment lists the options it reads; every
/// other option must keep its default value (NULL for a pointer), or the call fails with
/// LD_BAD_ARGUMENT naming it, so a setting is never silently ignored.
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
    /// (0 repeats one row for every row). NULL: every class. A masked class is absent, exactly as a
    /// −inf logit.
    pub mask: *const u8,
    pub mask_stride: usize,
    /// Optional per-class weights ≥ 0 (the sigmoid divergences, `ld_bce_*`), laid out like `mask`.
    pub weights: *const f64,
    pub weights_stride: usize,
    /// Optional row mask of the losses: `rows` bytes, 0 = ignore the row (value 0, zero gradient,
    /// not counted by LD_REDUCTION_MEAN). NULL: every row.
    pub row_mask: *const u8,
    /// Optional pos_weight ≥ 0 of `ld_bce_*` (weights the positive part, as PyTorch's), laid out
    /// like `mask`: stride 0 gives one per-class vector for every row.
    pub pos_weight: *const f64,
    pub pos_weight_stride: usize,
    /// ε ∈ [0, 1]: the softmax CE target becomes (1−ε)·y + ε/C. Default 0.
    pub label_smoothing: f64,
    /// Rows whose class label equals it are ignored. Default −100.
    pub ignore_index: i64,
    /// γ ∈ [0, 1) of `ld_gamma_ce_*`. Default 0 (the softmax CE).
    pub gamma: f64,
    /// b ∈ [0, 1] of the thresholded `ld_gamma_ce_*`; NaN (the default) means no threshold.
    pub threshold: f64,
    /// α of `ld_kd_loss_*` (∈ [0, 1], the weight of the distillation term) and `ld_rdrop_loss_*`
    /// (≥ 0, the weight of the symmetric KL, times ½). Default NaN: unset; those functions require it.
    pub alpha: f64,
    /// 1: multiply the distillation term of `ld_kd_loss_*` by T²; 0: don't. Default 1.
    pub t2: u32,
    /// One of `ld_rdrop_kind` (an integer, checked). Default LD_RDROP_SOFTMAX.
    pub kind: u32,
    /// The padding value among positives (`ld_sparse_multilabel_ce_*`, `ld_globalpointer_ce_*`). Default −1.
    pub pad: i64,
    /// Optional per-class weights w_c ≥ 0 of `ld_softmax_ce_*`: `cols` doubles, one per class
    /// (PyTorch's `weight`). The row value becomes −Σ_c w_c t_c log p_c and, with class labels,
    /// LD_REDUCTION_MEAN divides by Σ w_y over the rows not ignored. NULL: no weights.
    pub class_weight: *const f64,
    /// The z-loss scale z ≥ 0 of `ld_softmax_ce_*` (Liger-Kernel's `lse_square_scale`): z · lse² of
    /// the logits the softmax sees is added to every row that counts (divided by those rows, not by
    /// the weights, under LD_REDUCTION_MEAN). Default 0: no z-loss.
    pub z_loss: f64,
    /// Logit soft-capping c > 0 (`ld_softmax_ce_*` and the softmax divergences `ld_kl_*`,
    /// `ld_sym_kl_*`, `ld_js_*`, `ld_tv_*`): every finite logit becomes c · tanh(x / c) before the
    /// temperature, gradients through the cap. Default 0: no cap (negative, NaN or infinite values
    /// are errors).
    pub softcap: f64,
}

/// The default options: temperature 1, β ½, reduction NONE, no mask, no weights, no row mask, no
/// pos_weight, label_smoothing 0, ignore_index −100, γ 0, no threshold (NaN), α unset (NaN), t2 1,
/// kind LD_RDROP_SOFTMAX, pad −1, no class_weight, z_loss 0, softcap 0 (no cap).
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
        row_mask: std::ptr::null(),
        pos_weight: std::ptr::null(),
        pos_weight_stride: 0,
        label_smoothing: 0.0,
        ignore_index: -100,
        gamma: 0.0,
        threshold: f64::NAN,
        alpha: f64::NAN,
        t2: 1,
        kind: ld_rdrop_kind::LD_RDROP_SOFTMAX as u32,
        pad: -1,
        class_weight: std::ptr::null(),
        z_loss: 0.0,
        softcap: 0.0,
    }
}

/// The soft cap of the options: 0 means none; any other value goes to the core, which checks it.
pub(crate) fn softcap(o: &ld_options) -> Option<f64> {
    (o.softcap != 0.0).then_some(o.softcap)
}

/// The options a function reads (bit flags); `reduction` is read by every function.
pub(crate) mod reads {
    pub(crate) const TEMPERATURE: u32 = 1 << 0;
    pub(crate) const BETA: u32 = 1 << 1;
    pub(crate) const MASK: u32 = 1 << 2;
    pub(crate) const ROW_MASK: u32 = 1 << 3;
    pub(crate) const WEIGHTS: u32 = 1 << 4;
    pub(crate) const POS_WEIGHT: u32 = 1 << 5;
    pub(crate) const LABEL_SMOOTHING: u32 = 1 << 6;
    pub(crate) const IGNORE_INDEX: u32 = 1 << 7;
    pub(crate) const GAMMA: u32 = 1 << 8;
    pub(crate) const THRESHOLD: u32 = 1 << 9;
    pub(crate) const ALPHA: u32 = 1 << 10;
    pub(crate) const T2: u32 = 1 << 11;
    pub(crate) const KIND: u32 = 1 << 12;
    pub(crate) const PAD: u32 = 1 << 13;
    pub(crate) const CLASS_WEIGHT: u32 = 1 << 14;
    pub(crate) const Z_LOSS: u32 = 1 << 15;
    pub(crate) const SOFTCAP: u32 = 1 << 16;
}

/// The name of an entry point, `ld_<base>_<elem>`, formatted only for a message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name(pub &'static str, pub &'static str);

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ld_{}_{}", self.0, self.1)
    }
}

/// Reads the options of a call (NULL: the defaults) and checks that every option `function` does
/// not read (`reads`, bits of [`reads`]) holds its default.
///
/// # Safety
/// A non-NULL `ptr` must point to a readable `ld_options`.
pub(crate) unsafe fn read(ptr: *const ld_options, function: Name, reads: u32) -> Result<ld_options, Fail> {
    let o = if ptr.is_null() {
        ld_options_default()
    } else if !ptr.is_aligned() {
        return Err(Fail::new(
            ld_status::LD_MISALIGNED,
            format!("options is not aligned to {} bytes", std::mem::align_of::<ld_options>()),
        ));
    } else {
        // SAFETY: non-NULL and aligned (checked), readable (the caller's contract); every field is
        // valid for any bit pattern (floats, integers, raw pointers).
        unsafe { *ptr }
    };
    let d = ld_options_default();
    use reads::*;
    // (bit, name, holds its default, value, default)
    let scalars: [(u32, &str, bool, &dyn std::fmt::Display, &str); 12] = [
        (TEMPERATURE, "temperature", o.temperature == d.temperature, &o.temperature, "1"),
        (BETA, "beta", o.beta == d.beta, &o.beta, "0.5"),
        (LABEL_SMOOTHING, "label_smoothing", o.label_smoothing == 0.0, &o.label_smoothing, "0"),
        (IGNORE_INDEX, "ignore_index", o.ignore_index == d.ignore_index, &o.ignore_index, "-100"),
        (GAMMA, "gamma", o.gamma == 0.0, &o.gamma, "0"),
        (THRESHOLD, "threshold", o.threshold.is_nan(), &o.threshold, "NaN: no threshold"),
        (ALPHA, "alpha", o.alpha.is_nan(), &o.alpha, "NaN: unset"),
        (T2, "t2", o.t2 == d.t2, &o.t2, "1"),
        (KIND, "kind", o.kind == d.kind, &o.kind, "0, LD_RDROP_SOFTMAX"),
        (PAD, "pad", o.pad == d.pad, &o.pad, "-1"),
        // `== 0.0` is false for NaN, so a NaN is reported, not taken for the default
        (Z_LOSS, "z_loss", o.z_loss == 0.0, &o.z_loss, "0"),
        (SOFTCAP, "softcap", o.softcap == 0.0, &o.softcap, "0: no cap"),
    ];
    for (bit, name, is_default, value, default) in scalars {
        if reads & bit == 0 && !is_default {
            return Err(Fail::new(
                ld_status::LD_BAD_ARGUMENT,
                format!("options.{name} is not read by {function}: leave it at its default ({default}); got {value}"),
            ));
        }
    }
    let pointers = [
        (MASK, "mask", o.mask.is_null()),
        (ROW_MASK, "row_mask", o.row_mask.is_null()),
        (WEIGHTS, "weights", o.weights.is_null()),
        (POS_WEIGHT, "pos_weight", o.pos_weight.is_null()),
        (CLASS_WEIGHT, "class_weight", o.class_weight.is_null()),
    ];
    for (bit, name, is_null) in pointers {
        if reads & bit == 0 && !is_null {
            return Err(Fail::new(
                ld_status::LD_BAD_ARGUMENT,
                format!("options.{name} is not read by {function}: leave it NULL; got a pointer"),
            ));
        }
    }
    Ok(o)
}
