//! Special values on every path, and every path against the scalar one.

use super::{f32_sweep, f64_samples, run, ulps_f32, ulps_f64};
use crate::simd::isa::{available, Isa};
use crate::simd::map::Func;
use crate::simd::vmath::Real;

/// (input, expected) pairs that must come out exactly (NaN: any NaN; zeros: with their sign).
fn specials<T: Real>(func: Func) -> Vec<(T, T)> {
    let (inf, nan, c) = (T::INFINITY, T::NAN, T::from_f64);
    let neg_zero = -T::ZERO;
    match func {
        Func::Exp => vec![
            (-inf, T::ZERO),
            (inf, inf),
            (nan, nan),
            (T::ZERO, T::ONE),
            (neg_zero, T::ONE),
            (c(1000.0), inf),
            (c(-1000.0), T::ZERO),
            (c(1e30), inf),
            (c(-1e30), T::ZERO),
        ],
        Func::ExpM1 => vec![
            (-inf, -T::ONE),
            (inf, inf),
            (nan, nan),
            (T::ZERO, T::ZERO),
            (neg_zero, neg_zero),
            (c(1e-30), c(1e-30)),
            (c(-1e-30), c(-1e-30)),
            (c(1000.0), inf),
            (c(-1000.0), -T::ONE),
        ],
        Func::Ln => vec![
            (T::ZERO, -inf),
            (neg_zero, -inf),
            (-T::ONE, nan),
            (-inf, nan),
            (inf, inf),
            (nan, nan),
            (T::ONE, T::ZERO),
        ],
        Func::Ln1p => vec![
            (-T::ONE, -inf),
            (c(-2.0), nan),
            (-inf, nan),
            (inf, inf),
            (nan, nan),
            (T::ZERO, T::ZERO),
            (neg_zero, neg_zero),
            (c(1e-30), c(1e-30)),
            (c(-1e-30), c(-1e-30)),
        ],
        Func::Phi => vec![(-inf, inf), (inf, inf), (nan, nan), (T::ZERO, T::ZERO), (c(-1000.0), inf)],
        Func::XMinusLog1p => {
            vec![(-T::ONE, inf), (c(-2.0), nan), (inf, inf), (nan, nan), (T::ZERO, T::ZERO)]
        }
    }
}

fn same<T: Real>(a: T, b: T) -> bool {
    (a.is_nan() && b.is_nan()) || (a == b && (a.to_f64().is_sign_negative() == b.to_f64().is_sign_negative()))
}

#[test]
fn special_values_on_every_path() {
    for isa in available() {
        for func in Func::ALL {
            for (x, want) in specials::<f32>(func) {
                let got = run(isa, func, &[x])[0];
                assert!(same(got, want), "{isa} {} f32({x}) = {got}, want {want}", func.name());
            }
            for (x, want) in specials::<f64>(func) {
                let got = run(isa, func, &[x])[0];
                assert!(same(got, want), "{isa} {} f64({x}) = {got}, want {want}", func.name());
            }
        }
    }
}

#[test]
fn overflow_underflow_and_subnormals_round_like_std() {
    // Around the thresholds where exp leaves the normal range, and inputs that are subnormal.
    let mut x32: Vec<f32> = (-200..=200).map(|i| 88.72 + i as f32 * 1e-5).collect();
    x32.extend((0..2000).map(|i| -87.0 - i as f32 * 0.01)); // subnormal and zero results
    let mut x64: Vec<f64> = (-200..=200).map(|i| 709.78 + i as f64 * 1e-5).collect();
    x64.extend((0..2000).map(|i| -707.0 - i as f64 * 0.02));
    let sub32: Vec<f32> = (0..2000).map(|i| f32::from_bits(1 + i * 4099)).collect();
    let sub64: Vec<f64> = (0..2000).map(|i| f64::from_bits(1 + i * 2_251_799_813_685)).collect();
    for isa in available() {
        for (&x, y) in x32.iter().zip(run(isa, Func::Exp, &x32)) {
            assert!(ulps_f32(y, f64::from(x).exp()) <= 1.0, "{isa} exp({x:e}) = {y:e}");
        }
        for (&x, y) in x64.iter().zip(run(isa, Func::Exp, &x64)) {
            assert!(ulps_f64(y, x.exp()) <= 1, "{isa} exp({x:e}) = {y:e}");
        }
        for (&x, y) in sub32.iter().zip(run(isa, Func::Ln, &sub32)) {
            assert!(ulps_f32(y, f64::from(x).ln()) <= 1.0, "{isa} ln({x:e}) = {y:e}");
        }
        for (&x, y) in sub64.iter().zip(run(isa, Func::Ln, &sub64)) {
            assert!(ulps_f64(y, x.ln()) <= 1, "{isa} ln({x:e}) = {y:e}");
        }
    }
}

/// Paths with FMA run the same operations: their results must be identical bits. The scalar
/// path (separate multiply and add) may differ by rounding, within the sum of the bounds.
#[test]
fn every_path_agrees_with_the_scalar_path() {
    let x32 = f32_sweep(65_521, -200.0, 1e30);
    let x64 = f64_samples(20_000, -800.0, 1e300, 5);
    let fma_paths: Vec<Isa> = available().into_iter().filter(|&i| i != Isa::Scalar).collect();
    for func in Func::ALL {
        let (x32, x64): (Vec<f32>, Vec<f64>) = match func {
            // keep to the inputs where the f64 reference of the accuracy tests is exact
            Func::XMinusLog1p => (
                x32.iter().copied().filter(|&x| x >= -1.0).collect(),
                x64.iter().copied().filter(|&x| x >= -1.0).collect(),
            ),
            _ => (x32.clone(), x64.clone()),
        };
        let s32 = run(Isa::Scalar, func, &x32);
        let s64 = run(Isa::Scalar, func, &x64);
        for &isa in &fma_paths {
            let y32 = run(isa, func, &x32);
            let y64 = run(isa, func, &x64);
            for ((&x, &a), &b) in x32.iter().zip(&s32).zip(&y32) {
                assert!(ulps_f32(b, f64::from(a)) <= 4.0, "{isa} vs scalar {} f32({x:e}): {a:e} vs {b:e}", func.name());
            }
            for ((&x, &a), &b) in x64.iter().zip(&s64).zip(&y64) {
                let limit = if func == Func::XMinusLog1p { 16 } else { 4 };
                assert!(ulps_f64(a, b) <= limit, "{isa} vs scalar {} f64({x:e}): {a:e} vs {b:e}", func.name());
            }
            let bits32 = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
            let bits64 = |v: &[f64]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
            let first = fma_paths[0];
            if first != isa {
                assert!(bits32(&y32) == bits32(&run(first, func, &x32)), "{isa} vs {first} {} f32", func.name());
                assert!(bits64(&y64) == bits64(&run(first, func, &x64)), "{isa} vs {first} {} f64", func.name());
            }
        }
    }
}
