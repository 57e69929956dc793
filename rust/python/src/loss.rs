//! The losses against labels. Each native function takes typed arguments (the logits' dtype picks
//! the storage type, probability labels theirs), keyword options with the public API's defaults,
//! and calls one generic runner per loss family.

use logitdiv_core::{
    BceOptions, CeExtraOutputs, Elem, GammaOptions, GlobalPointerOptions, GpReduction, KdOptions, Masks,
    MultilabelOptions, Positives, RdropKind, RdropOptions, Reduction, SoftmaxCeOptions, SparseMultilabelOptions,
    Target,
};
use numpy::{Element, Ix1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::arrays::{readwrite, rows, slice, Logits, Named, Probs, Ro1, Ro2, Stored};
use crate::outputs::Outputs;
use crate::call::{core_error, without_gil};

type Out<'py> = Option<Bound<'py, PyAny>>;

/// The class mask (2-D uint8, row stride 0 to repeat one row) and row mask (1-D uint8) of a call.
struct MaskArgs<'py> {
    classes: Option<Ro2<'py, u8>>,
    rows: Option<Ro1<'py, u8>>,
}

impl MaskArgs<'_> {
    fn masks(&self) -> PyResult<Masks<'_>> {
        Ok(Masks {
            classes: self.classes.as_ref().map(|m| rows("class_mask", m)).transpose()?,
            rows: self.rows.as_ref().map(|m| slice("row_mask", m)).transpose()?,
        })
    }
}

/// Softmax labels: class indices or probabilities (of type `T`), at most one of them.
fn target<'a, T: Element>(
    labels: Option<&'a Ro1<'_, i64>>,
    probs: Option<&'a Ro2<'_, T>>,
    ignore_index: i64,
) -> PyResult<Option<Target<'a, T>>> {
    Ok(match (labels, probs) {
        (Some(l), None) => Some(Target::Classes { labels: slice("labels", l)?, ignore_index }),
        (None, Some(p)) => Some(Target::Probs(rows("probs", p)?)),
        (None, None) => None,
        (Some(_), Some(_)) => return Err(PyValueError::new_err("pass class indices or probabilities, not both")),
    })
}

fn elements<E>(logits: &logitdiv_core::Rows<'_, E>) -> usize {
    logits.rows().saturating_mul(logits.cols())
}

// ---------------------------------------------------------------------------------------------
// softmax_ce

struct CeArgs<'a, 'py> {
    labels: Option<&'a Ro1<'py, i64>>,
    ignore_index: i64,
    label_smoothing: f64,
    temperature: f64,
    masks: &'a MaskArgs<'py>,
    reduction: Reduction,
    weight: Option<&'a Ro1<'py, f64>>,
    z_loss: f64,
    softcap: Option<f64>,
    z_out: Option<&'a Bound<'py, PyAny>>,
    correct_out: Option<&'a Bound<'py, PyAny>>,
    accuracy: bool,
}

/// (reduced value, rows that counted, reduced z-term, correct rows, accuracy)
type CeOut = (f64, usize, f64, usize, f64);

fn run_ce<'py, S: Stored, T: Elem + Element>(
    py: Python<'py>,
    logits: &Ro2<'py, S>,
    probs: Option<&Ro2<'py, T>>,
    a: &CeArgs<'_, 'py>,
    outputs: &Outputs<'_, 'py>,
) -> PyResult<CeOut> {
    let mut out = outputs.borrow::<S>()?;
    let mut z_arr = a.z_out.map(|v| readwrite::<S::Value, Ix1>("z_out", v)).transpose()?;
    let mut c_arr = a.correct_out.map(|v| readwrite::<S::Value, Ix1>("correct_out", v)).transpose()?;
    let logits = rows("logits", logits)?;
    let target = target(a.labels, probs, a.ignore_index)?.ok_or_else(|| PyValueError::new_err("a target is required"))?;
    let opts = SoftmaxCeOptions {
        label_smoothing: a.label_smoothing,
        temperature: a.temperature,
        masks: a.masks.masks()?,
        reduction: a.reduction,
        weight: a.weight.map(|w| slice("weight", w)).transpose()?,
        z_loss: a.z_loss,
        softcap: a.softcap,
    };
    let contiguous = |what: &'static str| move |_| PyValueError::new_err(format!("{what} must be C-contiguous and aligned"));
    let extra = CeExtraOutputs {
        z_values: z_arr.as_mut().map(|v| v.as_slice_mut().map_err(contiguous("z_out"))).transpose()?,
        correct: c_arr.as_mut().map(|v| v.as_slice_mut().map_err(contiguous("correct_out"))).transpose()?,
        accuracy: a.accuracy,
    };
    let out = out.views()?;
    let n = elements(&logits);
    let r = without_gil(py, n, move || logitdiv_core::softmax_ce_ext(logits, target, &opts, out, extra)).map_err(core_error)?;
    Ok((r.loss.value, r.loss.counted, r.z_loss, r.correct, r.accuracy))
}

