//! `pair_divergence`: the five divergences between two logit matrices.

use logitdiv_core::{PairKind, PairOptions, PairOutputs, Reduction};
use numpy::Element;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::arrays::{elem_rows, elem_rows_mut, readonly, readwrite, readwrite_1d, rows, rows_mut, Stored};
use crate::{core_error, without_gil};

/// Borrowed arguments of one call, before the element type is fixed.
struct Args<'py, 'a> {
    kind: PairKind,
    s: &'a Bound<'py, PyAny>,
    t: &'a Bound<'py, PyAny>,
    mask: Option<&'a Bound<'py, PyAny>>,
    weights: Option<&'a Bound<'py, PyAny>>,
    temperature: f64,
    beta: f64,
    reduction: Reduction,
    values: Option<&'a Bound<'py, PyAny>>,
    grad_s: Option<&'a Bound<'py, PyAny>>,
    grad_t: Option<&'a Bound<'py, PyAny>>,
    softcap: Option<f64>,
}

fn run<S: Stored, V: logitdiv_core::Elem + Element>(py: Python<'_>, a: &Args<'_, '_>) -> PyResult<(f64, usize)> {
    let s_arr = readonly::<S::Raw>("s", a.s)?;
    let t_arr = readonly::<S::Raw>("t", a.t)?;
    let mask_arr = a.mask.map(|m| readonly::<u8>("where", m)).transpose()?;
    let weights_arr = a.weights.map(|w| readonly::<f64>("weights", w)).transpose()?;
    let mut values_arr = a.values.map(|v| readwrite_1d::<V>("out", v)).transpose()?;
    let mut gs_arr = a.grad_s.map(|g| readwrite::<S::Raw>("grad_out", g)).transpose()?;
    let mut gt_arr = a.grad_t.map(|g| readwrite::<S::Raw>("grad_out", g)).transpose()?;

    let s = elem_rows::<S>(rows("s", &s_arr)?);
    let t = elem_rows::<S>(rows("t", &t_arr)?);
    let opts = PairOptions {
        temperature: a.temperature,
        beta: a.beta,
        mask: mask_arr.as_ref().map(|m| rows("where", m)).transpose()?,
        weights: weights_arr.as_ref().map(|w| rows("weights", w)).transpose()?,
        reduction: a.reduction,
        softcap: a.softcap,
    };
    let values = match values_arr.as_mut() {
        Some(v) => Some(v.as_slice_mut().map_err(|_| PyValueError::new_err("out must be C-contiguous and aligned"))?),
        None => None,
    };
    let out = PairOutputs {
        values,
        grad_s: gs_arr.as_mut().map(|g| rows_mut("grad_out", g).map(elem_rows_mut::<S>)).transpose()?,
        grad_t: gt_arr.as_mut().map(|g| rows_mut("grad_out", g).map(elem_rows_mut::<S>)).transpose()?,
    };
    let kind = a.kind;
    let elements = s.rows().saturating_mul(s.cols());
    let r = without_gil(py, elements, move || logitdiv_core::pair_divergence(kind, s, t, &opts, out)).map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Computes divergence `kind` between the rows of `s` and `t` (2-D, same shape). `elem` names the
/// storage type ("f32", "f64", "f16", "bf16"; half types as uint16 bits). Per-row values go to
/// `values` (1-D, float32 or float64), gradients to `grad_s`/`grad_t` (like the inputs); `softcap`
/// caps the logits of the softmax kinds at c · tanh(x / c) first.
/// Returns (reduced value, number of rows that counted).
#[pyfunction]
#[pyo3(signature = (kind, elem, s, t, mask, weights, temperature, beta, reduction, values, grad_s, grad_t, softcap=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pair_divergence<'py>(
    py: Python<'py>,
    kind: &str,
    elem: &str,
    s: &Bound<'py, PyAny>,
    t: &Bound<'py, PyAny>,
    mask: Option<&Bound<'py, PyAny>>,
    weights: Option<&Bound<'py, PyAny>>,
    temperature: f64,
    beta: f64,
    reduction: &str,
    values: Option<&Bound<'py, PyAny>>,
    grad_s: Option<&Bound<'py, PyAny>>,
    grad_t: Option<&Bound<'py, PyAny>>,
    softcap: Option<f64>,
) -> PyResult<(f64, usize)> {
    let args = Args {
        kind: PairKind::parse(kind).map_err(core_error)?,
        s,
        t,
        mask,
        weights,
        temperature,
        beta,
        reduction: Reduction::parse(reduction).map_err(core_error)?,
        values,
        grad_s,
        grad_t,
        softcap,
    };
    match elem {
        "f32" => run::<f32, f32>(py, &args),
        "f64" => run::<f64, f64>(py, &args),
        "f16" => run::<half::f16, f32>(py, &args),
        "bf16" => run::<half::bf16, f32>(py, &args),
        other => Err(PyTypeError::new_err(format!("unsupported element type {other:?}"))),
    }
}
