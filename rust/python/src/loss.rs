//! The losses against labels: array borrowing and dtype dispatch over the logits' storage type
//! (f32, f64, f16, bf16 as uint16 bits) and the probability labels' type (f32, f64).

use logitdiv_core::{
    BceOptions, CeExtraOutputs, Elem, GammaOptions, GlobalPointerOptions, GpReduction, KdOptions, LossOutputs, Masks,
    MultilabelOptions, Positives, RdropKind, RdropOptions, Reduction, SoftmaxCeOptions, SparseMultilabelOptions,
    Target,
};
use numpy::Element;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::arrays::{
    elem_rows, elem_rows_mut, readonly, readonly_1d, readwrite, readwrite_1d, rows, rows_mut, slice, Ro1, Ro2, Rw1, Rw2,
    Stored,
};
use crate::{core_error, without_gil};

type Any<'a, 'py> = Option<&'a Bound<'py, PyAny>>;

/// Output buffers of one call: per-row values and up to two gradients.
struct Outs<'py, S: Stored, V: Element> {
    values: Option<Rw1<'py, V>>,
    grads: [Option<Rw2<'py, S::Raw>>; 2],
}

impl<'py, S: Stored, V: Element + Elem> Outs<'py, S, V> {
    fn borrow(values: Any<'_, 'py>, g0: Any<'_, 'py>, g1: Any<'_, 'py>) -> PyResult<Self> {
        Ok(Outs {
            values: values.map(|v| readwrite_1d::<V>("out", v)).transpose()?,
            grads: [
                g0.map(|g| readwrite::<S::Raw>("grad_out", g)).transpose()?,
                g1.map(|g| readwrite::<S::Raw>("grad_out", g)).transpose()?,
            ],
        })
    }

    fn outputs(&mut self) -> PyResult<LossOutputs<'_, S, V>> {
        let values = match self.values.as_mut() {
            Some(v) => Some(v.as_slice_mut().map_err(|_| PyValueError::new_err("out must be C-contiguous and aligned"))?),
            None => None,
        };
        let [g0, g1] = &mut self.grads;
        Ok(LossOutputs {
            values,
            grad: g0.as_mut().map(|g| rows_mut("grad_out", g).map(elem_rows_mut::<S>)).transpose()?,
            grad_second: g1.as_mut().map(|g| rows_mut("grad_out", g).map(elem_rows_mut::<S>)).transpose()?,
        })
    }
}

/// The class mask (2-D uint8) and row mask (1-D uint8) of one call.
struct MaskArrays<'py> {
    classes: Option<Ro2<'py, u8>>,
    rows: Option<Ro1<'py, u8>>,
}

impl<'py> MaskArrays<'py> {
    fn borrow(classes: Any<'_, 'py>, rows: Any<'_, 'py>) -> PyResult<Self> {
        Ok(MaskArrays {
            classes: classes.map(|m| readonly::<u8>("where", m)).transpose()?,
            rows: rows.map(|m| readonly_1d::<u8>("where", m)).transpose()?,
        })
    }

    fn masks(&self) -> PyResult<Masks<'_>> {
        Ok(Masks {
            classes: self.classes.as_ref().map(|m| rows("where", m)).transpose()?,
            rows: self.rows.as_ref().map(|m| slice("where", m)).transpose()?,
        })
    }
}

/// Softmax labels: class indices (1-D int64) or probabilities (2-D, f32 or f64).
struct TargetArrays<'py, T: Element> {
    labels: Option<Ro1<'py, i64>>,
    probs: Option<Ro2<'py, T>>,
    ignore_index: i64,
}

impl<'py, T: Element + Elem> TargetArrays<'py, T> {
    fn borrow(labels: Any<'_, 'py>, probs: Any<'_, 'py>, ignore_index: i64) -> PyResult<Self> {
        Ok(TargetArrays {
            labels: labels.map(|l| readonly_1d::<i64>("target", l)).transpose()?,
            probs: probs.map(|p| readonly::<T>("target", p)).transpose()?,
            ignore_index,
        })
    }

    fn target(&self) -> PyResult<Option<Target<'_, T>>> {
        Ok(match (&self.labels, &self.probs) {
            (Some(l), None) => Some(Target::Classes { labels: slice("target", l)?, ignore_index: self.ignore_index }),
            (None, Some(p)) => Some(Target::Probs(rows("target", p)?)),
            (None, None) => None,
            (Some(_), Some(_)) => return Err(PyValueError::new_err("pass class indices or probabilities, not both")),
        })
    }
}

