//! XLA's foreign-function interface for `logitdiv.jax`: one handler, [`xla_call`], which XLA calls
//! with the operands of a `jax.ffi.ffi_call("logitdiv", ...)`. It reads XLA's call frame (plain C
//! structs, declared below after `xla/ffi/api/c_api.h`), lays the buffers out as the C ABI's
//! arguments and calls the C ABI function the `fn` attribute names. XLA's buffers are read and
//! written in place: no copy, no Python, the GIL never taken. Every rule (shapes against options,
//! ranges, labels) is the C ABI's; what is decoded here is only where each operand goes.
//!
//! The protocol with `python/logitdiv/jax.py` (attributes of the call):
//! - `fn`: the function ("kl", "softmax_ce", "rdrop_loss", ...);
//! - `ins`: for each input role of [`In`], the index of its operand or −1;
//! - `outs`: for each output role of [`Out`], the index of its result or −1;
//! - `opts`: the numeric fields of `ld_options` in the order of [`Opt`], as float64.
//!
//! The first logits fix the element type (float32 or float64) and the shape (rows × cols, the last
//! axis the classes); a second logits, probabilities or dense labels come in that type. Class
//! indices come as int32 or int64, masks as bool, weights as float32 or float64, each widened
//! here to the C ABI's type; per-class weights (`cols` values) repeat for every row.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use logitdiv as capi;
use logitdiv::{ld_options, ld_status};

// ---------------------------------------------------------------------------------------------
// XLA's C structs (xla/ffi/api/c_api.h, API 0.x): only the fields read or written here.

const EXTENSION_METADATA: i32 = 1;
const STAGE_EXECUTE: i32 = 3;
const ERROR_INVALID_ARGUMENT: i32 = 3;
/// XLA_FFI_DataType: the element types read here.
mod dtype {
    pub const PRED: i32 = 1;
    pub const S32: i32 = 4;
    pub const S64: i32 = 5;
    pub const U8: i32 = 6;
    pub const F32: i32 = 11;
    pub const F64: i32 = 12;
}
const ATTR_ARRAY: i32 = 1;
const ATTR_STRING: i32 = 4;
/// The API version the handler is written against (the structs below exist unchanged since 0.1).
const API_MAJOR: i32 = 0;
const API_MINOR: i32 = 1;

#[repr(C)]
struct ExtensionBase {
    struct_size: usize,
    kind: i32,
    next: *mut ExtensionBase,
}

#[repr(C)]
struct ApiVersion {
    struct_size: usize,
    extension_start: *mut ExtensionBase,
    major: i32,
    minor: i32,
}

#[repr(C)]
struct Metadata {
    struct_size: usize,
    api_version: ApiVersion,
    traits: u32,
}

#[repr(C)]
struct MetadataExtension {
    base: ExtensionBase,
    metadata: *mut Metadata,
}

#[repr(C)]
struct Buffer {
    struct_size: usize,
    extension_start: *mut ExtensionBase,
    dtype: i32,
    data: *mut c_void,
    rank: i64,
    dims: *const i64,
}

/// `XLA_FFI_Args` and `XLA_FFI_Rets` (the same layout).
#[repr(C)]
struct Operands {
    struct_size: usize,
    extension_start: *mut ExtensionBase,
    size: i64,
    types: *const i32,
    items: *const *mut Buffer,
}

#[repr(C)]
struct ByteSpan {
    ptr: *const c_char,
    len: usize,
}

#[repr(C)]
struct Array {
    dtype: i32,
    size: usize,
    data: *const c_void,
}

#[repr(C)]
struct Attrs {
    struct_size: usize,
    extension_start: *mut ExtensionBase,
    size: i64,
    types: *const i32,
    names: *const *const ByteSpan,
    attrs: *const *const c_void,
}

#[repr(C)]
struct ErrorCreateArgs {
    struct_size: usize,
    extension_start: *mut ExtensionBase,
    message: *const c_char,
    errc: i32,
}

#[repr(C)]
struct Api {
    struct_size: usize,
    extension_start: *mut ExtensionBase,
    api_version: ApiVersion,
    internal_api: *const c_void,
    error_create: unsafe extern "C" fn(*mut ErrorCreateArgs) -> *mut c_void,
}

/// `XLA_FFI_CallFrame`.
#[repr(C)]
pub struct CallFrame {
    struct_size: usize,
    extension_start: *mut ExtensionBase,
    api: *const Api,
    ctx: *mut c_void,
    stage: i32,
    args: Operands,
    rets: Operands,
    attrs: Attrs,
}