/// Softmax cross-entropy of 2-D `logits` against class indices `labels` (1-D int64) or
/// probabilities `probs` (2-D, float32 or float64), with the options of LLM training: per-class
/// `weight` (1-D float64), the z-loss scale `z_loss`, the logit soft cap `softcap`; per-row outputs
/// `z_out` (the z-term) and `correct_out` (1 where the argmax is the label), and `accuracy` (count
/// the correct rows). Returns (reduced value, rows that counted, reduced z-term, correct rows,
/// accuracy).
#[pyfunction]
#[pyo3(signature = (logits, labels=None, probs=None, ignore_index=-100, label_smoothing=0.0, temperature=1.0, class_mask=None, row_mask=None, reduction=Named(Reduction::None), out=None, grad=None, weight=None, z_loss=0.0, softcap=None, z_out=None, correct_out=None, accuracy=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn softmax_ce<'py>(
    py: Python<'py>,
    logits: Logits<'py>,
    labels: Option<Ro1<'py, i64>>,
    probs: Option<Probs<'py>>,
    ignore_index: i64,
    label_smoothing: f64,
    temperature: f64,
    class_mask: Option<Ro2<'py, u8>>,
    row_mask: Option<Ro1<'py, u8>>,
    reduction: Named<Reduction>,
    out: Out<'py>,
    grad: Out<'py>,
    weight: Option<Ro1<'py, f64>>,
    z_loss: f64,
    softcap: Option<f64>,
    z_out: Out<'py>,
    correct_out: Out<'py>,
    accuracy: bool,
) -> PyResult<CeOut> {
    let masks = MaskArgs { classes: class_mask, rows: row_mask };
    let args = CeArgs {
        labels: labels.as_ref(),
        ignore_index,
        label_smoothing,
        temperature,
        masks: &masks,
        reduction: reduction.0,
        weight: weight.as_ref(),
        z_loss,
        softcap,
        z_out: z_out.as_ref(),
        correct_out: correct_out.as_ref(),
        accuracy,
    };
    let outputs = Outputs { values: out.as_ref(), grads: [grad.as_ref(), None] };
    each_logits!(logits, |x| each_probs!(probs, |p| run_ce(py, &x, p, &args, &outputs)))
}

// ---------------------------------------------------------------------------------------------
// bce and multilabel_ce (dense labels of the logits' shape)

/// Which dense-label loss, with bce's own options.
enum Dense<'a, 'py> {
    Bce { pos_weight: Option<&'a Ro2<'py, f64>>, weights: Option<&'a Ro2<'py, f64>> },
    Multilabel,
}

fn run_dense<'py, S: Stored, T: Elem + Element>(
    py: Python<'py>,
    logits: &Ro2<'py, S>,
    target: &Ro2<'py, T>,
    loss: &Dense<'_, 'py>,
    masks: &MaskArgs<'py>,
    reduction: Reduction,
    outputs: &Outputs<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let mut out = outputs.borrow::<S>()?;
    let (logits, target) = (rows("logits", logits)?, rows("target", target)?);
    let (masks, out, n) = (masks.masks()?, out.views()?, elements(&logits));
    let r = match loss {
        Dense::Multilabel => {
            let opts = MultilabelOptions { masks, reduction };
            without_gil(py, n, move || logitdiv_core::multilabel_ce(logits, target, &opts, out))
        }
        Dense::Bce { pos_weight, weights } => {
            let opts = BceOptions {
                pos_weight: pos_weight.map(|w| rows("pos_weight", w)).transpose()?,
                weights: weights.map(|w| rows("weights", w)).transpose()?,
                masks,
                reduction,
            };
            without_gil(py, n, move || logitdiv_core::bce(logits, target, &opts, out))
        }
    }
    .map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Binary cross-entropy with logits against `target` (2-D, float32 or float64, like the logits),
