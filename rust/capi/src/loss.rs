//! The losses against labels, each in f32 and f64: `ld_softmax_ce` (and `ld_softmax_ce_ex` with the
//! z-term and accuracy outputs), `ld_bce`, `ld_multilabel_ce`,
//! `ld_sparse_multilabel_ce`, `ld_globalpointer_ce`, `ld_gamma_ce`, `ld_kd_loss`, `ld_rdrop_loss`.
//!
//! Arguments, in order: the logit matrices with their row strides (in elements, ≥ cols), `rows`,
//! `cols`, the labels (int64 class indices, one per row; probability matrices of the logits' type
//! with their row strides; int64 positives), options (NULL = defaults), then the outputs, each NULL
//! to skip it: `values` (one per row, the logits' type), `result` (the reduced value in double; the
//! sum of the row values for LD_REDUCTION_NONE), the gradients (contiguous rows × cols). Nothing
//! here computes: the core validates labels and options and does the mathematics.

use logitdiv_core::{
    BceOptions, CeExtraOutputs, Elem, GammaOptions, GlobalPointerOptions, KdOptions, LossOutputs, Masks, MultilabelOptions, Positives,
    RdropOptions, Reduced, SoftmaxCeOptions, SparseMultilabelOptions, Target,
};

use crate::options::{self, flag, gp_reduction, ld_options, positives_layout, rdrop_kind, reads, reduction, Name};
use crate::boundary::guard;
use crate::status::{ld_status, Fail};
use crate::views::{input, input_vec, need_classes, optional_input, output, output_scalar, output_vec, Repeat};

/// The class mask and row mask of the options.
///
/// # Safety
/// The pointer contracts of [`input`] for the non-NULL mask pointers of `o`.
unsafe fn masks<'a>(o: &ld_options, rows: usize, cols: usize) -> Result<Masks<'a>, Fail> {
    // SAFETY: the caller's contract.
    let classes = unsafe { optional_input("options.mask", o.mask, rows, cols, o.mask_stride)? };
    let rows_kept = if o.row_mask.is_null() {
        None
    } else {
        // SAFETY: the caller's contract.
        Some(unsafe { input_vec("options.row_mask", o.row_mask, rows)? })
    };
    Ok(Masks { classes, rows: rows_kept })
}

/// Class indices or probabilities: exactly one of `labels`, `probs` non-NULL, or (when not
/// `required`) neither, which gives None.
///
/// # Safety
/// The pointer contracts of [`input`] and [`input_vec`] for the non-NULL pointers.
#[allow(clippy::too_many_arguments)]
unsafe fn target<'a, T>(
    labels: *const i64,
    probs: *const T,
    probs_stride: usize,
    rows: usize,
    cols: usize,
    ignore_index: i64,
    required: bool,
) -> Result<Option<Target<'a, T>>, Fail> {
    match (labels.is_null(), probs.is_null()) {
        (false, false) => Err(Fail::new(
            ld_status::LD_BAD_ARGUMENT,
            "labels and target_probs are both given: pass class indices or probabilities, not both",
        )),
        // SAFETY: the caller's contract.
        (false, true) => Ok(Some(Target::Classes { labels: unsafe { input_vec("labels", labels, rows)? }, ignore_index })),
        // SAFETY: the caller's contract.
        (true, false) => Ok(Some(Target::Probs(unsafe {
            input("target_probs", probs, rows, cols, probs_stride, Repeat::Refused)?
        }))),
        (true, true) if required && rows > 0 => Err(Fail::new(
            ld_status::LD_NULL_POINTER,
            "labels and target_probs are both NULL: pass class indices or probabilities",
        )),
        (true, true) if required => Ok(Some(Target::Classes { labels: &[], ignore_index })),
        (true, true) => Ok(None),
    }
}

