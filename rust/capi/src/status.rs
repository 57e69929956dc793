//! Status codes and the per-thread error message.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

/// The result of every call.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ld_status {
    LD_OK = 0,
    /// A required pointer was NULL.
    LD_NULL_POINTER = 1,
    /// Sizes or strides that do not fit together (stride shorter than a row, size overflow, 0 classes).
    LD_BAD_SHAPE = 2,
    /// An option or label outside its range (temperature ≤ 0, β ∉ [0, 1], negative weight, …), or
    /// an output that overlaps an input or another output.
    LD_BAD_ARGUMENT = 3,
    /// A pointer not aligned for its element type.
    LD_MISALIGNED = 4,
    /// An internal error was caught at the boundary; nothing was unwound into C.
    LD_PANIC = 5,
}

/// A failure on its way to C: the status and the detailed message.
#[derive(Debug)]
pub(crate) struct Fail {
    pub status: ld_status,
    pub message: String,
}

impl Fail {
    pub fn new(status: ld_status, message: impl Into<String>) -> Self {
        Fail { status, message: message.into() }
    }
}

impl From<logitdiv_core::Error> for Fail {
    fn from(e: logitdiv_core::Error) -> Self {
        let status = match e {
            logitdiv_core::Error::BadShape(_) => ld_status::LD_BAD_SHAPE,
            logitdiv_core::Error::BadArgument(_) => ld_status::LD_BAD_ARGUMENT,
        };
        Fail::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn remember(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|m| *m.borrow_mut() = c);
}

/// A short static description of a status (any integer; unknown values are named so).
#[no_mangle]
pub extern "C" fn ld_status_message(status: i32) -> *const c_char {
    let s: &'static [u8] = match status {
        0 => b"ok\0",
        1 => b"a required pointer was NULL\0",
        2 => b"sizes or strides do not fit together\0",
        3 => b"an option or label is out of range\0",
        4 => b"a pointer is not aligned for its element type\0",
        5 => b"internal error (caught)\0",
        _ => b"unknown status\0",
    };
    s.as_ptr().cast()
}

/// The detailed message of the last failed call on this thread (expected and actual values);
/// valid until the next failed call on the same thread. Empty if none failed.
#[no_mangle]
pub extern "C" fn ld_last_error_message() -> *const c_char {
    LAST_ERROR.with(|m| m.borrow().as_ptr())
}