/// with optional `pos_weight` and `weights` (2-D float64, row stride 0 for a per-class vector).
#[pyfunction]
#[pyo3(signature = (logits, target, *, pos_weight=None, weights=None, class_mask=None, row_mask=None, reduction=Named(Reduction::None), out=None, grad=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn bce<'py>(
    py: Python<'py>,
    logits: Logits<'py>,
    target: Probs<'py>,
    pos_weight: Option<Ro2<'py, f64>>,
    weights: Option<Ro2<'py, f64>>,
    class_mask: Option<Ro2<'py, u8>>,
    row_mask: Option<Ro1<'py, u8>>,
    reduction: Named<Reduction>,
    out: Out<'py>,
    grad: Out<'py>,
) -> PyResult<(f64, usize)> {
    let loss = Dense::Bce { pos_weight: pos_weight.as_ref(), weights: weights.as_ref() };
    dense(py, logits, target, &loss, MaskArgs { classes: class_mask, rows: row_mask }, reduction.0, out, grad)
}

/// Multilabel softmax cross-entropy against dense labels `target` (2-D, float32 or float64).
#[pyfunction]
#[pyo3(signature = (logits, target, *, class_mask=None, row_mask=None, reduction=Named(Reduction::None), out=None, grad=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn multilabel_ce<'py>(
    py: Python<'py>,
    logits: Logits<'py>,
    target: Probs<'py>,
    class_mask: Option<Ro2<'py, u8>>,
    row_mask: Option<Ro1<'py, u8>>,
    reduction: Named<Reduction>,
    out: Out<'py>,
    grad: Out<'py>,
) -> PyResult<(f64, usize)> {
    dense(py, logits, target, &Dense::Multilabel, MaskArgs { classes: class_mask, rows: row_mask }, reduction.0, out, grad)
}

#[allow(clippy::too_many_arguments)]
fn dense<'py>(
    py: Python<'py>,
    logits: Logits<'py>,
    target: Probs<'py>,
    loss: &Dense<'_, 'py>,
    masks: MaskArgs<'py>,
    reduction: Reduction,
    out: Out<'py>,
    grad: Out<'py>,
) -> PyResult<(f64, usize)> {
    let outputs = Outputs { values: out.as_ref(), grads: [grad.as_ref(), None] };
    each_logits!(logits, |x| match &target {
        Probs::F32(t) => run_dense(py, &x, t, loss, &masks, reduction, &outputs),
        Probs::F64(t) => run_dense(py, &x, t, loss, &masks, reduction, &outputs),
    })
}

// ---------------------------------------------------------------------------------------------
// sparse_multilabel_ce and globalpointer_ce (positives as indices)

/// Which positives-as-indices loss, with GlobalPointer's own options.
enum Sparse<'a, 'py> {
    Multilabel { masks: MaskArgs<'py>, reduction: Reduction },
    GlobalPointer { heads: usize, spans: bool, token_mask: Option<&'a Ro2<'py, u8>>, reduction: GpReduction },
}

fn run_sparse<'py, S: Stored>(
    py: Python<'py>,
    logits: &Ro2<'py, S>,
    positives: &Ro2<'py, i64>,
    pad: i64,
    loss: &Sparse<'_, 'py>,
    outputs: &Outputs<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let mut out = outputs.borrow::<S>()?;
    let logits = rows("logits", logits)?;
    let positives = Positives { indices: rows("positives", positives)?, pad };
    let (out, n) = (out.views()?, elements(&logits));
    let r = match loss {
        Sparse::Multilabel { masks, reduction } => {
            let opts = SparseMultilabelOptions { masks: masks.masks()?, reduction: *reduction };
            without_gil(py, n, move || logitdiv_core::sparse_multilabel_ce(logits, positives, &opts, out))
        }
        Sparse::GlobalPointer { heads, spans, token_mask, reduction } => {
            let opts = GlobalPointerOptions {
                heads: *heads,
                token_mask: token_mask.map(|m| rows("mask", m)).transpose()?,
                spans: *spans,
                reduction: *reduction,
            };
            without_gil(py, n, move || logitdiv_core::globalpointer_ce(logits, positives, &opts, out))
        }
    }
    .map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Sparse multilabel softmax cross-entropy: `positives` (2-D int64, K per row, `pad` = padding).
#[pyfunction]
#[pyo3(signature = (logits, positives, *, pad=-1, class_mask=None, row_mask=None, reduction=Named(Reduction::None), out=None, grad=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sparse_multilabel_ce<'py>(
    py: Python<'py>,
    logits: Logits<'py>,
    positives: Ro2<'py, i64>,
    pad: i64,
    class_mask: Option<Ro2<'py, u8>>,
    row_mask: Option<Ro1<'py, u8>>,
    reduction: Named<Reduction>,
    out: Out<'py>,
    grad: Out<'py>,
) -> PyResult<(f64, usize)> {
    let loss = Sparse::Multilabel { masks: MaskArgs { classes: class_mask, rows: row_mask }, reduction: reduction.0 };
    let outputs = Outputs { values: out.as_ref(), grads: [grad.as_ref(), None] };
    each_logits!(logits, |x| run_sparse(py, &x, &positives, pad, &loss, &outputs))
}

