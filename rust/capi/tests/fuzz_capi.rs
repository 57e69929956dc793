//! Property-based fuzzing of the C ABI (proptest, run by `cargo test`). Every pointer argument is
//! drawn as NULL, a valid buffer or a misaligned pointer into one; sizes and strides either fit the
//! buffers (including 0 rows, 0 classes, strides shorter than a row, stride 0) or overflow the
//! address space (which must be refused before any pointer is read); options are drawn valid and
//! invalid (temperature, β, reduction as any integer, masks and weights with any stride, weights
//! negative or NaN). A call must always return a status — never `LD_PANIC`, never a crash — equal
//! to one of the faults present in its arguments (`LD_OK` exactly when there is none, with a
//! message after every failure), and a successful call must write exactly what the core computes
//! for the same arguments.
//!
//! The harness is generic: [`Buf`] (a buffer and the pointer a [`Ptr`] choice makes of it),
//! [`Faults`] (the statuses the arguments call for, with [`Faults::input`] / [`Faults::output`]
//! mirroring the rules of `views.rs`) and [`check_status`]. A family of entry points is a table of
//! function pointers, a case strategy and a check: the divergences below; the loss entry points
//! follow the same pattern (a table of (loss, float64 entry, float32 entry) per signature, their
//! labels drawn like the logits, the expected faults from the same helpers).
//!
//! Budget: `PROPTEST_CASES` (default 1000 cases per property).

use logitdiv::{
    ld_js_f32, ld_js_f64, ld_kl_f32, ld_kl_f64, ld_last_error_message, ld_options, ld_options_default,
    ld_sigmoid_kl_f32, ld_sigmoid_kl_f64, ld_sigmoid_sym_kl_f32, ld_sigmoid_sym_kl_f64, ld_status, ld_status_message,
    ld_sym_kl_f32, ld_sym_kl_f64,
};
use logitdiv_core::{pair_divergence, Elem, PairKind, PairOptions, PairOutputs, Reduction, Rows, RowsMut};
use proptest::prelude::*;
use std::ffi::CStr;

// the proptest settings of the core's fuzz tests (PROPTEST_CASES), from their shared file
#[path = "../../core/tests/common/mod.rs"]
mod common;
use common::config;

// ---------------------------------------------------------------------------------------------
// the generic harness

/// What a pointer argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ptr {
    Null,
    Valid,
    /// one byte past a valid, aligned address (for element types wider than a byte)
    Misaligned,
}

fn ptr_choice() -> impl Strategy<Value = Ptr> {
    prop_oneof![8 => Just(Ptr::Valid), 1 => Just(Ptr::Null), 1 => Just(Ptr::Misaligned)]
}

/// A buffer of `len` elements (one spare, so that even a misaligned pointer stays inside it).
struct Buf<T> {
    data: Vec<T>,
}

impl<T: Copy> Buf<T> {
    fn new(values: &[T], len: usize, fill: T) -> Self {
        let mut data: Vec<T> = values.iter().copied().cycle().take(len).collect();
        data.resize(len + 1, fill);
        Buf { data }
    }

    fn ptr(&self, p: Ptr) -> *const T {
        match p {
            Ptr::Null => std::ptr::null(),
            Ptr::Valid => self.data.as_ptr(),
            Ptr::Misaligned => self.data.as_ptr().cast::<u8>().wrapping_add(1).cast(),
        }
    }

    fn ptr_mut(&mut self, p: Ptr) -> *mut T {
        self.ptr(p).cast_mut()
    }
}

/// Sizes and strides of a call, as the C caller passes them.
#[derive(Debug, Clone, Copy)]
struct Dims {
    rows: usize,
    cols: usize,
    s_stride: usize,
    t_stride: usize,
    /// the sizes overflow the address space somewhere: the buffers are only as large as the
    /// non-overflowing views need, and every such call must be refused before reading
    overflow: bool,
}

/// The number of elements a view spans (None when it overflows, as `views.rs` computes it).
fn span_elems(rows: usize, cols: usize, stride: usize, elem: usize) -> Option<usize> {
    let n = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1).checked_mul(stride)?.checked_add(cols)?
    };
    n.checked_mul(elem).filter(|&b| b <= isize::MAX as usize).map(|_| n)
}

