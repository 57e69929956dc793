//! Error bounds of `vmath`, measured on every available path and asserted. The default tests
//! sample ~1.1M f32 values per function (every binade, plus the range where the function is used)
//! and up to 120k f64 values; the `#[ignore]`d ones sweep every f32 of each domain and 10^7 f64
//! values (run them in release: `cargo test --release -p logitdiv-core accuracy -- --ignored
//! --nocapture`). The bounds asserted here are the ones documented in `vmath`.

use super::{f32_sweep, f64_samples, reference, run, ulps_f32, ulps_f64};
use crate::simd::isa::{available, Isa};
use crate::simd::map::Func;

/// Where each function is tested, and its exact value.
struct Case {
    func: Func,
    lo: f64,
    hi: f64,
    /// The exact value for f32 results (f64 functions: exact to ~1e-7 f32 ulps).
    exact32: fn(f64) -> f64,
    /// The exact value for f64 results (std, or the double-double series).
    exact64: fn(f64) -> f64,
    /// f64 samples per kind in the default test (the double-double references are slow).
    samples64: usize,
    /// The range where the function is used, sampled densely.
    dense: (f64, f64),
    /// Asserted bound for f32, in ulps (fractional: against the exact value).
    bound_f32: f64,
    /// Asserted bound for f64, in ulps (whole steps from the reference).
    bound_f64: u64,
}

const CASES: [Case; 6] = [
    Case {
        func: Func::Exp,
        lo: -750.0,
        hi: 720.0,
        exact32: f64::exp,
        exact64: f64::exp,
        samples64: 60_000,
        dense: (-20.0, 20.0),
        bound_f32: 1.05,
        bound_f64: 1,
    },
    Case {
        func: Func::ExpM1,
        lo: -750.0,
        hi: 720.0,
        exact32: f64::exp_m1,
        exact64: f64::exp_m1,
        samples64: 60_000,
        dense: (-2.0, 2.0),
        bound_f32: 1.6,
        bound_f64: 2,
    },
    Case {
        func: Func::Ln,
        lo: 0.0,
        hi: f64::MAX,
        exact32: f64::ln,
        exact64: f64::ln,
        samples64: 60_000,
        dense: (0.5, 2.0),
        bound_f32: 1.0,
        bound_f64: 1,
    },
    Case {
        func: Func::Ln1p,
        lo: -1.0,
        hi: f64::MAX,
        exact32: f64::ln_1p,
        exact64: f64::ln_1p,
        samples64: 60_000,
        dense: (-0.5, 1.0),
        bound_f32: 1.0,
        bound_f64: 1,
    },
    Case {
        func: Func::Phi,
        lo: -720.0,
        hi: 1e300,
        exact32: crate::math::phi,
        exact64: reference::phi,
        samples64: 10_000,
        dense: (-3.0, 3.0),
        bound_f32: 3.1,
        bound_f64: 2,
    },
    Case {
        func: Func::XMinusLog1p,
        lo: -1.0,
        hi: 1e300,
        exact32: crate::math::x_minus_log1p,
        exact64: reference::x_minus_log1p,
        samples64: 5_000,
        dense: (-0.9, 0.9),
        bound_f32: 1.0,
        bound_f64: 8,
    },
];

/// The largest error over `xs` and where it occurs.
fn max_err_f32(isa: Isa, case: &Case, xs: &[f32]) -> (f64, f32) {
    let ys = run(isa, case.func, xs);
    xs.iter().zip(&ys).map(|(&x, &y)| (ulps_f32(y, (case.exact32)(f64::from(x))), x)).fold((0.0, f32::NAN), |a, b| {
        if b.0 > a.0 {
            b
        } else {
            a
        }
    })
}

fn max_err_f64(isa: Isa, case: &Case, xs: &[f64]) -> (u64, f64) {
    let ys = run(isa, case.func, xs);
    xs.iter().zip(&ys).map(|(&x, &y)| (ulps_f64(y, (case.exact64)(x)), x)).fold((0, f64::NAN), |a, b| {
        if b.0 > a.0 {
            b
        } else {
            a
        }
    })
}

fn f32_domain(case: &Case) -> (f32, f32) {
    (case.lo.max(-f64::from(f32::MAX)) as f32, case.hi.min(f64::from(f32::MAX)) as f32)
}

