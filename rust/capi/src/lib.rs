//! The C ABI of logitdiv: `ld_<function>_<f32|f64>` entry points over logitdiv-core.
//!
//! Every entry point returns an [`ld_status`], catches panics (`LD_PANIC`), checks its pointers
//! and sizes before reading anything, and leaves a message for [`ld_last_error_message`]. A NULL
//! output pointer means "don't compute it". The header `include/logitdiv.h` is generated from
//! this crate by cbindgen and checked in; the test suite fails when it drifts.
#![allow(non_camel_case_types)]

mod boundary;
mod divergence;
mod loss;
mod options;
mod status;
mod views;

pub use divergence::*;
pub use loss::*;
pub use options::{ld_options, ld_options_default, ld_positives, ld_rdrop_kind, ld_reduction};
pub use status::{ld_last_error_message, ld_status, ld_status_message};

use std::ffi::{c_char, CStr};

/// The library version, e.g. "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn ld_version() -> *const c_char {
    static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("version string"),
    };
    VERSION.as_ptr()
}

/// Sets the number of worker threads (0: `LOGITDIV_NUM_THREADS` or the number of CPUs).
#[no_mangle]
pub extern "C" fn ld_set_num_threads(n: usize) -> ld_status {
    boundary::guard(|| logitdiv_core::set_num_threads(n).map_err(status::Fail::from))
}

/// The number of worker threads.
#[no_mangle]
pub extern "C" fn ld_get_num_threads() -> usize {
    std::panic::catch_unwind(logitdiv_core::num_threads).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_header_matches_the_code() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/logitdiv.h"));
        let checked_in = include_str!("../include/logitdiv.h");
        assert!(
            generated == checked_in,
            "rust/capi/include/logitdiv.h is out of date: regenerate it with \
             `LOGITDIV_UPDATE_HEADER=1 cargo build -p logitdiv-capi` and commit it"
        );
    }
}