/// The core's view of a loss's outputs: `values` (one per row) and its gradients (rows × cols),
/// each with its name for errors; a NULL pointer is not asked for, `grad_second` is the second
/// input's gradient (the two-input losses only).
///
/// # Safety
/// The pointer contracts of [`output_vec`] and [`output`] for the non-NULL pointers.
unsafe fn loss_outputs<'a, T>(
    values: *mut T,
    rows: usize,
    cols: usize,
    grad: (&str, *mut T),
    grad_second: Option<(&str, *mut T)>,
) -> Result<LossOutputs<'a, T, T>, Fail> {
    // SAFETY: the caller's contract.
    unsafe {
        Ok(LossOutputs {
            values: output_vec("values", values, rows)?,
            grad: output(grad.0, grad.1, rows, cols)?,
            grad_second: match grad_second {
                Some((what, ptr)) => output(what, ptr, rows, cols)?,
                None => None,
            },
        })
    }
}

/// Writes the reduced value to the `result` output, if the caller gave one.
fn write_result(result: Option<&mut f64>, reduced: Reduced) {
    if let Some(r) = result {
        *r = reduced.value;
    }
}

/// The extra outputs of `ld_softmax_ce_ex_*`, each NULL to skip it.
struct CeExtraPtrs<T> {
    z_values: *mut T,
    z_result: *mut f64,
    correct: *mut T,
    accuracy: *mut f64,
}

impl<T> CeExtraPtrs<T> {
    const NONE: CeExtraPtrs<T> = CeExtraPtrs {
        z_values: std::ptr::null_mut(),
        z_result: std::ptr::null_mut(),
        correct: std::ptr::null_mut(),
        accuracy: std::ptr::null_mut(),
    };
}

/// # Safety
/// The pointer contracts of the entry points, forwarded.
#[allow(clippy::too_many_arguments)]
unsafe fn softmax_ce<T: Elem>(
    logits: *const T,
    logits_stride: usize,
    rows: usize,
    cols: usize,
    labels: *const i64,
    target_probs: *const T,
    target_stride: usize,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad: *mut T,
    extra: CeExtraPtrs<T>,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        let result = output_scalar("result", result)?; // checked before any work
        need_classes(cols)?;
        let read = reads::TEMPERATURE
            | reads::MASK
            | reads::ROW_MASK
            | reads::LABEL_SMOOTHING
            | reads::IGNORE_INDEX
            | reads::CLASS_WEIGHT
            | reads::Z_LOSS
            | reads::SOFTCAP;
        let o = options::read(options, Name("softmax_ce", T::NAME), read)?;
        let weight =
            if o.class_weight.is_null() { None } else { Some(input_vec("options.class_weight", o.class_weight, cols)?) };
        let opts = SoftmaxCeOptions {
            label_smoothing: o.label_smoothing,
            temperature: o.temperature,
            masks: masks(&o, rows, cols)?,
            reduction: reduction(o.reduction)?,
            weight,
            z_loss: o.z_loss,
            softcap: options::softcap(&o),
        };
        let logits = input("logits", logits, rows, cols, logits_stride, Repeat::Refused)?;
        let target = target(labels, target_probs, target_stride, rows, cols, o.ignore_index, true)?;
        let target = target.expect("a required target");
        let out = loss_outputs(values, rows, cols, ("grad", grad), None)?;
        let z_result = output_scalar("z_result", extra.z_result)?;
        let accuracy = output_scalar("accuracy", extra.accuracy)?;
        let ext = CeExtraOutputs {
            z_values: output_vec("z_values", extra.z_values, rows)?,
            correct: output_vec("correct", extra.correct, rows)?,
            accuracy: accuracy.is_some(),
        };
        let r = logitdiv_core::softmax_ce_ext::<T, T, T>(logits, target, &opts, out, ext)?;
        write_result(result, r.loss);
        if let Some(z) = z_result {
            *z = r.z_loss;
        }
        if let Some(a) = accuracy {
            *a = r.accuracy;
        }
        Ok(())
    })
}

