//! Element-wise [`vmath`](super::vmath) functions over whole slices, dispatched: the simplest
//! kernels, used by the benchmark and the accuracy tests.

use super::dispatch::{dispatch, dispatch_on, Kernel, Simd};
use super::isa::Isa;
use super::vmath::{self, Real};
use crate::error::{bad_shape, Error};

/// A function [`map`] can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    Exp,
    ExpM1,
    Ln,
    Ln1p,
    Phi,
    XMinusLog1p,
}

impl Func {
    pub const ALL: [Func; 6] = [Func::Exp, Func::ExpM1, Func::Ln, Func::Ln1p, Func::Phi, Func::XMinusLog1p];

    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::ExpM1 => "exp_m1",
            Func::Ln => "ln",
            Func::Ln1p => "ln_1p",
            Func::Phi => "phi",
            Func::XMinusLog1p => "x_minus_log1p",
        }
    }
}

/// `out[i] = func(x[i])` on the active path.
pub fn map<T: Real>(func: Func, x: &[T], out: &mut [T]) -> Result<(), Error> {
    check_len(x, out)?;
    dispatch(Map { func, x, out });
    Ok(())
}

/// `out[i] = func(x[i])` on `isa`, or the error saying why that path cannot run here.
pub fn map_on<T: Real>(isa: Isa, func: Func, x: &[T], out: &mut [T]) -> Result<(), Error> {
    check_len(x, out)?;
    dispatch_on(isa, Map { func, x, out })
}

fn check_len<T>(x: &[T], out: &[T]) -> Result<(), Error> {
    if x.len() == out.len() {
        Ok(())
    } else {
        Err(bad_shape(format!("out has {} elements; expected {}, as many as x", out.len(), x.len())))
    }
}

struct Map<'a, T> {
    func: Func,
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: Real> Kernel for Map<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let (x, out) = (self.x, self.out);
        // One loop per function, so each is compiled as a straight vector loop.
        match self.func {
            Func::Exp => apply(x, out, |v| vmath::exp(s, v)),
            Func::ExpM1 => apply(x, out, |v| vmath::exp_m1(s, v)),
            Func::Ln => apply(x, out, |v| vmath::ln(s, v)),
            Func::Ln1p => apply(x, out, |v| vmath::ln_1p(s, v)),
            Func::Phi => apply(x, out, |v| vmath::phi(s, v)),
            Func::XMinusLog1p => apply(x, out, |v| vmath::x_minus_log1p(s, v)),
        }
    }
}

/// The loop LLVM vectorises: one call of `f` per element (so `f` is inlined), run-time length.
#[inline(always)]
fn apply<T: Real>(x: &[T], out: &mut [T], f: impl Fn(T) -> T) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_match() {
        let mut out = [0.0f32; 3];
        let err = map(Func::Exp, &[1.0f32; 4], &mut out).unwrap_err().to_string();
        assert!(err.contains("out has 3 elements; expected 4"), "{err}");
    }

    #[test]
    fn vector_body_and_scalar_remainder_agree() {
        // 37 elements: the vectorised loop and its remainder give the same bits.
        let x = [0.3f32; 37];
        let mut out = [0.0f32; 37];
        for isa in crate::simd::available() {
            map_on(isa, Func::Exp, &x, &mut out).unwrap();
            assert!(out.iter().all(|&y| y == out[0]), "{isa}");
        }
    }
}