fn reduction(name: &str) -> PyResult<Reduction> {
    Reduction::parse(name).map_err(core_error)
}

/// Calls `$run::<E, T, V>(py, args)` for the logits' element type `$elem` and, with `$telem`, the
/// probability labels' type.
macro_rules! dispatch {
    ($run:ident, $py:expr, $args:expr, $elem:expr) => {
        match $elem {
            "f32" => $run::<f32, f32>($py, $args),
            "f64" => $run::<f64, f64>($py, $args),
            "f16" => $run::<half::f16, f32>($py, $args),
            "bf16" => $run::<half::bf16, f32>($py, $args),
            other => Err(PyTypeError::new_err(format!("unsupported element type {other:?}"))),
        }
    };
    ($run:ident, $py:expr, $args:expr, $elem:expr, $telem:expr) => {
        match ($elem, $telem) {
            ("f32", "f32") => $run::<f32, f32, f32>($py, $args),
            ("f32", "f64") => $run::<f32, f64, f32>($py, $args),
            ("f64", "f32") => $run::<f64, f32, f64>($py, $args),
            ("f64", "f64") => $run::<f64, f64, f64>($py, $args),
            ("f16", "f32") => $run::<half::f16, f32, f32>($py, $args),
            ("f16", "f64") => $run::<half::f16, f64, f32>($py, $args),
            ("bf16", "f32") => $run::<half::bf16, f32, f32>($py, $args),
            ("bf16", "f64") => $run::<half::bf16, f64, f32>($py, $args),
            (e, t) => Err(PyTypeError::new_err(format!("unsupported element types {e:?}, {t:?}"))),
        }
    };
}

// ---------------------------------------------------------------------------------------------
// softmax_ce

struct CeArgs<'a, 'py> {
    logits: &'a Bound<'py, PyAny>,
    labels: Any<'a, 'py>,
    probs: Any<'a, 'py>,
    ignore_index: i64,
    label_smoothing: f64,
    temperature: f64,
    class_mask: Any<'a, 'py>,
    row_mask: Any<'a, 'py>,
    reduction: Reduction,
    values: Any<'a, 'py>,
    grad: Any<'a, 'py>,
    weight: Any<'a, 'py>,
    z_loss: f64,
    softcap: Option<f64>,
    z_values: Any<'a, 'py>,
    correct: Any<'a, 'py>,
    accuracy: bool,
}

/// (reduced value, rows that counted, reduced z-term, correct rows, accuracy)
type CeOut = (f64, usize, f64, usize, f64);

fn run_ce<S: Stored, T: Stored<Raw = T> + Element, V: Elem + Element>(
    py: Python<'_>,
    a: &CeArgs<'_, '_>,
) -> PyResult<CeOut> {
    let logits_arr = readonly::<S::Raw>("logits", a.logits)?;
    let target_arr = TargetArrays::<T>::borrow(a.labels, a.probs, a.ignore_index)?;
    let mask_arr = MaskArrays::borrow(a.class_mask, a.row_mask)?;
    let weight_arr = a.weight.map(|w| readonly_1d::<f64>("weight", w)).transpose()?;
    let mut outs = Outs::<S, V>::borrow(a.values, a.grad, None)?;
    let mut z_arr = a.z_values.map(|v| readwrite_1d::<V>("z_out", v)).transpose()?;
    let mut c_arr = a.correct.map(|v| readwrite_1d::<V>("accuracy_out", v)).transpose()?;
    let logits = elem_rows::<S>(rows("logits", &logits_arr)?);
    let target = target_arr.target()?.ok_or_else(|| PyValueError::new_err("a target is required"))?;
    let opts = SoftmaxCeOptions {
        label_smoothing: a.label_smoothing,
        temperature: a.temperature,
        masks: mask_arr.masks()?,
        reduction: a.reduction,
        weight: weight_arr.as_ref().map(|w| slice("weight", w)).transpose()?,
        z_loss: a.z_loss,
        softcap: a.softcap,
    };
    let contiguous = |what: &'static str| move |_| PyValueError::new_err(format!("{what} must be C-contiguous and aligned"));
    let extra = CeExtraOutputs {
        z_values: z_arr.as_mut().map(|v| v.as_slice_mut().map_err(contiguous("z_out"))).transpose()?,
        correct: c_arr.as_mut().map(|v| v.as_slice_mut().map_err(contiguous("accuracy_out"))).transpose()?,
        accuracy: a.accuracy,
    };
    let out = outs.outputs()?;
    let r = without_gil(py, logits.rows().saturating_mul(logits.cols()), move || logitdiv_core::softmax_ce_ext(logits, target, &opts, out, extra)).map_err(core_error)?;
    Ok((r.loss.value, r.loss.counted, r.z_loss, r.correct, r.accuracy))
}

