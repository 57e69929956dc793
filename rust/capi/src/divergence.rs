//! The divergences: `ld_kl`, `ld_sym_kl`, `ld_js`, `ld_tv`, `ld_sigmoid_kl`, `ld_sigmoid_sym_kl`, each in
//! f32 and f64. Arguments, in order: the two logit matrices with their row strides (in elements,
//! ≥ cols), `rows`, `cols`, options (NULL = defaults), then the outputs, each NULL to skip it:
//! `values` (one per row, the input's type), `result` (the reduced value in double; the sum of
//! the row values for LD_REDUCTION_NONE), `grad_s` and `grad_t` (contiguous rows × cols).

use logitdiv_core::{pair_divergence, Elem, PairKind, PairOptions, PairOutputs};

use crate::options::{self, ld_options, reads, reduction, Name};
use crate::boundary::guard;
use crate::status::ld_status;
use crate::views::{input, need_classes, optional_input, output, output_scalar, output_vec, Repeat};

/// # Safety
/// The pointer contracts of [`input`] and [`output`] for every non-NULL pointer.
#[allow(clippy::too_many_arguments)]
unsafe fn call<T: Elem>(
    kind: PairKind,
    s: *const T,
    s_stride: usize,
    t: *const T,
    t_stride: usize,
    rows: usize,
    cols: usize,
    options: *const ld_options,
    values: *mut T,
    result: *mut f64,
    grad_s: *mut T,
    grad_t: *mut T,
) -> ld_status {
    // SAFETY: the entry point's contract: every non-NULL pointer covers the elements its sizes and
    // strides describe, and the outputs overlap nothing else.
    guard(|| unsafe {
        need_classes(cols)?;
        let (base, extra) = match kind {
            PairKind::Kl => ("kl", reads::SOFTCAP),
            PairKind::SymKl => ("sym_kl", reads::SOFTCAP),
            PairKind::Js => ("js", reads::BETA | reads::SOFTCAP),
            PairKind::Tv => ("tv", reads::SOFTCAP),
            PairKind::SigmoidKl => ("sigmoid_kl", reads::WEIGHTS),
            PairKind::SigmoidSymKl => ("sigmoid_sym_kl", reads::WEIGHTS),
        };
        let o = options::read(options, Name(base, T::NAME), reads::TEMPERATURE | reads::MASK | extra)?;
        let result = output_scalar("result", result)?;
        let s = input("s", s, rows, cols, s_stride, Repeat::Refused)?;
        let t = input("t", t, rows, cols, t_stride, Repeat::Refused)?;
        let opts = PairOptions {
            temperature: o.temperature,
            beta: o.beta,
            mask: optional_input("options.mask", o.mask, rows, cols, o.mask_stride)?,
            weights: optional_input("options.weights", o.weights, rows, cols, o.weights_stride)?,
            reduction: reduction(o.reduction)?,
            softcap: options::softcap(&o),
        };
        let out = PairOutputs {
            values: output_vec("values", values, rows)?,
            grad_s: output("grad_s", grad_s, rows, cols)?,
            grad_t: output("grad_t", grad_t, rows, cols)?,
        };
        let reduced = pair_divergence::<T, T>(kind, s, t, &opts, out)?;
        if let Some(r) = result {
            *r = reduced.value;
        }
        Ok(())
    })
}

/// KL(p‖q) per row, p = softmax(s/τ), q = softmax(t/τ).
/// Reads options: temperature, mask, reduction, softcap (and beta for `ld_js_*`; weights, not
/// softcap, for the sigmoid divergences); the others must keep their defaults.
/// Returns LD_OK or the failure's status (details in ld_last_error_message()); an output
/// (values, result, grad_s, grad_t) that overlaps an input or another output is LD_BAD_ARGUMENT,
/// and nothing is written.
///
/// # Safety
/// Every non-NULL pointer must cover the elements its sizes and strides describe.
#[no_mangle]
pub unsafe extern "C" fn ld_kl_f32(s: *const f32, s_stride: usize, t: *const f32, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_s: *mut f32, grad_t: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::Kl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// KL(p‖q) per row, float64.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_kl_f64(s: *const f64, s_stride: usize, t: *const f64, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_s: *mut f64, grad_t: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::Kl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// KL(p‖q) + KL(q‖p) per row.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sym_kl_f32(s: *const f32, s_stride: usize, t: *const f32, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_s: *mut f32, grad_t: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::SymKl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// KL(p‖q) + KL(q‖p) per row, float64.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sym_kl_f64(s: *const f64, s_stride: usize, t: *const f64, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_s: *mut f64, grad_t: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::SymKl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// β KL(p‖m) + (1−β) KL(q‖m), m = βp + (1−β)q (β in options.beta).
/// Reads options: temperature, beta, mask, reduction, softcap.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_js_f32(s: *const f32, s_stride: usize, t: *const f32, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_s: *mut f32, grad_t: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::Js, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// Jensen–Shannon divergence, float64.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_js_f64(s: *const f64, s_stride: usize, t: *const f64, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_s: *mut f64, grad_t: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::Js, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// The total variation distance ½ Σ_i |p_i − q_i| per row, p = softmax(s/τ), q = softmax(t/τ),
/// with its subgradients (sign(p_i − q_i) taken as 0 where p_i = q_i): ½ p_j (σ_j − Σ σ_i p_i) for
/// s and −½ q_j (σ_j − Σ σ_i q_i) for t (times 1/τ), σ = sign(p − q).
/// Reads options: temperature, mask, reduction, softcap.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_tv_f32(s: *const f32, s_stride: usize, t: *const f32, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_s: *mut f32, grad_t: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::Tv, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// The total variation distance, float64.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_tv_f64(s: *const f64, s_stride: usize, t: *const f64, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_s: *mut f64, grad_t: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::Tv, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// Σ_i w_i KL(Bern(σ(s_i/τ)) ‖ Bern(σ(t_i/τ))) per row (weights in options.weights).
/// Reads options: temperature, weights, mask, reduction.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sigmoid_kl_f32(s: *const f32, s_stride: usize, t: *const f32, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_s: *mut f32, grad_t: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::SigmoidKl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// Sigmoid KL, float64.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sigmoid_kl_f64(s: *const f64, s_stride: usize, t: *const f64, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_s: *mut f64, grad_t: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::SigmoidKl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// Σ_i w_i (σ(s_i/τ) − σ(t_i/τ))(s_i − t_i)/τ per row: the GlobalPointer KL.
/// Reads options: temperature, weights, mask, reduction.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sigmoid_sym_kl_f32(s: *const f32, s_stride: usize, t: *const f32, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f32, result: *mut f64, grad_s: *mut f32, grad_t: *mut f32) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::SigmoidSymKl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}

/// The GlobalPointer KL, float64.
///
/// # Safety
/// As `ld_kl_f32`.
#[no_mangle]
pub unsafe extern "C" fn ld_sigmoid_sym_kl_f64(s: *const f64, s_stride: usize, t: *const f64, t_stride: usize, rows: usize, cols: usize, options: *const ld_options, values: *mut f64, result: *mut f64, grad_s: *mut f64, grad_t: *mut f64) -> ld_status {
    // SAFETY: the caller's pointer contract, forwarded.
    unsafe { call(PairKind::SigmoidSymKl, s, s_stride, t, t_stride, rows, cols, options, values, result, grad_s, grad_t) }
}
