//! One-pass `kl` and `sym_kl` for float32, float16 and bfloat16 rows: the value from a single
//! read of both rows with online softmax statistics of s alone, and two transcendentals per
//! class; gradients from one more sweep. Called by the SIMD fast path (`softmax_simd.rs`) before
//! its two-pass kernel, which takes over whenever this one declines a row.
//!
//! With p = softmax(s'), q = softmax(t') (s' = s/τ, t' = t/τ), d = s' − t', a constant c (an
//! estimate of lse(s') − lse(t'): the difference of the maxima over the first block) and δ = d − c:
//!
//!   q = p e^{−δ} / (1 + u),   u = Σ p (e^{−δ} − 1),   w = log p − log q = δ + log1p(u),
//!   KL(p‖q)   = Σ p φ(δ) − ψ(u)                  φ(δ) = e^{−δ} − 1 + δ ≥ 0, ψ(u) = u − log1p(u) ≥ 0
//!   sym-KL    = Σ p δ (1 − e^{−δ}) + u/(1+u) · Σ p δ e^{−δ}     (the first sum's terms are ≥ 0)
//!
//! Every sum is over p alone (e^{s' − max} relative to a running max, rescaled when it moves), so
//! lse(t') is never needed, and e^{−δ} − 1 and φ(δ) come from one range reduction
//! (`vmath::exp_m1_phi`). The sums of non-negative terms keep f32's relative accuracy; the
//! correction (ψ(u) for KL, the u/(1+u) term for sym-KL) is second order in the error of c, and
//! the row is handed to the two-pass kernel when it exceeds [`COND`] times the value, so the
//! result stays within ~(1 + 2·COND) f32 roundings of the exact one (the bound is 1e-4). Rows
//! where t' − s' exceeds [`MAX_NEG_DELTA`] after the shift (e^{−δ} would be huge, or p would
//! underflow where q does not) are handed over too.

use super::params::RowParams;
use crate::element::Elem;
use crate::math::x_minus_log1p;
use crate::parallel::RowValue;
use crate::rows::GradRows;
use crate::simd::block::{hmax, hsum, max_lanes, sum_lanes_f64, widen_into, BLOCK, LANES, SHORT_ROW};
use crate::simd::convert::{for_each_chunk_pair, same_type_slice_mut, store_scaled};
use crate::simd::{vmath, Load, Simd};

/// The correction may be at most this many times the value (see the module notes).
const COND: f64 = 64.0;

/// Largest −δ taken: e^{16} keeps the terms' range modest and any underflowed p·e^{−δ} below
/// e^{−87 + 16} of the row's mass.
const MAX_NEG_DELTA: f32 = 16.0;

/// What the one-pass kernel made of a row.
pub(super) enum Outcome {
    /// The row's value (gradients written when asked).
    Done(RowValue),
    /// Not for this form (ill-conditioned, or a logit is ±inf or NaN): nothing was written, and
    /// the two-pass kernel (which hands special rows on to the scalar one) should compute it.
    Declined,
}

/// Sums over a stretch of a row, relative to the stretch's max of s: Σ e^{s' − m'} times 1, φ(δ),
/// e^{−δ} − 1, δ (1 − e^{−δ}) and δ e^{−δ}. Two stretches' sums merge ([`StretchSums::merge`]), so a long
/// row can be summed in pieces on several threads. NaN or infinite sums mean declined.
#[derive(Debug, Clone, Copy)]
pub(super) struct StretchSums {
    /// max of s (raw)
    m: f32,
    e: f64,
    a: f64,
    u: f64,
    s1: f64,
    s2: f64,
}

impl StretchSums {
    /// The sums of both stretches, relative to the larger max.
    pub(super) fn merge(self, o: StretchSums, inv64: f64) -> StretchSums {
        let m = self.m.max(o.m);
        let rescale = |from: f32| if from == m { 1.0 } else { ((f64::from(from) - f64::from(m)) * inv64).exp() };
        let (r, q) = (rescale(self.m), rescale(o.m));
        StretchSums {
            m,
            e: self.e * r + o.e * q,
            a: self.a * r + o.a * q,
            u: self.u * r + o.u * q,
            s1: self.s1 * r + o.s1 * q,
            s2: self.s2 * r + o.s2 * q,
        }
    }
}

/// The shift c (in units of the raw logits: δ = ((s − t) − c)/τ), from the maxima of the first `B`
/// classes: exact for a row led by one class, and any error only moves weight into the (checked)
/// correction. The same for a whole row and its pieces.
#[inline(always)]
pub(super) fn shift<S: Simd, E: Load<Real = f32>, const B: usize>(simd: S, s: &[E], t: &[E]) -> f32 {
    let (mut bx, mut by) = ([0.0f32; BLOCK], [0.0f32; BLOCK]); // conversion buffers (f16, bf16)
    let head = s.len().min(B);
    let (x, y) = (E::load(simd, &s[..head], &mut bx), E::load(simd, &t[..head], &mut by));
    let (mut mx, mut my) = ([f32::NEG_INFINITY; B], [f32::NEG_INFINITY; B]);
    for i in 0..head {
        mx[i] = mx[i].max(x[i]);
        my[i] = my[i].max(y[i]);
    }
    let c = hmax(&mx[..head]) - hmax(&my[..head]);
    if c.is_finite() {
        c
    } else {
        0.0
    }
}

/// −δ = (c − (x − y))/τ, from x − y formed exactly (`vmath::diff_minus`): a constant shift
/// between the rows leaves no error of size ulp(c) in δ.
#[inline(always)]
fn neg_delta<S: Simd>(simd: S, x: f32, y: f32, inv: f32, c: f32) -> f32 {
    -(vmath::diff_minus(simd, x, y, c) * inv)
}

