//! e^x and e^x − 1. Reduce x = n·ln2 + r with |r| ≤ ln2/2 (n found by the round-to-nearest of an
//! added 1.5·2^m, read back from the bits: no float→int conversion), approximate e^r − 1 by
//! r + r²·P(r), and scale by 2^n built from exponent bits in two halves, so that results near
//! overflow reach inf and results in the subnormal range are rounded once, like std.

// Constants are written as published (Cephes and fdlibm) so they can be checked against the
// sources; each rounds to the intended value, checked bit for bit in the tests below.
#![allow(clippy::excessive_precision)]

use super::{clamp_keep_nan, horner, Real};
use crate::simd::dispatch::Simd;

// ---- f32 ----

/// Below this e^x rounds to 0 (e^−103.97 is half the smallest subnormal).
const EXP_LO_F32: f32 = -105.0;
/// Above this e^x rounds to inf (ln f32::MAX ≈ 88.72).
const EXP_HI_F32: f32 = 89.0;
/// Below this e^x − 1 rounds to −1.
const EXP_M1_LO_F32: f32 = -20.0;
/// 1.5·2^23: x·log2e + SHIFT rounds to an integer held in the low mantissa bits.
const SHIFT_F32: f32 = 12_582_912.0;
/// ln 2 split so that n·LN2_HI is exact for |n| < 2^15 (LN2_HI = 355/512).
const LN2_HI_F32: f32 = 355.0 / 512.0;
const LN2_LO_F32: f32 = -2.121_944_4e-4;
/// Cephes' minimax e^r ≈ 1 + r + r²·P(r) on |r| ≤ ln2/2, P highest degree first.
const EXP_P_F32: [f32; 6] = [
    1.987_569_15e-4,
    1.398_199_950_7e-3,
    8.333_451_907_3e-3,
    4.166_579_589_4e-2,
    1.666_666_545_9e-1,
    5.000_000_120_1e-1,
];

/// (e^r − 1, n + 254) for x = n·ln2 + r; x must be clamped (|x·log2e| < 2^22).
#[inline(always)]
fn reduce_f32<S: Simd>(x: f32) -> (f32, u32) {
    let t = x.lane_mul_add::<S>(std::f32::consts::LOG2_E, SHIFT_F32);
    let n = t - SHIFT_F32;
    // t's bits are SHIFT's bits + n; keep n biased by 2·127 for the two scale factors.
    let biased = t.to_bits().wrapping_sub(SHIFT_F32.to_bits()).wrapping_add(254);
    let r = (-n).lane_mul_add::<S>(LN2_HI_F32, x);
    let r = (-n).lane_mul_add::<S>(LN2_LO_F32, r);
    let p = horner::<S, f32, 6>(r, &EXP_P_F32);
    (p.lane_mul_add::<S>(r * r, r), biased)
}

/// 2^n as two normal factors from n + 254 (each factor within 2^±77).
#[inline(always)]
fn pow2_halves_f32(biased: u32) -> (f32, f32) {
    let b1 = biased >> 1;
    let b2 = biased.wrapping_sub(b1);
    (f32::from_bits(b1 << 23), f32::from_bits(b2 << 23))
}

#[inline(always)]
pub(super) fn exp_f32<S: Simd>(x: f32) -> f32 {
    let x = clamp_keep_nan(x, EXP_LO_F32, EXP_HI_F32);
    let (p, biased) = reduce_f32::<S>(x);
    let (s1, s2) = pow2_halves_f32(biased);
    (p + 1.0) * s1 * s2
}

#[inline(always)]
pub(super) fn exp_m1_f32<S: Simd>(x: f32) -> f32 {
    let xc = clamp_keep_nan(x, EXP_M1_LO_F32, EXP_HI_F32);
    let (p, biased) = reduce_f32::<S>(xc);
    let (s1, s2) = pow2_halves_f32(biased);
    // e^x − 1 = (p + (1 − 2^−n))·2^n: 1 − 2^−n is exact for the n where it matters (n ≤ 24;
    // capped at n = 30, beyond which it rounds to 1), and p + c does not cancel for n ≠ 0.
    let neg_n_exp = 381 - biased.min(254 + 30); // 127 − n
    let c = 1.0 - f32::from_bits(neg_n_exp << 23);
    let y = (p + c) * s1 * s2;
    if x == 0.0 {
        x // keeps the sign of zero
    } else {
        y
    }
}

