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


use super::online::MaxRest;
use super::ce_params::{CeParams, RowStats};
use crate::element::Elem;
use crate::parallel::RowValue;
use crate::simd::block::{hmax, hsum, max_lanes, sum_lanes, BLOCK, LANES as W, SHORT_ROW};
use crate::simd::convert::for_each_chunk;
use crate::simd::convert::{same_type_slice_mut, store_scaled, with_f32_lanes};
use crate::simd::{dispatch, vmath, Kernel, Load, Simd};

/// The cross-entropy of one row against class `label`, gradient written (or added, `prm.add`)
/// when asked; `None` when the row is not for this path (nothing was added; a gradient row to be
/// overwritten may hold scratch, which the scalar kernel then overwrites).
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
    with_f32_lanes!(E, (s) => dispatch(ClassRow { s, label, prm, grad })).flatten()
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

/// Classes per span of a long row's sweep (both loops over a span stay in L1).
const SPAN: usize = 8 * BLOCK;

/// The most spans a long row may have and still keep its terms: their maxima are held in a
/// fixed array (up to 131 072 classes).
const KEPT_SPANS: usize = 64;

/// `terms`, when given (`KEEP`: an f32 gradient row being overwritten), receives every
/// e^{(x − m)/τ} with m the running max its span was summed with, and `span_max_kept` those maxima:
/// the gradient is then one multiply-add per class, by its span's factor e^{(m − M)/τ}/Z, instead
/// of a second exponential (the row, 128 KiB at 32 000 classes, is still in L2 for that sweep).
#[inline(always)]
fn sums<S: Simd, L: Load<Real = f32>, const B: usize, const KEEP: bool>(
    simd: S,
    s: &[L],
    inv: f32,
    smooth: bool,
    mut terms: Option<&mut [f32]>,
    span_max_kept: &mut [f32; KEPT_SPANS],
) -> Option<Sums> {
    let mut buf = [0.0f32; BLOCK];
    let (mut fr, mut fk, mut fb, mut chk) = ([0.0f32; B], [0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let (mut zr, mut zk, mut zb) = ([0.0f64; B], [0.0f64; B], [0.0f64; B]);
    let mut m = f32::NEG_INFINITY;
    let mut seen = 0usize;
    let used = s.len().min(B);
    for (k, span) in s.chunks(8 * B).enumerate() {
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
        if KEEP {
            span_max_kept[k] = m;
        }
        for (j, c) in span.chunks(B).enumerate() {
            let x = L::load(simd, c, &mut buf);
            let n = x.len();
            let (fr, fk, fb, chk) = (&mut fr[..n], &mut fk[..n], &mut fb[..n], &mut chk[..n]);
            let mut kept = terms.as_deref_mut().filter(|_| KEEP).map(|t| &mut t[seen + j * B..seen + j * B + n]);
            for i in 0..n {
                // a select that keeps an accumulator as it is becomes a masked store (slow):
                // multiply by 0 or 1 instead
                let below = if x[i] == m { 0.0f32 } else { 1.0 };
                let e = vmath::exp_nonpos(simd, (x[i] - m) * inv);
                if let Some(t) = kept.as_deref_mut() {
                    t[i] = e;
                }
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

/// [`sums`] for a row shorter than [`SHORT_ROW`]: one sweep for the max (and the finiteness
/// check: `x · 0` is NaN exactly for ±inf and NaN), one for the terms, each summed in f32 per
/// lane (at most `SHORT_ROW / W` = 64 terms, a relative error below 64 units of f32's rounding,
/// 4e-6) and across lanes in f64. The padding of the last chunk is the row's first logit for the
/// max sweep and the max itself for the terms: a term 0 below the max, one more class at it
/// (taken back), nothing for B.
///
/// `terms`, when given (an f32 gradient row being overwritten), receives every e^{(x − M)/τ}: the
/// gradient is then one multiply-add per class instead of a second exponential.
#[inline(always)]
fn short_sums<S: Simd, L: Load<Real = f32>, const KEEP: bool, const SMOOTH: bool>(
    simd: S,
    s: &[L],
    inv: f32,
    mut terms: Option<&mut [f32]>,
) -> Option<Sums> {
    let (mut mx, mut chk) = ([f32::NEG_INFINITY; W], [0.0f32; W]);
    for_each_chunk!(simd, L, s, L::to_real(s[0]), |_start, x| {
        for i in 0..W {
            mx[i] = mx[i].max(x[i]);
            chk[i] += x[i] * 0.0;
        }
    });
    if sum_lanes(&chk).is_nan() {
        return None;
    }
    let m = max_lanes(&mx);
    let (mut r, mut k, mut b) = ([0.0f32; W], [0.0f32; W], [0.0f32; W]);
    let mut e = [0.0f32; W];
    for_each_chunk!(simd, L, s, m, |start, x| {
        for i in 0..W {
            // a select that keeps an accumulator as it is becomes a masked store (slow):
            // multiply by 0 or 1 instead
            let below = if x[i] == m { 0.0f32 } else { 1.0 };
            e[i] = vmath::exp_nonpos(simd, (x[i] - m) * inv);
            r[i] += e[i] * below;
            k[i] += 1.0 - below;
            if SMOOTH {
                b[i] += m - x[i];
            }
        }
        if let Some(t) = terms.as_deref_mut().filter(|_| KEEP) {
            if start + W <= t.len() {
                t[start..start + W].copy_from_slice(&e);
            } else {
                let n = t.len() - start;
                t[start..].copy_from_slice(&e[..n]);
            }
        }
    });
    let pads = (s.len().div_ceil(W) * W - s.len()) as f64;
    let gap = if SMOOTH { sum_lanes(&b) } else { 0.0 };
    Some(Sums { max: m, below: sum_lanes(&r), at_max: sum_lanes(&k) - pads, gap })
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
    let mut o = [0.0f32; W];
    for_each_chunk!(simd, L, s, m, |start, x| {
        for i in 0..W {
            o[i] = vmath::exp_nonpos(simd, (x[i] - m) * inv) * inv_z - spread;
        }
        let n = W.min(s.len() - start);
        let o = &o[..n];
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
    });
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
        // a short row's terms go into an f32 gradient row that is overwritten (on a decline the
        // scalar kernel overwrites it too)
        let mut grad = grad;
        let mut terms = None;
        let short = s.len() < SHORT_ROW;
        if !prm.add && (short || s.len() <= KEPT_SPANS * SPAN) {
            terms = grad.as_deref_mut().and_then(same_type_slice_mut::<G, f32>);
        }
        let have_terms = terms.is_some();
        let mut span_max = [0.0f32; KEPT_SPANS];
        // (an instance per case: a value-only sweep without the stores, no B without smoothing)
        let z = match (short, have_terms) {
            (true, true) if smooth => short_sums::<S, L, true, true>(simd, s, inv, terms)?,
            (true, true) => short_sums::<S, L, true, false>(simd, s, inv, terms)?,
            (true, false) if smooth => short_sums::<S, L, false, true>(simd, s, inv, None)?,
            (true, false) => short_sums::<S, L, false, false>(simd, s, inv, None)?,
            (false, true) => sums::<S, L, BLOCK, true>(simd, s, inv, smooth, terms, &mut span_max)?,
            (false, false) => sums::<S, L, BLOCK, false>(simd, s, inv, smooth, None, &mut span_max)?,
        };
        let inv64 = f64::from(inv);
        let max = f64::from(z.max);
        let x_label = s[label].to_f64();
        let st = RowStats {
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
            match same_type_slice_mut::<G, f32>(g) {
                Some(g) if have_terms && short => {
                    // the same arithmetic as `gradient`, from the stored terms
                    let (inv_z, spread, scale) = (inv_z as f32, spread as f32, prm.grad_scale as f32);
                    for v in g.iter_mut() {
                        *v = (*v * inv_z - spread) * scale;
                    }
                }
                Some(g) if have_terms => {
                    // a long row's terms are relative to their span's running max m: times
                    // e^{(m − M)/τ}/Z (exactly 1/Z for the spans summed at the final max)
                    let (spread, scale) = (spread as f32, prm.grad_scale as f32);
                    for (span, &m) in g.chunks_mut(SPAN).zip(&span_max) {
                        let f = (((f64::from(m) - max) * inv64).exp() * inv_z) as f32;
                        for v in span.iter_mut() {
                            *v = (*v * f - spread) * scale;
                        }
                    }
                }
                _ => gradient(simd, s, z.max, inv, inv_z as f32, spread as f32, prm.grad_scale, prm.add, g),
            }
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
