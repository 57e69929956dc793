//! The output arrays of one call, borrowed for writing once the logits' storage type is known:
//! per-row values (1-D, the type's value type) and up to two gradients (2-D, like the logits).

use logitdiv_core::LossOutputs;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::arrays::{readwrite, rows_mut, Rw1, Rw2, Stored};

/// Where a call writes, as given (any object; checked when borrowed).
pub(crate) struct Outputs<'a, 'py> {
    pub values: Option<&'a Bound<'py, PyAny>>,
    pub grads: [Option<&'a Bound<'py, PyAny>>; 2],
}

/// The output arrays, borrowed for writing.
pub(crate) struct OutputArrays<'py, S: Stored> {
    values: Option<Rw1<'py, S::Value>>,
    grads: [Option<Rw2<'py, S>>; 2],
}

impl<'py> Outputs<'_, 'py> {
    /// Borrows the outputs for logits of type `S`: TypeError for another dtype, ValueError for an
    /// output that aliases an input.
    pub(crate) fn borrow<S: Stored>(&self) -> PyResult<OutputArrays<'py, S>> {
        let [g0, g1] = self.grads;
        Ok(OutputArrays {
            values: self.values.map(|v| readwrite("out", v)).transpose()?,
            grads: [
                g0.map(|g| readwrite("grad_out", g)).transpose()?,
                g1.map(|g| readwrite("grad_out", g)).transpose()?,
            ],
        })
    }
}

impl<S: Stored> OutputArrays<'_, S> {
    /// The core's view of the outputs.
    pub(crate) fn views(&mut self) -> PyResult<LossOutputs<'_, S, S::Value>> {
        let values = match self.values.as_mut() {
            Some(v) => Some(v.as_slice_mut().map_err(|_| PyValueError::new_err("out must be C-contiguous and aligned"))?),
            None => None,
        };
        let [g0, g1] = &mut self.grads;
        Ok(LossOutputs {
            values,
            grad: g0.as_mut().map(|g| rows_mut("grad_out", g)).transpose()?,
            grad_second: g1.as_mut().map(|g| rows_mut("grad_out", g)).transpose()?,
        })
    }
}
