//! SIMD fast path of the softmax cross-entropy against a class label (any label smoothing ε) for
//! float32, float16 and bfloat16 rows without a class mask: the statistics of the scalar kernel
//! (`softmax_ce::stats`) in f32 lanes from one read of the row, the gradient in one more sweep
//! while the row is in cache.
//!
//! Per span of `8·B` classes (in L1): the span's max moves the running max M (the f64 sums are
//! rescaled then), and each class adds, relative to M,
//! - R: e^{(x − M)/τ} for the classes below M, and K: the count of classes at M — the sum beside
//!   one largest term is R + K − 1 (`MaxRest::rest` of the scalar kernel), so a confident row's
//!   loss log1p(rest) keeps its digits instead of vanishing next to the 1 of the largest term;
//! - B: Σ (M − x) ≥ 0 (label smoothing's mean term), shifted by n·ΔM when M moves.
//! Terms are summed in f32 per position over a span (≤ 8 roundings) and in f64 across spans.
//!
//! The scalar kernel stays the reference and takes every row this path declines: a non-finite
//! logit (checked in the same sweep: `x · 0` is NaN exactly for ±inf and NaN), a scaled logit
//! beyond f32's range, or a label whose gradient needs f64 sums (`add` with f32 or half gradients).

use half::{bf16, f16};

use super::online::MaxRest;
use super::softmax_ce::{CeParams, Stats};
use crate::element::Elem;
use crate::parallel::RowValue;
use crate::simd::block::{hmax, hsum, BLOCK};
use crate::simd::convert::{same_type_slice, same_type_slice_mut, store_scaled};
use crate::simd::{dispatch, vmath, Kernel, Load, Simd};

/// Accumulator lanes for rows shorter than [`LONG_ROW`]: zeroing and folding [`BLOCK`] lanes
/// would cost more than a short row itself.
const SHORT_BLOCK: usize = 32;
const LONG_ROW: usize = 4 * BLOCK;

/// The cross-entropy of one row against class `label`, gradient written (or added, `prm.add`)
/// when asked; `None` when the row is not for this path (nothing was written).
pub(crate) fn class_row<E: Elem, G: Elem>(
    s: &[E],
    label: usize,
    prm: &CeParams,
    grad: Option<&mut [G]>,
) -> Option<RowValue> {
    if s.is_empty() || label >= s.len() {
        return None;
    }
    if prm.add && grad.is_some() && G::NAME != f64::NAME {
        return None;
    }
    if let Some(s) = same_type_slice::<E, f32>(s) {
        return dispatch(ClassRow { s, label, prm, grad });
    }
    if let Some(s) = same_type_slice::<E, f16>(s) {
        return dispatch(ClassRow { s, label, prm, grad });
    }
    if let Some(s) = same_type_slice::<E, bf16>(s) {
        return dispatch(ClassRow { s, label, prm, grad });
    }
    None
}

struct ClassRow<'a, L, G> {
    s: &'a [L],
    label: usize,
    prm: &'a CeParams,
    grad: Option<&'a mut [G]>,
}

/// The row's sums: running max, R (below the max), K (at the max), B = Σ (M − x), all in units of
/// the raw logits (B not yet divided by τ).
struct Sums {
    max: f32,
    below: f64,
    at_max: f64,
    gap: f64,
}