/// # Safety
/// The pointer contracts of the entry points, forwarded.
#[allow(clippy::too_many_arguments)]
unsafe fn dense<T: Elem>(
    multilabel: bool,
    logits: *const T,
    logits_stride: usize,
    rows: usize,
    cols: usize,
    target: *const T,
    target_stride: usize,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad: *mut T,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        let result = output_scalar("result", result)?; // checked before any work
        need_classes(cols)?;
        let (base, extra) =
            if multilabel { ("multilabel_ce", 0) } else { ("bce", reads::WEIGHTS | reads::POS_WEIGHT) };
        let o = options::read(options, Name(base, T::NAME), reads::MASK | reads::ROW_MASK | extra)?;
        let reduction = reduction(o.reduction)?;
        let masks = masks(&o, rows, cols)?;
        let logits = input("logits", logits, rows, cols, logits_stride, Repeat::Refused)?;
        let target = input("target", target, rows, cols, target_stride, Repeat::Refused)?;
        let out = loss_outputs(values, rows, cols, ("grad", grad), None)?;
        let reduced = if multilabel {
            logitdiv_core::multilabel_ce::<T, T, T>(logits, target, &MultilabelOptions { masks, reduction }, out)?
        } else {
            let opts = BceOptions {
                pos_weight: optional_input("options.pos_weight", o.pos_weight, rows, cols, o.pos_weight_stride)?,
                weights: optional_input("options.weights", o.weights, rows, cols, o.weights_stride)?,
                masks,
                reduction,
            };
            logitdiv_core::bce::<T, T, T>(logits, target, &opts, out)?
        };
        write_result(result, reduced);
        Ok(())
    })
}

/// # Safety
/// The pointer contracts of the entry points, forwarded.
#[allow(clippy::too_many_arguments)]
unsafe fn sparse_multilabel_ce<T: Elem>(
    logits: *const T,
    logits_stride: usize,
    rows: usize,
    cols: usize,
    positives: *const i64,
    positives_stride: usize,
    npos: usize,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad: *mut T,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        let result = output_scalar("result", result)?; // checked before any work
        need_classes(cols)?;
        let read = reads::MASK | reads::ROW_MASK | reads::PAD;
        let o = options::read(options, Name("sparse_multilabel_ce", T::NAME), read)?;
        let opts = SparseMultilabelOptions { masks: masks(&o, rows, cols)?, reduction: reduction(o.reduction)? };
        let logits = input("logits", logits, rows, cols, logits_stride, Repeat::Refused)?;
        let indices = input("positives", positives, rows, npos, positives_stride, Repeat::Refused)?;
        let out = loss_outputs(values, rows, cols, ("grad", grad), None)?;
        let positives = Positives { indices, pad: o.pad };
        let reduced = logitdiv_core::sparse_multilabel_ce::<T, T>(logits, positives, &opts, out)?;
        write_result(result, reduced);
        Ok(())
    })
}

/// # Safety
/// The pointer contracts of the entry points, forwarded.
#[allow(clippy::too_many_arguments)]
unsafe fn globalpointer_ce<T: Elem>(
    logits: *const T,
    logits_stride: usize,
    batch: usize,
    heads: usize,
    len: usize,
    positives: *const i64,
    positives_stride: usize,
    npos: usize,
    layout: u32,
    token_mask: *const u8,
    token_mask_stride: usize,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad: *mut T,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        let result = output_scalar("result", result)?; // checked before any work
        let shape = |m: String| Fail::new(ld_status::LD_BAD_SHAPE, m);
        if heads == 0 {
            return Err(shape("heads must be at least 1; got 0".into()));
        }
        if len == 0 {
            return Err(shape("len (the sequence length L) must be at least 1; got 0".into()));
        }
        let rows = batch
            .checked_mul(heads)
            .ok_or_else(|| shape(format!("batch {batch} × heads {heads} overflows the address space")))?;
        let cols = len.checked_mul(len).ok_or_else(|| shape(format!("len {len} × len overflows the address space")))?;
        let spans = positives_layout(layout)?;
        let width = if spans {
            npos.checked_mul(2).ok_or_else(|| shape(format!("npos {npos} spans × 2 overflows the address space")))?
        } else {
            npos
        };
        let o = options::read(options, Name("globalpointer_ce", T::NAME), reads::PAD)?;
        let reduction = gp_reduction(o.reduction)?;
        let logits = input("logits", logits, rows, cols, logits_stride, Repeat::Refused)?;
        let indices = input("positives", positives, rows, width, positives_stride, Repeat::Refused)?;
        let token_mask = optional_input("token_mask", token_mask, batch, len, token_mask_stride)?;
        let out = loss_outputs(values, rows, cols, ("grad", grad), None)?;
        let opts = GlobalPointerOptions { heads, token_mask, spans, reduction };
        let reduced = logitdiv_core::globalpointer_ce::<T, T>(logits, Positives { indices, pad: o.pad }, &opts, out)?;
        write_result(result, reduced);
        Ok(())
    })
}

