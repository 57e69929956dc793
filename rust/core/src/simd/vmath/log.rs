//! ln x and ln(1 + x), after fdlibm/musl: write u = 2^k·m with m in [√½, √2) by integer
//! arithmetic on the bits (subnormals scaled up first), then ln m = 2·atanh(s), s = f/(2 + f),
//! f = m − 1, from a minimax polynomial in s². ln(1 + x) runs the same core on u = 1 + x and adds
//! the rounding error of that sum, c/u, in the low-order term.

// Constants are written as published (fdlibm and musl) so they can be checked against the
// sources; each rounds to the intended value, checked bit for bit in the tests below.
#![allow(clippy::excessive_precision)]

use super::real::{horner, Real};
use crate::simd::dispatch::Simd;

/// The special values of ln u, applied by select after the core (which assumes finite u > 0).
#[inline(always)]
fn specials<T: Real>(u: T, y: T) -> T {
    let y = if u == T::INFINITY { T::INFINITY } else { y };
    let y = if u == T::ZERO { T::NEG_INFINITY } else { y };
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // true for negative u and for NaN
    let invalid = !(u >= T::ZERO);
    if invalid {
        T::NAN
    } else {
        y
    }
}

// ---- f32 (musl logf / log1pf) ----

const LN2_HI_F32: f32 = 6.931_381_225_6e-1; // 0x3f317180
const LN2_LO_F32: f32 = 9.058_000_614_5e-6; // 0x3717f7d1
/// |(ln(1+s) − ln(1−s))/s − s·P(s²)| < 2^−34.24; P highest degree first (Lg4, Lg2 | Lg3, Lg1).
const LG_EVEN_F32: [f32; 2] = [0xf8_9e26 as f32 / (1u32 << 26) as f32, 0xcc_ce13 as f32 / (1u32 << 25) as f32];
const LG_ODD_F32: [f32; 2] = [0x91_e9ee as f32 / (1u32 << 25) as f32, 0xaa_aaaa as f32 / (1u32 << 24) as f32];
const SQRT_HALF_BITS_F32: u32 = 0x3f35_04f3;
const TWO25_F32: f32 = 33_554_432.0;

/// ln(u) + c for finite u > 0 and a small correction c.
#[inline(always)]
fn ln_core_f32<S: Simd>(u: f32, c: f32) -> f32 {
    let subnormal = u < f32::MIN_POSITIVE;
    let u = if subnormal { u * TWO25_F32 } else { u };
    let k_adjust = if subnormal { -25 } else { 0 };
    // Adding 1 − √½ (in bits) carries into the exponent exactly when the mantissa is ≥ √2.
    let ix = u.to_bits().wrapping_add(0x3f80_0000 - SQRT_HALF_BITS_F32);
    let k = (ix >> 23) as i32 - 0x7f + k_adjust;
    let f = f32::from_bits((ix & 0x007f_ffff) + SQRT_HALF_BITS_F32) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let r = z * horner::<S, f32, 2>(w, &LG_ODD_F32) + w * horner::<S, f32, 2>(w, &LG_EVEN_F32);
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    // musl: s·(hfsq + R) + dk·ln2_lo − hfsq + f + dk·ln2_hi, with c beside dk·ln2_lo.
    let lo = dk.lane_mul_add::<S>(LN2_LO_F32, c);
    let y = s.lane_mul_add::<S>(hfsq + r, lo) - hfsq + f;
    dk.lane_mul_add::<S>(LN2_HI_F32, y)
}

#[inline(always)]
pub(super) fn ln_f32<S: Simd>(x: f32) -> f32 {
    specials(x, ln_core_f32::<S>(x, 0.0))
}

#[inline(always)]
pub(super) fn ln_1p_f32<S: Simd>(x: f32) -> f32 {
    let u = 1.0 + x;
    // What rounding 1 + x lost, exactly (each difference below is exact by Sterbenz's lemma).
    let c = if u < 2.0 { x - (u - 1.0) } else { 1.0 - (u - x) };
    let y = specials(u, ln_core_f32::<S>(u, c / u));
    if x == 0.0 {
        x // keeps the sign of zero
    } else {
        y
    }
}

// ---- f64 (fdlibm log / log1p) ----