/// Softmax cross-entropy of 2-D `logits` against class indices `labels` (1-D int64) or
/// probabilities `probs` (2-D, `telem`). Returns (reduced value, rows that counted).
#[pyfunction]
#[pyo3(signature = (elem, telem, logits, labels, probs, ignore_index, label_smoothing, temperature, class_mask, row_mask, reduction, values, grad))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn softmax_ce<'py>(
    py: Python<'py>,
    elem: &str,
    telem: &str,
    logits: &Bound<'py, PyAny>,
    labels: Any<'_, 'py>,
    probs: Any<'_, 'py>,
    ignore_index: i64,
    label_smoothing: f64,
    temperature: f64,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let r = softmax_ce_ext(
        py, elem, telem, logits, labels, probs, ignore_index, label_smoothing, temperature, class_mask, row_mask,
        reduction, values, grad, None, 0.0, None, None, None, false,
    )?;
    Ok((r.0, r.1))
}

/// `softmax_ce` with the options of LLM training: per-class `weight` (1-D float64, one per class),
/// the z-loss scale `z_loss`, the logit soft cap `softcap`; per-row outputs `z_values` (the
/// z-term) and `correct` (1 where the argmax is the label), and `accuracy` (count the correct
/// rows). Returns (reduced value, rows that counted, reduced z-term, correct rows, accuracy).
#[pyfunction]
#[pyo3(signature = (elem, telem, logits, labels, probs, ignore_index, label_smoothing, temperature, class_mask, row_mask, reduction, values, grad, weight, z_loss, softcap, z_values, correct, accuracy))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn softmax_ce_ext<'py>(
    py: Python<'py>,
    elem: &str,
    telem: &str,
    logits: &Bound<'py, PyAny>,
    labels: Any<'_, 'py>,
    probs: Any<'_, 'py>,
    ignore_index: i64,
    label_smoothing: f64,
    temperature: f64,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad: Any<'_, 'py>,
    weight: Any<'_, 'py>,
    z_loss: f64,
    softcap: Option<f64>,
    z_values: Any<'_, 'py>,
    correct: Any<'_, 'py>,
    accuracy: bool,
) -> PyResult<CeOut> {
    let args = CeArgs {
        logits,
        labels,
        probs,
        ignore_index,
        label_smoothing,
        temperature,
        class_mask,
        row_mask,
        reduction: self::reduction(reduction)?,
        values,
        grad,
        weight,
        z_loss,
        softcap,
        z_values,
        correct,
        accuracy,
    };
    dispatch!(run_ce, py, &args, elem, telem)
}

// ---------------------------------------------------------------------------------------------
// bce and multilabel_ce (dense labels of the logits' shape)

struct DenseArgs<'a, 'py> {
    logits: &'a Bound<'py, PyAny>,
    target: &'a Bound<'py, PyAny>,
    /// bce only
    pos_weight: Any<'a, 'py>,
    weights: Any<'a, 'py>,
    class_mask: Any<'a, 'py>,
    row_mask: Any<'a, 'py>,
    reduction: Reduction,
    values: Any<'a, 'py>,
    grad: Any<'a, 'py>,
    multilabel: bool,
}