fn dims() -> impl Strategy<Value = Dims> {
    let fits = (0usize..5, 0usize..7, 0usize..4, 0usize..4).prop_map(|(rows, cols, a, b)| {
        // a stride of cols + pad, or a short one (refused unless 0 with at most one row)
        let stride = |k: usize| match k {
            0 => 0,
            1 => cols.saturating_sub(1),
            _ => cols + k - 2,
        };
        Dims {
            rows,
            cols,
            s_stride: stride(a),
            t_stride: stride(b),
            overflow: false,
        }
    });
    let huge = prop::sample::select(vec![
        usize::MAX,
        usize::MAX / 2,
        usize::MAX / 8 + 1,
        isize::MAX as usize,
        1usize << 62,
    ]);
    let overflow = (huge, 0usize..4, 1usize..5).prop_map(|(h, which, small)| match which {
        0 => Dims {
            rows: h,
            cols: small,
            s_stride: small,
            t_stride: small,
            overflow: true,
        },
        1 => Dims {
            rows: 1,
            cols: h,
            s_stride: h,
            t_stride: h,
            overflow: true,
        },
        2 => Dims {
            rows: 3,
            cols: small,
            s_stride: h,
            t_stride: small,
            overflow: true,
        },
        _ => Dims {
            rows: 3,
            cols: small,
            s_stride: small,
            t_stride: h,
            overflow: true,
        },
    });
    prop_oneof![9 => fits, 1 => overflow]
}

/// The statuses a call's arguments call for.
#[derive(Debug, Default)]
struct Faults(Vec<ld_status>);

impl Faults {
    fn add(&mut self, s: ld_status) {
        self.0.push(s);
    }

    /// An input view of `rows` × `cols` elements of `elem` bytes, `stride` apart (0 repeats one
    /// row where `repeat`): a stride shorter than a row or a size that overflows is LD_BAD_SHAPE;
    /// a non-empty view at a NULL or misaligned pointer LD_NULL_POINTER / LD_MISALIGNED. Returns
    /// the elements the view spans (to size its buffer), None when it overflows.
    fn input(&mut self, rows: usize, cols: usize, stride: usize, elem: usize, repeat: bool, p: Ptr) -> Option<usize> {
        let repeated = stride == 0 && (repeat || rows <= 1);
        if stride < cols && !repeated {
            self.add(ld_status::LD_BAD_SHAPE);
        }
        self.spanning(span_elems(rows, cols, stride, elem), elem, p)
    }

    /// A contiguous output of `n` elements (NULL: not computed).
    fn output(&mut self, rows: usize, cols: usize, elem: usize, p: Ptr) -> Option<usize> {
        if p == Ptr::Null {
            return Some(0);
        }
        self.spanning(span_elems(rows, cols, cols, elem), elem, p)
    }

    /// A view of `span` elements (None: its size overflows, LD_BAD_SHAPE) at pointer `p`; returns
    /// `span`.
    fn spanning(&mut self, span: Option<usize>, elem: usize, p: Ptr) -> Option<usize> {
        match span {
            None => self.add(ld_status::LD_BAD_SHAPE),
            Some(n) => self.pointer(n, elem, p),
        }
        span
    }

    fn pointer(&mut self, n: usize, elem: usize, p: Ptr) {
        if n > 0 && p == Ptr::Null {
            self.add(ld_status::LD_NULL_POINTER);
        }
        if n > 0 && p == Ptr::Misaligned && elem > 1 {
            self.add(ld_status::LD_MISALIGNED);
        }
    }
}

