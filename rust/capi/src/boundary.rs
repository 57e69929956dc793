//! The panic boundary every exported function runs behind: nothing unwinds into C, and each
//! call's buffer list (`views`) and error message (`status`) start afresh.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::{ld_status, remember, Fail};
use crate::views::new_call;

/// Runs `f` behind the panic boundary and turns its outcome into a status.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Fail>) -> ld_status {
    // The first call applies LOGITDIV_SIMD (an invalid value leaves the best path, as `active` does).
    static SIMD_INIT: std::sync::Once = std::sync::Once::new();
    SIMD_INIT.call_once(|| {
        let _ = catch_unwind(logitdiv_core::simd::init_from_env);
    });
    new_call();
    let outcome = catch_unwind(AssertUnwindSafe(f));
    new_call();
    match outcome {
        Ok(Ok(())) => ld_status::LD_OK,
        Ok(Err(fail)) => {
            remember(&fail.message);
            fail.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            remember(&format!("internal error: {what}"));
            ld_status::LD_PANIC
        }
    }
}
