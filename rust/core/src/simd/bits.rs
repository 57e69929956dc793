//! Half-precision conversions by bit arithmetic, portable to every path: the scalar path's
//! implementations and the fallbacks of the SIMD paths (`dispatch.rs`), and what the loaders of
//! `convert.rs` use.

use half::f16;

/// f16 → f32 by bit arithmetic, exact for every value (subnormals, ±inf, NaN payloads); written
/// branch-free so it vectorises where F16C is missing. The 15-bit magnitude is placed in an f32
/// whose exponent is 112 too small and multiplied by 2^112, which is exact and normalises
/// subnormals; inf/NaN then get the all-ones exponent.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    const TO_F32_SCALE: f32 = (1u128 << 112) as f32; // 2^(127 − 15), exact
    let h = u32::from(h);
    let magnitude = h & 0x7fff;
    let scaled = f32::from_bits(magnitude << 13) * TO_F32_SCALE;
    let inf_nan = if magnitude > 0x7bff { 0xff << 23 } else { 0 };
    f32::from_bits(scaled.to_bits() | inf_nan | ((h & 0x8000) << 16))
}

/// bf16 → f32: the top half of an f32's bits (exact).
#[inline(always)]
pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// f16 → f32 over a slice without F16C (the default of [`Simd::f16_to_f32`]).
#[inline(always)]
pub(crate) fn f16_to_f32_portable(src: &[f16], dst: &mut [f32]) {
    for (d, h) in dst.iter_mut().zip(src) {
        *d = f16_bits_to_f32(h.to_bits());
    }
}

/// f32 → f16 over a slice without F16C (the default of [`Simd::f32_to_f16`]).
#[inline(always)]
pub(crate) fn f32_to_f16_portable(src: &[f32], dst: &mut [f16]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(x);
    }
}

/// f32 → bf16, rounded to nearest even like `bf16::from_f32`, by bit arithmetic (vectorises);
/// NaN stays NaN (quiet).
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let nan = (b >> 16) | 0x40;
    (if x.is_nan() { nan } else { rounded }) as u16
}