// ---------------------------------------------------------------------------------------------
// The roles of the operands (the `ins`, `outs` and `opts` attributes, in these orders).

/// Input roles.
#[derive(Clone, Copy)]
enum In {
    /// The (first) logits: s, logits, student, s1.
    X0,
    /// The second logits: t, teacher, s2.
    X1,
    /// Class indices (one per row) or positives (rows × npos).
    Labels,
    /// Probabilities or dense labels of the logits' shape and type.
    Target,
    /// Class mask (bool, rows × cols); for `globalpointer_ce` the token mask (B × L).
    Mask,
    Weights,
    /// Row mask (bool, one per row).
    RowMask,
    PosWeight,
    ClassWeight,
}
const N_IN: usize = 9;

/// Output roles.
#[derive(Clone, Copy)]
enum Out {
    Values,
    Result,
    Grad0,
    Grad1,
    ZValues,
    ZResult,
    Correct,
    Accuracy,
}
const N_OUT: usize = 8;

/// `ld_options`' numeric fields.
#[derive(Clone, Copy)]
enum Opt {
    Temperature,
    Beta,
    Reduction,
    LabelSmoothing,
    IgnoreIndex,
    Gamma,
    Threshold,
    Alpha,
    T2,
    Kind,
    Pad,
    ZLoss,
    Softcap,
    /// `ld_globalpointer_ce`'s `positives_layout` (0 flat indices, 1 spans).
    Layout,
}
const N_OPT: usize = 14;

// ---------------------------------------------------------------------------------------------
// Decoding

/// One call's operands by role.
struct Call<'a> {
    function: &'a str,
    ins: [Option<&'a Buffer>; N_IN],
    outs: [Option<&'a Buffer>; N_OUT],
    opts: [f64; N_OPT],
}

fn elements(b: &Buffer) -> usize {
    // SAFETY: XLA's buffer: `dims` holds `rank` sizes.
    let dims = unsafe { std::slice::from_raw_parts(b.dims, b.rank.max(0) as usize) };
    dims.iter().map(|&d| d.max(0) as usize).product()
}

fn last_dim(b: &Buffer) -> usize {
    if b.rank < 1 {
        return 1;
    }
    // SAFETY: XLA's buffer: `dims` holds `rank` sizes.
    (unsafe { *b.dims.add(b.rank as usize - 1) }).max(0) as usize
}

/// The attribute named `name`, with its type.
///
/// # Safety
/// `attrs` is XLA's attribute list of the call.
unsafe fn attr(attrs: &Attrs, name: &str) -> Option<(i32, *const c_void)> {
    for i in 0..attrs.size.max(0) as usize {
        // SAFETY: XLA's contract: `size` names, types and values.
        let (span, kind, value) = unsafe { (&**attrs.names.add(i), *attrs.types.add(i), *attrs.attrs.add(i)) };
        // SAFETY: a byte span of `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(span.ptr.cast::<u8>(), span.len) };
        if bytes == name.as_bytes() {
            return Some((kind, value));
        }
    }
    None
}

/// A dense array attribute of `n` elements of type `dtype`.
///
/// # Safety
/// As [`attr`].
unsafe fn array_attr<T: Copy>(attrs: &Attrs, name: &str, dtype: i32, n: usize) -> Result<&'static [T], String> {
    // SAFETY: the caller's contract.
    match unsafe { attr(attrs, name) } {
        Some((ATTR_ARRAY, value)) => {
            // SAFETY: an array attribute points at an XLA_FFI_Array.
            let a = unsafe { &*value.cast::<Array>() };
            if a.dtype != dtype || a.size != n {
                return Err(format!("attribute {name}: expected {n} elements of type {dtype}, got {} of {}", a.size, a.dtype));
            }
            // SAFETY: `size` elements of the checked type, alive for the call.
            Ok(unsafe { std::slice::from_raw_parts(a.data.cast::<T>(), n) })
        }
        _ => Err(format!("attribute {name} is missing or not an array")),
    }
}