/// GlobalPointer loss: `logits` (B·heads rows of L·L), `positives` (B·heads rows of K flat indices,
/// or of 2K (start, end) numbers when `spans`), `mask` (B, L) uint8 or None.
#[pyfunction]
#[pyo3(signature = (logits, positives, *, heads, pad=-1, spans=false, mask=None, reduction=Named(GpReduction::Rows(Reduction::None)), out=None, grad=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn globalpointer_ce<'py>(
    py: Python<'py>,
    logits: Logits<'py>,
    positives: Ro2<'py, i64>,
    heads: usize,
    pad: i64,
    spans: bool,
    mask: Option<Ro2<'py, u8>>,
    reduction: Named<GpReduction>,
    out: Out<'py>,
    grad: Out<'py>,
) -> PyResult<(f64, usize)> {
    let loss = Sparse::GlobalPointer { heads, spans, token_mask: mask.as_ref(), reduction: reduction.0 };
    let outputs = Outputs { values: out.as_ref(), grads: [grad.as_ref(), None] };
    each_logits!(logits, |x| run_sparse(py, &x, &positives, pad, &loss, &outputs))
}

// ---------------------------------------------------------------------------------------------
// gamma_ce

fn run_gamma<'py, S: Stored>(
    py: Python<'py>,
    logits: &Ro2<'py, S>,
    labels: &Ro1<'py, i64>,
    opts: &GammaOptions<'_>,
    outputs: &Outputs<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let mut out = outputs.borrow::<S>()?;
    let (logits, labels) = (rows("logits", logits)?, slice("labels", labels)?);
    let (out, n) = (out.views()?, elements(&logits));
    let r = without_gil(py, n, move || logitdiv_core::gamma_ce(logits, labels, opts, out)).map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// γ-cross-entropy against class indices `labels` (1-D int64).
#[pyfunction]
#[pyo3(signature = (logits, labels, *, gamma, threshold=None, ignore_index=-100, class_mask=None, row_mask=None, reduction=Named(Reduction::None), out=None, grad=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gamma_ce<'py>(
    py: Python<'py>,
    logits: Logits<'py>,
    labels: Ro1<'py, i64>,
    gamma: f64,
    threshold: Option<f64>,
    ignore_index: i64,
    class_mask: Option<Ro2<'py, u8>>,
    row_mask: Option<Ro1<'py, u8>>,
    reduction: Named<Reduction>,
    out: Out<'py>,
    grad: Out<'py>,
) -> PyResult<(f64, usize)> {
    let masks = MaskArgs { classes: class_mask, rows: row_mask };
    let opts = GammaOptions { gamma, threshold, ignore_index, masks: masks.masks()?, reduction: reduction.0 };
    let outputs = Outputs { values: out.as_ref(), grads: [grad.as_ref(), None] };
    each_logits!(logits, |x| run_gamma(py, &x, &labels, &opts, &outputs))
}

// ---------------------------------------------------------------------------------------------
// kd_loss and rdrop_loss (two logit inputs)

/// Which two-input loss, with its own options.
enum Two {
    Kd { temperature: f64, alpha: f64, t2: bool },
    Rdrop { alpha: f64, kind: RdropKind },
}

struct TwoArgs<'a, 'py> {
    loss: Two,
    labels: Option<&'a Ro1<'py, i64>>,
    ignore_index: i64,
    label_smoothing: f64,
    masks: MaskArgs<'py>,
    reduction: Reduction,
}

