//! The element types a kernel reads and writes. Every kernel computes in f64; an element is converted
//! on load and rounded on store, so half-precision input is never copied to a wider array first.

use half::{bf16, f16};

/// A floating-point storage type the kernels accept.
pub trait Elem: Copy + Send + Sync + 'static {
    /// Short name used in messages ("f32", "f64", "f16", "bf16").
    const NAME: &'static str;
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
}

impl Elem for f64 {
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
}

impl Elem for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}

impl Elem for f16 {
    const NAME: &'static str = "f16";
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        f16::from_f64(x)
    }
}

impl Elem for bf16 {
    const NAME: &'static str = "bf16";
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        bf16_from_f64(x)
    }
}

/// f64 → bf16 rounded to nearest even. (`half`'s `bf16::from_f64` misrounds some values, e.g.
/// the f32 0x34e08001, just above a tie, goes down.) Through f32 rounded to odd, which keeps
/// the information the second rounding needs, then `bf16::from_f32` (correct).
pub(crate) fn bf16_from_f64(x: f64) -> bf16 {
    let f = x as f32;
    if !f.is_finite() || f64::from(f) == x {
        return bf16::from_f32(f);
    }
    let mut bits = f.to_bits();
    if f64::from(f).abs() > x.abs() {
        bits -= 1; // the f32 next toward zero (sign-magnitude bits)
    }
    bf16::from_f32(f32::from_bits(bits | 1))
}

#[cfg(test)]
mod bf16_tests {
    use super::*;

    /// Nearest-even bf16 of x by comparison with the exact midpoint of its two neighbours.
    fn reference(x: f64) -> u16 {
        let lo = bf16::from_bits((x as f32).to_bits().wrapping_shr(16) as u16); // truncation of the f32...
                                                                                // ...which may itself have rounded across a bf16 boundary: step to the bf16 at or below |x|
        let mut lo = lo;
        while f64::from(lo.to_f32()).abs() > x.abs() {
            lo = bf16::from_bits(lo.to_bits() - 1);
        }
        let hi = bf16::from_bits(lo.to_bits() + 1);
        let (a, b) = (f64::from(lo.to_f32()).abs(), f64::from(hi.to_f32()).abs());
        let mid = (a + b) / 2.0; // exact: 9 significant bits
        let ax = x.abs();
        if ax < mid || (ax == mid && lo.to_bits() & 1 == 0) {
            lo.to_bits()
        } else {
            hi.to_bits()
        }
    }

    #[test]
    fn bf16_from_f64_rounds_to_nearest_even() {
        assert_eq!(
            bf16_from_f64(f64::from(f32::from_bits(0x34e0_8001))).to_bits(),
            0x34e1
        );
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // finite values of moderate size, with ties and near-ties made often
            let mut x = f64::from_bits(
                (state & 0x800f_ffff_ffff_ffff) | ((0x3c0 + (state >> 52) % 0x80) << 52),
            );
            if i % 3 == 0 {
                x = f64::from_bits(x.to_bits() & !0x0000_1fff_ffff_ffff | 0x0000_1000_0000_0000);
            }
            let want = reference(x);
            assert_eq!(bf16_from_f64(x).to_bits(), want, "{x:e}");
        }
        assert!(bf16_from_f64(f64::NAN).is_nan());
        assert_eq!(bf16_from_f64(f64::INFINITY), bf16::INFINITY);
        assert_eq!(bf16_from_f64(-0.0).to_bits(), 0x8000);
        assert_eq!(bf16_from_f64(1e300), bf16::INFINITY);
    }
}