/// The last error message of this thread.
fn last_message() -> String {
    // SAFETY: ld_last_error_message returns a valid NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(ld_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// A status is one of the faults (LD_OK when there are none); never LD_PANIC; a message after
/// every failure.
fn check_status(status: ld_status, faults: &Faults) -> Result<(), TestCaseError> {
    prop_assert!(status != ld_status::LD_PANIC, "LD_PANIC: {}", last_message());
    if faults.0.is_empty() {
        prop_assert_eq!(status, ld_status::LD_OK, "unexpected failure: {}", last_message());
    } else {
        prop_assert!(
            faults.0.contains(&status),
            "status {:?} for faults {:?}: {}",
            status,
            faults.0,
            last_message()
        );
        prop_assert!(!last_message().is_empty(), "no message after {:?}", status);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the divergence entry points

type PairFn<T> = unsafe extern "C" fn(
    *const T,
    usize,
    *const T,
    usize,
    usize,
    usize,
    *const ld_options,
    *mut T,
    *mut f64,
    *mut T,
    *mut T,
) -> ld_status;

/// Each divergence with its float64 and float32 entry points.
const PAIRS: [(PairKind, PairFn<f64>, PairFn<f32>); 5] = [
    (PairKind::Kl, ld_kl_f64, ld_kl_f32),
    (PairKind::SymKl, ld_sym_kl_f64, ld_sym_kl_f32),
    (PairKind::Js, ld_js_f64, ld_js_f32),
    (PairKind::SigmoidKl, ld_sigmoid_kl_f64, ld_sigmoid_kl_f32),
    (PairKind::SigmoidSymKl, ld_sigmoid_sym_kl_f64, ld_sigmoid_sym_kl_f32),
];

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        10 => -20.0..20.0f64,
        1 => prop::sample::select(vec![f64::NEG_INFINITY, f64::INFINITY, f64::NAN, 1e300, -1e300, 0.0]),
    ]
}

#[derive(Debug, Clone)]
struct PairCase {
    entry: usize,
    d: Dims,
    s: Vec<f64>,
    t: Vec<f64>,
    s_ptr: Ptr,
    t_ptr: Ptr,
    /// None: a NULL options pointer
    options: Option<Opts>,
    values: Ptr,
    result: Ptr,
    grad_s: Ptr,
    grad_t: Ptr,
}

#[derive(Debug, Clone)]
struct Opts {
    temperature: f64,
    beta: f64,
    reduction: u32,
    /// (pointer, stride choice: 0, cols, cols + 1, cols − 1, huge)
    mask: (Ptr, usize),
    mask_bits: Vec<u8>,
    weights: (Ptr, usize),
    weight_values: Vec<f64>,
}

fn opts() -> impl Strategy<Value = Opts> {
    (
        prop_oneof![8 => prop::sample::select(vec![1.0, 0.5, 2.0]), 1 => prop::sample::select(vec![0.0, -1.0, f64::NAN, f64::INFINITY, 5e-324])],
        prop_oneof![8 => prop::sample::select(vec![0.5, 0.0, 1.0, 0.3]), 1 => prop::sample::select(vec![-0.5, 2.0, f64::NAN])],
        prop_oneof![8 => 0u32..4, 1 => Just(4u32), 1 => any::<u32>()],
        (prop_oneof![3 => Just(Ptr::Null), 2 => Just(Ptr::Valid)], 0usize..5),
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 1, 255]), 1..8),
        (prop_oneof![3 => Just(Ptr::Null), 2 => Just(Ptr::Valid), 1 => Just(Ptr::Misaligned)], 0usize..5),
        prop::collection::vec(prop_oneof![8 => prop::sample::select(vec![0.0, 1.0, 2.5]), 1 => prop::sample::select(vec![-1.0, f64::NAN, f64::INFINITY])], 1..8),
    )
        .prop_map(|(temperature, beta, reduction, mask, mask_bits, weights, weight_values)| Opts {
            temperature,
            beta,
            reduction,
            mask,
            mask_bits,
            weights,
            weight_values,
        })
}

fn pair_case() -> impl Strategy<Value = PairCase> {
    (
        0usize..5,
        dims(),
        prop::collection::vec(value(), 1..12),
        prop::collection::vec(value(), 1..12),
        (ptr_choice(), ptr_choice()),
        prop::option::weighted(0.7, opts()),
        (ptr_choice(), ptr_choice(), ptr_choice(), ptr_choice()),
    )
        .prop_map(
            |(entry, d, s, t, (s_ptr, t_ptr), options, (values, result, grad_s, grad_t))| PairCase {
                entry,
                d,
                s,
                t,
                s_ptr,
                t_ptr,
                options,
                values,
                result,
                grad_s,
                grad_t,
            },
        )
}

fn stride_of(choice: usize, cols: usize) -> usize {
    match choice {
        0 => 0,
        1 => cols,
        2 => cols.wrapping_add(1),
        3 => cols.saturating_sub(1),
        _ => usize::MAX / 2,
    }
}

