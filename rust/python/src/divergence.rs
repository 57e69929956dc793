//! `pair_divergence`: the divergences between two logit matrices.

use logitdiv_core::{PairKind, PairOptions, PairOutputs, Reduction};
use pyo3::prelude::*;

use crate::arrays::{rows, Logits, Named, Ro2, Stored};
use crate::outputs::Outputs;
use crate::call::{core_error, without_gil};

/// The options of one call, typed.
struct Options<'a, 'py> {
    kind: PairKind,
    mask: Option<&'a Ro2<'py, u8>>,
    weights: Option<&'a Ro2<'py, f64>>,
    temperature: f64,
    beta: f64,
    reduction: Reduction,
    softcap: Option<f64>,
}

fn run<'py, S: Stored>(
    py: Python<'py>,
    s: &Ro2<'py, S>,
    t: &Ro2<'py, S>,
    o: &Options<'_, 'py>,
    outputs: &Outputs<'_, 'py>,
) -> PyResult<(f64, usize)> {
    let mut out = outputs.borrow::<S>()?;
    let (s, t) = (rows("s", s)?, rows("t", t)?);
    let opts = PairOptions {
        temperature: o.temperature,
        beta: o.beta,
        mask: o.mask.map(|m| rows("mask", m)).transpose()?,
        weights: o.weights.map(|w| rows("weights", w)).transpose()?,
        reduction: o.reduction,
        softcap: o.softcap,
    };
    let out = out.views()?;
    let out = PairOutputs { values: out.values, grad_s: out.grad, grad_t: out.grad_second };
    let (kind, elements) = (o.kind, s.rows().saturating_mul(s.cols()));
    let r = without_gil(py, elements, move || logitdiv_core::pair_divergence(kind, s, t, &opts, out)).map_err(core_error)?;
    Ok((r.value, r.counted))
}

/// Divergence `kind` ("kl", "sym_kl", "js", "tv", "sigmoid_kl", "sigmoid_sym_kl") between the rows
/// of `s` and `t` (2-D, one dtype: float16, bfloat16, float32 or float64). `mask` (2-D uint8, row
/// stride 0 to repeat one row) keeps the classes where it is non-zero; `weights` (2-D float64)
/// weighs the sigmoid kinds' classes; `softcap` caps the softmax kinds' logits at c · tanh(x / c).
/// Per-row values go to `out` (1-D, float64 for float64 logits, else float32), gradients to
/// `grad_s`/`grad_t` (like the logits). Returns (reduced value, number of rows that counted).
#[pyfunction]
#[pyo3(signature = (kind, s, t, mask=None, weights=None, temperature=1.0, beta=0.5, reduction=Named(Reduction::None), softcap=None, out=None, grad_s=None, grad_t=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pair_divergence<'py>(
    py: Python<'py>,
    kind: Named<PairKind>,
    s: Logits<'py>,
    t: Logits<'py>,
    mask: Option<Ro2<'py, u8>>,
    weights: Option<Ro2<'py, f64>>,
    temperature: f64,
    beta: f64,
    reduction: Named<Reduction>,
    softcap: Option<f64>,
    out: Option<Bound<'py, PyAny>>,
    grad_s: Option<Bound<'py, PyAny>>,
    grad_t: Option<Bound<'py, PyAny>>,
) -> PyResult<(f64, usize)> {
    let o = Options {
        kind: kind.0,
        mask: mask.as_ref(),
        weights: weights.as_ref(),
        temperature,
        beta,
        reduction: reduction.0,
        softcap,
    };
    let outputs = Outputs { values: out.as_ref(), grads: [grad_s.as_ref(), grad_t.as_ref()] };
    same_logits!(("s", s), ("t", t), |s, t| run(py, &s, &t, &o, &outputs))
}
