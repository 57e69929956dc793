//! How the façade calls the core: the one GIL policy, and the core's errors as Python exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The GIL policy of every native function: inputs up to this many elements are computed with
/// the GIL held (a few microseconds of work, where releasing and re-taking the GIL would cost a
/// good part of the call); larger ones release it, so other Python threads run meanwhile. The XLA
/// handler (xla.rs) never holds it.
const KEEP_GIL_ELEMENTS: usize = 4096;

/// Runs `work` with the GIL released, unless the input is tiny (see [`KEEP_GIL_ELEMENTS`]).
pub(crate) fn without_gil<R: Send>(
    py: Python<'_>,
    elements: usize,
    work: impl FnOnce() -> R + Send,
) -> R {
    if elements <= KEEP_GIL_ELEMENTS {
        work()
    } else {
        py.detach(work)
    }
}

pub(crate) fn core_error(e: logitdiv_core::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}
