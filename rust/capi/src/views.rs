//! Raw C pointers to checked core views: NULL, alignment, stride and size overflow are refused
//! before any slice is formed, and so is an output that shares memory with an input or another
//! output of the same call (the call's buffers are listed as their views are formed).

use std::cell::RefCell;

use logitdiv_core::{Rows, RowsMut};

use crate::status::{ld_status, Fail};

/// The memory of one buffer of a call: `rows` runs of `len` bytes, `stride` bytes apart.
struct Region {
    what: String,
    start: usize,
    rows: usize,
    len: usize,
    stride: usize,
    output: bool,
}

impl Region {
    /// Whether any of its runs meets the bytes [a, b).
    fn meets(&self, a: usize, b: usize) -> bool {
        let p = self.start;
        let rows = if self.stride == 0 { 1 } else { self.rows };
        let end = p.saturating_add((rows - 1) * self.stride + self.len);
        if b <= p || a >= end {
            return false;
        }
        // the first run that ends after a
        let r = if a < p.saturating_add(self.len) { 0 } else { (a - p - self.len) / self.stride + 1 };
        r < rows && p.saturating_add(r * self.stride) < b
    }

    /// Whether two regions share a byte; `self` must be one contiguous run (an output).
    fn overlaps(&self, other: &Region) -> bool {
        other.meets(self.start, self.start + self.len)
    }
}

thread_local! {
    /// The buffers of the call in progress on this thread (reset by `boundary::guard`).
    static CALL: RefCell<Vec<Region>> = const { RefCell::new(Vec::new()) };
}

/// Forgets the buffers of the previous call (`boundary::guard` calls it around every call).
pub(crate) fn new_call() {
    CALL.with(|c| c.borrow_mut().clear());
}

/// Lists a buffer of the call, refusing it when it is an output that shares memory with any
/// buffer listed before, or an input that shares memory with an output listed before. Inputs
/// may share memory with each other. Checked before the buffer's slice is formed.
fn claim<T>(what: &str, ptr: *const T, rows: usize, cols: usize, stride: usize, output: bool) -> Result<(), Fail> {
    if rows == 0 || cols == 0 || ptr.is_null() {
        return Ok(());
    }
    let size = std::mem::size_of::<T>();
    // sizes were checked by `span`: (rows − 1)·stride + cols elements fit in isize::MAX bytes (the
    // stride of a single row is never used, and may be anything)
    let stride = if rows > 1 { stride * size } else { 0 };
    let region = Region { what: what.to_string(), start: ptr as usize, rows, len: cols * size, stride, output };
    CALL.with(|c| {
        let mut listed = c.borrow_mut();
        for other in listed.iter() {
            if !(output || other.output) {
                continue;
            }
            let (out, with) = if output { (&region, other) } else { (other, &region) };
            if out.overlaps(with) {
                return Err(Fail::new(
                    ld_status::LD_BAD_ARGUMENT,
                    format!(
                        "{} overlaps {} in memory; an output may not share memory with an input or another output",
                        region.what, other.what
                    ),
                ));
            }
        }
        listed.push(region);
        Ok(())
    })
}

/// Whether a stride of 0 (one row repeated for every row) is allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    Allowed,
    Refused,
}

/// The number of elements `rows` rows of `cols` elements `stride` apart span, if it fits in memory.
fn span<T>(what: &str, rows: usize, cols: usize, stride: usize, repeat: Repeat) -> Result<usize, Fail> {
    let repeated = stride == 0 && (repeat == Repeat::Allowed || rows <= 1);
    if stride < cols && !repeated {
        return Err(Fail::new(
            ld_status::LD_BAD_SHAPE,
            format!("{what}: row stride {stride} is shorter than a row of {cols} elements"),
        ));
    }
    let len = if rows == 0 || cols == 0 { Some(0) } else { (rows - 1).checked_mul(stride).and_then(|n| n.checked_add(cols)) };
    match len.and_then(|n| n.checked_mul(std::mem::size_of::<T>()).map(|b| (n, b))) {
        Some((n, bytes)) if bytes <= isize::MAX as usize => Ok(n),
        _ => Err(Fail::new(
            ld_status::LD_BAD_SHAPE,
            format!("{what}: {rows} rows of {cols} elements with stride {stride} overflow the address space"),
        )),
    }
}

fn check_pointer<T>(what: &str, ptr: *const T, len: usize) -> Result<(), Fail> {
    if len > 0 && ptr.is_null() {
        return Err(Fail::new(ld_status::LD_NULL_POINTER, format!("{what} is NULL")));
    }
    if len > 0 && !ptr.is_aligned() {
        return Err(Fail::new(
            ld_status::LD_MISALIGNED,
            format!("{what} is not aligned to {} bytes", std::mem::align_of::<T>()),
        ));
    }
    Ok(())
}

