//! What the property-based fuzz tests share: the proptest configuration, the logit strategy's
//! shape and the span of a strided view. Included by `mod common;` in rust/core/tests and by a
//! `#[path]` module in rust/capi/tests/fuzz_capi.rs (another crate, same harness settings).

// every test crate that includes this file uses only part of it
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;

/// `PROPTEST_CASES` cases per property (default `default_cases`), no failure files written.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A logit: ordinary (in ±30, weight `ordinary`), sometimes one of the `edge` values (zeros,
/// subnormals, where exp over- or underflows; weight 2) or the `huge` ones (weight 1), −inf
/// (weight 2), +inf or NaN (weight 1).
pub fn logit(ordinary: u32, edge: Vec<f64>, huge: Vec<f64>) -> impl Strategy<Value = f64> {
    prop_oneof![
        ordinary => -30.0..30.0f64,
        2 => prop::sample::select(edge),
        1 => prop::sample::select(huge),
        2 => Just(f64::NEG_INFINITY),
        1 => prop::sample::select(vec![f64::INFINITY, f64::NAN]),
    ]
}

/// The elements `rows` rows of `cols` elements, `stride` apart, span.
pub fn span(rows: usize, cols: usize, stride: usize) -> usize {
    if rows == 0 {
        0
    } else {
        (rows - 1) * stride + cols
    }
}
