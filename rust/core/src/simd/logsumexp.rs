//! log Σ e^{x_i} over a row: the worked example of a kernel written once and dispatched, and the
//! statistic every softmax kernel starts from.
//!
//! One pass over memory, in spans of 2048 elements that stay in L1: each span's max is found
//! first, the running sum is rescaled by e^{old max − new max} when the max grows (once per span,
//! not per element), then the span's e^{x − max} are computed in the element's compute type (f32
//! for f32/f16/bf16, f64 for f64) and added to f64 accumulators. For f32 the error is then that
//! of one f32 exp per term: measured within 2e-7 of the exact value (a relative error of the sum),
//! whatever the row length; for f64 within a few 1e-16 relative.
//!
//! Special values: an empty row or a row of −inf gives −inf; +inf anywhere gives +inf; NaN
//! anywhere gives NaN.

use super::block::{hmax, hsum, BLOCK};
use super::convert::Load;
use super::dispatch::{dispatch, dispatch_on, Kernel, Simd};
use super::isa::Isa;
use super::vmath::{self, Real};
use crate::error::Error;

/// Elements per span: 2048 f64 are 16 KiB, so the sum pass finds the span in L1.
const SPAN: usize = 8 * BLOCK;

/// log Σ e^{x_i} of f32 values, on the active path.
pub fn logsumexp_f32(x: &[f32]) -> f64 {
    logsumexp(x)
}

/// log Σ e^{x_i} of f64 values, on the active path.
pub fn logsumexp_f64(x: &[f64]) -> f64 {
    logsumexp(x)
}

/// log Σ e^{x_i} of f32, f64, f16 or bf16 values, on the active path.
pub fn logsumexp<E: Load>(x: &[E]) -> f64 {
    dispatch(LogSumExp(x))
}

/// The same on `isa`, or the error saying why that path cannot run here.
pub fn logsumexp_on<E: Load>(isa: Isa, x: &[E]) -> Result<f64, Error> {
    dispatch_on(isa, LogSumExp(x))
}

/// The kernel: a row, and a body generic over the path `S`.
struct LogSumExp<'a, E>(&'a [E]);

impl<E: Load> Kernel for LogSumExp<'_, E> {
    type Output = f64;

    #[inline(always)]
    fn run<S: Simd>(self, s: S) -> f64 {
        let mut buf = [E::Real::ZERO; BLOCK]; // f16/bf16 converted a block at a time
        let mut terms = [E::Real::ZERO; BLOCK]; // e^{x − max} of one block
        let mut sum = [0.0f64; BLOCK]; // Σ e^{x − max}, per position in the block
        let mut max = f64::NEG_INFINITY; // always a value of E::Real, so converting back is exact
        let mut saw_inf = false;
        for span in self.0.chunks(SPAN) {
            let span_max = span_max(s, span, &mut buf).to_f64();
            if !span_max.is_finite() || saw_inf {
                // +inf, or nothing but −inf and NaN: no terms to add, but a NaN decides.
                if has_nan(span) {
                    return f64::NAN;
                }
                saw_inf |= span_max == f64::INFINITY;
                continue;
            }
            if span_max > max {
                let scale = (max - span_max).exp();
                for v in &mut sum {
                    *v *= scale;
                }
                max = span_max;
            }
            let m = E::Real::from_f64(max);
            for block in span.chunks(BLOCK) {
                let x = E::load(s, block, &mut buf);
                // Two loops, each of one width: exp in the compute type, then the widening sum
                // (one loop mixing f32 and f64 would be vectorised at half the width).
                for (t, &v) in terms.iter_mut().zip(x) {
                    *t = vmath::exp(s, v - m);
                }
                for (a, &t) in sum.iter_mut().zip(&terms[..x.len()]) {
                    *a += t.to_f64();
                }
            }
        }
        // NaN elements of finite spans made their terms, hence the sum, NaN.
        let total = hsum(&sum[..self.0.len().min(BLOCK)]);
        if total.is_nan() {
            f64::NAN
        } else if saw_inf {
            f64::INFINITY
        } else if max == f64::NEG_INFINITY {
            f64::NEG_INFINITY
        } else {
            max + total.ln()
        }
    }
}

/// The largest element of `span`, ignoring NaN (−inf when there is none).
#[inline(always)]
fn span_max<S: Simd, E: Load>(s: S, span: &[E], buf: &mut [E::Real; BLOCK]) -> E::Real {
    let mut m = [E::Real::NEG_INFINITY; BLOCK];
    for block in span.chunks(BLOCK) {
        for (m, &v) in m.iter_mut().zip(E::load(s, block, buf)) {
            *m = m.max(v);
        }
    }
    hmax(&m[..span.len().min(BLOCK)])
}