/// Every function over classes needs at least one (LD_BAD_SHAPE otherwise).
pub(crate) fn need_classes(cols: usize) -> Result<(), Fail> {
    if cols == 0 {
        return Err(Fail::new(ld_status::LD_BAD_SHAPE, "cols must be at least 1 (the classes); got 0"));
    }
    Ok(())
}

/// A read-only view of `rows` × `cols` elements with row stride `stride`.
///
/// # Safety
/// If non-NULL, `ptr` must point to at least `(rows − 1) · stride + cols` readable elements that
/// stay valid and unmodified for `'a`.
pub(crate) unsafe fn input<'a, T>(
    what: &str,
    ptr: *const T,
    rows: usize,
    cols: usize,
    stride: usize,
    repeat: Repeat,
) -> Result<Rows<'a, T>, Fail> {
    let len = span::<T>(what, rows, cols, stride, repeat)?;
    check_pointer(what, ptr, len)?;
    claim(what, ptr, rows, cols, stride, false)?;
    let data: &[T] = if len == 0 {
        &[]
    } else {
        // SAFETY: non-NULL and aligned (checked), `len` elements readable (the caller's contract).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    };
    if len == 0 {
        return Rows::new(data, rows, 0, 0).map_err(Fail::from);
    }
    Rows::new(data, rows, cols, stride).map_err(Fail::from)
}

/// An optional input (a mask or weights, where one row may stand for every row): None for a NULL
/// pointer, else [`input`] with [`Repeat::Allowed`].
///
/// # Safety
/// As [`input`] for a non-NULL `ptr`.
pub(crate) unsafe fn optional_input<'a, T>(
    what: &str,
    ptr: *const T,
    rows: usize,
    cols: usize,
    stride: usize,
) -> Result<Option<Rows<'a, T>>, Fail> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's contract.
    unsafe { input(what, ptr, rows, cols, stride, Repeat::Allowed) }.map(Some)
}

/// A writable contiguous `rows` × `cols` view, or None for a NULL pointer ("don't compute it").
///
/// # Safety
/// If non-NULL, `ptr` must point to `rows · cols` writable elements, valid for `'a` and not
/// overlapping any other buffer of the call.
pub(crate) unsafe fn output<'a, T>(what: &str, ptr: *mut T, rows: usize, cols: usize) -> Result<Option<RowsMut<'a, T>>, Fail> {
    if ptr.is_null() {
        return Ok(None);
    }
    let len = span::<T>(what, rows, cols, cols, Repeat::Refused)?;
    check_pointer(what, ptr.cast_const(), len)?;
    claim(what, ptr.cast_const(), 1, len, len, true)?;
    let data: &mut [T] = if len == 0 {
        &mut []
    } else {
        // SAFETY: non-NULL and aligned (checked), `len` elements writable (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    };
    RowsMut::contiguous(data, rows, if len == 0 { 0 } else { cols }).map(Some).map_err(Fail::from)
}

/// A writable vector of `n` elements, or None for NULL.
///
/// # Safety
/// If non-NULL, `ptr` must point to `n` writable elements valid for `'a`, overlapping no other buffer.
pub(crate) unsafe fn output_vec<'a, T>(what: &str, ptr: *mut T, n: usize) -> Result<Option<&'a mut [T]>, Fail> {
    if ptr.is_null() {
        return Ok(None);
    }
    let len = span::<T>(what, n.min(1), n, n, Repeat::Refused)?;
    check_pointer(what, ptr.cast_const(), len)?;
    claim(what, ptr.cast_const(), 1, n, n, true)?;
    if len == 0 {
        return Ok(Some(&mut []));
    }
    // SAFETY: non-NULL and aligned (checked), `n` elements writable (the caller's contract).
    Ok(Some(unsafe { std::slice::from_raw_parts_mut(ptr, n) }))
}

/// A read-only vector of `n` elements (one per row).
///
/// # Safety
/// If non-NULL, `ptr` must point to `n` readable elements that stay valid and unmodified for `'a`.
pub(crate) unsafe fn input_vec<'a, T>(what: &str, ptr: *const T, n: usize) -> Result<&'a [T], Fail> {
    let len = span::<T>(what, n.min(1), n, n, Repeat::Refused)?;
    check_pointer(what, ptr, len)?;
    claim(what, ptr, 1, n, n, false)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: non-NULL and aligned (checked), `n` elements readable (the caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// A writable scalar output (the reduced value), or None for NULL; a misaligned pointer is refused
/// like any other.
///
/// # Safety
/// If non-NULL, `ptr` must point to one writable `T`, valid for `'a`, overlapping no other buffer.
pub(crate) unsafe fn output_scalar<'a, T>(what: &str, ptr: *mut T) -> Result<Option<&'a mut T>, Fail> {
    if ptr.is_null() {
        return Ok(None);
    }
    check_pointer(what, ptr.cast_const(), 1)?;
    claim(what, ptr.cast_const(), 1, 1, 1, true)?;
    // SAFETY: non-NULL and aligned (checked), one writable element (the caller's contract).
    Ok(Some(unsafe { &mut *ptr }))
}