/// # Safety
/// The pointer contracts of the entry points, forwarded.
#[allow(clippy::too_many_arguments)]
unsafe fn gamma_ce<T: Elem>(
    logits: *const T,
    logits_stride: usize,
    rows: usize,
    cols: usize,
    labels: *const i64,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad: *mut T,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        let result = output_scalar("result", result)?; // checked before any work
        need_classes(cols)?;
        let read = reads::MASK | reads::ROW_MASK | reads::IGNORE_INDEX | reads::GAMMA | reads::THRESHOLD;
        let o = options::read(options, Name("gamma_ce", T::NAME), read)?;
        let opts = GammaOptions {
            gamma: o.gamma,
            threshold: (!o.threshold.is_nan()).then_some(o.threshold),
            ignore_index: o.ignore_index,
            masks: masks(&o, rows, cols)?,
            reduction: reduction(o.reduction)?,
        };
        let logits = input("logits", logits, rows, cols, logits_stride, Repeat::Refused)?;
        let labels = input_vec("labels", labels, rows)?;
        let out = loss_outputs(values, rows, cols, ("grad", grad), None)?;
        let reduced = logitdiv_core::gamma_ce::<T, T>(logits, labels, &opts, out)?;
        write_result(result, reduced);
        Ok(())
    })
}

fn alpha_set(o: &ld_options, function: Name, range: &str) -> Result<f64, Fail> {
    if o.alpha.is_nan() {
        return Err(Fail::new(
            ld_status::LD_BAD_ARGUMENT,
            format!("{function} needs options.alpha, {range}; got NaN (the default: unset)"),
        ));
    }
    Ok(o.alpha)
}

/// # Safety
/// The pointer contracts of the entry points, forwarded.
#[allow(clippy::too_many_arguments)]
unsafe fn kd_loss<T: Elem>(
    student: *const T,
    student_stride: usize,
    teacher: *const T,
    teacher_stride: usize,
    rows: usize,
    cols: usize,
    labels: *const i64,
    target_probs: *const T,
    target_stride: usize,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad_student: *mut T,
    grad_teacher: *mut T,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        let result = output_scalar("result", result)?; // checked before any work
        need_classes(cols)?;
        let name = Name("kd_loss", T::NAME);
        let read = reads::TEMPERATURE
            | reads::ALPHA
            | reads::T2
            | reads::LABEL_SMOOTHING
            | reads::IGNORE_INDEX
            | reads::MASK
            | reads::ROW_MASK;
        let o = options::read(options, name, read)?;
        let opts = KdOptions {
            temperature: o.temperature,
            alpha: alpha_set(&o, name, "α ∈ [0, 1]")?,
            t2: flag("options.t2", o.t2)?,
            label_smoothing: o.label_smoothing,
            masks: masks(&o, rows, cols)?,
            reduction: reduction(o.reduction)?,
        };
        let student = input("student", student, rows, cols, student_stride, Repeat::Refused)?;
        let teacher = input("teacher", teacher, rows, cols, teacher_stride, Repeat::Refused)?;
        let target = target(labels, target_probs, target_stride, rows, cols, o.ignore_index, false)?;
        let out = loss_outputs(values, rows, cols, ("grad_student", grad_student), Some(("grad_teacher", grad_teacher)))?;
        let reduced = logitdiv_core::kd_loss::<T, T, T>(student, teacher, target, &opts, out)?;
        write_result(result, reduced);
        Ok(())
    })
}

