//! Loading storage elements for computing, one block at a time, so half-precision input is never
//! upcast as a whole array. f32, f16 and bf16 are computed as f32; f64 as f64.

use half::{bf16, f16};

use super::bits::{bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits};
use super::block::BLOCK;
use super::dispatch::Simd;
use super::vmath::Real;

/// Writes `scale · src[i]` into `dst` (as long as `src`) in `G`'s format, a block at a time:
/// f32 directly, f64 widened, f16 through F16C where the path has it, bf16 by bit arithmetic.
/// Rounding is to nearest even, as `G::from_f64(f64::from(x))` would give (f32 → f64 is exact).
#[inline(always)]
pub(crate) fn store_scaled<S: Simd, G: 'static + Copy>(
    simd: S,
    dst: &mut [G],
    src: &[f32],
    scale: f32,
) {
    let n = src.len();
    assert_eq!(dst.len(), n);
    if let Some(d) = same_type_slice_mut::<G, f32>(dst) {
        for (o, &v) in d.iter_mut().zip(src) {
            *o = v * scale;
        }
    } else if let Some(d) = same_type_slice_mut::<G, f64>(dst) {
        for (o, &v) in d.iter_mut().zip(src) {
            *o = f64::from(v * scale);
        }
    } else if let Some(d) = same_type_slice_mut::<G, f16>(dst) {
        let mut buf = [0.0f32; BLOCK];
        for (dc, sc) in d.chunks_mut(BLOCK).zip(src.chunks(BLOCK)) {
            let b = &mut buf[..sc.len()];
            for (o, &v) in b.iter_mut().zip(sc) {
                *o = v * scale;
            }
            simd.f32_to_f16(b, dc);
        }
    } else if let Some(d) = same_type_slice_mut::<G, bf16>(dst) {
        for (o, &v) in d.iter_mut().zip(src) {
            *o = bf16::from_bits(f32_to_bf16_bits(v * scale));
        }
    } else {
        unreachable!("gradients are f32, f64, f16 or bf16");
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

/// Runs `$body` on each chunk of [`LANES`] classes of the row `$s` (of element type `$E`), as an
/// f32 array `$x`, with `$start` its first class: full chunks where they lie (converted, for half
/// precision), the last, partial one padded with `$pad`. The body is instantiated twice (full
/// chunks and the padded one), so it is kept inline: a closure would be left out of line,
/// compiled without the path's features.
macro_rules! for_each_chunk {
    ($simd:expr, $E:ty, $s:expr, $pad:expr, |$start:ident, $x:ident| $body:block) => {{
        use $crate::simd::block::{BLOCK, LANES};
        let row = $s;
        let mut buf = [0.0f32; BLOCK];
        let full = row.len() / LANES * LANES;
        for $start in (0..full).step_by(LANES) {
            let $x: &[f32; LANES] =
                <$E as $crate::simd::convert::Load>::load($simd, &row[$start..$start + LANES], &mut buf).try_into().unwrap();
            $body
        }
        if full < row.len() {
            let mut padded = [$pad; LANES];
            for (p, &v) in padded.iter_mut().zip(&row[full..]) {
                *p = <$E as $crate::simd::convert::Load>::to_real(v);
            }
            let ($start, $x) = (full, &padded);
            $body
        }
    }};
}

/// [`for_each_chunk!`] over two rows of one length at once (`$x`, `$y`), with `$valid` the
/// chunk's [`LANES`] weights: 1 for a class of the row, 0 for padding (all 1 in full chunks,
/// where multiplying by it folds away).
macro_rules! for_each_chunk_pair {
    ($simd:expr, $E:ty, $s:expr, $t:expr, ($pad_x:expr, $pad_y:expr), |$start:ident, $x:ident, $y:ident, $valid:ident| $body:block) => {{
        use $crate::simd::block::{BLOCK, LANES};
        let (row_s, row_t) = ($s, $t);
        let (mut bx, mut by) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
        let full = row_s.len() / LANES * LANES;
        let ones = [1.0f32; LANES];
        for $start in (0..full).step_by(LANES) {
            let $x: &[f32; LANES] =
                <$E as $crate::simd::convert::Load>::load($simd, &row_s[$start..$start + LANES], &mut bx).try_into().unwrap();
            let $y: &[f32; LANES] =
                <$E as $crate::simd::convert::Load>::load($simd, &row_t[$start..$start + LANES], &mut by).try_into().unwrap();
            let $valid = &ones;
            $body
        }
        if full < row_s.len() {
            let (mut px, mut py, mut pv) = ([$pad_x; LANES], [$pad_y; LANES], [0.0f32; LANES]);
            for i in 0..row_s.len() - full {
                px[i] = <$E as $crate::simd::convert::Load>::to_real(row_s[full + i]);
                py[i] = <$E as $crate::simd::convert::Load>::to_real(row_t[full + i]);
                pv[i] = 1.0;
            }
            let ($start, $x, $y, $valid) = (full, &px, &py, &pv);
            $body
        }
    }};
}

pub(crate) use {for_each_chunk, for_each_chunk_pair};

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

    /// Rounds every f16/bf16 neighbourhood: midpoints (ties to even), values just beside them,
    /// overflow, subnormals, ±0, ±inf, NaN.
    fn rounding_cases() -> Vec<f32> {
        let mut xs = vec![
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            65504.0,
            65520.0,
            65519.99,
            1e-8,
            -3e-6,
            1e30,
        ];
        for bits in (0..=u16::MAX).step_by(7) {
            let h = f16::from_bits(bits).to_f32();
            let b = bf16::from_bits(bits).to_f32();
            for base in [h, b] {
                let u = base.to_bits();
                for k in [0u32, 1, 0x0fff, 0x1000, 0x1001, 0x7fff, 0x8000, 0x8001] {
                    xs.push(f32::from_bits(u.wrapping_add(k)));
                }
            }
        }
        xs
    }

    /// Stores a slice on one path.
    struct Store<'a, G>(&'a [f32], &'a mut [G], f32);
    impl<G: 'static + Copy> Kernel for Store<'_, G> {
        type Output = ();
        #[inline(always)]
        fn run<S: Simd>(self, simd: S) {
            for (d, s) in self.1.chunks_mut(BLOCK - 5).zip(self.0.chunks(BLOCK - 5)) {
                store_scaled(simd, d, s, self.2);
            }
        }
    }

    #[test]
    fn every_path_stores_like_half() {
        let xs = rounding_cases();
        for isa in available() {
            for scale in [1.0f32, 0.5] {
                let mut h = vec![f16::ZERO; xs.len()];
                dispatch_on(isa, Store(&xs, &mut h, scale)).unwrap();
                let mut b = vec![bf16::ZERO; xs.len()];
                dispatch_on(isa, Store(&xs, &mut b, scale)).unwrap();
                let mut w = vec![0.0f64; xs.len()];
                dispatch_on(isa, Store(&xs, &mut w, scale)).unwrap();
                for (i, &x) in xs.iter().enumerate() {
                    let v = x * scale;
                    // bf16 from f32: `bf16::from_f64` of half 2.x misrounds some values (0x34e08001 → 0x34e0) in
                    // debug builds
                    let (wh, wb) = (f16::from_f64(f64::from(v)), bf16::from_f32(v));
                    assert!(
                        h[i].to_bits() == wh.to_bits() || (h[i].is_nan() && wh.is_nan()),
                        "{isa} f16 {v:e}"
                    );
                    assert!(
                        b[i].to_bits() == wb.to_bits() || (b[i].is_nan() && wb.is_nan()),
                        "{isa} bf16 {v:e} {:#x} got {:#x} want {:#x} f32 {:#x}",
                        v.to_bits(),
                        b[i].to_bits(),
                        wb.to_bits(),
                        bf16::from_f32(v).to_bits()
                    );
                    assert!(
                        w[i].to_bits() == f64::from(v).to_bits() || (w[i].is_nan() && v.is_nan())
                    );
                }
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

/// `x` as a mutable slice of `T` when `E` is `T`, else None.
#[inline(always)]
pub(crate) fn same_type_slice_mut<E: 'static, T: 'static>(x: &mut [E]) -> Option<&mut [T]> {
    if std::any::TypeId::of::<E>() == std::any::TypeId::of::<T>() {
        // SAFETY: E and T are the same type, so the layout and the lifetime carry over.
        Some(unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<T>(), x.len()) })
    } else {
        None
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

/// `Some($body)` with each row `$x` (a slice of `$E`) seen as its own element type when that is
/// one the f32 SIMD kernels load (f32, f16, bf16; the body is instantiated once per type, so
/// generic code in it is monomorphised for each); `None` for any other type (f64). The one home of
/// the f32 kernels' element-type switch.
macro_rules! with_f32_lanes {
    ($E:ty, ($($x:ident),+) => $body:expr) => {{
        use $crate::simd::convert::same_type_slice;
        if let ($(Some($x),)+) = ($(same_type_slice::<$E, f32>($x),)+) {
            Some($body)
        } else if let ($(Some($x),)+) = ($(same_type_slice::<$E, half::f16>($x),)+) {
            Some($body)
        } else if let ($(Some($x),)+) = ($(same_type_slice::<$E, half::bf16>($x),)+) {
            Some($body)
        } else {
            None
        }
    }};
}

pub(crate) use with_f32_lanes;
