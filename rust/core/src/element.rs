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
        bf16::from_f64(x)
    }
}
