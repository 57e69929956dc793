//! PyO3 bindings of logitdiv-core: typed arguments (arrays.rs: the logits' dtype picks the
//! kernel's storage type), output borrowing (outputs.rs), error mapping, and the XLA FFI handler of
//! logitdiv.jax (xla.rs). The Python package (python/logitdiv) normalises arguments first (lists,
//! tensors, broadcasting); nothing here holds mathematics, and every rule on values is the core's.

/// `$body` with `$x` bound to the typed array `$logits` holds (one instance per storage type).
macro_rules! each_logits {
    ($logits:expr, |$x:ident| $body:expr) => {
        match $logits {
            $crate::arrays::Logits::F32($x) => $body,
            $crate::arrays::Logits::F64($x) => $body,
            $crate::arrays::Logits::F16($x) => $body,
            $crate::arrays::Logits::Bf16($x) => $body,
        }
    };
}

/// `$body` with `$x`, `$y` bound to two logit arrays of one storage type; TypeError naming both
/// dtypes when they differ (the Python layer converts a mixed pair to the wider type first).
macro_rules! same_logits {
    (($na:expr, $a:expr), ($nb:expr, $b:expr), |$x:ident, $y:ident| $body:expr) => {{
        use $crate::arrays::Logits;
        match ($a, $b) {
            (Logits::F32($x), Logits::F32($y)) => $body,
            (Logits::F64($x), Logits::F64($y)) => $body,
            (Logits::F16($x), Logits::F16($y)) => $body,
            (Logits::Bf16($x), Logits::Bf16($y)) => $body,
            (a, b) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "{} and {} must have the same dtype; got {} and {}",
                $na,
                $nb,
                a.dtype(),
                b.dtype()
            ))),
        }
    }};
}

/// `$body` with `$p` bound to the probability labels as `Option<&Ro2<T>>` for their type `T`
/// (float32 when there are none).
macro_rules! each_probs {
    ($probs:expr, |$p:ident| $body:expr) => {
        match $probs {
            None => {
                let $p: Option<&$crate::arrays::Ro2<'_, f32>> = None;
                $body
            }
            Some($crate::arrays::Probs::F32(a)) => {
                let $p = Some(&a);
                $body
            }
            Some($crate::arrays::Probs::F64(a)) => {
                let $p = Some(&a);
                $body
            }
        }
    };
}


mod arrays;
mod call;
mod divergence;
mod loss;
mod outputs;
mod xla;

use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;

use call::core_error;

/// Sets the number of worker threads (0: `LOGITDIV_NUM_THREADS` or the number of CPUs).
#[pyfunction]
fn set_num_threads(n: &Bound<'_, PyAny>) -> PyResult<()> {
    match n.extract::<usize>() {
        Ok(n) => logitdiv_core::set_num_threads(n).map_err(core_error),
        // beyond a machine word (so beyond the limit too): the core's ValueError for usize::MAX,
        // naming the value as given, so its rule speaks for every too-large value
        Err(e) if e.is_instance_of::<PyOverflowError>(n.py()) && n.gt(0)? => match logitdiv_core::set_num_threads(usize::MAX) {
            Err(limit) => Err(PyValueError::new_err(limit.to_string().replace(&usize::MAX.to_string(), &n.to_string()))),
            Ok(()) => Ok(()),
        },
        // a negative int stays an OverflowError, anything else a TypeError
        Err(e) => Err(e),
    }
}

/// The number of worker threads.
#[pyfunction]
fn get_num_threads() -> usize {
    logitdiv_core::num_threads()
}

/// The SIMD path the kernels run on now ("scalar", "avx2", "avx512" or "neon").
#[pyfunction]
fn simd_path() -> &'static str {
    logitdiv_core::simd::active().name()
}

/// The SIMD paths this CPU and build can run, slowest first (always starting with "scalar").
#[pyfunction]
fn available_simd_paths() -> Vec<&'static str> {
    logitdiv_core::simd::available().into_iter().map(|i| i.name()).collect()
}

/// Forces the SIMD path for every later call (None or "auto": the best available path); for tests
/// and benchmarks. ValueError for an unknown name or a path this CPU lacks.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn set_simd_path(name: Option<&str>) -> PyResult<()> {
    let isa = match name {
        None => None,
        Some(n) => logitdiv_core::simd::Isa::parse(n).map_err(core_error)?,
    };
    logitdiv_core::simd::force(isa).map_err(core_error)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_THREADS", logitdiv_core::check::MAX_THREADS)?;
    // LOGITDIV_SIMD is applied once, here; an invalid value warns and leaves the best path.
    if let Err(e) = logitdiv_core::simd::init_from_env() {
        let py = m.py();
        PyErr::warn(py, &py.get_type::<pyo3::exceptions::PyRuntimeWarning>(), &std::ffi::CString::new(e.to_string()).unwrap_or_default(), 1)?;
    }
    m.add_function(wrap_pyfunction!(simd_path, m)?)?;
    m.add_function(wrap_pyfunction!(available_simd_paths, m)?)?;
    m.add_function(wrap_pyfunction!(set_simd_path, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(divergence::pair_divergence, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::_after_fork_in_child, m)?)?;
    // a forked child releases the borrows the parent's other threads held (see arrays.rs)
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("after_in_child", m.getattr("_after_fork_in_child")?)?;
    m.py().import("os")?.call_method("register_at_fork", (), Some(&kwargs))?;
    m.add_function(wrap_pyfunction!(loss::softmax_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::bce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::multilabel_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::sparse_multilabel_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::globalpointer_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::gamma_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::kd_loss, m)?)?;
    m.add_function(wrap_pyfunction!(loss::rdrop_loss, m)?)?;
    m.add_function(wrap_pyfunction!(xla::xla_handler, m)?)?;
    Ok(())
}