/// Whether `x` holds a NaN (the rare path, scalar).
fn has_nan<E: Load>(x: &[E]) -> bool {
    x.iter().any(|e| e.to_real().is_nan())
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;
    use crate::simd::available;

    /// log Σ e^{x_i} in f64 with std's exp and a compensated (Neumaier) sum.
    fn reference(x: &[f64]) -> f64 {
        let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for &v in x {
            let t = (v - m).exp();
            let u = s + t;
            c += if s.abs() >= t { (s - u) + t } else { (t - u) + s };
            s = u;
        }
        m + (s + c).ln()
    }

    /// Deterministic pseudo-random logits in [−scale, scale] plus an offset.
    fn logits(n: usize, seed: u64, scale: f64, offset: f64) -> Vec<f64> {
        crate::testing::noise(n, seed).iter().map(|v| offset + scale * v).collect()
    }

    #[test]
    fn matches_the_compensated_reference_on_every_path() {
        for &(n, scale, offset) in
            &[(1, 3.0, 0.0), (7, 3.0, 0.0), (37, 10.0, 5.0), (5000, 30.0, -12.0), (70_001, 8.0, 100.0)]
        {
            let x64 = logits(n, n as u64, scale, offset);
            let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
            let want32 = reference(&x32.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
            let want64 = reference(&x64);
            for isa in available() {
                let got32 = logsumexp_on(isa, &x32).unwrap();
                let got64 = logsumexp_on(isa, &x64).unwrap();
                assert!((got32 - want32).abs() <= 2e-7 + 1e-15 * want32.abs(), "{isa} n={n}: {got32} vs {want32}");
                assert!((got64 - want64).abs() <= 4e-16 * (1.0 + want64.abs()), "{isa} n={n}: {got64} vs {want64}");
            }
        }
    }

    #[test]
    fn a_million_f32_logits_keep_their_digits() {
        // Many near-equal terms: an f32 running sum would lose ~1e-4 here.
        let x64 = logits(1_000_000, 42, 2.0, 0.0);
        let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let want = reference(&x32.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
        for isa in available() {
            let got = logsumexp_on(isa, &x32).unwrap();
            assert!((got - want).abs() <= 2e-7, "{isa}: {got} vs {want}, diff {}", got - want);
        }
    }

    #[test]
    fn the_max_moving_between_spans_rescales_the_sum() {
        // Increasing values: every span raises the max.
        let x: Vec<f64> = (0..10_000).map(|i| i as f64 * 0.01).collect();
        for isa in available() {
            let got = logsumexp_on(isa, &x).unwrap();
            assert!((got - reference(&x)).abs() <= 1e-14, "{isa}");
        }
    }

    #[test]
    fn special_values() {
        let inf = f32::INFINITY;
        for isa in available() {
            let lse = |x: &[f32]| logsumexp_on(isa, x).unwrap();
            assert_eq!(lse(&[]), f64::NEG_INFINITY);
            assert_eq!(lse(&[-inf; 40]), f64::NEG_INFINITY);
            assert_eq!(lse(&[-inf, 0.0, -inf]), 0.0);
            assert_eq!(lse(&[1.0, inf, 2.0]), f64::INFINITY);
            assert!(lse(&[1.0, f32::NAN, 2.0]).is_nan());
            assert!(lse(&[-inf, f32::NAN]).is_nan());
            assert!(lse(&[inf, f32::NAN]).is_nan());
            // NaN in a later span than the +inf, and the other way round.
            let mut v = vec![0.0f32; 3 * SPAN];
            v[5] = inf;
            v[2 * SPAN + 1] = f32::NAN;
            assert!(lse(&v).is_nan());
            v[5] = f32::NAN;
            v[2 * SPAN + 1] = inf;
            assert!(lse(&v).is_nan());
            // A span of −inf and NaN only.
            let mut v = vec![-inf; 2 * SPAN];
            v[SPAN + 3] = f32::NAN;
            assert!(lse(&v).is_nan());
            // Huge and tiny logits: no overflow, no underflow to −inf.
            assert_eq!(lse(&[1e30, 1e30]), f64::from(1e30f32) + 2f64.ln());
            assert_eq!(lse(&[-1e30]), f64::from(-1e30f32));
        }
    }

    #[test]
    fn half_inputs_load_in_chunks() {
        let x64 = logits(1003, 7, 6.0, 1.0);
        let h: Vec<f16> = x64.iter().map(|&v| f16::from_f64(v)).collect();
        let b: Vec<bf16> = x64.iter().map(|&v| bf16::from_f64(v)).collect();
        let want_h = reference(&h.iter().map(|v| v.to_f64()).collect::<Vec<_>>());
        let want_b = reference(&b.iter().map(|v| v.to_f64()).collect::<Vec<_>>());
        for isa in available() {
            assert!((logsumexp_on(isa, &h).unwrap() - want_h).abs() <= 2e-7, "{isa}");
            assert!((logsumexp_on(isa, &b).unwrap() - want_b).abs() <= 2e-7, "{isa}");
        }
    }

    #[test]
    fn shift_invariance() {
        let x = logits(999, 3, 5.0, 0.0);
        let shifted: Vec<f64> = x.iter().map(|v| v + 1000.0).collect();
        let (a, b) = (logsumexp_f64(&x), logsumexp_f64(&shifted));
        assert!((b - a - 1000.0).abs() <= 1e-12);
    }
}