/// f64 samples of a case; φ and x − ln(1+x) only where their reference is exact.
fn f64_domain(case: &Case) -> (f64, f64) {
    match case.func {
        Func::Phi => (-20.0, 20.0),
        Func::XMinusLog1p => (-0.9, 0.9),
        _ => (case.lo, case.hi),
    }
}

#[test]
fn f32_functions_are_within_their_bounds_on_every_path() {
    for case in &CASES {
        let (lo, hi) = f32_domain(case);
        let mut xs = f32_sweep(1999, lo, hi);
        let (a, b) = case.dense;
        xs.extend((0..100_000).map(|i| (a + (b - a) * f64::from(i) / 100_000.0) as f32));
        for isa in available() {
            let (err, at) = max_err_f32(isa, case, &xs);
            eprintln!("{isa:>7} {:>14} f32: max {err:.3} ulp at {at:e}", case.func.name());
            assert!(err <= case.bound_f32, "{isa} {} f32: {err} ulp at {at:e}", case.func.name());
        }
    }
}

#[test]
fn f64_functions_are_within_their_bounds_on_every_path() {
    for (i, case) in CASES.iter().enumerate() {
        let (lo, hi) = f64_domain(case);
        let n = case.samples64;
        let mut xs = f64_samples(n, lo, hi, i as u64 + 1);
        let (a, b) = case.dense;
        xs.extend((0..n).map(|k| a + (b - a) * k as f64 / n as f64));
        for isa in available() {
            let (err, at) = max_err_f64(isa, case, &xs);
            eprintln!("{isa:>7} {:>14} f64: max {err} ulp at {at:e}", case.func.name());
            assert!(err <= case.bound_f64, "{isa} {} f64: {err} ulp at {at:e}", case.func.name());
        }
    }
}

/// Every f32 of each domain (4·10^9 values for exp), on every path. Minutes in release.
#[test]
#[ignore]
fn f32_functions_exhaustively() {
    let mut failures = Vec::new();
    for case in &CASES {
        let (lo, hi) = f32_domain(case);
        for isa in available() {
            // Chunks of bit patterns, half on each of two threads.
            let worst = |start: u32| {
                let mut worst = (0.0f64, f32::NAN);
                let mut bits = start;
                while bits < 0x7f80_0000 {
                    let end = bits.saturating_add(1 << 22).min(0x7f80_0000);
                    let xs: Vec<f32> = (bits..end)
                        .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)])
                        .filter(|x| (lo..=hi).contains(x))
                        .collect();
                    let w = max_err_f32(isa, case, &xs);
                    if w.0 > worst.0 {
                        worst = w;
                    }
                    bits = end.saturating_add(1 << 22);
                }
                worst
            };
            let (a, b) = std::thread::scope(|s| {
                let a = s.spawn(|| worst(0));
                let b = s.spawn(|| worst(1 << 22));
                (a.join().unwrap(), b.join().unwrap())
            });
            let (err, at) = if b.0 > a.0 { b } else { a };
            eprintln!("{isa:>7} {:>14} f32 (all): max {err:.3} ulp at {at:e}", case.func.name());
            if err > case.bound_f32 {
                failures.push(format!("{isa} {} f32: {err} ulp at {at:e}", case.func.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// 10^7 f64 values per function (10^6 for φ and x − ln(1+x)), half of them in the dense range,
/// on every path.
#[test]
#[ignore]
fn f64_functions_densely() {
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let (lo, hi) = f64_domain(case);
        let (a, b) = case.dense;
        for isa in available() {
            let mut worst = (0u64, f64::NAN);
            // 10^7 values against std; 10^6 against the (slow) double-double series
            let rounds = if case.samples64 >= 60_000 { 10 } else { 1 };
            for round in 0..rounds {
                let mut xs = f64_samples(250_000, lo, hi, 1000 * round + i as u64);
                xs.extend(f64_samples(250_000, a, b, 1000 * round + 500 + i as u64));
                let w = max_err_f64(isa, case, &xs);
                if w.0 > worst.0 {
                    worst = w;
                }
            }
            eprintln!("{isa:>7} {:>14} f64 (1e7): max {} ulp at {:e}", case.func.name(), worst.0, worst.1);
            if worst.0 > case.bound_f64 {
                failures.push(format!("{isa} {} f64: {} ulp at {:e}", case.func.name(), worst.0, worst.1));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
