//! Blocks, the unit a kernel loops over, and the reductions that finish them.
//!
//! A kernel keeps per-position accumulators in `[T; BLOCK]` arrays and updates them in loops of
//! run-time length over a block (`for (a, &v) in acc.iter_mut().zip(block)`), which LLVM
//! vectorises at the path's natural width; the accumulators are folded once, at the end, by
//! [`hsum`] or [`hmax`]. See the [module notes](super) for why blocks rather than register-sized
//! lane arrays.

use super::dispatch::{Kernel, Simd};
use super::vmath::Real;

/// Elements per block: accumulators of 256 f64 are 2 KiB of stack, and loops over 256 elements
/// are long enough to be vectorised rather than unrolled lane by lane.
pub const BLOCK: usize = 256;

/// Σ v, pairwise in a fixed order (so the result does not depend on timing), with the rounding
/// error of a balanced tree. Fold only the positions a kernel used: for a short row that is far
/// fewer than `BLOCK`.
///
/// Inlined, so that it runs on the caller's SIMD path (kernels call it once per row).
#[inline(always)]
pub fn hsum<T: Real>(v: &[T]) -> T {
    if v.len() > BLOCK {
        return hsum_split(v);
    }
    // A short slice is halved in a short buffer (zeroing BLOCK lanes would cost more than the sum).
    if v.len() <= 32 {
        halve::<T, 32, false>(v)
    } else {
        halve::<T, BLOCK, false>(v)
    }
}

/// Σ v for v.len() > BLOCK: the two halves apart.
#[inline(never)]
fn hsum_split<T: Real>(v: &[T]) -> T {
    let (lo, hi) = v.split_at(v.len() / 2);
    hsum(lo) + hsum(hi)
}

/// Σ v (or, with `MAX`, max v) for v.len() ≤ N, by halving in place on a copy: each step is one
/// vectorisable loop of run-time length, and the order depends only on v.len(). The padding is
/// the operation's identity (an empty slice gives 0, or −inf).
#[inline(always)]
fn halve<T: Real, const N: usize, const MAX: bool>(v: &[T]) -> T {
    let mut buf = [if MAX { T::NEG_INFINITY } else { T::ZERO }; N];
    buf[..v.len()].copy_from_slice(v);
    let mut n = v.len();
    while n > 1 {
        let half = n / 2;
        let (keep, fold) = buf[..n].split_at_mut(n - half);
        for (a, &b) in keep.iter_mut().zip(fold.iter()) {
            *a = if MAX { a.max(b) } else { *a + b };
        }
        n -= half;
    }
    buf[0]
}

/// max v, ignoring NaN like `f32::max` (−inf for an empty or all-NaN slice). Kernels update
/// maxima with `Real::max` too: it compiles to a vector max, where a select that may keep the old
/// value becomes a masked store (microcoded, 5× slower on AMD). Check for NaN separately.
///
/// By halving, like [`hsum`] (a fold lane by lane is a chain of `v.len()` dependent maxima, 256
/// per span in the kernels); the maximum does not depend on the order. Inlined, like [`hsum`].
#[inline(always)]
pub fn hmax<T: Real>(v: &[T]) -> T {
    let m = if v.len() > BLOCK {
        v.chunks(BLOCK).map(halve::<T, BLOCK, true>).fold(T::NEG_INFINITY, |m, x| m.max(x))
    } else if v.len() <= 32 {
        halve::<T, 32, true>(v)
    } else {
        halve::<T, BLOCK, true>(v)
    };
    // NaN only where every element is NaN (max keeps the other operand of a NaN)
    if m.is_nan() {
        T::NEG_INFINITY
    } else {
        m
    }
}

/// Rows shorter than this run a [`BlockedRow`] in blocks of [`LANES`] classes: zeroing and
/// folding a dozen [`BLOCK`]-sized arrays per row would cost more than a short row itself.
pub const SHORT_ROW: usize = 4 * BLOCK;

/// A row kernel written for blocks of `B` classes (its accumulators: `B` lanes).
pub(crate) trait BlockedRow {
    type Output;
    /// The number of classes of the row.
    fn len(&self) -> usize;
    fn body<S: Simd, const B: usize>(self, simd: S) -> Self::Output;
}

/// A [`BlockedRow`] as a [`Kernel`]: blocks of [`LANES`] for a short row, [`BLOCK`] otherwise.
pub(crate) struct Blocked<K>(pub K);

impl<K: BlockedRow> Kernel for Blocked<K> {
    type Output = K::Output;

    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> K::Output {
        if self.0.len() < SHORT_ROW {
            self.0.body::<S, LANES>(simd)
        } else {
            self.0.body::<S, BLOCK>(simd)
        }
    }
}

