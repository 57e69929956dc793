//! One kernel body, many instruction sets. A kernel implements [`Kernel`] once, generic over a
//! [`Simd`] token; [`dispatch`] calls it from a `#[target_feature]` entry point of the active
//! path, where LLVM inlines the body and vectorises its loops for that instruction set. No
//! `target-cpu=native` is needed: every path is in the binary and the CPU picks at run time.
//!
//! The tokens of the vector paths ([`Avx2`], [`Avx512`], [`Neon`]) can only be made inside their
//! entry points, which run only after detection, so code holding a token may use its features.

use std::fmt::Debug;

use half::f16;

use super::bits::{f16_to_f32_portable, f32_to_f16_portable};
use super::isa::{active, check, Isa};
use crate::error::Error;

mod sealed {
    pub trait Sealed {}
}

/// A proof that the instructions of one path may be used, and the constants a kernel body needs
/// to specialise itself. Implemented only by the tokens of this module.
pub trait Simd: Copy + Debug + Send + Sync + 'static + sealed::Sealed {
    /// The path this token stands for.
    const ISA: Isa;
    /// f32 lanes in one vector register of this path (for information: loops choose their own
    /// vector width).
    const F32_LANES: usize;
    /// Whether [`vmath::mul_add`](super::vmath::mul_add) fuses (one rounding, a hardware FMA).
    /// The scalar path does not, so its results are the same on every platform.
    const FMA: bool;

    /// Converts half-precision values to f32 (exact; `dst` as long as `src`). The x86 paths
    /// use F16C.
    #[inline(always)]
    fn f16_to_f32(self, src: &[f16], dst: &mut [f32]) {
        f16_to_f32_portable(src, dst);
    }

    /// Rounds f32 values to half precision, to nearest even like `f16::from_f32` (`dst` as
    /// long as `src`). The x86 paths use F16C.
    #[inline(always)]
    fn f32_to_f16(self, src: &[f32], dst: &mut [f16]) {
        f32_to_f16_portable(src, dst);
    }
}

/// The portable path: no run-time-detected feature, separate multiply and add. LLVM still
/// vectorises its loops with the target's baseline (SSE2 on x86-64, NEON on aarch64), 4 f32 per
/// instruction. Free to construct: it needs no feature.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scalar(());

impl Scalar {
    pub const fn new() -> Self {
        Scalar(())
    }
}

impl sealed::Sealed for Scalar {}
impl Simd for Scalar {
    const ISA: Isa = Isa::Scalar;
    const F32_LANES: usize = 4;
    const FMA: bool = false;
}

/// AVX2 + FMA + F16C. Exists only inside the AVX2 entry point.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl sealed::Sealed for Avx2 {}
#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const ISA: Isa = Isa::Avx2;
    const F32_LANES: usize = 8;
    const FMA: bool = true;

    #[inline(always)]
    fn f16_to_f32(self, src: &[f16], dst: &mut [f32]) {
        use std::arch::x86_64::{__m128i, _mm256_cvtph_ps, _mm256_storeu_ps, _mm_loadu_si128};
        assert_eq!(src.len(), dst.len());
        let whole = src.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: an `Avx2` token is only made in `entry::avx2`, entered after avx2, fma and
            // f16c were detected. `i + 8 <= whole <= len` keeps the 16-byte load and the 32-byte
            // store inside `src` and `dst`; both intrinsics accept unaligned pointers.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i).cast::<__m128i>());
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        f16_to_f32_portable(&src[whole..], &mut dst[whole..]);
    }

    #[inline(always)]
    fn f32_to_f16(self, src: &[f32], dst: &mut [f16]) {
        use std::arch::x86_64::{__m128i, _mm256_cvtps_ph, _mm256_loadu_ps, _mm_storeu_si128, _MM_FROUND_TO_NEAREST_INT};
        assert_eq!(src.len(), dst.len());
        let whole = src.len() / 8 * 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: as in `f16_to_f32`: F16C was detected, and `i + 8 <= whole <= len` keeps
            // the 32-byte load and the 16-byte store inside `src` and `dst` (unaligned is fine).
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
                _mm_storeu_si128(dst.as_mut_ptr().add(i).cast::<__m128i>(), h);
            }
        }
        f32_to_f16_portable(&src[whole..], &mut dst[whole..]);
    }
}

/// AVX-512 F/BW/DQ/VL (with AVX2, FMA, F16C). Exists only inside the AVX-512 entry point.
#[cfg(all(target_arch = "x86_64", logitdiv_avx512))]
#[derive(Debug, Clone, Copy)]
pub struct Avx512(());

#[cfg(all(target_arch = "x86_64", logitdiv_avx512))]
impl sealed::Sealed for Avx512 {}
#[cfg(all(target_arch = "x86_64", logitdiv_avx512))]
impl Simd for Avx512 {
    const ISA: Isa = Isa::Avx512;
    const F32_LANES: usize = 16;
    const FMA: bool = true;