/// # Safety
/// `frame` is the call frame XLA passed to the handler.
unsafe fn decode(frame: &CallFrame) -> Result<Call<'_>, String> {
    let attrs = &frame.attrs;
    // SAFETY: the caller's contract.
    let function = match unsafe { attr(attrs, "fn") } {
        Some((ATTR_STRING, value)) => {
            // SAFETY: a string attribute points at a byte span.
            let span = unsafe { &*value.cast::<ByteSpan>() };
            // SAFETY: a byte span of `len` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(span.ptr.cast::<u8>(), span.len) };
            std::str::from_utf8(bytes).map_err(|_| "attribute fn is not UTF-8".to_string())?
        }
        _ => return Err("attribute fn is missing or not a string".into()),
    };
    // SAFETY: the caller's contract.
    let (ins_at, outs_at, opts_at) = unsafe {
        (
            array_attr::<i64>(attrs, "ins", dtype::S64, N_IN)?,
            array_attr::<i64>(attrs, "outs", dtype::S64, N_OUT)?,
            array_attr::<f64>(attrs, "opts", dtype::F64, N_OPT)?,
        )
    };
    let pick = |ops: &Operands, at: i64, what: &str| -> Result<Option<&Buffer>, String> {
        if at < 0 {
            return Ok(None);
        }
        if at >= ops.size {
            return Err(format!("{what} index {at} beyond the call's {} operands", ops.size));
        }
        // SAFETY: XLA's contract: `size` operands, each a buffer (the only operand kind).
        Ok(Some(unsafe { &**ops.items.add(at as usize) }))
    };
    let mut ins = [None; N_IN];
    for (slot, &at) in ins.iter_mut().zip(ins_at) {
        *slot = pick(&frame.args, at, "input")?;
    }
    let mut outs = [None; N_OUT];
    for (slot, &at) in outs.iter_mut().zip(outs_at) {
        *slot = pick(&frame.rets, at, "output")?;
    }
    let mut opts = [0.0; N_OPT];
    opts.copy_from_slice(opts_at);
    Ok(Call { function, ins, outs, opts })
}

// ---------------------------------------------------------------------------------------------
// The C ABI's functions by element type

type PairFn<T> = unsafe extern "C" fn(*const T, usize, *const T, usize, usize, usize, *const ld_options, *mut T, *mut f64, *mut T, *mut T) -> ld_status;
type CeFn<T> = unsafe extern "C" fn(*const T, usize, usize, usize, *const i64, *const T, usize, *const ld_options, *mut T, *mut f64, *mut T, *mut T, *mut f64, *mut T, *mut f64) -> ld_status;
type DenseFn<T> = unsafe extern "C" fn(*const T, usize, usize, usize, *const T, usize, *const ld_options, *mut T, *mut f64, *mut T) -> ld_status;
type GammaFn<T> = unsafe extern "C" fn(*const T, usize, usize, usize, *const i64, *const ld_options, *mut T, *mut f64, *mut T) -> ld_status;
type SparseFn<T> = unsafe extern "C" fn(*const T, usize, usize, usize, *const i64, usize, usize, *const ld_options, *mut T, *mut f64, *mut T) -> ld_status;
type GpFn<T> = unsafe extern "C" fn(*const T, usize, usize, usize, usize, *const i64, usize, usize, u32, *const u8, usize, *const ld_options, *mut T, *mut f64, *mut T) -> ld_status;
type TwoFn<T> = unsafe extern "C" fn(*const T, usize, *const T, usize, usize, usize, *const i64, *const T, usize, *const ld_options, *mut T, *mut f64, *mut T, *mut T) -> ld_status;

/// The names of the functions in the tables of [`Float`], in their order.
const PAIR_NAMES: [&str; 6] = ["kl", "sym_kl", "js", "tv", "sigmoid_kl", "sigmoid_sym_kl"];
const DENSE_NAMES: [&str; 2] = ["bce", "multilabel_ce"];
const TWO_NAMES: [&str; 2] = ["kd_loss", "rdrop_loss"];

/// The entry point of `table` named `function` (`names` in the table's order).
fn named<F: Copy>(names: &[&str], table: &[F], function: &str) -> Option<F> {
    names.iter().position(|n| *n == function).map(|i| table[i])
}

/// float32 and float64: the XLA type and the C ABI's entry points.
trait Float: Copy + From<f32> + 'static {
    const DTYPE: i32;
    const PAIR: [PairFn<Self>; 6];
    const CE: CeFn<Self>;
    const DENSE: [DenseFn<Self>; 2];
    const GAMMA: GammaFn<Self>;
    const SPARSE: SparseFn<Self>;
    const GP: GpFn<Self>;
    const TWO: [TwoFn<Self>; 2];
    fn from_f64(x: f64) -> Self;
}

