//! SIMD chosen at run time: one generic kernel body, instantiated for AVX-512, AVX2+FMA, NEON and
//! a portable scalar path, the path picked once per process from what the CPU has (or from
//! `LOGITDIV_SIMD=scalar|avx2|avx512|neon`, or [`force`]). No `target-cpu=native`: every path is
//! compiled into the same binary, and LLVM vectorises each instantiation of the body inside a
//! `#[target_feature]` entry point for that path.
//!
//! - [`isa`]: the paths, detection, [`active`], [`force`], [`available`];
//! - [`dispatch`]: the [`Simd`] tokens and the [`Kernel`] trait a body implements;
//! - [`vmath`]: vectorisable exp, ln, ln_1p, exp_m1, phi, x_minus_log1p for f32 and f64, with
//!   measured error bounds;
//! - [`block`]: the block size kernels loop over, and the reductions that finish accumulators;
//! - [`convert`]: reading f32/f64/f16/bf16 a block at a time (F16C where present);
//! - [`map`] and [`logsumexp`]: element-wise functions over slices and log-sum-exp, kernels built
//!   this way.
//!
//! # Writing a kernel
//!
//! Put the inputs in a struct, implement [`Kernel`] with an `#[inline(always)]` body generic
//! over the path's token `S`, and call [`dispatch`]. Inside the body, write plain loops over
//! slices, one element per iteration, with branch-free bodies calling [`vmath`]; LLVM vectorises
//! each loop at the path's width (8 f32 per AVX2 instruction, 16 per AVX-512 instruction). Rules
//! that keep it vectorised, each learned from the generated code:
//!
//! - **Loops of run-time length, accumulators of [`BLOCK`](block::BLOCK) positions.** Reduce into
//!   `[T; BLOCK]` arrays (`acc[i] += f(x[i])` over a block) and fold them once at the end with
//!   [`block::hsum`] / [`block::hmax`], over the positions used. Register-sized lane arrays
//!   (`[f32; 8]` per chunk) get unrolled lane by lane and then vectorised across chunks with
//!   transposes: 1.7× slower.
//! - **One width per loop.** Compute in f32, then widen into f64 accumulators in a second loop:
//!   a loop mixing f32 and f64 runs at the f64 width, half the f32 speed.
//! - **Maxima with `Real::max`, NaN checked apart.** A select that may keep the accumulator's old
//!   value becomes a masked store, microcoded on AMD (5× slower).
//! - **No closures or `array::from_fn` around heavy code** unless called once in a loop: code
//!   LLVM leaves out of line is compiled without the path's features. Helpers are
//!   `#[inline(always)]`.
//! - **Special cases by select** (`if c { a } else { b }` between computed values); a branch
//!   around work stops vectorisation.
//!
//! ```
//! use logitdiv_core::simd::block::{hsum, BLOCK};
//! use logitdiv_core::simd::{dispatch, vmath, Kernel, Load, Simd};
//!
//! /// Σ e^{x_i − shift} for f32, f16 or bf16 input, computed in f32 and summed in f64.
//! struct SumExp<'a, E> { x: &'a [E], shift: f32 }
//!
//! impl<E: Load<Real = f32>> Kernel for SumExp<'_, E> {
//!     type Output = f64;
//!     #[inline(always)]
//!     fn run<S: Simd>(self, s: S) -> f64 {
//!         let mut buf = [0.0f32; BLOCK]; // f16/bf16 are converted here, a block at a time
//!         let mut terms = [0.0f32; BLOCK];
//!         let mut acc = [0.0f64; BLOCK];
//!         for block in self.x.chunks(BLOCK) {
//!             let x = E::load(s, block, &mut buf);
//!             for (t, &v) in terms.iter_mut().zip(x) {
//!                 *t = vmath::exp(s, v - self.shift);
//!             }
//!             for (a, &t) in acc.iter_mut().zip(&terms[..x.len()]) {
//!                 *a += f64::from(t);
//!             }
//!         }
//!         hsum(&acc[..self.x.len().min(BLOCK)]) // only the positions used: short rows stay cheap
//!     }
//! }
//!
//! let x = vec![0.5f32; 1000];
//! let total = dispatch(SumExp { x: &x, shift: 0.5 });
//! assert!((total - 1000.0).abs() < 1e-9);
//! ```
//!
//! [`dispatch_on`] runs a kernel on a named path; the tests run every [`available`] path and
//! compare it with the scalar one.

pub mod bits;
pub mod block;
pub mod convert;
pub mod dispatch;
pub mod isa;
pub mod map;
pub mod logsumexp;
pub mod vmath;

#[cfg(test)]
mod tests;

pub use convert::Load;
pub use dispatch::{dispatch, dispatch_on, Kernel, Scalar, Simd};
pub use isa::{active, available, best, force, init_from_env, Isa};
pub use vmath::Real;