fn run_two<'py, S: Stored, T: Elem + Element>(
    py: Python<'py>,
    first: &Ro2<'py, S>,
    second: &Ro2<'py, S>,
    probs: Option<&Ro2<'py, T>>,
    a: &TwoArgs<'_, 'py>,
    outputs: &Outputs<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let mut out = outputs.borrow::<S>()?;
    let (first, second) = (rows("first logits", first)?, rows("second logits", second)?);
    let target = target(a.labels, probs, a.ignore_index)?;
    let (masks, out, n) = (a.masks.masks()?, out.views()?, elements(&first));
    let (label_smoothing, reduction) = (a.label_smoothing, a.reduction);
    let r = match a.loss {
        Two::Kd { temperature, alpha, t2 } => {
            let opts = KdOptions { temperature, alpha, t2, label_smoothing, masks, reduction };
            without_gil(py, n, move || logitdiv_core::kd_loss(first, second, target, &opts, out))
        }
        Two::Rdrop { alpha, kind } => {
            let target = target.ok_or_else(|| PyValueError::new_err("rdrop_loss needs a target"))?;
            let opts = RdropOptions { alpha, kind, label_smoothing, masks, reduction };
            without_gil(py, n, move || logitdiv_core::rdrop_loss(first, second, target, &opts, out))
        }
    }
    .map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Distillation loss of `student` against `teacher` (2-D, same shape and dtype) and optional
/// class indices `labels` or probabilities `probs`.
#[pyfunction]
#[pyo3(signature = (student, teacher, *, temperature, alpha, labels=None, probs=None, ignore_index=-100, t2=true, label_smoothing=0.0, class_mask=None, row_mask=None, reduction=Named(Reduction::None), out=None, grad_student=None, grad_teacher=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn kd_loss<'py>(
    py: Python<'py>,
    student: Logits<'py>,
    teacher: Logits<'py>,
    temperature: f64,
    alpha: f64,
    labels: Option<Ro1<'py, i64>>,
    probs: Option<Probs<'py>>,
    ignore_index: i64,
    t2: bool,
    label_smoothing: f64,
    class_mask: Option<Ro2<'py, u8>>,
    row_mask: Option<Ro1<'py, u8>>,
    reduction: Named<Reduction>,
    out: Out<'py>,
    grad_student: Out<'py>,
    grad_teacher: Out<'py>,
) -> PyResult<(f64, usize)> {
    let args = TwoArgs {
        loss: Two::Kd { temperature, alpha, t2 },
        labels: labels.as_ref(),
        ignore_index,
        label_smoothing,
        masks: MaskArgs { classes: class_mask, rows: row_mask },
        reduction: reduction.0,
    };
    let outputs = Outputs { values: out.as_ref(), grads: [grad_student.as_ref(), grad_teacher.as_ref()] };
    same_logits!(("student", student), ("teacher", teacher), |s, t| each_probs!(probs, |p| run_two(
        py, &s, &t, p, &args, &outputs
    )))
}

/// R-Drop loss of `s1`, `s2` (2-D, same shape and dtype) against class indices `labels` or
/// probabilities `probs` (softmax kind), or dense labels given as `probs` (sigmoid kind).
#[pyfunction]
#[pyo3(signature = (kind, s1, s2, *, alpha, labels=None, probs=None, ignore_index=-100, label_smoothing=0.0, class_mask=None, row_mask=None, reduction=Named(Reduction::None), out=None, grad1=None, grad2=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn rdrop_loss<'py>(
    py: Python<'py>,
    kind: Named<RdropKind>,
    s1: Logits<'py>,
    s2: Logits<'py>,
    alpha: f64,
    labels: Option<Ro1<'py, i64>>,
    probs: Option<Probs<'py>>,
    ignore_index: i64,
    label_smoothing: f64,
    class_mask: Option<Ro2<'py, u8>>,
    row_mask: Option<Ro1<'py, u8>>,
    reduction: Named<Reduction>,
    out: Out<'py>,
    grad1: Out<'py>,
    grad2: Out<'py>,
) -> PyResult<(f64, usize)> {
    let args = TwoArgs {
        loss: Two::Rdrop { alpha, kind: kind.0 },
        labels: labels.as_ref(),
        ignore_index,
        label_smoothing,
        masks: MaskArgs { classes: class_mask, rows: row_mask },
        reduction: reduction.0,
    };
    let outputs = Outputs { values: out.as_ref(), grads: [grad1.as_ref(), grad2.as_ref()] };
    same_logits!(("s1", s1), ("s2", s2), |a, b| each_probs!(probs, |p| run_two(py, &a, &b, p, &args, &outputs)))
}
