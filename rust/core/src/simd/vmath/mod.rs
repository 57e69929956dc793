//! Vectorisable math, one element at a time: `exp`, `ln`, `ln_1p`, `exp_m1`, and the divergence
//! forms `phi` and `x_minus_log1p`, for f32 and f64. Each is straight-line code (special cases by
//! select, not branch, no table lookups, no float→int conversions), so a loop calling them over a
//! slice becomes vector code of the path it is compiled for.
//!
//! Special values follow std: `exp(−inf) = 0`, `exp(+inf) = inf`, overflow gives inf, underflow
//! gives 0 through correctly scaled subnormals (not flushed); `ln(0) = −inf`, `ln(x < 0) = NaN`,
//! `ln(inf) = inf`; `ln_1p(−1) = −inf`; `exp_m1(−inf) = −1`; NaN in, NaN out; signed zeros are
//! kept by `ln_1p` and `exp_m1`.
//!
//! Error bounds are the largest errors measured by `simd/tests/accuracy.rs`, in units in the
//! last place of the result, on the scalar and AVX2 paths (AVX-512 and NEON run the AVX2 path's
//! operations, bit for bit):
//!
//! | function        | f32: every f32 input, against f64 std | f64: 10^7 samples, against glibc |
//! |-----------------|----------------------------------------|----------------------------------|
//! | `exp`           | 1.01                                   | 1                                |
//! | `exp_m1`        | 1.57 scalar, 1.44 FMA                  | 2                                |
//! | `ln`            | 0.84                                   | 1                                |
//! | `ln_1p`         | 0.87                                   | 1                                |
//! | `phi`           | 3.07 scalar, 2.43 FMA                  | 2 (10^6, double-double reference)|
//! | `x_minus_log1p` | 0.5 (computed in f64)                  | 6 (10^6, double-double reference)|
//!
//! f32 errors are fractional (against the exact value); f64 errors are whole steps from glibc's
//! result, which is itself within ~0.52 ulp (exp, ln) or ~1 ulp (ln_1p, exp_m1) of exact. The
//! largest errors sit where a form changes: exp_m1 just above |x| = ln2/2 (the reduction's n = 1
//! partly cancels), phi near its series' ends, x_minus_log1p at |x| just above 0.25 (the direct
//! form of `math::x_minus_log1p` cancels 3 bits). Paths with FMA give identical bits to one
//! another; the scalar path may differ from them by rounding, within the same bounds.

mod exp;
mod forms;
mod log;
mod real;

use super::dispatch::Simd;
use real::sealed;
pub(crate) use real::horner;
pub use real::Real;

macro_rules! impl_real {
    ($t:ident, $exp:ident, $exp_m1:ident, $ln:ident, $ln_1p:ident, $phi:ident, $xml:ident) => {
        impl sealed::Sealed for $t {}
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = $t::INFINITY;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            const NAN: Self = $t::NAN;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            #[inline(always)]
            fn lane_mul_add<S: Simd>(self, b: Self, c: Self) -> Self {
                // A fused multiply-add only where the path has one: elsewhere `mul_add` would call
                // a slow software fma.
                if S::FMA {
                    self.mul_add(b, c)
                } else {
                    self * b + c
                }
            }
            #[inline(always)]
            fn lane_exp<S: Simd>(self) -> Self {
                exp::$exp::<S>(self)
            }
            #[inline(always)]
            fn lane_exp_m1<S: Simd>(self) -> Self {
                exp::$exp_m1::<S>(self)
            }
            #[inline(always)]
            fn lane_ln<S: Simd>(self) -> Self {
                log::$ln::<S>(self)
            }
            #[inline(always)]
            fn lane_ln_1p<S: Simd>(self) -> Self {
                log::$ln_1p::<S>(self)
            }
            #[inline(always)]
            fn lane_phi<S: Simd>(self) -> Self {
                forms::$phi::<S>(self)
            }
            #[inline(always)]
            fn lane_x_minus_log1p<S: Simd>(self) -> Self {
                forms::$xml::<S>(self)
            }
        }
    };
}

impl_real!(f32, exp_f32, exp_m1_f32, ln_f32, ln_1p_f32, phi_f32, x_minus_log1p_f32);
impl_real!(f64, exp_f64, exp_m1_f64, ln_f64, ln_1p_f64, phi_f64, x_minus_log1p_f64);