/// `Float` for `$t`: the entry points of that element type, the tables in their names' order.
macro_rules! float {
    ($t:ty, $dtype:expr, [$($pair:ident),+], $ce:ident, [$($dense:ident),+], $gamma:ident, $sparse:ident, $gp:ident, [$($two:ident),+]) => {
        impl Float for $t {
            const DTYPE: i32 = $dtype;
            const PAIR: [PairFn<$t>; 6] = [$(capi::$pair),+];
            const CE: CeFn<$t> = capi::$ce;
            const DENSE: [DenseFn<$t>; 2] = [$(capi::$dense),+];
            const GAMMA: GammaFn<$t> = capi::$gamma;
            const SPARSE: SparseFn<$t> = capi::$sparse;
            const GP: GpFn<$t> = capi::$gp;
            const TWO: [TwoFn<$t>; 2] = [$(capi::$two),+];
            fn from_f64(x: f64) -> $t {
                x as $t
            }
        }
    };
}
float!(f32, dtype::F32, [ld_kl_f32, ld_sym_kl_f32, ld_js_f32, ld_tv_f32, ld_sigmoid_kl_f32, ld_sigmoid_sym_kl_f32],
    ld_softmax_ce_ex_f32, [ld_bce_f32, ld_multilabel_ce_f32], ld_gamma_ce_f32, ld_sparse_multilabel_ce_f32,
    ld_globalpointer_ce_f32, [ld_kd_loss_f32, ld_rdrop_loss_f32]);
float!(f64, dtype::F64, [ld_kl_f64, ld_sym_kl_f64, ld_js_f64, ld_tv_f64, ld_sigmoid_kl_f64, ld_sigmoid_sym_kl_f64],
    ld_softmax_ce_ex_f64, [ld_bce_f64, ld_multilabel_ce_f64], ld_gamma_ce_f64, ld_sparse_multilabel_ce_f64,
    ld_globalpointer_ce_f64, [ld_kd_loss_f64, ld_rdrop_loss_f64]);

// ---------------------------------------------------------------------------------------------
// Laying the operands out as the C ABI's arguments

/// A buffer's data, never NULL (an empty buffer may have no allocation; the C ABI wants a pointer).
fn data<T>(b: &Buffer) -> *mut T {
    if b.data.is_null() {
        ptr::NonNull::<T>::dangling().as_ptr()
    } else {
        b.data.cast()
    }
}

fn typed<T: Float>(b: Option<&Buffer>, what: &str) -> Result<*mut T, String> {
    match b {
        None => Ok(ptr::null_mut()),
        Some(b) if b.dtype == T::DTYPE => Ok(data(b)),
        Some(b) => Err(format!("{what}: element type {} where the logits' {} was expected", b.dtype, T::DTYPE)),
    }
}

/// Integers (class indices, positives) as int64: int64 buffers in place, int32 widened.
fn int64s(b: Option<&Buffer>, keep: &mut Vec<i64>) -> Result<*const i64, String> {
    match b {
        None => Ok(ptr::null()),
        Some(b) if b.dtype == dtype::S64 => Ok(data(b)),
        Some(b) if b.dtype == dtype::S32 => {
            // SAFETY: an int32 buffer of `elements` values.
            let src = unsafe { std::slice::from_raw_parts(data::<i32>(b), elements(b)) };
            *keep = src.iter().map(|&v| i64::from(v)).collect();
            Ok(keep.as_ptr())
        }
        Some(b) => Err(format!("labels: element type {} (int32 or int64 expected)", b.dtype)),
    }
}

/// Non-negative weights as float64, with their row stride (0: one row of `cols` for every row).
fn float64s(b: Option<&Buffer>, cols: usize, keep: &mut Vec<f64>, what: &str) -> Result<(*const f64, usize), String> {
    let Some(b) = b else { return Ok((ptr::null(), 0)) };
    let n = elements(b);
    let stride = if n == cols { 0 } else { cols };
    match b.dtype {
        dtype::F64 => Ok((data(b), stride)),
        dtype::F32 => {
            // SAFETY: a float32 buffer of `n` values.
            let src = unsafe { std::slice::from_raw_parts(data::<f32>(b), n) };
            *keep = src.iter().map(|&v| f64::from(v)).collect();
            Ok((keep.as_ptr(), stride))
        }
        other => Err(format!("{what}: element type {other} (float32 or float64 expected)")),
    }
}