const LN2_HI_F64: f64 = 6.931_471_803_691_238_164_90e-1; // 0x3fe62e42fee00000
const LN2_LO_F64: f64 = 1.908_214_929_270_587_700_02e-10; // 0x3dea39ef35793c76
/// fdlibm's Lg1..Lg7 split into the terms in w = s⁴, highest degree first.
const LG_ODD_F64: [f64; 4] = [
    1.479_819_860_511_658_591e-1, // Lg7
    1.818_357_216_161_805_012e-1, // Lg5
    2.857_142_874_366_239_149e-1, // Lg3
    6.666_666_666_666_735_130e-1, // Lg1
];
const LG_EVEN_F64: [f64; 3] = [
    1.531_383_769_920_937_332e-1, // Lg6
    2.222_219_843_214_978_396e-1, // Lg4
    3.999_999_999_940_941_908e-1, // Lg2
];
const SQRT_HALF_BITS_F64: u64 = 0x3fe6_a09e_667f_3bcd;
const TWO54_F64: f64 = 18_014_398_509_481_984.0;
/// 2^52: adding a small integer to its mantissa bits and subtracting it converts exactly.
const TWO52_F64: f64 = 4_503_599_627_370_496.0;

#[inline(always)]
fn ln_core_f64<S: Simd>(u: f64, c: f64) -> f64 {
    let subnormal = u < f64::MIN_POSITIVE;
    let u = if subnormal { u * TWO54_F64 } else { u };
    let k_adjust = if subnormal { 54.0 } else { 0.0 };
    let ix = u.to_bits().wrapping_add(0x3ff0_0000_0000_0000 - SQRT_HALF_BITS_F64);
    // k as f64 without a 64-bit int→float conversion (AVX2 has none): the biased exponent
    // (< 2^12) goes into the mantissa of 2^52.
    let dk = f64::from_bits(TWO52_F64.to_bits() | (ix >> 52)) - (TWO52_F64 + 1023.0) - k_adjust;
    let f = f64::from_bits((ix & 0x000f_ffff_ffff_ffff) + SQRT_HALF_BITS_F64) - 1.0;
    let hfsq = 0.5 * f * f;
    let s = f / (2.0 + f);
    let z = s * s;
    let w = z * z;
    let r = z * horner::<S, f64, 4>(w, &LG_ODD_F64) + w * horner::<S, f64, 3>(w, &LG_EVEN_F64);
    // fdlibm: dk·ln2_hi − ((hfsq − (s·(hfsq + R) + dk·ln2_lo)) − f), with c beside dk·ln2_lo.
    let lo = dk.lane_mul_add::<S>(LN2_LO_F64, c);
    let y = (hfsq - s.lane_mul_add::<S>(hfsq + r, lo)) - f;
    dk * LN2_HI_F64 - y
}

#[inline(always)]
pub(super) fn ln_f64<S: Simd>(x: f64) -> f64 {
    specials(x, ln_core_f64::<S>(x, 0.0))
}

#[inline(always)]
pub(super) fn ln_1p_f64<S: Simd>(x: f64) -> f64 {
    let u = 1.0 + x;
    let c = if u < 2.0 { x - (u - 1.0) } else { 1.0 - (u - x) };
    let y = specials(u, ln_core_f64::<S>(u, c / u));
    if x == 0.0 {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_have_their_published_bits() {
        assert_eq!(LN2_HI_F32.to_bits(), 0x3f31_7180);
        assert_eq!(LN2_LO_F32.to_bits(), 0x3717_f7d1);
        assert_eq!(LN2_HI_F64.to_bits(), 0x3fe6_2e42_fee0_0000);
        assert_eq!(LN2_LO_F64.to_bits(), 0x3dea_39ef_3579_3c76);
        let lg: Vec<u64> = [
            LG_ODD_F64[3],
            LG_EVEN_F64[2],
            LG_ODD_F64[2],
            LG_EVEN_F64[1],
            LG_ODD_F64[1],
            LG_EVEN_F64[0],
            LG_ODD_F64[0],
        ]
        .iter()
        .map(|c| c.to_bits())
        .collect();
        // Lg1..Lg7 as fdlibm's hex comments give them
        assert_eq!(
            lg,
            [
                0x3fe5_5555_5555_5593,
                0x3fd9_9999_9997_fa04,
                0x3fd2_4924_9422_9359,
                0x3fcc_71c5_1d8e_78af,
                0x3fc7_4664_96cb_03de,
                0x3fc3_9a09_d078_c69f,
                0x3fc2_f112_df3e_5244
            ]
        );
    }
}
