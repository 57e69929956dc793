//! e^x and e^x − 1. Reduce x = n·ln2 + r with |r| ≤ ln2/2 (n found by the round-to-nearest of an
//! added 1.5·2^m, read back from the bits: no float→int conversion), approximate e^r − 1 by
//! r + r²·P(r), and scale by 2^n built from exponent bits in two halves, so that results near
//! overflow reach inf and results in the subnormal range are rounded once, like std.

// Constants are written as published (Cephes and fdlibm) so they can be checked against the
// sources; each rounds to the intended value, checked bit for bit in the tests below.
#![allow(clippy::excessive_precision)]

use super::real::{clamp_keep_nan, horner, Real};
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
    let (r, p, n) = reduce_parts_f32::<S>(x);
    // keep n biased by 2·127 for the two scale factors
    (p.lane_mul_add::<S>(r * r, r), n.wrapping_add(254))
}

/// (r, P(r), n) for x = n·ln2 + r, e^r ≈ 1 + r + r²·P(r); n as a two's-complement integer.
#[inline(always)]
fn reduce_parts_f32<S: Simd>(x: f32) -> (f32, f32, u32) {
    let t = x.lane_mul_add::<S>(std::f32::consts::LOG2_E, SHIFT_F32);
    let n = t - SHIFT_F32;
    // t's bits are SHIFT's bits + n
    let nbits = t.to_bits().wrapping_sub(SHIFT_F32.to_bits());
    let r = (-n).lane_mul_add::<S>(LN2_HI_F32, x);
    let r = (-n).lane_mul_add::<S>(LN2_LO_F32, r);
    (r, horner::<S, f32, 6>(r, &EXP_P_F32), nbits)
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

/// Above this the one-pass forms below are not used (their single scale factor 2^n needs n ≤ 127).
const EXP_M1_PHI_HI_F32: f32 = 88.0;
/// Below this `exp_nonpos_f32` flushes to 0 (e^−87 is 2^−125.5, still normal).
const EXP_NONPOS_LO_F32: f32 = -87.0;

/// (e^x − 1, e^x − 1 − x) from one reduction: the second is φ(−x) = e^x − 1 − x ≥ 0 (the KL
/// summand per unit of probability, `math::phi(−x)`). For |x| ≤ ln2/2 (n = 0) it is r²·P(r)
/// itself, free of cancellation; beyond, e^x − 1 − x cancels at most ~3 bits (at |x| ≈ 0.35).
/// One scale factor (n ∈ [−29, 127]): x above `hi` (at most 88) gives e^x − 1 = inf, a free
/// range check for callers that must not use large x. Measured: φ within 5.3 ulp on the
/// scalar path (`phi_from_exp_m1_is_accurate` holds it to 8); e^x − 1 as `exp_m1_f32` below 88.
#[inline(always)]
pub(super) fn exp_m1_phi_f32<S: Simd>(x: f32, hi: f32) -> (f32, f32) {
    let xc = clamp_keep_nan(x, EXP_M1_LO_F32, EXP_M1_PHI_HI_F32);
    let (r, p, nbits) = reduce_parts_f32::<S>(xc);
    let q = p * (r * r); // e^r − 1 − r
    let biased = nbits.wrapping_add(127); // n + 127 ∈ [98, 254]
    let scale = f32::from_bits(biased << 23);
    // e^x − 1 = (e^r − 1 + (1 − 2^−n))·2^n, with 1 − 2^−n exact for n ≤ 24 (capped at 30)
    let c = 1.0 - f32::from_bits((254 - biased.min(127 + 30)) << 23);
    let em1 = ((q + r) + c) * scale;
    let em1 = if x > hi.min(EXP_M1_PHI_HI_F32) { f32::INFINITY } else { em1 };
    let phi = if nbits == 0 { q } else { em1 - x };
    (em1, phi)
}

/// e^x for x ≤ 0 (as a shifted logit is), flushing to 0 below −87 instead of rounding into the
/// subnormals: cheaper than [`exp_f32`] (one scale factor), and a softmax term below e^−87 of the
/// largest is below f32's resolution of the sum anyway. NaN in, NaN out; within 1.01 ulp where it
/// does not flush (the same reduction and polynomial as `exp_f32`).
#[inline(always)]
pub(super) fn exp_nonpos_f32<S: Simd>(x: f32) -> f32 {
    let xc = if x < EXP_NONPOS_LO_F32 {
        EXP_NONPOS_LO_F32
    } else {
        x
    };
    let (p, biased) = reduce_f32::<S>(xc);
    let y = (p + 1.0) * f32::from_bits(biased.wrapping_sub(127) << 23);
    if x < EXP_NONPOS_LO_F32 {
        0.0
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

    /// φ(−x) = e^x − 1 − x against f64 over the range the one-pass KL uses, and e^x − 1 against
    /// `exp_m1_f32` bit for bit.
    #[test]
    fn phi_from_exp_m1_is_accurate() {
        use crate::simd::dispatch::Scalar;
        let mut worst = 0.0f64;
        let mut x = -30.0f32;
        while x < 80.0 {
            let (em1, phi) = exp_m1_phi_f32::<Scalar>(x, 88.0);
            assert_eq!(em1.to_bits(), exp_m1_f32::<Scalar>(x).to_bits(), "{x}");
            let xd = f64::from(x);
            let want = if xd.abs() < 1e-3 {
                xd * xd / 2.0 + xd.powi(3) / 6.0 + xd.powi(4) / 24.0
            } else {
                xd.exp_m1() - xd
            };
            let ulp = f64::from(f32::EPSILON) * want.abs().max(1e-30);
            worst = worst.max((f64::from(phi) - want).abs() / ulp);
            x = if x.abs() < 1e-6 {
                x + 1e-9
            } else {
                x + x.abs() * 1e-4 + 1e-7
            };
        }
        assert!(worst <= 8.0, "worst error {worst} ulp");
        assert_eq!(exp_m1_phi_f32::<Scalar>(0.0, 88.0), (0.0, 0.0));
        assert_eq!(exp_m1_phi_f32::<Scalar>(-1e30, 88.0).0, -1.0);
        assert_eq!(exp_m1_phi_f32::<Scalar>(88.5, 100.0).0, f32::INFINITY);
        assert_eq!(exp_m1_phi_f32::<Scalar>(16.5, 16.0).0, f32::INFINITY);
        assert!(exp_m1_phi_f32::<Scalar>(15.5, 16.0).0.is_finite());
        assert_eq!(
            exp_m1_phi_f32::<Scalar>(f32::INFINITY, 88.0).0,
            f32::INFINITY
        );
        let (a, b) = exp_m1_phi_f32::<Scalar>(f32::NAN, 88.0);
        assert!(a.is_nan() && b.is_nan());
    }

    /// `exp_nonpos_f32` is `exp_f32` bit for bit on [−87, 0] and 0 below.
    #[test]
    fn exp_nonpos_matches_exp_where_it_does_not_flush() {
        use crate::simd::dispatch::Scalar;
        let mut x = -90.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_nonpos_f32::<Scalar>(x), exp_f32::<Scalar>(x));
            if x < EXP_NONPOS_LO_F32 {
                assert_eq!(got, 0.0, "{x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{x}");
            }
            x += 1.3e-3;
        }
        assert_eq!(exp_nonpos_f32::<Scalar>(0.0), 1.0);
        assert_eq!(exp_nonpos_f32::<Scalar>(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpos_f32::<Scalar>(f32::NAN).is_nan());
    }

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