fn bytes(b: Option<&Buffer>, what: &str) -> Result<*const u8, String> {
    match b {
        None => Ok(ptr::null()),
        Some(b) if b.dtype == dtype::PRED || b.dtype == dtype::U8 => Ok(data(b)),
        Some(b) => Err(format!("{what}: element type {} (bool expected)", b.dtype)),
    }
}

/// Asks the kernel for huge pages under a large output XLA has just allocated (as NumPy does for
/// its arrays): the gradients are written once, and a fresh mapping faulted in 4 KiB pages costs
/// about as much as the kernel itself on a (2048, 32000) gradient. Advice only: nothing changes if
/// the system refuses it.
fn advise_huge_pages(b: Option<&Buffer>) {
    #[cfg(target_os = "linux")]
    {
        const MADV_HUGEPAGE: i32 = 14;
        const HUGE: usize = 2 << 20;
        extern "C" {
            fn madvise(addr: *mut c_void, len: usize, advice: i32) -> i32;
        }
        let Some(b) = b else { return };
        let bytes = elements(b) * if b.dtype == dtype::F64 { 8 } else { 4 };
        let start = b.data as usize;
        let (first, end) = (start.next_multiple_of(HUGE), start + bytes);
        if b.data.is_null() || end < first + 2 * HUGE {
            return;
        }
        // SAFETY: advice on whole huge pages inside XLA's output buffer; it moves no data.
        unsafe { madvise(first as *mut c_void, (end - first) / HUGE * HUGE, MADV_HUGEPAGE) };
    }
}

/// The reduced value, z-term or accuracy: a rank-0 buffer of the value type.
struct Scalar<T> {
    at: *mut T,
    value: f64,
}

impl<T: Float> Scalar<T> {
    fn new(b: Option<&Buffer>, what: &str) -> Result<Self, String> {
        Ok(Scalar { at: typed::<T>(b, what)?, value: 0.0 })
    }
    /// Where the C ABI writes (NULL: not asked for).
    fn slot(&mut self) -> *mut f64 {
        if self.at.is_null() {
            ptr::null_mut()
        } else {
            &mut self.value
        }
    }
    fn store(&self) {
        if !self.at.is_null() {
            // SAFETY: a rank-0 buffer of T.
            unsafe { *self.at = T::from_f64(self.value) };
        }
    }
}

fn fail(status: ld_status) -> Result<(), String> {
    if status == ld_status::LD_OK {
        return Ok(());
    }
    // SAFETY: the C ABI's message of this thread's last failure, a NUL-terminated string.
    Err(unsafe { CStr::from_ptr(capi::ld_last_error_message()) }.to_string_lossy().into_owned())
}

/// The C ABI reads and writes as many elements as `rows` × `cols` and the options say: every
/// operand must hold that many (the Python side shapes them so; checked here, where memory is at
/// stake).
fn check_sizes(call: &Call<'_>, rows: usize, cols: usize, gp: bool) -> Result<(), String> {
    let full = rows * cols;
    let need = |b: Option<&Buffer>, ok: &dyn Fn(usize) -> bool, what: &str, want: String| match b {
        Some(b) if !ok(elements(b)) => Err(format!("{what} has {} elements; {want} expected", elements(b))),
        _ => Ok(()),
    };
    let exactly = |n: usize| move |m: usize| m == n;
    let ins = &call.ins;
    need(ins[In::X1 as usize], &exactly(full), "the second logits", format!("{full}"))?;
    need(ins[In::Target as usize], &exactly(full), "target", format!("{full}"))?;
    need(ins[In::RowMask as usize], &exactly(rows), "the row mask", format!("{rows}"))?;
    need(ins[In::ClassWeight as usize], &exactly(cols), "weight", format!("{cols}"))?;
    for (role, what) in [(In::Weights, "weights"), (In::PosWeight, "pos_weight")] {
        need(ins[role as usize], &|m| m == cols || m == full, what, format!("{cols} or {full}"))?;
    }
    let labels_per_row = matches!(call.function, "sparse_multilabel_ce" | "globalpointer_ce");
    if labels_per_row {
        need(ins[In::Labels as usize], &|m| if rows == 0 { m == 0 } else { m % rows == 0 }, "positives",
             format!("a multiple of {rows}"))?;
    } else {
        need(ins[In::Labels as usize], &exactly(rows), "labels", format!("{rows}"))?;
    }
    if !gp {
        need(ins[In::Mask as usize], &exactly(full), "where", format!("{full}"))?;
    } else if let Some(mask) = ins[In::Mask as usize] {
        // the token mask: B × L, L = √cols, B = rows / heads
        let x0 = ins[In::X0 as usize].ok_or("no logits")?;
        // SAFETY: a buffer of rank 4 (checked by the caller).
        let (batch, len) = unsafe { (*x0.dims as usize, *x0.dims.add(2) as usize) };
        need(Some(mask), &exactly(batch * len), "mask", format!("{}", batch * len))?;
    }
    let outs = &call.outs;
    for role in [Out::Values, Out::ZValues, Out::Correct] {
        need(outs[role as usize], &exactly(rows), "a per-row output", format!("{rows}"))?;
    }
    for role in [Out::Grad0, Out::Grad1] {
        need(outs[role as usize], &exactly(full), "a gradient", format!("{full}"))?;
    }
    for role in [Out::Result, Out::ZResult, Out::Accuracy] {
        need(outs[role as usize], &exactly(1), "a reduced output", "1".into())?;
    }
    Ok(())
}