fn run_dense<S: Stored, T: Stored<Raw = T> + Element, V: Elem + Element>(
    py: Python<'_>,
    a: &DenseArgs<'_, '_>,
) -> PyResult<(f64, usize)> {
    let logits_arr = readonly::<S::Raw>("logits", a.logits)?;
    let target_arr = readonly::<T>("target", a.target)?;
    let pw_arr = a.pos_weight.map(|w| readonly::<f64>("pos_weight", w)).transpose()?;
    let w_arr = a.weights.map(|w| readonly::<f64>("weights", w)).transpose()?;
    let mask_arr = MaskArrays::borrow(a.class_mask, a.row_mask)?;
    let mut outs = Outs::<S, V>::borrow(a.values, a.grad, None)?;
    let logits = elem_rows::<S>(rows("logits", &logits_arr)?);
    let target = rows("target", &target_arr)?;
    let masks = mask_arr.masks()?;
    let out = outs.outputs()?;
    let r = if a.multilabel {
        let opts = MultilabelOptions { masks, reduction: a.reduction };
        without_gil(py, logits.rows().saturating_mul(logits.cols()), move || logitdiv_core::multilabel_ce(logits, target, &opts, out))
    } else {
        let opts = BceOptions {
            pos_weight: pw_arr.as_ref().map(|w| rows("pos_weight", w)).transpose()?,
            weights: w_arr.as_ref().map(|w| rows("weights", w)).transpose()?,
            masks,
            reduction: a.reduction,
        };
        without_gil(py, logits.rows().saturating_mul(logits.cols()), move || logitdiv_core::bce(logits, target, &opts, out))
    }
    .map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Binary cross-entropy with logits against `target` (2-D, `telem`, like the logits), with
/// optional `pos_weight` and `weights` (2-D float64, row stride 0 for a per-class vector).
#[pyfunction]
#[pyo3(signature = (elem, telem, logits, target, pos_weight, weights, class_mask, row_mask, reduction, values, grad))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn bce<'py>(
    py: Python<'py>,
    elem: &str,
    telem: &str,
    logits: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    pos_weight: Any<'_, 'py>,
    weights: Any<'_, 'py>,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let args = DenseArgs {
        logits,
        target,
        pos_weight,
        weights,
        class_mask,
        row_mask,
        reduction: self::reduction(reduction)?,
        values,
        grad,
        multilabel: false,
    };
    dispatch!(run_dense, py, &args, elem, telem)
}

/// Multilabel softmax cross-entropy against dense labels `target` (2-D, `telem`, like the logits).
#[pyfunction]
#[pyo3(signature = (elem, telem, logits, target, class_mask, row_mask, reduction, values, grad))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn multilabel_ce<'py>(
    py: Python<'py>,
    elem: &str,
    telem: &str,
    logits: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let args = DenseArgs {
        logits,
        target,
        pos_weight: None,
        weights: None,
        class_mask,
        row_mask,
        reduction: self::reduction(reduction)?,
        values,
        grad,
        multilabel: true,
    };
    dispatch!(run_dense, py, &args, elem, telem)
}

// ---------------------------------------------------------------------------------------------
// sparse_multilabel_ce and globalpointer_ce (positives as indices)

struct SparseArgs<'a, 'py> {
    logits: &'a Bound<'py, PyAny>,
    positives: &'a Bound<'py, PyAny>,
    pad: i64,
    class_mask: Any<'a, 'py>,
    row_mask: Any<'a, 'py>,
    /// GlobalPointer: (heads, spans, token mask, reduction)
    gp: Option<(usize, bool, Any<'a, 'py>, GpReduction)>,
    reduction: Reduction,
    values: Any<'a, 'py>,
    grad: Any<'a, 'py>,
}

fn run_sparse<S: Stored, V: Elem + Element>(py: Python<'_>, a: &SparseArgs<'_, '_>) -> PyResult<(f64, usize)> {
    let logits_arr = readonly::<S::Raw>("logits", a.logits)?;
    let pos_arr = readonly::<i64>("positives", a.positives)?;
    let mask_arr = MaskArrays::borrow(a.class_mask, a.row_mask)?;
    let token_arr = a.gp.and_then(|g| g.2).map(|m| readonly::<u8>("mask", m)).transpose()?;
    let mut outs = Outs::<S, V>::borrow(a.values, a.grad, None)?;
    let logits = elem_rows::<S>(rows("logits", &logits_arr)?);
    let positives = Positives { indices: rows("positives", &pos_arr)?, pad: a.pad };
    let masks = mask_arr.masks()?;
    let out = outs.outputs()?;
    let r = match a.gp {
        None => {
            let opts = SparseMultilabelOptions { masks, reduction: a.reduction };
            without_gil(py, logits.rows().saturating_mul(logits.cols()), move || logitdiv_core::sparse_multilabel_ce(logits, positives, &opts, out))
        }
        Some((heads, spans, _, reduction)) => {
            let opts = GlobalPointerOptions {
                heads,
                token_mask: token_arr.as_ref().map(|m| rows("mask", m)).transpose()?,
                spans,
                reduction,
            };
            without_gil(py, logits.rows().saturating_mul(logits.cols()), move || logitdiv_core::globalpointer_ce(logits, positives, &opts, out))
        }
    }
    .map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Sparse multilabel softmax cross-entropy: `positives` (2-D int64, K per row, `pad` = padding).
#[pyfunction]
#[pyo3(signature = (elem, logits, positives, pad, class_mask, row_mask, reduction, values, grad))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn sparse_multilabel_ce<'py>(
    py: Python<'py>,
    elem: &str,
    logits: &Bound<'py, PyAny>,
    positives: &Bound<'py, PyAny>,
    pad: i64,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let args = SparseArgs {
        logits,
        positives,
        pad,
        class_mask,
        row_mask,
        gp: None,
        reduction: self::reduction(reduction)?,
        values,
        grad,
    };
    dispatch!(run_sparse, py, &args, elem)
}

