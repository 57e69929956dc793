//! Borrowing NumPy arrays as core row views. Inputs may have any non-negative row stride (0 for a
//! broadcast row) but contiguous rows; outputs must be C-contiguous. The Python layer guarantees
//! both, and these functions check again rather than trust it.

use half::{bf16, f16, slice::HalfBitsSliceExt};
use logitdiv_core::{Elem, Rows, RowsMut};
use numpy::{
    Element, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyReadwriteArray2, PyUntypedArrayMethods,
};
use numpy::npyffi::PyArrayObject;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

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

// ---------------------------------------------------------------------------------------------
// Borrows and fork
//
// rust-numpy records every borrow of an array in a process-wide table (shared by all extensions,
// behind a capsule in numpy's multiarray module), and a borrow's guard removes its record when
// dropped. A fork copies that table into the child, but not the threads: the records of borrows
// that other threads of the parent held at that moment (their kernels running with the GIL
// released) would stay in the child for ever, and the child's calls on those arrays would fail
// with "already borrowed". So this extension keeps a list of the borrows it holds, and a handler
// run in the child after a fork (os.register_at_fork) releases them through the same shared API.
// Both the list and the table change only while the GIL is held, and a fork happens with the
// GIL held: neither is caught mid-update.

/// The borrows this extension holds now: (array object, exclusive).
static HELD: Mutex<Vec<(usize, bool)>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(usize, bool)>> {
    HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A rust-numpy borrow guard, listed in [`HELD`] while it lives.
pub(crate) struct Held<B> {
    inner: B,
    key: (usize, bool),
}

impl<B> Held<B> {
    fn new(inner: B, array: &Bound<'_, PyAny>, exclusive: bool) -> Self {
        let key = (array.as_ptr() as usize, exclusive);
        held().push(key);
        Held { inner, key }
    }
}

impl<B> Drop for Held<B> {
    fn drop(&mut self) {
        // the record goes first; `inner` then releases the borrow itself
        let mut list = held();
        if let Some(i) = list.iter().rposition(|k| *k == self.key) {
            list.swap_remove(i);
        }
    }
}

impl<B> std::ops::Deref for Held<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::ops::DerefMut for Held<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

pub(crate) type Ro1<'py, T> = Held<PyReadonlyArray1<'py, T>>;
pub(crate) type Ro2<'py, T> = Held<PyReadonlyArray2<'py, T>>;
pub(crate) type Rw1<'py, T> = Held<PyReadwriteArray1<'py, T>>;
pub(crate) type Rw2<'py, T> = Held<PyReadwriteArray2<'py, T>>;

/// rust-numpy's shared borrow-checking API (version ≥ 1; later versions only add fields at the
/// end), as published in the capsule `_RUST_NUMPY_BORROW_CHECKING_API`.
#[repr(C)]
struct SharedBorrowApi {
    version: u64,
    flags: *mut c_void,
    acquire: unsafe extern "C" fn(*mut c_void, *mut PyArrayObject) -> c_int,
    acquire_mut: unsafe extern "C" fn(*mut c_void, *mut PyArrayObject) -> c_int,
    release: unsafe extern "C" fn(*mut c_void, *mut PyArrayObject),
    release_mut: unsafe extern "C" fn(*mut c_void, *mut PyArrayObject),
}

/// Run in a child process right after a fork: releases the borrows that threads of the parent
/// held at the fork (those threads do not exist here, so their guards will never drop).
#[pyfunction]
pub(crate) fn _after_fork_in_child(py: Python<'_>) -> PyResult<usize> {
    let stale = std::mem::take(&mut *held());
    if stale.is_empty() {
        return Ok(0);
    }
    let capsule = numpy::array::get_array_module(py)?.getattr("_RUST_NUMPY_BORROW_CHECKING_API")?;
    let capsule = capsule.cast_into::<PyCapsule>()?;
    let ptr = capsule.pointer_checked(Some(c"_RUST_NUMPY_BORROW_CHECKING_API"))?;
    // SAFETY: the capsule holds rust-numpy's `Shared` struct, whose layout up to `release_mut`
    // is fixed for every version ≥ 1 (checked below); the table and the arrays it names were
    // copied from the parent, and the arrays are still alive (the parent's threads held them).
    let api = unsafe { &*ptr.cast::<SharedBorrowApi>().as_ptr() };
    if api.version < 1 {
        return Ok(0);
    }
    for &(array, exclusive) in &stale {
        let array = array as *mut PyArrayObject;
        // SAFETY: as above; the GIL is held.
        unsafe {
            if exclusive {
                (api.release_mut)(api.flags, array)
            } else {
                (api.release)(api.flags, array)
            }
        }
    }
    Ok(stale.len())
}

/// Borrows a 2-D array read-only.
pub(crate) fn readonly<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<Ro2<'py, T>> {
    let arr = a.cast::<numpy::PyArray2<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 2-D array of {}", std::any::type_name::<T>()))
    })?;
    let b = arr.try_readonly().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
    Ok(Held::new(b, a, false))
}

/// Borrows a 2-D array for writing.
pub(crate) fn readwrite<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<Rw2<'py, T>> {
    let arr = a.cast::<numpy::PyArray2<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 2-D array of {}", std::any::type_name::<T>()))
    })?;
    let b = arr
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e} (an output may not alias an input)")))?;
    Ok(Held::new(b, a, true))
}

/// Borrows a 1-D array for writing.
pub(crate) fn readwrite_1d<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<Rw1<'py, T>> {
    let arr = a.cast::<numpy::PyArray1<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 1-D array of {}", std::any::type_name::<T>()))
    })?;
    let b = arr
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e} (an output may not alias an input)")))?;
    Ok(Held::new(b, a, true))
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
pub(crate) fn readonly_1d<'py, T: Element>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<Ro1<'py, T>> {
    let arr = a.cast::<numpy::PyArray1<T>>().map_err(|_| {
        PyTypeError::new_err(format!("{name}: expected a 1-D array of {}", std::any::type_name::<T>()))
    })?;
    let b = arr.try_readonly().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
    Ok(Held::new(b, a, false))
}

/// The elements of a borrowed contiguous 1-D array.
pub(crate) fn slice<'a, T: Element>(name: &str, a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name}: must be C-contiguous and aligned")))
}