/// Lanes of the loops over short rows (`for_each_chunk!`): two AVX2 vectors (one AVX-512), so that
/// a kernel's accumulators stay in registers beside the exponential's constants (at 32 lanes,
/// four vectors each, they were spilled: the short-row kernels ran 15–30 % slower), and a row of
/// 100 classes pads to 112, not 128. Every loop over a chunk has this fixed trip count (the last
/// chunk padded), so it vectorises whole, with no scalar remainder, and the accumulators are a few
/// registers' worth, not [`BLOCK`] positions.
pub const LANES: usize = 16;

/// Σ v over [`LANES`] f32 lanes, in f64 by halving (the order fixed by `LANES` alone).
#[inline(always)]
pub fn sum_lanes(v: &[f32; LANES]) -> f64 {
    let mut a = [0.0f64; LANES];
    for i in 0..LANES {
        a[i] = f64::from(v[i]);
    }
    sum_lanes_f64(&a)
}

/// Σ v over [`LANES`] f64 lanes by halving. The halvings are written out: a loop whose length
/// halves at run time is not vectorised.
#[inline(always)]
pub fn sum_lanes_f64(v: &[f64; LANES]) -> f64 {
    let mut a = *v;
    sum_step::<8>(&mut a);
    sum_step::<4>(&mut a);
    sum_step::<2>(&mut a);
    a[0] + a[1]
}

/// max v over [`LANES`] lanes by halving, ignoring NaN like `f32::max` (NaN only if all are).
#[inline(always)]
pub fn max_lanes(v: &[f32; LANES]) -> f32 {
    let mut a = *v;
    max_step::<8>(&mut a);
    max_step::<4>(&mut a);
    max_step::<2>(&mut a);
    a[0].max(a[1])
}

// the halvings above start at 8
const _: () = assert!(LANES == 16);

/// a[i] += a[i + N] for i < N: one step of a halving (a fixed trip count, vectorised).
#[inline(always)]
fn sum_step<const N: usize>(a: &mut [f64; LANES]) {
    // two slices, so that LLVM sees the halves apart (indexing one array is not vectorised)
    let (lo, hi) = a.split_at_mut(N);
    for i in 0..N {
        lo[i] += hi[i];
    }
}

/// a[i] = max(a[i], a[i + N]) for i < N.
#[inline(always)]
fn max_step<const N: usize>(a: &mut [f32; LANES]) {
    let (lo, hi) = a.split_at_mut(N);
    for i in 0..N {
        lo[i] = lo[i].max(hi[i]);
    }
}

/// z += f (widened to f64), then f = 0: folding a chunk loop's f32 lane sums into f64 ones.
#[inline(always)]
pub fn widen_into(z: &mut [f64; LANES], f: &mut [f32; LANES]) {
    for i in 0..LANES {
        z[i] += f64::from(f[i]);
    }
    *f = [0.0; LANES];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions() {
        assert_eq!(hsum(&[1.0f64, 2.0, 3.0, 4.0, 5.0]), 15.0);
        assert_eq!(hsum::<f32>(&[]), 0.0);
        assert_eq!(hmax(&[1.0f32, 7.0, -3.0, f32::NAN, 2.0]), 7.0);
        assert_eq!(hmax(&[f64::NEG_INFINITY; 8]), f64::NEG_INFINITY);
        assert_eq!(hmax::<f64>(&[]), f64::NEG_INFINITY);
        assert_eq!(hmax(&[f32::NAN; 40]), f32::NEG_INFINITY);
        // every length and position of the largest, against the fold it replaces
        for n in [1usize, 2, 3, 7, 31, 32, 33, 255, 256, 257, 1000] {
            for at in [0, n / 3, n - 1] {
                let mut v: Vec<f32> = (0..n).map(|i| -((i * 7919 % 97) as f32)).collect();
                v[at] = 5.0;
                if n > 2 {
                    v[(at + 1) % n] = f32::NAN;
                }
                assert_eq!(hmax(&v), 5.0, "n={n} at={at}");
            }
        }
        // pairwise: (1e16 + 1) + (−1e16 + 0) would lose the 1; (1e16 − 1e16) + (1 + 0) keeps it
        assert_eq!(hsum(&[1e16f64, 1.0, -1e16, 0.0]), 1.0);
        let long: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(hsum(&long), 499_500.0);
        let odd: Vec<f32> = (0..255).map(|i| i as f32).collect();
        assert_eq!(hsum(&odd), 32_385.0);
    }
}
