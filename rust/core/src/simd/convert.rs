//! Loading storage elements for computing, one block at a time, so half-precision input is never
//! upcast as a whole array. f32, f16 and bf16 are computed as f32; f64 as f64.

use half::{bf16, f16};

use super::block::BLOCK;
use super::dispatch::Simd;
use super::vmath::Real;

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

mod sealed {
    pub trait Sealed {}
}

/// A storage element type the SIMD kernels read.
pub trait Load: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The type it is computed in: f32 for f32, f16, bf16; f64 for f64.
    type Real: Real;

    /// One block (at most [`BLOCK`] elements) as `Real` values: `src` itself for f32 and f64,
    /// otherwise converted into `buf` (F16C on x86 for f16). A half-precision array is thus never
    /// upcast as a whole, only a block at a time on the stack.
    fn load<'a, S: Simd>(simd: S, src: &'a [Self], buf: &'a mut [Self::Real; BLOCK]) -> &'a [Self::Real];

    /// One element.
    fn to_real(self) -> Self::Real;
}

impl sealed::Sealed for f32 {}
impl Load for f32 {
    type Real = f32;
    #[inline(always)]
    fn load<'a, S: Simd>(_: S, src: &'a [f32], _: &'a mut [f32; BLOCK]) -> &'a [f32] {
        src
    }
    #[inline(always)]
    fn to_real(self) -> f32 {
        self
    }
}

impl sealed::Sealed for f64 {}
impl Load for f64 {
    type Real = f64;
    #[inline(always)]
    fn load<'a, S: Simd>(_: S, src: &'a [f64], _: &'a mut [f64; BLOCK]) -> &'a [f64] {
        src
    }
    #[inline(always)]
    fn to_real(self) -> f64 {
        self
    }
}

impl sealed::Sealed for f16 {}
impl Load for f16 {
    type Real = f32;
    #[inline(always)]
    fn load<'a, S: Simd>(simd: S, src: &'a [f16], buf: &'a mut [f32; BLOCK]) -> &'a [f32] {
        let dst = &mut buf[..src.len()];
        simd.f16_to_f32(src, dst);
        dst
    }
    #[inline(always)]
    fn to_real(self) -> f32 {
        f16_bits_to_f32(self.to_bits())
    }
}

impl sealed::Sealed for bf16 {}
impl Load for bf16 {
    type Real = f32;
    #[inline(always)]
    fn load<'a, S: Simd>(_: S, src: &'a [bf16], buf: &'a mut [f32; BLOCK]) -> &'a [f32] {
        let dst = &mut buf[..src.len()];
        for (d, b) in dst.iter_mut().zip(src) {
            *d = bf16_bits_to_f32(b.to_bits());
        }
        dst
    }
    #[inline(always)]
    fn to_real(self) -> f32 {
        bf16_bits_to_f32(self.to_bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::dispatch::{dispatch_on, Kernel};
    use crate::simd::isa::available;

    #[test]
    fn the_scale_is_two_to_the_112() {
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24)); // smallest subnormal
        assert_eq!(f16_bits_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn every_f16_converts_exactly() {
        for bits in 0..=u16::MAX {
            let want = f16::from_bits(bits).to_f32();
            let got = f16_bits_to_f32(bits);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{bits:#06x}");
        }
    }

    #[test]
    fn every_bf16_converts_exactly() {
        for bits in 0..=u16::MAX {
            let want = bf16::from_bits(bits).to_f32();
            let got = bf16_bits_to_f32(bits);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{bits:#06x}");
        }
    }

    /// Converts a whole slice block by block on one path.
    struct ToF32<'a, E>(&'a [E], &'a mut Vec<f32>);
    impl<E: Load<Real = f32>> Kernel for ToF32<'_, E> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, simd: S) {
            let mut buf = [0.0f32; BLOCK];
            // Odd block lengths exercise the F16C body and its portable tail.
            for block in self.0.chunks(BLOCK - 3) {
                self.1.extend_from_slice(E::load(simd, block, &mut buf));
            }
        }
    }

    #[test]
    fn every_path_loads_f16_like_half() {
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        for isa in available() {
            let mut out = Vec::new();
            dispatch_on(isa, ToF32(&all, &mut out)).unwrap();
            assert_eq!(out.len(), all.len());
            for (h, y) in all.iter().zip(&out) {
                let want = h.to_f32();
                assert!(y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()), "{isa}: {h:?}");
            }
            let b: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
            let mut out = Vec::new();
            dispatch_on(isa, ToF32(&b, &mut out)).unwrap();
            for (h, y) in b.iter().zip(&out) {
                let want = h.to_f32();
                assert!(y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()), "{isa}: {h:?}");
            }
        }
    }
}

/// `x` as a slice of `T` when `E` is `T` (the kernels' generic element types meet the fast paths'
/// concrete ones here), else None.
#[inline(always)]
pub(crate) fn same_type_slice<E: 'static, T: 'static>(x: &[E]) -> Option<&[T]> {
    if std::any::TypeId::of::<E>() == std::any::TypeId::of::<T>() {
        // SAFETY: E and T are the same type, so the layout and the lifetime carry over.
        Some(unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<T>(), x.len()) })
    } else {
        None
    }
}