/// # Safety
/// The pointer contracts of the entry points, forwarded.
#[allow(clippy::too_many_arguments)]
unsafe fn rdrop_loss<T: Elem>(
    s1: *const T,
    s1_stride: usize,
    s2: *const T,
    s2_stride: usize,
    rows: usize,
    cols: usize,
    labels: *const i64,
    target_probs: *const T,
    target_stride: usize,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad_s1: *mut T,
    grad_s2: *mut T,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        let result = output_scalar("result", result)?; // checked before any work
        need_classes(cols)?;
        let name = Name("rdrop_loss", T::NAME);
        let read =
            reads::ALPHA | reads::KIND | reads::LABEL_SMOOTHING | reads::IGNORE_INDEX | reads::MASK | reads::ROW_MASK;
        let o = options::read(options, name, read)?;
        let opts = RdropOptions {
            alpha: alpha_set(&o, name, "α ≥ 0")?,
            kind: rdrop_kind(o.kind)?,
            label_smoothing: o.label_smoothing,
            masks: masks(&o, rows, cols)?,
            reduction: reduction(o.reduction)?,
        };
        let s1 = input("s1", s1, rows, cols, s1_stride, Repeat::Refused)?;
        let s2 = input("s2", s2, rows, cols, s2_stride, Repeat::Refused)?;
        let target = target(labels, target_probs, target_stride, rows, cols, o.ignore_index, true)?;
        let target = target.expect("a required target");
        let out = loss_outputs(values, rows, cols, ("grad_s1", grad_s1), Some(("grad_s2", grad_s2)))?;
        let reduced = logitdiv_core::rdrop_loss::<T, T, T>(s1, s2, target, &opts, out)?;
        write_result(result, reduced);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// The entry points, written out (cbindgen does not expand macros).

/// Softmax cross-entropy per row against class indices `labels` (one int64 per row, in [0, cols)
/// or equal to options.ignore_index) or probabilities `target_probs` (rows × cols of the logits'
/// type, row stride `target_stride`, each finite and ≥ 0): exactly one of the two non-NULL.
/// Value −Σ t_i log p_i with p = softmax(logits/τ), t = (1−ε)·y + ε/C; gradient (Σt·p − t)/τ.
/// With options.class_weight w: −Σ w_i t_i log p_i (PyTorch's `weight`; LD_REDUCTION_MEAN over
/// class labels divides by Σ w_y); options.z_loss z adds z · lse² per row; options.softcap c caps
/// every logit at c · tanh(x / c) first (see `ld_options`).
/// Reads options: temperature, label_smoothing, ignore_index, mask, row_mask, reduction,
/// class_weight, z_loss, softcap.
/// Returns LD_OK or the failure's status (details in ld_last_error_message()).
///
/// # Safety
/// Every non-NULL pointer must cover the elements its sizes and strides describe; outputs must not
/// overlap inputs or each other.
#[no_mangle]
pub unsafe extern "C" fn ld_softmax_ce_f32(logits: *const f32, logits_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f32, target_stride: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { softmax_ce(logits, logits_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad, CeExtraPtrs::NONE) }
}

/// Softmax cross-entropy, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_softmax_ce_f64(logits: *const f64, logits_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f64, target_stride: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { softmax_ce(logits, logits_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad, CeExtraPtrs::NONE) }
}

/// `ld_softmax_ce_f32` with its extra outputs, each NULL to skip it: `z_values` (one per row, the
/// logits' type) the z-term z · lse² of each row (0 for a row that does not count), `z_result`
/// the z-term as it enters the reduced loss (its sum; divided by the rows that count for
/// LD_REDUCTION_MEAN, by all rows for LD_REDUCTION_BATCHMEAN), `correct` (one per row) 1 where the
/// row's argmax — the first largest present logit — is its label (for probability targets, the
/// first largest target probability) and 0 otherwise or where the row does not count, `accuracy`
/// the share of correct rows among the rows that count (NaN when none counts).
/// Reads options as `ld_softmax_ce_f32`.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_softmax_ce_ex_f32(logits: *const f32, logits_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f32, target_stride: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad: *mut f32, z_values: *mut f32, z_result: *mut f64, correct: *mut f32, accuracy: *mut f64) -> ld_status {
    let extra = CeExtraPtrs { z_values, z_result, correct, accuracy };
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { softmax_ce(logits, logits_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad, extra) }
}

/// `ld_softmax_ce_ex_f32`, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_softmax_ce_ex_f64(logits: *const f64, logits_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f64, target_stride: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad: *mut f64, z_values: *mut f64, z_result: *mut f64, correct: *mut f64, accuracy: *mut f64) -> ld_status {
    let extra = CeExtraPtrs { z_values, z_result, correct, accuracy };
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { softmax_ce(logits, logits_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad, extra) }
}