#[inline(always)]
fn sums<S: Simd, L: Load<Real = f32>, const B: usize>(simd: S, s: &[L], inv: f32, smooth: bool) -> Option<Sums> {
    let mut buf = [0.0f32; BLOCK];
    let (mut fr, mut fk, mut fb, mut chk) = ([0.0f32; B], [0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let (mut zr, mut zk, mut zb) = ([0.0f64; B], [0.0f64; B], [0.0f64; B]);
    let mut m = f32::NEG_INFINITY;
    let mut seen = 0usize;
    let used = s.len().min(B);
    for span in s.chunks(8 * B) {
        let mut mx = [f32::NEG_INFINITY; B];
        for c in span.chunks(B) {
            let x = L::load(simd, c, &mut buf);
            let mx = &mut mx[..x.len()];
            for i in 0..x.len() {
                mx[i] = mx[i].max(x[i]);
            }
        }
        let span_max = hmax(&mx[..span.len().min(B)]);
        if span_max > m && m > f32::NEG_INFINITY {
            // the terms so far were relative to the old max: those at it join the rest
            let r = ((f64::from(m) - f64::from(span_max)) * f64::from(inv)).exp();
            let shift = f64::from(span_max) - f64::from(m);
            for i in 0..used {
                zr[i] = (zr[i] + zk[i]) * r;
                zk[i] = 0.0;
            }
            if smooth {
                // the whole shift of every class seen so far, spread over the lanes (exact sum)
                zb[0] += seen as f64 * shift;
            }
        }
        m = m.max(span_max);
        for c in span.chunks(B) {
            let x = L::load(simd, c, &mut buf);
            let n = x.len();
            let (fr, fk, fb, chk) = (&mut fr[..n], &mut fk[..n], &mut fb[..n], &mut chk[..n]);
            for i in 0..n {
                // a select that keeps an accumulator as it is becomes a masked store (slow):
                // multiply by 0 or 1 instead
                let below = if x[i] == m { 0.0f32 } else { 1.0 };
                let e = vmath::exp_nonpos(simd, (x[i] - m) * inv);
                fr[i] += e * below;
                fk[i] += 1.0 - below;
                chk[i] += x[i] * 0.0;
                if smooth {
                    fb[i] += m - x[i];
                }
            }
        }
        let fold = span.len().min(B);
        for (z, f) in [(&mut zr, &mut fr), (&mut zk, &mut fk), (&mut zb, &mut fb)] {
            for i in 0..fold {
                z[i] += f64::from(f[i]);
            }
            f[..used].fill(0.0);
        }
        seen += span.len();
    }
    if hsum(&chk[..used]).is_nan() {
        return None;
    }
    Some(Sums { max: m, below: hsum(&zr[..used]), at_max: hsum(&zk[..used]), gap: hsum(&zb[..used]) })
}

/// Writes (or adds) `scale · (p_i − t_i)` for every class, t = (1−ε)·onehot(label) + ε/n; the
/// caller then recomputes the label's own entry in f64.
#[inline(always)]
fn gradient<S: Simd, L: Load<Real = f32>, G: Elem>(
    simd: S,
    s: &[L],
    m: f32,
    inv: f32,
    inv_z: f32,
    spread: f32,
    scale: f64,
    add: bool,
    g: &mut [G],
) {
    let mut buf = [0.0f32; BLOCK];
    let mut o = [0.0f32; BLOCK];
    let mut start = 0;
    for c in s.chunks(BLOCK) {
        let x = L::load(simd, c, &mut buf);
        let n = x.len();
        let o = &mut o[..n];
        for i in 0..n {
            o[i] = vmath::exp_nonpos(simd, (x[i] - m) * inv) * inv_z - spread;
        }
        let g = &mut g[start..start + n];
        match same_type_slice_mut::<G, f64>(g) {
            Some(g) if add => {
                for i in 0..n {
                    g[i] += scale * f64::from(o[i]);
                }
            }
            Some(g) => {
                for i in 0..n {
                    g[i] = scale * f64::from(o[i]);
                }
            }
            None => store_scaled(simd, g, o, scale as f32),
        }
        start += n;
    }
}

impl<L: Load<Real = f32> + Elem, G: Elem> Kernel for ClassRow<'_, L, G> {
    type Output = Option<RowValue>;

    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> Option<RowValue> {
        let ClassRow { s, label, prm, grad } = self;
        let inv = prm.inv_tau as f32;
        if !(inv.is_finite() && inv > 0.0) {
            return None;
        }
        let smooth = prm.eps > 0.0;
        let z = if s.len() < LONG_ROW {
            sums::<S, L, SHORT_BLOCK>(simd, s, inv, smooth)?
        } else {
            sums::<S, L, BLOCK>(simd, s, inv, smooth)?
        };
        let inv64 = f64::from(inv);
        let max = f64::from(z.max);
        let x_label = s[label].to_f64();
        let st = Stats {
            lse: MaxRest { max: max * inv64, rest: z.below + (z.at_max - 1.0) },
            n: s.len(),
            ysum: 1.0,
            a: (max - x_label) * inv64,
            b: z.gap * inv64,
            x_label: x_label * inv64,
            bad: false,
            unsupported: false,
        };
        let value = st.value(prm.eps);
        if !(value.is_finite() && (max * inv64).abs() < 1e30) {
            return None;
        }
        if let Some(g) = grad {
            let spread = if smooth { prm.eps / s.len() as f64 } else { 0.0 };
            let inv_z = 1.0 / (1.0 + st.lse.rest);
            let before = if prm.add { g[label].to_f64() } else { 0.0 };
            gradient(simd, s, z.max, inv, inv_z as f32, spread as f32, prm.grad_scale, prm.add, g);
            // the label's entry p − (1 − ε) − ε/n, free of cancellation when p ≈ 1
            let one_minus_p = if x_label == max {
                st.lse.rest * inv_z
            } else {
                1.0 - ((x_label - max) * inv64).exp() * inv_z
            };
            let d = (prm.eps - spread) - one_minus_p;
            g[label] = G::from_f64(before + prm.grad_scale * d);
        }
        Some(RowValue { value, counts: true })
    }
}