/// `a·b + c`, fused (one rounding) on paths with FMA, separate multiply and add on the scalar path.
#[inline(always)]
pub fn mul_add<S: Simd, T: Real>(_: S, a: T, b: T, c: T) -> T {
    a.lane_mul_add::<S>(b, c)
}

/// e^x. Measured error: f32 ≤ 1.01 ulp; f64 ≤ 1 ulp from glibc. See the module notes for the
/// special values.
#[inline(always)]
pub fn exp<S: Simd, T: Real>(_: S, x: T) -> T {
    x.lane_exp::<S>()
}

/// e^x − 1, accurate near 0 (no cancellation). Measured error: f32 ≤ 1.57 ulp; f64 ≤ 2 ulp
/// from glibc.
#[inline(always)]
pub fn exp_m1<S: Simd, T: Real>(_: S, x: T) -> T {
    x.lane_exp_m1::<S>()
}

/// (e^x − 1, e^x − 1 − x) for f32 from one range reduction: e^x − 1 as [`exp_m1`], and φ(−x)
/// (see [`phi`]) within 8 ulp. Cheaper than the two apart. e^x − 1 is inf for x above `hi`
/// (and above 88 in any case): a range check at no cost for a caller that treats inf as "decline".
#[inline(always)]
pub fn exp_m1_phi<S: Simd>(_: S, x: f32, hi: f32) -> (f32, f32) {
    exp::exp_m1_phi_f32::<S>(x, hi)
}

/// e^x for f32 x ≤ 0, flushed to 0 below −87 (no subnormal results): the softmax numerator
/// e^{x − max}, cheaper than [`exp`].
#[inline(always)]
pub fn exp_nonpos<S: Simd>(_: S, x: f32) -> f32 {
    exp::exp_nonpos_f32::<S>(x)
}

/// e^x − 1 for f32 |x| ≤ ½ by its Taylor polynomial alone (degree 9: truncation below 2e-9 of
/// the result; a few ulp in all): no range reduction, for callers that select another form
/// beyond ½ (and clamp the argument there).
#[inline(always)]
pub fn exp_m1_small<S: Simd>(_: S, x: f32) -> f32 {
    const C: [f32; 9] = [
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
    ];
    horner::<S, f32, 9>(x, &C) * x
}

/// Natural logarithm. Measured error: f32 ≤ 0.84 ulp; f64 ≤ 1 ulp from glibc.
#[inline(always)]
pub fn ln<S: Simd, T: Real>(_: S, x: T) -> T {
    x.lane_ln::<S>()
}

/// ln(1 + x), accurate near 0. Measured error: f32 ≤ 0.87 ulp; f64 ≤ 1 ulp from glibc.
#[inline(always)]
pub fn ln_1p<S: Simd, T: Real>(_: S, x: T) -> T {
    x.lane_ln_1p::<S>()
}

/// φ(w) = w − 1 + e^{−w} ≥ 0, the KL summand per unit of probability (`math::phi`), by its
/// series where the direct form cancels. φ(−inf) = inf. Measured error: f32 ≤ 2.43 ulp with FMA,
/// 3.07 without; f64 ≤ 2 ulp.
#[inline(always)]
pub fn phi<S: Simd, T: Real>(_: S, w: T) -> T {
    w.lane_phi::<S>()
}

/// x − ln(1 + x) ≥ 0 for x > −1, accurate near 0 (`math::x_minus_log1p`); +inf at x = +inf
/// (where `math::x_minus_log1p` gives NaN). Measured error: f32 ≤ 0.5 ulp (computed in f64);
/// f64 ≤ 6 ulp, as `math::x_minus_log1p`.
#[inline(always)]
pub fn x_minus_log1p<S: Simd, T: Real>(_: S, x: T) -> T {
    x.lane_x_minus_log1p::<S>()
}

/// (x − y) − c for two logits x, y and a shift c close to x − y, rounded once: x − y is formed
/// exactly (the rounded difference plus its error, Knuth's two-sum) and the rounded difference
/// minus c is exact where it matters (Sterbenz: when it is within a factor 2 of c). So a constant
/// shift between two rows leaves no rounding error of size ulp(c) in a result that may be far
/// smaller (two models' logits often differ by such a shift). The same bits on every path.
#[inline(always)]
pub fn diff_minus<S: Simd, T: Real>(_: S, x: T, y: T, c: T) -> T {
    let d = x - y;
    let b = d - x;
    let err = (x - (d - b)) + (-y - b); // d + err = x − y exactly
    (d - c) + err
}
