//! The cancellation-free forms of MATH.md, branch-free: both the series and the direct form are
//! computed and one is selected per lane.
//!
//! φ(w) = w − 1 + e^{−w} uses its Taylor series Σ_{k≥2} (−w)^k/k! on −2 < w < 1 (f64) or
//! −2.5 < w < 1 (f32), wider than `math::phi`'s |w| < 0.5: the direct form cancels for negative
//! w (at w = −0.5 it loses 3 bits; at −1.5 one, enough for 3 ulp). The series is summed as
//! x²/2 + x³·G(x) (x = −w) so the roundings of Horner's steps weigh less. For w ≥ 1 the two
//! terms of the direct form are ≥ 0.
//!
//! x − ln(1 + x) uses Σ_{k≥2} (−1)^k x^k/k on |x| < 0.25 and the direct form elsewhere, as
//! `math::x_minus_log1p`; the direct form cancels by up to 3 bits at |x| = 0.25, so the f32
//! version computes in f64, which absorbs them.

use super::real::{horner, Real};
use super::{exp, log};
use crate::simd::dispatch::Simd;

/// The series of φ is used for PHI_LO_* < w < PHI_HI.
const PHI_LO_F64: f64 = -2.0;
const PHI_LO_F32: f32 = -2.5;
const PHI_HI: f64 = 1.0;

/// [1/(K+1)!, …, 1/3!, 1/2!]: φ(w)/x² for x = −w, highest degree first. The factorials are
/// exact up to 18!; beyond, the rounded coefficients weigh < 1e-17.
const fn phi_coefficients<const K: usize>() -> [f64; K] {
    let mut c = [0.0; K];
    let mut fact = 1.0;
    let mut k = 2;
    while k <= K + 1 {
        fact *= k as f64;
        c[K + 1 - k] = 1.0 / fact;
        k += 1;
    }
    c
}

/// [1/24!, …, 1/3!]: (φ(w) − x²/2)/x³ for x = −w, highest degree first; the first omitted term
/// is < 1e-17 of φ at |x| = 2.
const PHI_G_F64: [f64; 22] = {
    let c = phi_coefficients::<23>();
    let mut out = [0.0; 22];
    let mut i = 0;
    while i < 22 {
        out[i] = c[i];
        i += 1;
    }
    out
};

/// [1/18!, …, 1/3!]: (φ(w) − x²/2)/x³ for x = −w, highest degree first; the first omitted term
/// is < 1e-9 of φ at |x| = 2.5.
const PHI_G_F32: [f32; 16] = {
    let c = phi_coefficients::<17>();
    let mut out = [0.0f32; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = c[i] as f32;
        i += 1;
    }
    out
};

#[inline(always)]
pub(super) fn phi_f64<S: Simd>(w: f64) -> f64 {
    let x = -w;
    let x2 = x * x;
    let g = horner::<S, f64, 22>(x, &PHI_G_F64);
    let series = (x2 * x).lane_mul_add::<S>(g, 0.5 * x2);
    let direct = (w - 1.0) + exp::exp_f64::<S>(x);
    let y = if w > PHI_LO_F64 && w < PHI_HI { series } else { direct };
    // −inf − 1 + inf would be NaN; the limit is +inf.
    if w == f64::NEG_INFINITY {
        f64::INFINITY
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn phi_f32<S: Simd>(w: f32) -> f32 {
    let x = -w;
    // x²/2 + x³·G(x): 3.2 ulp → 2.4 with FMA, 3.1 without (at the top of a binade, x ≈ 2.4).
    let x2 = x * x;
    let g = horner::<S, f32, 16>(x, &PHI_G_F32);
    let series = (x2 * x).lane_mul_add::<S>(g, 0.5 * x2);
    let direct = (w - 1.0) + exp::exp_f32::<S>(x);
    let y = if w > PHI_LO_F32 && w < PHI_HI as f32 { series } else { direct };
    if w == f32::NEG_INFINITY {
        f32::INFINITY
    } else {
        y
    }
}

/// [c_30, …, c_2] with c_k = (−1)^k / k: (x − ln(1 + x))/x², highest degree first, as in
/// `math::x_minus_log1p` (truncation < 3e-20 at |x| = 0.25).
const XML_F64: [f64; 29] = {
    let mut c = [0.0; 29];
    let mut k = 2;
    while k <= 30 {
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        c[30 - k] = sign / k as f64;
        k += 1;
    }
    c
};

#[inline(always)]
pub(super) fn x_minus_log1p_f64<S: Simd>(x: f64) -> f64 {
    let series = horner::<S, f64, 29>(x, &XML_F64) * x * x;
    let direct = x - log::ln_1p_f64::<S>(x);
    let y = if x.abs() < 0.25 { series } else { direct };
    // inf − inf would be NaN; the limit is +inf.
    if x == f64::INFINITY {
        f64::INFINITY
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn x_minus_log1p_f32<S: Simd>(x: f32) -> f32 {
    x_minus_log1p_f64::<S>(f64::from(x)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficient_tables_match_math_rs() {
        assert_eq!(PHI_G_F64[21], 1.0 / 6.0);
        assert_eq!(PHI_G_F64[8], 1.0 / 20_922_789_888_000.0); // 1/16!
        assert_eq!(PHI_G_F32[15], 1.0 / 6.0);
        assert_eq!(XML_F64[28], 0.5);
        assert_eq!(XML_F64[27], -1.0 / 3.0);
        assert_eq!(XML_F64[0], 1.0 / 30.0);
    }
}
