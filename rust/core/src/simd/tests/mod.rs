//! Accuracy and cross-path tests of the SIMD module: every function on every available path,
//! against std (f32 against f64 std, f64 against std or a double-double reference), at the
//! special values, and path against path.

mod accuracy;
mod paths;
mod reference;

use super::isa::Isa;
use super::map::{map_on, Func};
use super::vmath::Real;

/// `func` over `x` on `isa`.
fn run<T: Real>(isa: Isa, func: Func, x: &[T]) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    map_on(isa, func, x, &mut out).unwrap();
    out
}

/// The error of an f32 result in units of the last place of the exact value `exact` (given in
/// f64, which is exact to ~1e-7 f32 ulps here). 0 when `y` is `exact` correctly rounded
/// (including ±inf and ±0), infinite for a wrong special value.
fn ulps_f32(y: f32, exact: f64) -> f64 {
    if y.is_nan() || exact.is_nan() {
        return if y.is_nan() && exact.is_nan() { 0.0 } else { f64::INFINITY };
    }
    let rounded = exact as f32;
    if y == rounded && y.is_sign_negative() == rounded.is_sign_negative() {
        return 0.0;
    }
    if !y.is_finite() || !rounded.is_finite() {
        return f64::INFINITY;
    }
    // ulp of the binade of |exact| (subnormal spacing below the smallest normal)
    let e = ((exact.abs().to_bits() >> 52) as i64 - 1023).max(-126);
    (f64::from(y) - exact).abs() / 2f64.powi(e as i32 - 23)
}

/// The distance between two f64 values in representable steps (0 for equal values and for two
/// NaNs; `u64::MAX` for one NaN or values of different sign other than ±0).
fn ulps_f64(a: f64, b: f64) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
    }
    if a == b {
        return if a.is_sign_negative() == b.is_sign_negative() { 0 } else { u64::MAX };
    }
    // Map to a monotone integer scale: negatives below positives.
    let key = |x: f64| {
        let bits = x.to_bits() as i64;
        if bits < 0 {
            i64::MIN - bits
        } else {
            bits
        }
    };
    key(a).abs_diff(key(b))
}

/// Deterministic pseudo-random u64s (xorshift).
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// f32 values of [lo, hi] spread over every binade: all bit patterns with the given stride.
fn f32_sweep(stride: u32, lo: f32, hi: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..0x7f80_0000u32)
        .step_by(stride as usize)
        .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)])
        .filter(|x| (lo..=hi).contains(x))
        .collect();
    v.extend([lo, hi]);
    v
}

/// f64 values of [lo, hi]: random bit patterns (all binades) and uniform samples, `n` of each.
fn f64_samples(n: usize, lo: f64, hi: f64, seed: u64) -> Vec<f64> {
    let mut next = rng(seed);
    let mut v = Vec::with_capacity(2 * n + 2);
    while v.len() < n {
        let x = f64::from_bits(next() & 0x7fef_ffff_ffff_ffff);
        let x = if next() & 1 == 1 { -x } else { x };
        if (lo..=hi).contains(&x) {
            v.push(x);
        }
    }
    for _ in 0..n {
        v.push(lo + (hi - lo) * ((next() >> 11) as f64 / (1u64 << 53) as f64));
    }
    v.extend([lo, hi]);
    v
}