    #[inline(always)]
    #[allow(clippy::incompatible_msrv)] // compiled only with rustc ≥ 1.89 (cfg logitdiv_avx512)
    fn f16_to_f32(self, src: &[f16], dst: &mut [f32]) {
        use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm512_cvtph_ps, _mm512_storeu_ps};
        assert_eq!(src.len(), dst.len());
        let whole = src.len() / 16 * 16;
        for i in (0..whole).step_by(16) {
            // SAFETY: an `Avx512` token is only made in `entry::avx512`, entered after avx512f
            // (and the rest of the path's features) were detected. `i + 16 <= whole <= len` keeps
            // the 32-byte load and the 64-byte store inside `src` and `dst`; both accept
            // unaligned pointers.
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i).cast::<__m256i>());
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            }
        }
        f16_to_f32_portable(&src[whole..], &mut dst[whole..]);
    }

    #[inline(always)]
    fn f32_to_f16(self, src: &[f32], dst: &mut [f16]) {
        // 8 lanes of F16C suffice (the conversion is not the bottleneck); the AVX-512 path has
        // every feature of the AVX2 one, so its token may stand in
        Avx2(()).f32_to_f16(src, dst);
    }
}

/// aarch64 Advanced SIMD. Exists only inside the NEON entry point.
#[cfg(target_arch = "aarch64")]
#[derive(Debug, Clone, Copy)]
pub struct Neon(());

#[cfg(target_arch = "aarch64")]
impl sealed::Sealed for Neon {}
#[cfg(target_arch = "aarch64")]
impl Simd for Neon {
    const ISA: Isa = Isa::Neon;
    const F32_LANES: usize = 4;
    const FMA: bool = true;
}

/// A kernel written once for every path.
///
/// `run` is the body, generic over the path's token `S`; see the [module notes](super) for how
/// to write loops LLVM vectorises. **Mark the impl `#[inline(always)]`**: it must be inlined into
/// each entry point to be compiled for that path's instructions (without it the code is still
/// correct, but not vectorised).
pub trait Kernel {
    type Output;
    fn run<S: Simd>(self, simd: S) -> Self::Output;
}

/// Runs `kernel` on the active path ([`active`]).
#[inline]
pub fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    let isa = active();
    // `active` only holds available paths; checking again keeps the safety argument local.
    let isa = if isa.is_available() { isa } else { Isa::Scalar };
    // SAFETY: `isa` is available, checked on the line above.
    unsafe { run_unchecked(isa, kernel) }
}

/// Runs `kernel` on `isa`, or says why that path cannot run here. Tests and benchmarks use it
/// to compare paths without touching the global choice.
#[inline]
pub fn dispatch_on<K: Kernel>(isa: Isa, kernel: K) -> Result<K::Output, Error> {
    check(isa)?;
    // SAFETY: `check` returned Ok, so `isa.is_available()`.
    Ok(unsafe { run_unchecked(isa, kernel) })
}

/// # Safety
/// `isa.is_available()`: the CPU has every feature of the path.
#[inline(always)]
unsafe fn run_unchecked<K: Kernel>(isa: Isa, kernel: K) -> K::Output {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees the AVX2 path is available: avx2, fma, f16c detected.
        Isa::Avx2 => unsafe { entry::avx2(kernel) },
        #[cfg(all(target_arch = "x86_64", logitdiv_avx512))]
        // SAFETY: the caller guarantees the AVX-512 path is available: all its features detected.
        Isa::Avx512 => unsafe { entry::avx512(kernel) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the caller guarantees the NEON path is available: neon detected.
        Isa::Neon => unsafe { entry::neon(kernel) },
        // Scalar, and paths not built for this target (never available, so never passed here).
        _ => kernel.run(Scalar(())),
    }
}

/// The `#[target_feature]` entry points: the only places vector tokens are made.
mod entry {
    #[allow(unused_imports)]
    use super::Kernel;

    /// # Safety
    /// The CPU has avx2, fma and f16c.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn avx2<K: Kernel>(kernel: K) -> K::Output {
        use super::Avx2;
        kernel.run(Avx2(()))
    }

    /// # Safety
    /// The CPU has avx512f, avx512bw, avx512dq, avx512vl, avx2, fma and f16c.
    #[cfg(all(target_arch = "x86_64", logitdiv_avx512))]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
    pub(super) unsafe fn avx512<K: Kernel>(kernel: K) -> K::Output {
        use super::Avx512;
        kernel.run(Avx512(()))
    }

    /// # Safety
    /// The CPU has neon.
    #[cfg(target_arch = "aarch64")]
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn neon<K: Kernel>(kernel: K) -> K::Output {
        use super::Neon;
        kernel.run(Neon(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::isa::available;

    /// Reports which token the body saw.
    struct Which;
    impl Kernel for Which {
        type Output = (Isa, usize, bool);
        #[inline(always)]
        fn run<S: Simd>(self, _: S) -> Self::Output {
            (S::ISA, S::F32_LANES, S::FMA)
        }
    }

    #[test]
    fn every_available_path_runs_its_own_token() {
        for isa in available() {
            let (seen, n, fma) = dispatch_on(isa, Which).unwrap();
            assert_eq!(seen, isa);
            assert!(n.is_power_of_two() && n >= 4);
            assert_eq!(fma, isa != Isa::Scalar);
        }
        for isa in Isa::ALL.into_iter().filter(|i| !i.is_available()) {
            assert!(dispatch_on(isa, Which).is_err());
        }
        assert!(available().contains(&dispatch(Which).0));
    }
}