/// # Safety
/// The buffers of `call` are XLA's, alive and of their stated sizes for the call.
unsafe fn run<T: Float>(call: &Call<'_>) -> Result<(), String> {
    let x0 = call.ins[In::X0 as usize].ok_or("no logits")?;
    let gp = call.function == "globalpointer_ce";
    let (rows, cols) = if gp {
        if x0.rank != 4 {
            return Err(format!("globalpointer_ce: logits of rank {} (B, heads, L, L expected)", x0.rank));
        }
        // SAFETY: a buffer of rank 4.
        let len = unsafe { *x0.dims.add(2) }.max(0) as usize;
        (elements(x0) / (len * len).max(1), len * len)
    } else {
        let cols = last_dim(x0);
        (if cols == 0 { 0 } else { elements(x0) / cols }, cols)
    };
    check_sizes(call, rows, cols, gp)?;
    let o = &call.opts;
    let (mut keep_labels, mut keep_w, mut keep_pw, mut keep_cw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (weights, weights_stride) = float64s(call.ins[In::Weights as usize], cols, &mut keep_w, "weights")?;
    let (pos_weight, pos_weight_stride) = float64s(call.ins[In::PosWeight as usize], cols, &mut keep_pw, "pos_weight")?;
    let (class_weight, _) = float64s(call.ins[In::ClassWeight as usize], cols, &mut keep_cw, "weight")?;
    let options = ld_options {
        temperature: o[Opt::Temperature as usize],
        beta: o[Opt::Beta as usize],
        reduction: o[Opt::Reduction as usize] as u32,
        mask: bytes(call.ins[In::Mask as usize], "where")?,
        mask_stride: if call.ins[In::Mask as usize].is_some() { cols } else { 0 },
        weights,
        weights_stride,
        row_mask: bytes(call.ins[In::RowMask as usize], "where")?,
        pos_weight,
        pos_weight_stride,
        label_smoothing: o[Opt::LabelSmoothing as usize],
        ignore_index: o[Opt::IgnoreIndex as usize] as i64,
        gamma: o[Opt::Gamma as usize],
        threshold: o[Opt::Threshold as usize],
        alpha: o[Opt::Alpha as usize],
        t2: o[Opt::T2 as usize] as u32,
        kind: o[Opt::Kind as usize] as u32,
        pad: o[Opt::Pad as usize] as i64,
        class_weight,
        z_loss: o[Opt::ZLoss as usize],
        softcap: o[Opt::Softcap as usize],
    };
    let x0p = typed::<T>(Some(x0), "logits")?;
    let x1p = typed::<T>(call.ins[In::X1 as usize], "second logits")?;
    let target = typed::<T>(call.ins[In::Target as usize], "target")?;
    let labels_buf = call.ins[In::Labels as usize];
    let labels = int64s(labels_buf, &mut keep_labels)?;
    let values = typed::<T>(call.outs[Out::Values as usize], "values")?;
    let g0 = typed::<T>(call.outs[Out::Grad0 as usize], "gradient")?;
    let g1 = typed::<T>(call.outs[Out::Grad1 as usize], "gradient")?;
    let mut result = Scalar::<T>::new(call.outs[Out::Result as usize], "value")?;
    advise_huge_pages(call.outs[Out::Grad0 as usize]);
    advise_huge_pages(call.outs[Out::Grad1 as usize]);
    let f = call.function;
    // SAFETY (every call below): each pointer is NULL or one of XLA's buffers of the size the C ABI
    // reads for `rows` × `cols` (the Python side shapes them so; the C ABI checks the rest).
    let status = if let Some(pair) = named(&PAIR_NAMES, &T::PAIR, f) {
        unsafe { pair(x0p, cols, x1p, cols, rows, cols, &options, values, result.slot(), g0, g1) }
    } else if let Some(two) = named(&TWO_NAMES, &T::TWO, f) {
        unsafe { two(x0p, cols, x1p, cols, rows, cols, labels, target, cols, &options, values, result.slot(), g0, g1) }
    } else if let Some(dense) = named(&DENSE_NAMES, &T::DENSE, f) {
        unsafe { dense(x0p, cols, rows, cols, target, cols, &options, values, result.slot(), g0) }
    } else if f == "softmax_ce" {
        let z_values = typed::<T>(call.outs[Out::ZValues as usize], "z_values")?;
        let correct = typed::<T>(call.outs[Out::Correct as usize], "correct")?;
        let mut z = Scalar::<T>::new(call.outs[Out::ZResult as usize], "z-term")?;
        let mut acc = Scalar::<T>::new(call.outs[Out::Accuracy as usize], "accuracy")?;
        let status = unsafe {
            T::CE(x0p, cols, rows, cols, labels, target, cols, &options, values, result.slot(), g0, z_values,
                  z.slot(), correct, acc.slot())
        };
        z.store();
        acc.store();
        status
    } else if f == "gamma_ce" {
        unsafe { T::GAMMA(x0p, cols, rows, cols, labels, &options, values, result.slot(), g0) }
    } else if f == "sparse_multilabel_ce" {
        let npos = labels_buf.map_or(0, |b| elements(b) / rows.max(1));
        unsafe { T::SPARSE(x0p, cols, rows, cols, labels, npos, npos, &options, values, result.slot(), g0) }
    } else if gp {
        // SAFETY: a buffer of rank 4 (checked above).
        let (batch, heads, len) = unsafe { (*x0.dims as usize, *x0.dims.add(1) as usize, *x0.dims.add(2) as usize) };
        let per_row = labels_buf.map_or(0, |b| elements(b) / rows.max(1));
        let layout = o[Opt::Layout as usize] as u32;
        let npos = if layout == 1 { per_row / 2 } else { per_row };
        let options = ld_options { mask: ptr::null(), mask_stride: 0, ..options };
        let token_mask = bytes(call.ins[In::Mask as usize], "mask")?;
        unsafe {
            T::GP(x0p, cols, batch, heads, len, labels, per_row, npos, layout, token_mask, len, &options, values,
                  result.slot(), g0)
        }
    } else {
        return Err(format!("unknown function {f:?}"));
    };
    fail(status)?;
    result.store();
    Ok(())
}

/// The backward pass's product of the saved gradient (`X0`, rows × cols) and the cotangent (`X1`:
/// one value, or one per row) into `Grad0`, which the Python side aliases to `X0`: in place, and
/// nothing at all for the usual cotangent 1 (a loss differentiated as it is), where XLA would
/// allocate and write a new gradient.
///
/// # Safety
/// As [`run`].
unsafe fn scale<T: Float + std::ops::MulAssign + PartialEq + Send + Sync>(call: &Call<'_>) -> Result<(), String> {
    let (grad, ct, out) = match (call.ins[In::X0 as usize], call.ins[In::X1 as usize], call.outs[Out::Grad0 as usize]) {
        (Some(g), Some(c), Some(o)) if g.dtype == T::DTYPE && c.dtype == T::DTYPE && o.dtype == T::DTYPE => (g, c, o),
        _ => return Err("scale: a gradient, a cotangent and an output of one float type expected".into()),
    };
    let (n, cols) = (elements(grad), last_dim(grad));
    let rows = if cols == 0 { 0 } else { n / cols };
    let m = elements(ct);
    if elements(out) != n || !(m == 1 || m == rows) {
        return Err(format!("scale: gradient of {n} elements, cotangent of {m}, output of {}", elements(out)));
    }
    // SAFETY: XLA's buffers of the sizes checked above; `out` is `grad` (aliased) or apart from it.
    let (src, c, dst) = unsafe {
        (std::slice::from_raw_parts(data::<T>(grad), n), std::slice::from_raw_parts(data::<T>(ct), m),
         std::slice::from_raw_parts_mut(data::<T>(out), n))
    };
    let one = T::from(1.0);
    let in_place = std::ptr::eq(src.as_ptr(), dst.as_ptr());
    if in_place && c.iter().all(|&v| v == one) {
        return Ok(());
    }
    if !in_place {
        dst.copy_from_slice(src);
    }
    // one chunk of whole rows per worker: the product is memory-bound, two cores read faster than one
    let workers = if n < 1 << 17 { 1 } else { logitdiv_core::num_threads().max(1) };
    let rows_per = rows.div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        for (k, chunk) in dst.chunks_mut(rows_per * cols.max(1)).enumerate() {
            let mut work = move || {
                for (r, row) in chunk.chunks_mut(cols.max(1)).enumerate() {
                    let f = if m == 1 { c[0] } else { c[k * rows_per + r] };
                    row.iter_mut().for_each(|x| *x *= f);
                }
            };
            if workers == 1 { work() } else { scope.spawn(work); }
        }
    });
    Ok(())
}

