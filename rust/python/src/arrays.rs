//! Borrowing NumPy arrays as core row views, and the typed arguments of the native functions:
//! [`Logits`] and [`Probs`] (rust-numpy's dtype dispatch: the array's dtype picks the variant, so a
//! float16 or bfloat16 array arrives as itself, never as uint16 bits), [`Ro1`]/[`Ro2`] for the other
//! read-only arrays, and [`Named`] for options given by name. Inputs may have any non-negative row
//! stride (0 for a broadcast row) but contiguous rows; outputs must be C-contiguous.

use half::{bf16, f16};
use logitdiv_core::{Elem, GpReduction, PairKind, RdropKind, Reduction, Rows, RowsMut};
use numpy::ndarray::Dimension;
use numpy::{
    Element, PyArray, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1, PyReadonlyArray2,
    PyReadwriteArray, PyReadwriteArray1, PyReadwriteArray2, PyUntypedArray, PyUntypedArrayMethods,
};
use numpy::npyffi::PyArrayObject;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyString};
use std::ffi::{c_int, c_void};
use std::sync::Mutex;

/// A storage type of logits, and the type of its per-row values (float64 for float64 logits,
/// float32 for the others).
pub(crate) trait Stored: Elem + Element {
    type Value: Elem + Element;
}

impl Stored for f32 {
    type Value = f32;
}
impl Stored for f64 {
    type Value = f64;
}
impl Stored for f16 {
    type Value = f32;
}
impl Stored for bf16 {
    type Value = f32;
}

/// A logit matrix: a read-only 2-D array of one of the four storage types the kernels read.
pub(crate) enum Logits<'py> {
    F32(Ro2<'py, f32>),
    F64(Ro2<'py, f64>),
    F16(Ro2<'py, f16>),
    Bf16(Ro2<'py, bf16>),
}

impl Logits<'_> {
    /// The NumPy name of the storage type.
    pub(crate) fn dtype(&self) -> &'static str {
        match self {
            Logits::F32(_) => "float32",
            Logits::F64(_) => "float64",
            Logits::F16(_) => "float16",
            Logits::Bf16(_) => "bfloat16",
        }
    }
}

/// Probability labels: a read-only 2-D array of float32 or float64.
pub(crate) enum Probs<'py> {
    F32(Ro2<'py, f32>),
    F64(Ro2<'py, f64>),
}

/// The dtype's name, for errors and for the types NumPy knows only by name (ml_dtypes' bfloat16).
fn dtype_name(array: &Bound<'_, PyUntypedArray>) -> String {
    array.dtype().getattr("name").map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

fn is<T: Element>(array: &Bound<'_, PyUntypedArray>) -> bool {
    array.dtype().is_equiv_to(&T::get_dtype(array.py()))
}

fn untyped<'py>(obj: &Bound<'py, PyAny>, want: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>()
        .map(|a| a.clone())
        .map_err(|_| PyTypeError::new_err(format!("expected a 2-D NumPy array of {want}; got {}", type_name(obj))))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// `FromPyObject` for an enum of read-only 2-D arrays (`Logits`, `Probs`): the array becomes the
/// first variant whose dtype test it passes; a TypeError listing `$want` otherwise.
macro_rules! by_dtype {
    ($enum:ident, $name:literal, $want:literal, $($variant:ident: $test:expr),+ $(,)?) => {
        impl<'a, 'py> FromPyObject<'a, 'py> for $enum<'py> {
            type Error = PyErr;

            fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
                let obj = obj.to_owned();
                let array = untyped(&obj, $want)?;
                $(
                    if $test(&array) {
                        return Ok($enum::$variant(readonly($name, &obj)?));
                    }
                )+
                Err(PyTypeError::new_err(format!("expected an array of {}; got dtype {}", $want, dtype_name(&array))))
            }
        }
    };
}
by_dtype!(
    Logits,
    "logits",
    "float16, bfloat16, float32 or float64",
    F32: is::<f32>,
    F64: is::<f64>,
    F16: is::<f16>,
    // tested last, by name: the bfloat16 dtype exists once ml_dtypes (which made this array) is loaded
    Bf16: |a: &Bound<'_, PyUntypedArray>| dtype_name(a) == "bfloat16",
);
by_dtype!(Probs, "probabilities", "float32 or float64", F32: is::<f32>, F64: is::<f64>);

impl<'a, 'py, T: Element> FromPyObject<'a, 'py> for Ro2<'py, T> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        readonly("array", &obj.to_owned())
    }
}

impl<'a, 'py, T: Element> FromPyObject<'a, 'py> for Ro1<'py, T> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        readonly("array", &obj.to_owned())
    }
}

/// An option given by its name ("mean", "sym_kl", …), parsed by the core's own parser: an unknown
/// name is a ValueError listing the known ones.
pub(crate) struct Named<T>(pub T);

pub(crate) trait ByName: Sized {
    fn parse(name: &str) -> Result<Self, logitdiv_core::Error>;
}

macro_rules! by_name {
    ($($t:ty),*) => {$(
        impl ByName for $t {
            fn parse(name: &str) -> Result<Self, logitdiv_core::Error> {
                <$t>::parse(name)
            }
        }
    )*};
}
by_name!(Reduction, PairKind, RdropKind, GpReduction);

impl<'a, 'py, T: ByName> FromPyObject<'a, 'py> for Named<T> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let name = obj.cast::<PyString>().map_err(|_| PyTypeError::new_err("expected a name (str)"))?;
        T::parse(&name.to_cow()?).map(Named).map_err(crate::call::core_error)
    }
}

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

/// `a` as an array of `T` with `D`'s number of axes (TypeError naming both otherwise).
fn typed<'a, 'py, T: Element, D: Dimension>(name: &str, a: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyArray<T, D>>> {
    a.cast::<PyArray<T, D>>().map_err(|_| {
        let axes = D::NDIM.map_or("an".to_string(), |n| format!("a {n}-D"));
        PyTypeError::new_err(format!("{name}: expected {axes} array of {}", std::any::type_name::<T>()))
    })
}

/// Borrows an array read-only.
pub(crate) fn readonly<'py, T: Element, D: Dimension>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<Held<PyReadonlyArray<'py, T, D>>> {
    let b = typed::<T, D>(name, a)?.try_readonly().map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
    Ok(Held::new(b, a, false))
}

/// Borrows an array for writing.
pub(crate) fn readwrite<'py, T: Element, D: Dimension>(name: &str, a: &Bound<'py, PyAny>) -> PyResult<Held<PyReadwriteArray<'py, T, D>>> {
    let b = typed::<T, D>(name, a)?
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
    Rows::new(data, r, c, stride).map_err(crate::call::core_error)
}

/// The contiguous data of a borrowed writable 2-D array as core rows.
pub(crate) fn rows_mut<'a, T: Element>(name: &str, a: &'a mut PyReadwriteArray2<'_, T>) -> PyResult<RowsMut<'a, T>> {
    let (r, c) = (a.shape()[0], a.shape()[1]);
    let data =
        a.as_slice_mut().map_err(|_| PyValueError::new_err(format!("{name}: output must be C-contiguous and aligned")))?;
    RowsMut::contiguous(data, r, c).map_err(crate::call::core_error)
}

/// The elements of a borrowed contiguous 1-D array.
pub(crate) fn slice<'a, T: Element>(name: &str, a: &'a PyReadonlyArray1<'_, T>) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name}: must be C-contiguous and aligned")))
}
