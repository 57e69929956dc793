//! The lane type trait [`Real`] (f32 or f64) and the small helpers the per-function files build
//! on; its implementations, which call those files, are in `vmath/mod.rs`.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::simd::dispatch::Simd;

pub(super) mod sealed {
    pub trait Sealed {}
}

/// A lane type: f32 or f64. Kernels generic over `T: Real` work in either precision.
///
/// The `lane_*` methods are the implementations behind this module's functions; call those
/// (`vmath::exp(simd, x)`), which read better and cannot be confused with std's `x.exp()`.
pub trait Real:
    Copy
    + Default
    + Debug
    + PartialEq
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + sealed::Sealed
{
    const ZERO: Self;
    const ONE: Self;
    const INFINITY: Self;
    const NEG_INFINITY: Self;
    const NAN: Self;
    /// Rounds to nearest.
    fn from_f64(x: f64) -> Self;
    /// Exact.
    fn to_f64(self) -> f64;
    fn abs(self) -> Self;
    /// The larger value, ignoring a NaN operand (IEEE maxNum, like `f32::max`).
    fn max(self, other: Self) -> Self;
    fn is_nan(self) -> bool;
    fn is_finite(self) -> bool;

    #[doc(hidden)]
    fn lane_mul_add<S: Simd>(self, b: Self, c: Self) -> Self;
    #[doc(hidden)]
    fn lane_exp<S: Simd>(self) -> Self;
    #[doc(hidden)]
    fn lane_exp_m1<S: Simd>(self) -> Self;
    #[doc(hidden)]
    fn lane_ln<S: Simd>(self) -> Self;
    #[doc(hidden)]
    fn lane_ln_1p<S: Simd>(self) -> Self;
    #[doc(hidden)]
    fn lane_phi<S: Simd>(self) -> Self;
    #[doc(hidden)]
    fn lane_x_minus_log1p<S: Simd>(self) -> Self;
}

/// Horner's rule with the coefficients highest degree first.
#[inline(always)]
pub(crate) fn horner<S: Simd, T: Real, const K: usize>(x: T, c: &[T; K]) -> T {
    let mut acc = c[0];
    for &ci in &c[1..] {
        acc = acc.lane_mul_add::<S>(x, ci);
    }
    acc
}

/// `x` limited to `[lo, hi]`, NaN kept (unlike `f32::clamp` it never panics, and unlike
/// `max`/`min` it does not drop a NaN).
#[inline(always)]
pub(super) fn clamp_keep_nan<T: Real>(x: T, lo: T, hi: T) -> T {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}