/// # Safety
/// `frame` is XLA's call frame.
unsafe fn execute(frame: &CallFrame) -> Result<(), String> {
    // SAFETY: the caller's contract.
    let call = unsafe { decode(frame)? };
    let x0 = call.ins[In::X0 as usize].ok_or("no logits")?;
    let scaling = call.function == "scale";
    // SAFETY: the buffers are XLA's, for this call.
    match x0.dtype {
        dtype::F32 if scaling => unsafe { scale::<f32>(&call) },
        dtype::F64 if scaling => unsafe { scale::<f64>(&call) },
        dtype::F32 => unsafe { run::<f32>(&call) },
        dtype::F64 => unsafe { run::<f64>(&call) },
        other => Err(format!("logits of element type {other}: float32 or float64 expected")),
    }
}

/// The handler XLA calls (`XLA_FFI_Handler`): answers the metadata query, does nothing outside the
/// execute stage, and reports a failure as an XLA error with the C ABI's message.
///
/// # Safety
/// Called by XLA only, with its call frame.
unsafe extern "C" fn xla_call(frame: *mut CallFrame) -> *mut c_void {
    // SAFETY: XLA passes a valid call frame.
    let frame = unsafe { &*frame };
    if !frame.extension_start.is_null() {
        // SAFETY: an extension starts with its base.
        let ext = unsafe { &*frame.extension_start };
        if ext.kind == EXTENSION_METADATA {
            // SAFETY: the metadata extension's layout, its metadata XLA's to fill.
            let meta = unsafe { &mut *(*frame.extension_start.cast::<MetadataExtension>()).metadata };
            meta.api_version = ApiVersion {
                struct_size: std::mem::offset_of!(ApiVersion, minor) + std::mem::size_of::<i32>(),
                extension_start: ptr::null_mut(),
                major: API_MAJOR,
                minor: API_MINOR,
            };
            meta.traits = 0;
            return ptr::null_mut();
        }
    }
    if frame.stage != STAGE_EXECUTE {
        return ptr::null_mut();
    }
    // A panic must not unwind into XLA.
    // SAFETY: the frame is XLA's, for this call.
    let outcome = std::panic::catch_unwind(|| unsafe { execute(frame) })
        .unwrap_or_else(|_| Err("internal error in the logitdiv handler".to_string()));
    match outcome {
        Ok(()) => ptr::null_mut(),
        Err(message) => {
            let text = std::ffi::CString::new(format!("logitdiv: {}", message.replace('\0', " "))).unwrap_or_default();
            let mut args = ErrorCreateArgs {
                struct_size: std::mem::offset_of!(ErrorCreateArgs, errc) + std::mem::size_of::<i32>(),
                extension_start: ptr::null_mut(),
                message: text.as_ptr(),
                errc: ERROR_INVALID_ARGUMENT,
            };
            // SAFETY: XLA's API table; it copies the message.
            unsafe { ((*frame.api).error_create)(&mut args) }
        }
    }
}

/// The address of the XLA FFI handler, for `jax.ffi.pycapsule` and `jax.ffi.register_ffi_target`.
#[pyo3::pyfunction]
pub(crate) fn xla_handler() -> usize {
    xla_call as *const () as usize
}