/// What one class adds to the sums of [`StretchSums`], given its weight e = e^{s' − m'}: e,
/// e (e^{−δ} − 1), e φ(δ) (with `PHI`, else 0), and with `SYM` e δ (1 − e^{−δ}) ≥ 0 and
/// e δ e^{−δ} (subtracted; else 0s, not added); last, e^{−δ} − 1 itself (for the gradients). Beyond
/// `MAX_NEG_DELTA`, e^{−δ} − 1 is inf: the sums turn inf or NaN (declined).
#[inline(always)]
fn class_terms<S: Simd, const SYM: bool, const PHI: bool>(simd: S, e: f32, x: f32, y: f32, inv: f32, c: f32) -> [f32; 6] {
    let nd = neg_delta(simd, x, y, inv, c);
    let (em1, ph) = vmath::exp_m1_phi(simd, nd, MAX_NEG_DELTA);
    let ta = if PHI { e * ph } else { 0.0 };
    let (t1, t2) = if SYM { (e * (nd * em1), (e * nd) * (em1 + 1.0)) } else { (0.0, 0.0) };
    [e, e * em1, ta, t1, t2, em1]
}

/// The sweep over a stretch, with accumulators of `B` lanes. Per span of 8·B classes (both rows of
/// a span stay in L1 between its two loops): the max of s (rescaling the f64 sums when it moves),
/// then the terms, summed in f32 per position over the span's blocks (at most 8 terms: ≤ 8
/// roundings) and folded into f64 sums once per span.
///
/// No finiteness check: ±inf or NaN in either row makes a sum NaN or infinite (e^{s − m} is NaN
/// at s = m = +inf; −δ is ±inf or NaN for any other non-finite logit, and e^{−δ} − 1, φ or the
/// max of −δ follow), which [`finish`] treats as declined.
#[inline(always)]
pub(super) fn partial<S: Simd, E: Load<Real = f32>, const SYM: bool, const PHI: bool, const B: usize>(
    simd: S,
    s: &[E],
    t: &[E],
    inv: f32,
    inv64: f64,
    c: f32,
) -> StretchSums {
    let (mut bx, mut by) = ([0.0f32; BLOCK], [0.0f32; BLOCK]); // conversion buffers (f16, bf16)
    let (mut fe, mut fa, mut fu, mut f1, mut f2) = ([0.0f32; B], [0.0f32; B], [0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let (mut ze, mut za, mut zu, mut z1, mut z2) = ([0.0f64; B], [0.0f64; B], [0.0f64; B], [0.0f64; B], [0.0f64; B]);
    let mut m = f32::NEG_INFINITY;
    let used = s.len().min(B);
    for (xs, ys) in s.chunks(8 * B).zip(t.chunks(8 * B)) {
        let mut mx = [f32::NEG_INFINITY; B];
        for cx in xs.chunks(B) {
            let x = E::load(simd, cx, &mut bx);
            let m1 = &mut mx[..x.len()];
            for i in 0..x.len() {
                m1[i] = m1[i].max(x[i]);
            }
        }
        let span_max = hmax(&mx[..xs.len().min(B)]);
        if span_max > m && m > f32::NEG_INFINITY {
            // the sums so far were relative to the old max (none before the first span)
            let r = ((f64::from(m) - f64::from(span_max)) * inv64).exp();
            for acc in [&mut ze, &mut za, &mut zu, &mut z1, &mut z2] {
                for v in acc[..used].iter_mut() {
                    *v *= r;
                }
            }
        }
        if span_max > m {
            m = span_max;
        }
        for (cx, cy) in xs.chunks(B).zip(ys.chunks(B)) {
            let (x, y) = (E::load(simd, cx, &mut bx), E::load(simd, cy, &mut by));
            let n = x.len();
            let (y, fe, fa, fu, f1, f2) = (&y[..n], &mut fe[..n], &mut fa[..n], &mut fu[..n], &mut f1[..n], &mut f2[..n]);
            for i in 0..n {
                let e = vmath::exp_nonpos(simd, (x[i] - m) * inv);
                let [te, tu, ta, t1, t2, _] = class_terms::<S, SYM, PHI>(simd, e, x[i], y[i], inv, c);
                fe[i] += te;
                fu[i] += tu;
                if PHI {
                    fa[i] += ta;
                }
                if SYM {
                    f1[i] += t1;
                    f2[i] -= t2;
                }
            }
        }
        let (fold, clear) = (xs.len().min(B), used);
        for (z, f) in [(&mut ze, &mut fe), (&mut za, &mut fa), (&mut zu, &mut fu)] {
            for i in 0..fold {
                z[i] += f64::from(f[i]);
            }
            f[..clear].fill(0.0);
        }
        if SYM {
            for (z, f) in [(&mut z1, &mut f1), (&mut z2, &mut f2)] {
                for i in 0..fold {
                    z[i] += f64::from(f[i]);
                }
                f[..clear].fill(0.0);
            }
        }
    }
    StretchSums {
        m,
        e: hsum(&ze[..used]),
        a: hsum(&za[..used]),
        u: hsum(&zu[..used]),
        s1: hsum(&z1[..used]),
        s2: hsum(&z2[..used]),
    }
}

/// The maxima of both rows of a short pair, in one sweep in chunks of [`LANES`] classes.
#[inline(always)]
fn short_maxima<S: Simd, E: Load<Real = f32>>(simd: S, s: &[E], t: &[E]) -> [f32; 2] {
    let (mut mx, mut my) = ([f32::NEG_INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
    for_each_chunk_pair!(simd, E, s, t, (f32::NEG_INFINITY, f32::NEG_INFINITY), |_start, x, y, _valid| {
        for i in 0..LANES {
            mx[i] = mx[i].max(x[i]);
            my[i] = my[i].max(y[i]);
        }
    });
    [max_lanes(&mx), max_lanes(&my)]
}

/// Whether one class holds both rows' maxima (`m` of s, `m2` of t): the shift c = fl(m − m2) is
/// then that class's own fl(s_k − t_k), which the gradients of a row led by one class need
/// ([`finish`]'s `top_shift`). Asked only of such rows; `first` is a class to try before the
/// search (R-Drop's label: a confident row's label is its leading class).
fn one_class_holds_both<E: Load<Real = f32>>(s: &[E], t: &[E], [m, m2]: [f32; 2], first: Option<usize>) -> bool {
    let at = |i: usize| s[i].to_real() == m && t[i].to_real() == m2;
    first.is_some_and(at) || (0..s.len()).any(at)
}

/// [`partial`] for a row shorter than [`SHORT_ROW`] whose maxima `[m, m2]` (of s and t) the caller
/// found ([`short_maxima`]; c is m − m2 or, for a non-finite difference, 0), in chunks of
/// [`LANES`] classes (`for_each_chunk_pair!`): one sweep for the terms, summed in f32 per lane over
/// at most 8 chunks (≤ 8 roundings, as the spans of [`partial`]) and in f64 across them.
/// The padding is s = M, t = M − c (δ ≈ 0, every term finite) weighted 0; if a pad's δ were beyond
/// range its term would be NaN and the row declined, never wrong.
///
/// `keep`, when given (two f32 gradient rows about to be overwritten), receives every class's
/// e^{(s' − m')} and e^{−δ} − 1: the gradient sweep ([`kept_gradients`]) then needs no exponential.
/// A declined row's fallback kernels write every gradient entry, so nothing kept outlives the call.
///
/// With `CE` (R-Drop's fused row, [`rdrop_row`]) it also sums each row's cross-entropy terms
/// ([`LabelSums`]) — t's relative to m2.
#[inline(always)]
fn short_partial<S: Simd, E: Load<Real = f32>, const SYM: bool, const PHI: bool, const KEEP: bool, const CE: bool>(
    simd: S,
    s: &[E],
    t: &[E],
    inv: f32,
    c: f32,
    [m, m2]: [f32; 2],
    mut keep: Option<(&mut [f32], &mut [f32])>,
) -> (StretchSums, LabelSums) {
    let (mut fe, mut fa, mut fu, mut f1, mut f2) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
    let (mut ze, mut za, mut zu, mut z1, mut z2) = ([0.0f64; LANES], [0.0f64; LANES], [0.0f64; LANES], [0.0f64; LANES], [0.0f64; LANES]);
    let n = s.len();
    let (mut ke, mut km) = ([0.0f32; LANES], [0.0f32; LANES]);
    // the cross-entropies' R and K of s, then of t (f32 per lane over ≤ 8 chunks, f64 across)
    let mut fl = [[0.0f32; LANES]; 4];
    let mut zl = [[0.0f64; LANES]; 4];
    for_each_chunk_pair!(simd, E, s, t, (m, m - c), |start, x, y, valid| {
        for i in 0..LANES {
            let e = vmath::exp_nonpos(simd, (x[i] - m) * inv) * valid[i];
            let [te, tu, ta, t1, t2, em1] = class_terms::<S, SYM, PHI>(simd, e, x[i], y[i], inv, c);
            if KEEP {
                ke[i] = e;
                km[i] = em1;
            }
            fe[i] += te;
            fu[i] += tu;
            if PHI {
                fa[i] += ta;
            }
            if SYM {
                f1[i] += t1;
                f2[i] -= t2;
            }
            if CE {
                // multiplies by 0 or 1, not selects (see softmax_ce_simd); e^{(t' − (m' − c'))} =
                // e·e^{−δ} is t's term relative to m − c, which `label_sums` rescales to t's max
                let (b1, b2) = (if x[i] == m { 0.0f32 } else { 1.0 }, if y[i] == m2 { 0.0f32 } else { 1.0 });
                fl[0][i] += e * b1;
                fl[1][i] += valid[i] - valid[i] * b1;
                fl[2][i] += (e * (em1 + 1.0)) * b2;
                fl[3][i] += valid[i] - valid[i] * b2;
            }
        }
        if let Some((ge, gm)) = keep.as_mut().filter(|_| KEEP) {
            let k = LANES.min(n - start);
            ge[start..start + k].copy_from_slice(&ke[..k]);
            gm[start..start + k].copy_from_slice(&km[..k]);
        }
        if (start / LANES) % 8 == 7 || start + LANES >= n {
            // one call per pair: a loop over the pairs is not vectorised
            widen_into(&mut ze, &mut fe);
            widen_into(&mut zu, &mut fu);
            if PHI {
                widen_into(&mut za, &mut fa);
            }
            if SYM {
                widen_into(&mut z1, &mut f1);
                widen_into(&mut z2, &mut f2);
            }
            if CE {
                for (z, f) in zl.iter_mut().zip(&mut fl) {
                    widen_into(z, f);
                }
            }
        }
    });
    let partial = StretchSums { m, e: sum_lanes_f64(&ze), a: sum_lanes_f64(&za), u: sum_lanes_f64(&zu), s1: sum_lanes_f64(&z1), s2: sum_lanes_f64(&z2) };
    if !CE {
        return (partial, LabelSums::default());
    }
    let [r1, k1, r2, k2] = zl.map(|z| sum_lanes_f64(&z));
    (partial, LabelSums { below: [r1, r2], at_max: [k1, k2] })
}

/// A softmax cross-entropy's sums over a row, relative to the row's max M (as in the CE kernel,
/// `softmax_ce_simd`): R = Σ e^{(x − M)/τ} over the classes below M, K = the count at M. The sum
/// beside one largest term is R + K − 1, so a confident row's loss log1p(R + K − 1) keeps its
/// digits. Index 0: s; 1: t (R relative to m − c until [`rdrop_row`] rescales it).
#[derive(Debug, Clone, Copy, Default)]
struct LabelSums {
    below: [f64; 2],
    at_max: [f64; 2],
}

impl LabelSums {
    /// −log softmax(x/τ)_y of a row with max `m` whose label's logit is `xy`, and p_y − 1 (formed
    /// from the other classes' sum where p_y is the largest probability, without cancellation).
    fn ce(&self, k: usize, m: f32, xy: f32, inv: f64) -> (f64, f64) {
        let (r, n) = (self.below[k], self.at_max[k]);
        let z = r + n;
        if xy == m {
            let rest = r + (n - 1.0);
            (rest.ln_1p(), -rest / z)
        } else {
            let gap = (f64::from(m) - f64::from(xy)) * inv;
            (gap + z.ln(), (-gap).exp() / z - 1.0)
        }
    }
}

/// What the gradient sweep needs of a row's sums.
#[derive(Debug, Clone, Copy)]
pub(super) struct GradientPlan {
    m: f32,
    c: f32,
    inv: f32,
    /// grad_scale (which holds 1/τ)
    g: f32,
    inv_zs: f32,
    u: f32,
    inv_1u: f32,
    lu: f32,
    kl_pq: f32,
    kl_qp: f32,
}

/// The row's value from its sums, and the gradient plan; `None` when the row is declined (a
/// non-finite sum, a correction beyond [`COND`] times the value, or gradients asked of a row led
/// by one class unless `top_shift`: its p ≥ ½, and its gradient p (w − KL), a difference of two
/// small numbers, is only accurate when the shift c is that class's own difference s_k − t_k, as
/// the two-pass kernel's is; `top_shift` says this c is).
pub(super) fn finish<const SYM: bool>(
    p: StretchSums,
    c: f32,
    prm: &RowParams,
    want_grad: bool,
    top_shift: bool,
) -> Option<(f64, GradientPlan)> {
    let zs = p.e;
    if want_grad && !top_shift && zs <= 2.0 {
        return None;
    }
    let (a, u, s1, s2) = (p.a / zs, p.u / zs, p.s1 / zs, p.s2 / zs);
    if !(a.is_finite() && u.is_finite() && s1.is_finite() && s2.is_finite() && u > -1.0 && zs > 0.0) {
        return None;
    }
    let psi = x_minus_log1p(u);
    let kl = a - psi;
    let sym_corr = u / (1.0 + u) * s2;
    let sym = s1 + sym_corr;
    let (value, correction) = if SYM { (sym, sym_corr.abs()) } else { (kl, psi) };
    if !(correction <= COND * value) {
        return None;
    }
    let plan = GradientPlan {
        m: p.m,
        c,
        inv: prm.inv_tau as f32,
        g: prm.grad_scale as f32,
        inv_zs: (1.0 / zs) as f32,
        u: u as f32,
        inv_1u: (1.0 / (1.0 + u)) as f32,
        lu: u.ln_1p() as f32,
        kl_pq: kl.max(0.0) as f32,
        kl_qp: (sym - kl).max(0.0) as f32,
    };
    if !(value >= super::softmax_sweep::TINY) {
        return None;
    }
    Some((value, plan))
}

/// One class's two gradient entries (before grad_scale), from p = e^{s' − m'}/Z_s, δ and
/// e^{−δ} − 1: w.r.t. s', p (w − KL(p‖q)) (+ p − q for sym-KL), and w.r.t. t', q − p (sym-KL:
/// −q (w + KL(q‖p)) − (p − q)), w = δ + log(1 + u); p − q formed without cancellation near δ = 0.
#[inline(always)]
fn class_gradients<const SYM: bool>(pl: &GradientPlan, p: f32, delta: f32, em1: f32) -> (f32, f32) {
    let w = delta + pl.lu;
    let pq = p * (pl.u - em1) * pl.inv_1u;
    if SYM {
        let q = p * (em1 + 1.0) * pl.inv_1u;
        (p * (w - pl.kl_pq) + pq, -q * (w + pl.kl_qp) - pq)
    } else {
        (p * (w - pl.kl_pq), -pq)
    }
}

/// The gradient sweep over a stretch of a row (`gs`, `gt`: the same stretch of the gradient rows),
/// with respect to s' and t', scaled by grad_scale.
#[inline(always)]
pub(super) fn gradients<S: Simd, E: Load<Real = f32>, G: Elem, const SYM: bool>(
    simd: S,
    s: &[E],
    t: &[E],
    pl: &GradientPlan,
    mut gs: Option<&mut [G]>,
    mut gt: Option<&mut [G]>,
) {
    let (m, c, inv) = (pl.m, pl.c, pl.inv);
    let (mut o1, mut o2) = ([0.0f32; LANES], [0.0f32; LANES]);
    // the padding (s = M, t = M − c) gives finite values that are not stored
    for_each_chunk_pair!(simd, E, s, t, (m, m - c), |start, x, y, _valid| {
        for i in 0..LANES {
            let p = vmath::exp_nonpos(simd, (x[i] - m) * inv) * pl.inv_zs;
            let delta = -neg_delta(simd, x[i], y[i], inv, c);
            (o1[i], o2[i]) = class_gradients::<SYM>(pl, p, delta, vmath::exp_m1(simd, -delta));
        }
        let n = LANES.min(s.len() - start);
        if let Some(gs) = gs.as_deref_mut() {
            store_scaled(simd, &mut gs[start..start + n], &o1[..n], pl.g);
        }
        if let Some(gt) = gt.as_deref_mut() {
            store_scaled(simd, &mut gt[start..start + n], &o2[..n], pl.g);
        }
    });
}

/// [`gradients`] of a short row whose sweep kept e^{s' − m'} in `gs` and e^{−δ} − 1 in `gt`
/// ([`short_partial`]): the same per-class formula with no exponential, each chunk read before
/// it is overwritten. With `CE`, each entry also gets `ce` times p (for s) or q (for t): the
/// cross-entropies' p − onehot, but for the label's entry, which [`rdrop_row`] writes.
#[inline(always)]
fn kept_gradients<S: Simd, E: Load<Real = f32>, const SYM: bool, const CE: bool>(
    simd: S,
    s: &[E],
    t: &[E],
    pl: &GradientPlan,
    ce: f32,
    gs: &mut [f32],
    gt: &mut [f32],
) {
    let (m, c, inv) = (pl.m, pl.c, pl.inv);
    let (mut o1, mut o2) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (mut e, mut em1) = ([0.0f32; LANES], [0.0f32; LANES]);
    for_each_chunk_pair!(simd, E, s, t, (m, m - c), |start, x, y, _valid| {
        let n = LANES.min(s.len() - start);
        e[..n].copy_from_slice(&gs[start..start + n]);
        em1[..n].copy_from_slice(&gt[start..start + n]);
        for i in 0..LANES {
            let delta = -neg_delta(simd, x[i], y[i], inv, c);
            let p = e[i] * pl.inv_zs;
            (o1[i], o2[i]) = class_gradients::<SYM>(pl, p, delta, em1[i]);
            if CE {
                o1[i] += ce * p;
                o2[i] += ce * (p * (em1[i] + 1.0) * pl.inv_1u);
            }
        }
        store_scaled(simd, &mut gs[start..start + n], &o1[..n], pl.g);
        store_scaled(simd, &mut gt[start..start + n], &o2[..n], pl.g);
    });
}

/// Both gradient rows as f32 slices, when both are asked for and f32 (the rows [`short_partial`]
/// can keep its terms in).
fn f32_rows<'a, G: Elem>(grads: &'a mut GradRows<'_, G>) -> Option<(&'a mut [f32], &'a mut [f32])> {
    let [gs, gt] = grads;
    Some((same_type_slice_mut::<G, f32>(gs.as_deref_mut()?)?, same_type_slice_mut::<G, f32>(gt.as_deref_mut()?)?))
}

/// The shift c and the row's sums with accumulators of `B` lanes (`phi`: also Σ p φ(δ)).
#[inline(always)]
fn shift_and_sums<S: Simd, E: Load<Real = f32>, const SYM: bool, const B: usize>(
    simd: S,
    s: &[E],
    t: &[E],
    inv: f32,
    inv64: f64,
    phi: bool,
) -> (f32, StretchSums) {
    let c = shift::<S, E, B>(simd, s, t);
    let z = if phi {
        partial::<S, E, SYM, true, B>(simd, s, t, inv, inv64, c)
    } else {
        partial::<S, E, SYM, false, B>(simd, s, t, inv, inv64, c)
    };
    (c, z)
}

/// KL (`SYM` false) or sym-KL (`SYM` true) of one row, with gradients when asked.
#[inline(always)]
pub(super) fn row<S: Simd, E: Load<Real = f32>, G: Elem, const SYM: bool>(
    simd: S,
    s: &[E],
    t: &[E],
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Outcome {
    let inv64 = prm.inv_tau;
    let inv = inv64 as f32;
    let want_grad = grads.iter().any(Option::is_some);
    // Σ p φ(δ) is KL's sum; sym-KL needs it only for its gradients (KL(p‖q) apart)
    let phi = !SYM || want_grad;
    let short = s.len() < SHORT_ROW;
    let mut kept = false;
    let mut top = false;
    let (c, z) = if short {
        // c = max s − max t: a row led by one class (in both) then keeps its gradients here
        let maxima = short_maxima(simd, s, t);
        let c = maxima[0] - maxima[1];
        let c = if c.is_finite() { c } else { 0.0 };
        let keep = if want_grad { f32_rows(grads) } else { None };
        kept = keep.is_some();
        let (z, _) = match (phi, kept) {
            (_, true) => short_partial::<S, E, SYM, true, true, false>(simd, s, t, inv, c, maxima, keep),
            (true, false) => short_partial::<S, E, SYM, true, false, false>(simd, s, t, inv, c, maxima, None),
            (false, false) => short_partial::<S, E, SYM, false, false, false>(simd, s, t, inv, c, maxima, None),
        };
        top = want_grad && z.e <= 2.0 && one_class_holds_both(s, t, maxima, None);
        (c, z)
    } else {
        shift_and_sums::<S, E, SYM, BLOCK>(simd, s, t, inv, inv64, phi)
    };
    let Some((value, plan)) = finish::<SYM>(z, c, prm, want_grad, top) else {
        return Outcome::Declined;
    };
    if kept {
        let (gs, gt) = f32_rows(grads).expect("the rows the sweep kept its terms in");
        kept_gradients::<S, E, SYM, false>(simd, s, t, &plan, 0.0, gs, gt);
    } else if want_grad {
        let [gs, gt] = grads;
        gradients::<S, E, G, SYM>(simd, s, t, &plan, gs.as_deref_mut(), gt.as_deref_mut());
    }
    Outcome::Done(RowValue { value, counts: true })
}

/// R-Drop's softmax row against class `label` (no smoothing, no class mask, α = 2·`half` > 0) from
/// one sweep of both rows: CE(s, y) + CE(t, y) + α/2 · sym-KL(p‖q), with the gradients from the
/// terms the sweep kept (in the f32 gradient rows, or in f32 scratch for half precision). The
/// shift is c = max s − max t, so t's cross-entropy terms e·e^{−δ} are relative to (nearly) its
/// own max. `prm`: τ, and grad_scale = the reduction's scale times `half`. Declined (nothing
/// left that the caller's kernels do not overwrite) for a row of [`SHORT_ROW`] classes or more,
/// and for whatever the one-pass form declines.
#[inline(always)]
pub(super) fn rdrop_row<S: Simd, E: Load<Real = f32>, G: Elem>(
    simd: S,
    s: &[E],
    t: &[E],
    label: usize,
    half: f64,
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Outcome {
    let n = s.len();
    if n >= SHORT_ROW || n != t.len() || label >= n || !(half > 0.0) {
        return Outcome::Declined;
    }
    let (inv64, inv) = (prm.inv_tau, prm.inv_tau as f32);
    let [m, m2] = short_maxima(simd, s, t);
    let c = m - m2;
    if !c.is_finite() {
        return Outcome::Declined;
    }
    let want_grad = grads.iter().any(Option::is_some);
    let direct = f32_rows(grads).is_some();
    let mut scratch = (want_grad && !direct).then(|| [[0.0f32; SHORT_ROW]; 2]);
    let mut keep = if direct {
        f32_rows(grads)
    } else {
        scratch.as_mut().map(|[a, b]| (&mut a[..n], &mut b[..n]))
    };
    let (z, mut sums) = match keep.as_mut() {
        Some((a, b)) => short_partial::<S, E, true, true, true, true>(simd, s, t, inv, c, [m, m2], Some((a, b))),
        None => short_partial::<S, E, true, false, false, true>(simd, s, t, inv, c, [m, m2], None),
    };
    let (xy, yy) = (s[label].to_real(), t[label].to_real());
    let top = want_grad && z.e <= 2.0 && one_class_holds_both(s, t, [m, m2], Some(label));
    let Some((sym, plan)) = finish::<true>(z, c, prm, want_grad, top) else {
        return Outcome::Declined;
    };
    // t's terms were relative to m − c, which is t's max up to the rounding of c
    let off = f64::from(m) - f64::from(c) - f64::from(m2);
    if off != 0.0 {
        sums.below[1] *= (off * inv64).exp();
    }
    let (ce1, d1) = sums.ce(0, m, xy, inv64);
    let (ce2, d2) = sums.ce(1, m2, yy, inv64);
    let value = half * sym + ce1 + ce2;
    if !value.is_finite() {
        return Outcome::Declined;
    }
    if let Some((ks, kt)) = keep {
        let (ey, em1y) = (ks[label], kt[label]); // read before the sweep overwrites them
        kept_gradients::<S, E, true, true>(simd, s, t, &plan, (1.0 / half) as f32, ks, kt);
        // the label's entries: α/2 times the sym-KL's plus p_y − 1 (and q_y − 1) without cancellation
        let delta = -neg_delta(simd, xy, yy, inv, c);
        let (o1, o2) = class_gradients::<true>(&plan, ey * plan.inv_zs, delta, em1y);
        let g = f64::from(plan.g);
        ks[label] = ((f64::from(o1) + d1 / half) * g) as f32;
        kt[label] = ((f64::from(o2) + d2 / half) * g) as f32;
        if let Some([a, b]) = scratch.as_ref() {
            let [gs, gt] = grads;
            for (g, kept) in [(gs, a), (gt, b)] {
                if let Some(g) = g.as_deref_mut() {
                    store_scaled(simd, g, &kept[..n], 1.0);
                }
            }
        }
    }
    Outcome::Done(RowValue { value, counts: true })
}

#[cfg(test)]
mod tests {
    use super::super::softmax;
    use super::super::params::PairKind;
    use super::*;
    use crate::testing::noise;
    use crate::simd::{available, dispatch_on, Isa, Kernel};

    struct One<'a> {
        sym: bool,
        s: &'a [f32],
        t: &'a [f32],
        prm: RowParams,
        grads: [Option<&'a mut [f64]>; 2],
    }

    impl Kernel for One<'_> {
        type Output = Option<f64>;
        #[inline(always)]
        fn run<S: Simd>(mut self, simd: S) -> Option<f64> {
            let out = if self.sym {
                row::<S, f32, f64, true>(simd, self.s, self.t, &self.prm, &mut self.grads)
            } else {
                row::<S, f32, f64, false>(simd, self.s, self.t, &self.prm, &mut self.grads)
            };
            match out {
                Outcome::Done(v) => Some(v.value),
                Outcome::Declined => None,
            }
        }
    }

    fn one_pass(
        isa: Isa,
        sym: bool,
        s: &[f32],
        t: &[f32],
        tau: f64,
    ) -> Option<(f64, Vec<f64>, Vec<f64>)> {
        let (mut gs, mut gt) = (vec![0.0; s.len()], vec![0.0; s.len()]);
        let prm = RowParams {
            inv_tau: 1.0 / tau,
            beta: 0.5,
            grad_scale: 1.0 / tau,
        };
        let v = dispatch_on(
            isa,
            One {
                sym,
                s,
                t,
                prm,
                grads: [Some(&mut gs), Some(&mut gt)],
            },
        )
        .unwrap()?;
        Some((v, gs, gt))
    }

    fn scalar(sym: bool, s: &[f32], t: &[f32], tau: f64) -> (f64, Vec<f64>, Vec<f64>) {
        let (mut gs, mut gt) = (vec![0.0; s.len()], vec![0.0; s.len()]);
        let prm = RowParams {
            inv_tau: 1.0 / tau,
            beta: 0.5,
            grad_scale: 1.0 / tau,
        };
        let kind = if sym { PairKind::SymKl } else { PairKind::Kl };
        let v = softmax::row(
            kind,
            s,
            t,
            Some(&vec![1u8; s.len()]),
            &prm,
            [Some(&mut gs), Some(&mut gt)],
        );
        (v.value, gs, gt)
    }

    /// Rows like two models' logits: s of spread `scale`, t = s + a shift + noise of size `eps`.
    fn pair(c: usize, scale: f64, eps: f64, shift: f64, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let s: Vec<f64> = noise(c, seed).iter().map(|v| v * scale).collect();
        let t: Vec<f32> = s
            .iter()
            .zip(noise(c, seed + 1))
            .map(|(v, n)| (v + shift + eps * n) as f32)
            .collect();
        (s.iter().map(|&v| v as f32).collect(), t)
    }

    /// A short row led by one class (p ≥ ½) keeps its gradients in the one-pass form when that
    /// class holds both rows' maxima (c is then its own s_k − t_k), and every entry — the
    /// leading class's p_k (w_k − KL), a difference of small numbers, above all — matches the
    /// scalar f64 kernel; a row whose maxima lie at two classes is declined, or matches too.
    #[test]
    fn rows_led_by_one_class_keep_accurate_gradients() {
        for (c, margin, eps, tau) in [(100, 3.0, 1e-3, 1.0), (100, 12.0, 0.05, 1.0), (1000, 6.0, 1e-5, 2.0), (16, 40.0, 0.3, 1.0)] {
            for split in [false, true] {
                let (mut s, mut t) = pair(c, 2.0, eps, 0.5, c as u64 + 9);
                let k = c / 3;
                s[k] += margin as f32;
                t[k] += margin as f32;
                if split {
                    // t's max moves to another class, just above its k
                    t[k + 1] = t[k] + 0.25;
                }
                for sym in [false, true] {
                    let want = scalar(sym, &s, &t, tau);
                    for isa in available() {
                        let what = format!("{isa} sym={sym} c={c} margin={margin} eps={eps} split={split}");
                        let Some(got) = one_pass(isa, sym, &s, &t, tau) else {
                            assert!(split, "{what}: declined");
                            continue;
                        };
                        assert!((got.0 - want.0).abs() <= 2e-5 * want.0, "{what}: {} vs {}", got.0, want.0);
                        for (g, w) in [(&got.1, &want.1), (&got.2, &want.2)] {
                            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                                let top = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                                assert!((a - b).abs() <= 2e-5 * top + 1e-5 * b.abs(), "{what}: grad[{i}] {a} vs {b}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The one-pass form takes the rows it is for (nothing declined), on every path, and
    /// matches the scalar f64 kernel's value and gradients.
    #[test]
    fn takes_similar_rows_and_matches_the_scalar_kernel() {
        for (c, scale, eps, shift, tau) in [
            (16, 3.0, 0.5, 0.0, 1.0),
            (100, 10.0, 0.1, 2.5, 1.0),
            (1000, 30.0, 1e-4, -7.0, 1.0),
            (5000, 30.0, 1e-6, 0.0, 2.0),
            (32_000, 4.0, 0.3, 0.0, 1.0),
            (32_000, 20.0, 1e-3, 1.0, 0.7),
            (70_001, 8.0, 0.3, 0.0, 1.0),
        ] {
            let (s, t) = pair(c, scale, eps, shift, c as u64);
            for sym in [false, true] {
                let want = scalar(sym, &s, &t, tau);
                for isa in available() {
                    let what = format!(
                        "{isa} sym={sym} c={c} scale={scale} eps={eps} shift={shift} tau={tau}"
                    );
                    let got = one_pass(isa, sym, &s, &t, tau)
                        .unwrap_or_else(|| panic!("{what}: declined"));
                    assert!(
                        (got.0 - want.0).abs() <= 2e-5 * want.0,
                        "{what}: {} vs {}",
                        got.0,
                        want.0
                    );
                    for (g, w) in [(&got.1, &want.1), (&got.2, &want.2)] {
                        let top = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                        for (i, (a, b)) in g.iter().zip(w).enumerate() {
                            assert!(
                                (a - b).abs() <= 2e-5 * top + 1e-6 * b.abs(),
                                "{what}: grad[{i}] {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Rows it must hand over: t far above s where p is tiny (q's mass where p underflows),
    /// special values, and a large correction.
    #[test]
    fn declines_what_it_cannot_do_accurately() {
        let (s, mut t) = pair(3000, 5.0, 0.1, 0.0, 9);
        t[1234] = s[1234] + 40.0;
        let (mut a, b) = pair(3000, 5.0, 0.1, 0.0, 11);
        for isa in available() {
            for sym in [false, true] {
                assert!(
                    one_pass(isa, sym, &s, &t, 1.0).is_none(),
                    "{isa}: a far class"
                );
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    a[77] = bad;
                    assert!(one_pass(isa, sym, &a, &b, 1.0).is_none(), "{isa} {bad}");
                    assert!(one_pass(isa, sym, &b, &a, 1.0).is_none(), "{isa} {bad}");
                }
                a[77] = 0.5;
            }
        }
    }

    /// The value does not depend on whether gradients were asked for (bit for bit).
    #[test]
    fn the_value_is_the_same_with_and_without_gradients() {
        for c in [100, 5000] {
            let (s, t) = pair(c, 6.0, 0.2, 0.5, 21);
            for isa in available() {
                for sym in [false, true] {
                    let prm = RowParams {
                        inv_tau: 1.0 / 0.8,
                        beta: 0.5,
                        grad_scale: 1.0,
                    };
                    let bare = dispatch_on(
                        isa,
                        One {
                            sym,
                            s: &s,
                            t: &t,
                            prm,
                            grads: [None, None],
                        },
                    )
                    .unwrap()
                    .unwrap();
                    let with = one_pass(isa, sym, &s, &t, 0.8).unwrap().0;
                    assert_eq!(bare.to_bits(), with.to_bits(), "{isa} sym={sym} c={c}");
                }
            }
        }
    }

    struct Rdrop<'a, G> {
        s: &'a [f32],
        t: &'a [f32],
        label: usize,
        half: f64,
        prm: RowParams,
        grads: [Option<&'a mut [G]>; 2],
    }

    impl<G: Elem> Kernel for Rdrop<'_, G> {
        type Output = Option<f64>;
        #[inline(always)]
        fn run<S: Simd>(mut self, simd: S) -> Option<f64> {
            match rdrop_row::<S, f32, G>(simd, self.s, self.t, self.label, self.half, &self.prm, &mut self.grads) {
                Outcome::Done(v) => Some(v.value),
                Outcome::Declined => None,
            }
        }
    }

    /// −log softmax(x)_y and ∂/∂x in f64, the rest of a confident row summed apart.
    fn ce_f64(x: &[f32], y: usize) -> (f64, Vec<f64>) {
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let rest: f64 = (0..x.len()).filter(|&j| j != y).map(|j| (x[j] - x[y]).exp()).sum();
        let z = 1.0 + rest;
        let grad = (0..x.len()).map(|j| if j == y { -rest / z } else { (x[j] - x[y]).exp() / z }).collect();
        (rest.ln_1p(), grad)
    }

    /// R-Drop's fused row against two cross-entropies in f64 plus the scalar sym-KL kernel, on
    /// every path, with f32 gradients (kept in the rows) and f64 ones (kept in scratch): random
    /// and confident labels, shifted and near-identical rows.
    #[test]
    fn rdrop_row_matches_two_cross_entropies_and_the_sym_kl() {
        // margin: how far the label leads both rows (0: a label at random)
        for (c, scale, eps, shift, margin) in [
            (16, 3.0, 0.5, 0.0, 0.0),
            (100, 4.0, 0.3, 0.0, 0.0),
            (100, 10.0, 0.1, 2.5, 12.0),
            (257, 30.0, 1e-4, -7.0, 0.0),
            (1000, 8.0, 1e-5, 0.0, 40.0),
            (1023, 2.0, 0.2, 1.0, 3.0),
        ] {
            let (mut s, mut t) = pair(c, scale, eps, shift, 7 * c as u64);
            let confident = margin > 0.0;
            let label = if confident {
                // losses down to ~1e-15 (margin 40), which log(Σ) would lose to f64's rounding of 1 + Σ
                let y = c / 3;
                s[y] += margin as f32;
                t[y] += margin as f32;
                y
            } else {
                (c * 5) / 7
            };
            let (alpha, scale_g) = (4.0, 0.25);
            let half = alpha / 2.0;
            let (kl, gkl1, gkl2) = scalar(true, &s, &t, 1.0);
            let ((ce1, gce1), (ce2, gce2)) = (ce_f64(&s, label), ce_f64(&t, label));
            let want = ce1 + ce2 + half * kl;
            let w1: Vec<f64> = gce1.iter().zip(&gkl1).map(|(a, b)| scale_g * (a + half * b)).collect();
            let w2: Vec<f64> = gce2.iter().zip(&gkl2).map(|(a, b)| scale_g * (a + half * b)).collect();
            let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: scale_g * half };
            for isa in available() {
                let what = format!("{isa} c={c} scale={scale} eps={eps} shift={shift} margin={margin}");
                let (mut g32, mut h32) = (vec![f32::NAN; c], vec![f32::NAN; c]);
                let (mut g64, mut h64) = (vec![f64::NAN; c], vec![f64::NAN; c]);
                let bare = Rdrop::<f32> { s: &s, t: &t, label, half, prm, grads: [None, None] };
                let v0 = dispatch_on(isa, bare).unwrap().unwrap_or_else(|| panic!("{what}: declined"));
                assert!((v0 - want).abs() <= 2e-5 * want, "{what}: {v0} vs {want}");
                let k32 = Rdrop { s: &s, t: &t, label, half, prm, grads: [Some(&mut g32[..]), Some(&mut h32[..])] };
                let v32 = dispatch_on(isa, k32).unwrap().unwrap_or_else(|| panic!("{what}: declined (f32)"));
                let k64 = Rdrop { s: &s, t: &t, label, half, prm, grads: [Some(&mut g64[..]), Some(&mut h64[..])] };
                let v64 = dispatch_on(isa, k64).unwrap().unwrap_or_else(|| panic!("{what}: declined (f64)"));
                assert_eq!(v0.to_bits(), v32.to_bits(), "{what}: value with and without gradients");
                assert_eq!(v0.to_bits(), v64.to_bits(), "{what}");
                let top = w1.iter().chain(&w2).fold(0.0f64, |m, v| m.max(v.abs()));
                let g32: Vec<f64> = g32.iter().chain(&h32).map(|&v| f64::from(v)).collect();
                for (name, got) in [("f32", &g32), ("f64", &g64.iter().chain(&h64).copied().collect())] {
                    for (i, (a, b)) in got.iter().zip(w1.iter().chain(&w2)).enumerate() {
                        assert!((a - b).abs() <= 2e-5 * top + 1e-6 * b.abs(), "{what} {name}: grad[{i}] {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn identical_rows_give_exactly_zero() {
        // a value below TINY is declined here and computed by the scalar f64 kernel: exactly 0
        let (s, _) = pair(5000, 25.0, 0.0, 0.0, 3);
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        for isa in available() {
            for sym in [false, true] {
                assert!(one_pass(isa, sym, &s, &s, 1.0).is_none(), "{isa} sym={sym}");
                let kind = if sym { PairKind::SymKl } else { PairKind::Kl };
                let (mut gs, mut gt) = (vec![1.0f32; s.len()], vec![1.0f32; s.len()]);
                let v = softmax::row(kind, &s, &s, None, &prm, [Some(&mut gs[..]), Some(&mut gt[..])]);
                assert_eq!(v.value, 0.0);
                assert!(gs.iter().chain(&gt).all(|&g| g == 0.0), "{isa} sym={sym}");
            }
        }
    }
}