/// Binary cross-entropy with logits summed over the classes of a row, against `target` (rows × cols
/// of the logits' type, values in [0, 1], row stride `target_stride`):
/// Σ_i w_i [pw_i y_i softplus(−x_i) + (1 − y_i) softplus(x_i)]; gradient
/// w_i [(1 − y_i) σ(x_i) − pw_i y_i σ(−x_i)].
/// Reads options: pos_weight (pw), weights (w), mask, row_mask, reduction.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_bce_f32(logits: *const f32, logits_stride: usize, rows: usize, cols: usize, target: *const f32, target_stride: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { dense(false, logits, logits_stride, rows, cols, target, target_stride, options, values, result, grad) }
}

/// Binary cross-entropy, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_bce_f64(logits: *const f64, logits_stride: usize, rows: usize, cols: usize, target: *const f64, target_stride: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { dense(false, logits, logits_stride, rows, cols, target, target_stride, options, values, result, grad) }
}

/// Su's multilabel softmax cross-entropy per row against dense labels `target` (rows × cols of the
/// logits' type, values in [0, 1]): log(1 + Σ (1−y_i) e^{x_i}) + log(1 + Σ y_i e^{−x_i}).
/// Reads options: mask, row_mask, reduction.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_multilabel_ce_f32(logits: *const f32, logits_stride: usize, rows: usize, cols: usize, target: *const f32, target_stride: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { dense(true, logits, logits_stride, rows, cols, target, target_stride, options, values, result, grad) }
}

/// Multilabel softmax cross-entropy, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_multilabel_ce_f64(logits: *const f64, logits_stride: usize, rows: usize, cols: usize, target: *const f64, target_stride: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { dense(true, logits, logits_stride, rows, cols, target, target_stride, options, values, result, grad) }
}

/// The multilabel softmax cross-entropy with positives given as class indices: `positives` holds
/// `rows` rows of `npos` int64 `positives_stride` apart (npos may be 0), each in [0, cols) or equal
/// to options.pad (padding); a class listed twice in a row is an error.
/// Reads options: pad, mask, row_mask, reduction.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sparse_multilabel_ce_f32(logits: *const f32, logits_stride: usize, rows: usize, cols: usize, positives: *const i64, positives_stride: usize, npos: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { sparse_multilabel_ce(logits, logits_stride, rows, cols, positives, positives_stride, npos, options, values, result, grad) }
}

/// Sparse multilabel softmax cross-entropy, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sparse_multilabel_ce_f64(logits: *const f64, logits_stride: usize, rows: usize, cols: usize, positives: *const i64, positives_stride: usize, npos: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { sparse_multilabel_ce(logits, logits_stride, rows, cols, positives, positives_stride, npos, options, values, result, grad) }
}

/// The GlobalPointer loss: logits shaped (batch, heads, len, len), given as batch·heads rows of
/// len·len span logits `logits_stride` apart; the sparse multilabel CE of each row over the spans
/// (i, j), i ≤ j, whose tokens are both kept by `token_mask` ((batch, len) bytes, non-zero = keep,
/// row stride `token_mask_stride`, 0 repeats one row; NULL keeps every token). `positives` holds
/// batch·heads rows `positives_stride` apart of `npos` positives, as `positives_layout` says
/// (an ld_positives: LD_POSITIVES_SPANS, 2·npos numbers (start, end); LD_POSITIVES_FLAT, npos
/// indices start·len + end); padding equals options.pad. `values` gets batch·heads values, `grad`
/// batch·heads·len·len (0 on masked spans). Reads options: pad, reduction (any ld_reduction,
/// LD_REDUCTION_SUM_HEADS_MEAN_BATCH included).
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_globalpointer_ce_f32(logits: *const f32, logits_stride: usize, batch: usize, heads: usize, len: usize, positives: *const i64, positives_stride: usize, npos: usize, positives_layout: u32, token_mask: *const u8, token_mask_stride: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { globalpointer_ce(logits, logits_stride, batch, heads, len, positives, positives_stride, npos, positives_layout, token_mask, token_mask_stride, options, values, result, grad) }
}

