//! PyO3 bindings of logitdiv-core: array borrowing, dtype dispatch and error mapping. The Python
//! package (python/logitdiv) checks and normalises arguments first; nothing here holds mathematics.

mod arrays;
mod divergence;
mod loss;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub(crate) fn core_error(e: logitdiv_core::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Sets the number of worker threads (0: `LOGITDIV_NUM_THREADS` or the number of CPUs).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    logitdiv_core::set_num_threads(n).map_err(core_error)
}

/// The number of worker threads.
#[pyfunction]
fn get_num_threads() -> usize {
    logitdiv_core::num_threads()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(divergence::pair_divergence, m)?)?;
    m.add_function(wrap_pyfunction!(loss::softmax_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::bce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::multilabel_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::sparse_multilabel_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::globalpointer_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::gamma_ce, m)?)?;
    m.add_function(wrap_pyfunction!(loss::kd_loss, m)?)?;
    m.add_function(wrap_pyfunction!(loss::rdrop_loss, m)?)?;
    Ok(())
}