/// Calls entry point `f` (of divergence `kind`) with the case's arguments and checks the outcome.
fn run_pair<T: Elem + Default>(c: &PairCase, kind: PairKind, f: PairFn<T>) -> Result<(), TestCaseError> {
    let d = c.d;
    let elem = std::mem::size_of::<T>();
    let mut faults = Faults::default();
    if d.cols == 0 {
        faults.add(ld_status::LD_BAD_SHAPE);
    }
    // inputs: the buffers are as large as the views need (small: an overflowing view gets none)
    // (an overflowing case is refused at s or t, before the later views are read: those get
    // small buffers rather than a huge allocation)
    let cap = |n: Option<usize>| n.filter(|&n| !d.overflow || n <= 1 << 16).unwrap_or(0);
    let s_len = cap(faults.input(d.rows, d.cols, d.s_stride, elem, false, c.s_ptr));
    let t_len = cap(faults.input(d.rows, d.cols, d.t_stride, elem, false, c.t_ptr));
    let to_t = |x: &[f64]| x.iter().map(|&v| T::from_f64(v)).collect::<Vec<T>>();
    let s_buf = Buf::new(&to_t(&c.s), s_len, T::default());
    let t_buf = Buf::new(&to_t(&c.t), t_len, T::default());

    let mut mask_buf = Buf::new(&[1u8], 0, 1);
    let mut weights_buf = Buf::new(&[1.0f64], 0, 1.0);
    let mut o = ld_options_default();
    if let Some(op) = &c.options {
        o.temperature = op.temperature;
        if kind == PairKind::Js {
            o.beta = op.beta;
        }
        o.reduction = op.reduction;
        let t_ok = op.temperature.is_finite() && op.temperature > 0.0 && (1.0 / op.temperature).is_finite();
        let beta_ok = kind != PairKind::Js || (0.0..=1.0).contains(&op.beta);
        if !t_ok || !beta_ok || op.reduction > 3 {
            faults.add(ld_status::LD_BAD_ARGUMENT);
        }
        if op.mask.0 != Ptr::Null {
            o.mask_stride = stride_of(op.mask.1, d.cols);
            let n = cap(faults.input(d.rows, d.cols, o.mask_stride, 1, true, op.mask.0));
            mask_buf = Buf::new(&op.mask_bits, n, 1);
            o.mask = mask_buf.ptr(op.mask.0);
        }
        if op.weights.0 != Ptr::Null {
            o.weights_stride = stride_of(op.weights.1, d.cols);
            let n = cap(faults.input(d.rows, d.cols, o.weights_stride, 8, true, op.weights.0));
            weights_buf = Buf::new(&op.weight_values, n, 1.0);
            o.weights = weights_buf.ptr(op.weights.0);
            if !matches!(kind, PairKind::SigmoidKl | PairKind::SigmoidSymKl) {
                faults.add(ld_status::LD_BAD_ARGUMENT);
            }
            let read_rows = if o.weights_stride == 0 { d.rows.min(1) } else { d.rows };
            if n > 0
                && !d.overflow
                && (0..read_rows).any(|r| {
                    (0..d.cols).any(|i| {
                        let w = weights_buf.data[r * o.weights_stride + i];
                        !(w.is_finite() && w >= 0.0)
                    })
                })
            {
                faults.add(ld_status::LD_BAD_ARGUMENT);
            }
        }
    }
    // outputs
    let v_len = cap(faults.output(1, d.rows, elem, c.values));
    let g_len = cap(faults.output(d.rows, d.cols, elem, c.grad_s));
    let h_len = cap(faults.output(d.rows, d.cols, elem, c.grad_t));
    faults.output(1, 1, 8, c.result);
    let sentinel = T::from_f64(-7.0);
    let mut v_buf = Buf::new(&[sentinel], v_len, sentinel);
    let mut gs_buf = Buf::new(&[sentinel], g_len, sentinel);
    let mut gt_buf = Buf::new(&[sentinel], h_len, sentinel);
    let mut r_buf = Buf::new(&[-7.0f64], 1, -7.0);
    if d.overflow {
        prop_assert!(!faults.0.is_empty(), "an overflowing case without a fault: {d:?}");
    }
    let opt_ptr: *const ld_options = if c.options.is_some() { &o } else { std::ptr::null() };
    // SAFETY: every non-NULL pointer points into a buffer at least as large as the view its sizes
    // describe (Buf::new above), or the sizes overflow and the call must refuse them unread.
    let status = unsafe {
        f(
            s_buf.ptr(c.s_ptr),
            d.s_stride,
            t_buf.ptr(c.t_ptr),
            d.t_stride,
            d.rows,
            d.cols,
            opt_ptr,
            v_buf.ptr_mut(c.values),
            r_buf.ptr_mut(c.result),
            gs_buf.ptr_mut(c.grad_s),
            gt_buf.ptr_mut(c.grad_t),
        )
    };
    check_status(status, &faults)?;
    if status != ld_status::LD_OK {
        return Ok(());
    }
    // a successful call wrote what the core computes for the same arguments
    let (rows, cols) = (d.rows, d.cols);
    fn view<T>(buf: &Buf<T>, rows: usize, cols: usize, stride: usize) -> Rows<'_, T> {
        if rows == 0 {
            return Rows::new(&[], 0, 0, 0).unwrap();
        }
        Rows::new(
            &buf.data[..span_elems(rows, cols, stride, 1).unwrap()],
            rows,
            cols,
            stride,
        )
        .unwrap()
    }
    let (s, t) = (
        view(&s_buf, rows, cols, d.s_stride),
        view(&t_buf, rows, cols, d.t_stride),
    );
    let mask =
        (!o.mask.is_null() && rows > 0).then(|| Rows::new(&mask_buf.data[..], rows, cols, o.mask_stride).unwrap());
    let weights = (!o.weights.is_null() && rows > 0)
        .then(|| Rows::new(&weights_buf.data[..], rows, cols, o.weights_stride).unwrap());
    let reduction = [Reduction::None, Reduction::Sum, Reduction::Mean, Reduction::BatchMean][o.reduction as usize];
    let opts = PairOptions {
        temperature: o.temperature,
        beta: o.beta,
        mask,
        weights,
        reduction,
        ..PairOptions::default()
    };
    let n = rows * cols;
    let (mut v, mut gs, mut gt) = (vec![sentinel; rows], vec![sentinel; n], vec![sentinel; n]);
    let out = PairOutputs {
        values: (c.values == Ptr::Valid).then_some(&mut v[..]),
        grad_s: (c.grad_s == Ptr::Valid)
            .then(|| RowsMut::contiguous(&mut gs, rows, if n == 0 { 0 } else { cols }).unwrap()),
        grad_t: (c.grad_t == Ptr::Valid)
            .then(|| RowsMut::contiguous(&mut gt, rows, if n == 0 { 0 } else { cols }).unwrap()),
    };
    let reduced = pair_divergence::<T, T>(kind, s, t, &opts, out).unwrap();
    let bits = |x: &[T]| x.iter().map(|e| e.to_f64().to_bits()).collect::<Vec<u64>>();
    if c.values == Ptr::Valid {
        prop_assert_eq!(bits(&v_buf.data[..rows]), bits(&v));
    }
    if c.grad_s == Ptr::Valid {
        prop_assert_eq!(bits(&gs_buf.data[..n]), bits(&gs));
    }
    if c.grad_t == Ptr::Valid {
        prop_assert_eq!(bits(&gt_buf.data[..n]), bits(&gt));
    }
    if c.result == Ptr::Valid {
        prop_assert_eq!(r_buf.data[0].to_bits(), reduced.value.to_bits());
    }
    // nothing beyond the views was written
    prop_assert!(v_buf.data[v_len..].iter().all(|x| x.to_f64() == -7.0));
    prop_assert!(gs_buf.data[g_len..].iter().all(|x| x.to_f64() == -7.0));
    prop_assert!(gt_buf.data[h_len..].iter().all(|x| x.to_f64() == -7.0));
    Ok(())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn divergence_entry_points_f64(c in pair_case()) {
        let (kind, f, _) = PAIRS[c.entry];
        run_pair::<f64>(&c, kind, f)?;
    }

    #[test]
    fn divergence_entry_points_f32(c in pair_case()) {
        let (kind, _, f) = PAIRS[c.entry];
        run_pair::<f32>(&c, kind, f)?;
    }

    #[test]
    fn every_status_has_a_message(code in any::<i32>()) {
        let m = ld_status_message(code);
        prop_assert!(!m.is_null());
        // SAFETY: a non-NULL static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(m) }.to_string_lossy().into_owned();
        prop_assert!(!s.is_empty());
    }
}