/// GlobalPointer loss: `logits` (B·heads rows of L·L), `positives` (B·heads rows of K flat indices,
/// or of 2K (start, end) numbers when `spans`), `mask` (B, L) uint8 or None.
#[pyfunction]
#[pyo3(signature = (elem, logits, positives, pad, heads, spans, mask, reduction, values, grad))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn globalpointer_ce<'py>(
    py: Python<'py>,
    elem: &str,
    logits: &Bound<'py, PyAny>,
    positives: &Bound<'py, PyAny>,
    pad: i64,
    heads: usize,
    spans: bool,
    mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let args = SparseArgs {
        logits,
        positives,
        pad,
        class_mask: None,
        row_mask: None,
        gp: Some((heads, spans, mask, GpReduction::parse(reduction).map_err(core_error)?)),
        reduction: Reduction::None,
        values,
        grad,
    };
    dispatch!(run_sparse, py, &args, elem)
}

// ---------------------------------------------------------------------------------------------
// gamma_ce

struct GammaArgs<'a, 'py> {
    logits: &'a Bound<'py, PyAny>,
    labels: &'a Bound<'py, PyAny>,
    opts: (i64, f64, Option<f64>),
    class_mask: Any<'a, 'py>,
    row_mask: Any<'a, 'py>,
    reduction: Reduction,
    values: Any<'a, 'py>,
    grad: Any<'a, 'py>,
}

fn run_gamma<S: Stored, V: Elem + Element>(py: Python<'_>, a: &GammaArgs<'_, '_>) -> PyResult<(f64, usize)> {
    let logits_arr = readonly::<S::Raw>("logits", a.logits)?;
    let labels_arr = readonly_1d::<i64>("target", a.labels)?;
    let mask_arr = MaskArrays::borrow(a.class_mask, a.row_mask)?;
    let mut outs = Outs::<S, V>::borrow(a.values, a.grad, None)?;
    let logits = elem_rows::<S>(rows("logits", &logits_arr)?);
    let labels = slice("target", &labels_arr)?;
    let (ignore_index, gamma, threshold) = a.opts;
    let opts = GammaOptions { gamma, threshold, ignore_index, masks: mask_arr.masks()?, reduction: a.reduction };
    let out = outs.outputs()?;
    let r = without_gil(py, logits.rows().saturating_mul(logits.cols()), move || logitdiv_core::gamma_ce(logits, labels, &opts, out)).map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// γ-cross-entropy against class indices `labels` (1-D int64).
#[pyfunction]
#[pyo3(signature = (elem, logits, labels, ignore_index, gamma, threshold, class_mask, row_mask, reduction, values, grad))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gamma_ce<'py>(
    py: Python<'py>,
    elem: &str,
    logits: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    ignore_index: i64,
    gamma: f64,
    threshold: Option<f64>,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let args = GammaArgs {
        logits,
        labels,
        opts: (ignore_index, gamma, threshold),
        class_mask,
        row_mask,
        reduction: self::reduction(reduction)?,
        values,
        grad,
    };
    dispatch!(run_gamma, py, &args, elem)
}

// ---------------------------------------------------------------------------------------------
// kd_loss and rdrop_loss (two logit inputs)

struct PairArgs<'a, 'py> {
    first: &'a Bound<'py, PyAny>,
    second: &'a Bound<'py, PyAny>,
    labels: Any<'a, 'py>,
    probs: Any<'a, 'py>,
    ignore_index: i64,
    /// (temperature, alpha, t2) for kd_loss; None for rdrop_loss
    kd: Option<(f64, f64, bool)>,
    /// (alpha, kind) for rdrop_loss
    rdrop: Option<(f64, RdropKind)>,
    label_smoothing: f64,
    class_mask: Any<'a, 'py>,
    row_mask: Any<'a, 'py>,
    reduction: Reduction,
    values: Any<'a, 'py>,
    grads: [Any<'a, 'py>; 2],
}