/// The GlobalPointer loss, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_globalpointer_ce_f64(logits: *const f64, logits_stride: usize, batch: usize, heads: usize, len: usize, positives: *const i64, positives_stride: usize, npos: usize, positives_layout: u32, token_mask: *const u8, token_mask_stride: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { globalpointer_ce(logits, logits_stride, batch, heads, len, positives, positives_stride, npos, positives_layout, token_mask, token_mask_stride, options, values, result, grad) }
}

/// The γ-cross-entropy per row against class indices `labels` (one int64 per row):
/// −log(γ + (1−γ) p_y)/(1−γ), γ = options.gamma ∈ [0, 1); gradient r·(p − onehot(y)),
/// r = p_y/(γ + (1−γ) p_y). With options.threshold b ∈ [0, 1] (not NaN): the surrogate
/// −max(b, r)·log p_y, max(b, r) held constant. Reads options: gamma, threshold, ignore_index,
/// mask, row_mask, reduction.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_gamma_ce_f32(logits: *const f32, logits_stride: usize, rows: usize, cols: usize, labels: *const i64, options: *const ld_options, values: *mut f32, result: *mut f64, grad: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { gamma_ce(logits, logits_stride, rows, cols, labels, options, values, result, grad) }
}

/// The γ-cross-entropy, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_gamma_ce_f64(logits: *const f64, logits_stride: usize, rows: usize, cols: usize, labels: *const i64, options: *const ld_options, values: *mut f64, result: *mut f64, grad: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { gamma_ce(logits, logits_stride, rows, cols, labels, options, values, result, grad) }
}

/// Knowledge distillation per row: (1−α)·CE(student, y) + α·T²·KL(softmax(teacher/T) ‖
/// softmax(student/T)), α = options.alpha ∈ [0, 1] (required), T = options.temperature, T² only
/// when options.t2 = 1. The labels are optional: class indices `labels` or probabilities
/// `target_probs` as for `ld_softmax_ce_f32`, or both NULL to leave the CE term out. A row
/// labelled ignore_index is ignored whole. `grad_student`, `grad_teacher`: the gradients w.r.t.
/// each. Reads options: temperature, alpha, t2, label_smoothing, ignore_index, mask, row_mask,
/// reduction.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_kd_loss_f32(student: *const f32, student_stride: usize, teacher: *const f32, teacher_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f32, target_stride: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_student: *mut f32, grad_teacher: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { kd_loss(student, student_stride, teacher, teacher_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad_student, grad_teacher) }
}

/// Knowledge distillation, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_kd_loss_f64(student: *const f64, student_stride: usize, teacher: *const f64, teacher_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f64, target_stride: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_student: *mut f64, grad_teacher: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { kd_loss(student, student_stride, teacher, teacher_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad_student, grad_teacher) }
}

/// R-Drop per row: CE(s1, y) + CE(s2, y) + α/2 · (KL(p1‖p2) + KL(p2‖p1)), α = options.alpha ≥ 0
/// (required). options.kind LD_RDROP_SOFTMAX: softmax CE against `labels` or `target_probs` (one
/// of them, as for `ld_softmax_ce_f32`) and the softmax symmetric KL; LD_RDROP_SIGMOID: multilabel
/// CE against dense labels in [0, 1] passed as `target_probs`, and the sigmoid symmetric KL.
/// `grad_s1`, `grad_s2`: the gradients w.r.t. each. Reads options: alpha, kind, label_smoothing
/// (softmax kind), ignore_index, mask, row_mask, reduction.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_rdrop_loss_f32(s1: *const f32, s1_stride: usize, s2: *const f32, s2_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f32, target_stride: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_s1: *mut f32, grad_s2: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { rdrop_loss(s1, s1_stride, s2, s2_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad_s1, grad_s2) }
}

/// R-Drop, float64.
///
/// # Safety
/// As `ld_softmax_ce_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_rdrop_loss_f64(s1: *const f64, s1_stride: usize, s2: *const f64, s2_stride: usize, rows: usize, cols: usize, labels: *const i64, target_probs: *const f64, target_stride: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_s1: *mut f64, grad_s2: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { rdrop_loss(s1, s1_stride, s2, s2_stride, rows, cols, labels, target_probs, target_stride, options, values, result, grad_s1, grad_s2) }
}
