//! Borrowing NumPy arrays as core row views. Inputs may have any non-negative row stride (0 for a
//! broadcast row) but contiguous rows; outputs must be C-contiguous. The Python layer guarantees
//! both, and these functions check again rather than trust it.

use half::{bf16, f16, slice::HalfBitsSliceExt};
use logitdiv_core::{Elem, Rows, RowsMut};
use numpy::{
    Element, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyReadwriteArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// A storage element as NumPy holds it (`Raw`) and as the core reads it (`Self`): f16 and bf16
/// travel as uint16 bits.
pub(crate) trait Stored: Elem {
    type Raw: Element;
    fn view(raw: &[Self::Raw]) -> &[Self];
    fn view_mut(raw: &mut [Self::Raw]) -> &mut [Self];
}

macro_rules! stored_as_itself {
    ($t:ty) => {
        impl Stored for $t {
            type Raw = $t;
            fn view(raw: &[$t]) -> &[$t] {
                raw
            }
            fn view_mut(raw: &mut [$t]) -> &mut [$t] {
                raw
            }
        }
    };
}
stored_as_itself!(f32);
stored_as_itself!(f64);

macro_rules! stored_as_bits {
    ($t:ty) => {
        impl Stored for $t {
            type Raw = u16;
            fn view(raw: &[u16]) -> &[$t] {
                raw.reinterpret_cast()
            }
            fn view_mut(raw: &mut [u16]) -> &mut [$t] {
                raw.reinterpret_cast_mut()
            }
        }
    };
}
stored_as_bits!(f16);
stored_as_bits!(bf16);

/// Borrows a 2-D array read-only.
pub(crate) fn readonly<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray2<'py, T>> {
    let arr = a.cast::<numpy::PyArray2<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 2-D array of {}", std::any::type_name::<T>()))
    })?;
    arr.try_readonly().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

/// Borrows a 2-D array for writing.
pub(crate) fn readwrite<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<PyReadwriteArray2<'py, T>> {
    let arr = a.cast::<numpy::PyArray2<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 2-D array of {}", std::any::type_name::<T>()))
    })?;
    arr.try_readwrite().map_err(|e| PyValueError::new_err(format!("{name}: {e} (an output may not alias an input)")))
}

/// Borrows a 1-D array for writing.
pub(crate) fn readwrite_1d<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<PyReadwriteArray1<'py, T>> {
    let arr = a.cast::<numpy::PyArray1<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 1-D array of {}", std::any::type_name::<T>()))
    })?;
    arr.try_readwrite().map_err(|e| PyValueError::new_err(format!("{name}: {e} (an output may not alias an input)")))
}

/// The row view of a borrowed 2-D array: contiguous rows, row stride ≥ 0.
pub(crate) fn rows<'a, T: Element>(name: &str, a: &'a PyReadonlyArray2<'_, T>) -> PyResult<Rows<'a, T>> {
    let shape = a.shape();
    let (r, c) = (shape[0], shape[1]);
    let elem = std::mem::size_of::<T>() as isize;
    let strides = a.strides();
    if r > 0 && c > 1 && strides[1] != elem {
        return Err(PyValueError::new_err(format!("{name}: rows must be contiguous (class stride {} bytes)", strides[1])));
    }
    if r > 1 && (strides[0] < 0 || strides[0] % elem != 0) {
        return Err(PyValueError::new_err(format!("{name}: unsupported row stride of {} bytes", strides[0])));
    }
    let stride = if r > 1 && c > 0 { (strides[0] / elem) as usize } else { c };
    let len = if r == 0 || c == 0 { 0 } else { (r - 1) * stride + c };
    // NumPy arrays need not be aligned (np.frombuffer at an odd offset): a slice of them would be
    // undefined behaviour, so they are refused (the Python layer copies them first).
    if len > 0 && (!a.is_aligned() || (a.data() as usize) % std::mem::align_of::<T>() != 0) {
        return Err(PyValueError::new_err(format!(
            "{name}: the array is not aligned to its element size ({} bytes)",
            std::mem::align_of::<T>()
        )));
    }
    let data: &[T] = if len == 0 {
        &[]
    } else {
        // SAFETY: the readonly borrow keeps the array alive and unaliased by writers for 'a; the
        // shape and strides checked above put every element of the view inside `len` elements
        // from the data pointer, which is aligned for T (checked above).
        unsafe { std::slice::from_raw_parts(a.data(), len) }
    };
    Rows::new(data, r, c, stride).map_err(crate::core_error)
}

/// The contiguous data of a borrowed writable 2-D array as core rows.
pub(crate) fn rows_mut<'a, T: Element>(name: &str, a: &'a mut PyReadwriteArray2<'_, T>) -> PyResult<RowsMut<'a, T>> {
    let (r, c) = (a.shape()[0], a.shape()[1]);
    let data =
        a.as_slice_mut().map_err(|_| PyValueError::new_err(format!("{name}: output must be C-contiguous and aligned")))?;
    RowsMut::contiguous(data, r, c).map_err(crate::core_error)
}

/// Reinterprets writable raw rows as core element rows.
pub(crate) fn elem_rows_mut<S: Stored>(raw: RowsMut<'_, S::Raw>) -> RowsMut<'_, S> {
    let (r, c, st) = (raw.rows(), raw.cols(), raw.stride());
    RowsMut::new(S::view_mut(raw.into_data()), r, c, st).expect("same shape as the raw view")
}

/// Reinterprets raw rows as core element rows.
pub(crate) fn elem_rows<S: Stored>(raw: Rows<'_, S::Raw>) -> Rows<'_, S> {
    let (r, c, st) = (raw.rows(), raw.cols(), raw.stride());
    Rows::new(S::view(raw.data()), r, c, st).expect("same shape as the raw view")
}

/// Borrows a 1-D array read-only.
pub(crate) fn readonly_1d<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArray1<'py, T>> {
    let arr = a.cast::<numpy::PyArray1<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 1-D array of {}", std::any::type_name::<T>()))
    })?;
    arr.try_readonly().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

/// The elements of a borrowed contiguous 1-D array.
pub(crate) fn slice<'a, T: Element>(name: &str, a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name}: must be C-contiguous and aligned")))
}