fn run_pair<S: Stored, T: Stored<Raw = T> + Element, V: Elem + Element>(
    py: Python<'_>,
    a: &PairArgs<'_, '_>,
) -> PyResult<(f64, usize)> {
    let first_arr = readonly::<S::Raw>("logits", a.first)?;
    let second_arr = readonly::<S::Raw>("logits", a.second)?;
    let target_arr = TargetArrays::<T>::borrow(a.labels, a.probs, a.ignore_index)?;
    let mask_arr = MaskArrays::borrow(a.class_mask, a.row_mask)?;
    let mut outs = Outs::<S, V>::borrow(a.values, a.grads[0], a.grads[1])?;
    let first = elem_rows::<S>(rows("logits", &first_arr)?);
    let second = elem_rows::<S>(rows("logits", &second_arr)?);
    let target = target_arr.target()?;
    let masks = mask_arr.masks()?;
    let out = outs.outputs()?;
    let r = match (a.kd, a.rdrop) {
        (Some((temperature, alpha, t2)), _) => {
            let opts =
                KdOptions { temperature, alpha, t2, label_smoothing: a.label_smoothing, masks, reduction: a.reduction };
            without_gil(py, first.rows().saturating_mul(first.cols()), move || logitdiv_core::kd_loss(first, second, target, &opts, out))
        }
        (None, Some((alpha, kind))) => {
            let target = target.ok_or_else(|| PyValueError::new_err("rdrop_loss needs a target"))?;
            let opts = RdropOptions { alpha, kind, label_smoothing: a.label_smoothing, masks, reduction: a.reduction };
            without_gil(py, first.rows().saturating_mul(first.cols()), move || logitdiv_core::rdrop_loss(first, second, target, &opts, out))
        }
        (None, None) => unreachable!("every caller names its loss"),
    }
    .map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Distillation loss of `student` against `teacher` (2-D, same shape) and optional labels.
#[pyfunction]
#[pyo3(signature = (elem, telem, student, teacher, labels, probs, ignore_index, temperature, alpha, t2, label_smoothing, class_mask, row_mask, reduction, values, grad_student, grad_teacher))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn kd_loss<'py>(
    py: Python<'py>,
    elem: &str,
    telem: &str,
    student: &Bound<'py, PyAny>,
    teacher: &Bound<'py, PyAny>,
    labels: Any<'_, 'py>,
    probs: Any<'_, 'py>,
    ignore_index: i64,
    temperature: f64,
    alpha: f64,
    t2: bool,
    label_smoothing: f64,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad_student: Any<'_, 'py>,
    grad_teacher: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let args = PairArgs {
        first: student,
        second: teacher,
        labels,
        probs,
        ignore_index,
        kd: Some((temperature, alpha, t2)),
        rdrop: None,
        label_smoothing,
        class_mask,
        row_mask,
        reduction: self::reduction(reduction)?,
        values,
        grads: [grad_student, grad_teacher],
    };
    dispatch!(run_pair, py, &args, elem, telem)
}

/// R-Drop loss of `s1`, `s2` (2-D, same shape) against class indices or probabilities
/// (softmax kind) or dense labels passed as `probs` (sigmoid kind).
#[pyfunction]
#[pyo3(signature = (elem, telem, kind, s1, s2, labels, probs, ignore_index, alpha, label_smoothing, class_mask, row_mask, reduction, values, grad1, grad2))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn rdrop_loss<'py>(
    py: Python<'py>,
    elem: &str,
    telem: &str,
    kind: &str,
    s1: &Bound<'py, PyAny>,
    s2: &Bound<'py, PyAny>,
    labels: Any<'_, 'py>,
    probs: Any<'_, 'py>,
    ignore_index: i64,
    alpha: f64,
    label_smoothing: f64,
    class_mask: Any<'_, 'py>,
    row_mask: Any<'_, 'py>,
    reduction: &str,
    values: Any<'_, 'py>,
    grad1: Any<'_, 'py>,
    grad2: Any<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let args = PairArgs {
        first: s1,
        second: s2,
        labels,
        probs,
        ignore_index,
        kd: None,
        rdrop: Some((alpha, RdropKind::parse(kind).map_err(core_error)?)),
        label_smoothing,
        class_mask,
        row_mask,
        reduction: self::reduction(reduction)?,
        values,
        grads: [grad1, grad2],
    };
    dispatch!(run_pair, py, &args, elem, telem)
}