// ---- f64 ----

/// Below this e^x rounds to 0.
const EXP_LO_F64: f64 = -746.0;
/// Above this e^x rounds to inf (ln f64::MAX ≈ 709.78).
const EXP_HI_F64: f64 = 710.0;
/// Below this e^x − 1 rounds to −1.
const EXP_M1_LO_F64: f64 = -45.0;
/// 1.5·2^52.
const SHIFT_F64: f64 = 6_755_399_441_055_744.0;
/// fdlibm's split of ln 2: n·LN2_HI is exact for |n| < 2^21.
const LN2_HI_F64: f64 = 6.931_471_803_691_238_164_90e-1;
const LN2_LO_F64: f64 = 1.908_214_929_270_587_700_02e-10;
/// Taylor e^r ≈ 1 + r + r²·Σ_{k=2}^{13} r^{k−2}/k!: truncation < 5e-18 relative at |r| = ln2/2.
const EXP_P_F64: [f64; 12] = inv_factorials();

/// [1/13!, 1/12!, …, 1/2!].
const fn inv_factorials() -> [f64; 12] {
    let mut c = [0.0; 12];
    let mut fact = 1.0;
    let mut k = 2;
    while k <= 13 {
        fact *= k as f64; // exact: 13! < 2^53
        c[13 - k] = 1.0 / fact;
        k += 1;
    }
    c
}

/// (e^r − 1, n + 2046) for x = n·ln2 + r; x must be clamped.
#[inline(always)]
fn reduce_f64<S: Simd>(x: f64) -> (f64, u64) {
    let t = x.lane_mul_add::<S>(std::f64::consts::LOG2_E, SHIFT_F64);
    let n = t - SHIFT_F64;
    let biased = t.to_bits().wrapping_sub(SHIFT_F64.to_bits()).wrapping_add(2046);
    let r = (-n).lane_mul_add::<S>(LN2_HI_F64, x);
    let r = (-n).lane_mul_add::<S>(LN2_LO_F64, r);
    let p = horner::<S, f64, 12>(r, &EXP_P_F64);
    (p.lane_mul_add::<S>(r * r, r), biased)
}

/// 2^n as two normal factors from n + 2046. Unsigned shifts only (AVX2 has no 64-bit
/// arithmetic shift).
#[inline(always)]
fn pow2_halves_f64(biased: u64) -> (f64, f64) {
    let b1 = biased >> 1;
    let b2 = biased.wrapping_sub(b1);
    (f64::from_bits(b1 << 52), f64::from_bits(b2 << 52))
}

#[inline(always)]
pub(super) fn exp_f64<S: Simd>(x: f64) -> f64 {
    let x = clamp_keep_nan(x, EXP_LO_F64, EXP_HI_F64);
    let (p, biased) = reduce_f64::<S>(x);
    let (s1, s2) = pow2_halves_f64(biased);
    (p + 1.0) * s1 * s2
}

#[inline(always)]
pub(super) fn exp_m1_f64<S: Simd>(x: f64) -> f64 {
    let xc = clamp_keep_nan(x, EXP_M1_LO_F64, EXP_HI_F64);
    let (p, biased) = reduce_f64::<S>(xc);
    let (s1, s2) = pow2_halves_f64(biased);
    // As for f32: 1 − 2^−n exact where it matters (n ≤ 53), capped at n = 60.
    let neg_n_exp = 3069 - biased.min(2046 + 60); // 1023 − n
    let c = 1.0 - f64::from_bits(neg_n_exp << 52);
    let y = (p + c) * s1 * s2;
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
        assert_eq!(LN2_HI_F64.to_bits(), 0x3fe6_2e42_fee0_0000);
        assert_eq!(LN2_LO_F64.to_bits(), 0x3dea_39ef_3579_3c76);
        assert_eq!(LN2_HI_F32, 0.693_359_375);
        assert_eq!(EXP_P_F32[5], 0.5); // Cephes' 5.0000001201e-1 rounds to ½ in f32
        assert_eq!(EXP_P_F64[11], 0.5);
        assert_eq!(EXP_P_F64[0], 1.0 / 6_227_020_800.0); // 1/13!
    }
}
