//! The two- and three-sweep body of the softmax divergences' SIMD path, shared by a row in one
//! piece (`softmax_simd.rs`) and a long row split across threads (`softmax_split.rs`): the
//! softmax statistics of both rows (sweep 1), the sums of the non-negative terms (sweep 2), the
//! gradients (sweep 3), each over a stretch of a row, in f32 lanes with f64 accumulators.

use super::params::RowParams;
use crate::element::Elem;
use crate::simd::block::{hmax, hsum, BLOCK};
use crate::simd::convert::store_scaled;
use crate::simd::{vmath, Load, Simd};

/// The divergence a sweep computes, as a const parameter.
pub(super) const KL: u8 = 0;
pub(super) const SYM: u8 = 1;
pub(super) const JS: u8 = 2;

/// Row values below this are left to the scalar f64 kernel (f32 terms near f32's subnormal range
/// lose relative accuracy).
pub(super) const TINY: f64 = 1e-30;

/// Below this w the KL term is formed as p (w − 1) + q (e^{−w} would overflow; no cancellation there).
const W_LO: f32 = -20.0;

/// Softmax statistics of both rows (raw maxima; sums relative to them).
#[derive(Debug, Clone, Copy)]
pub(super) struct SoftmaxSums {
    /// max of s and of t (unscaled; τ > 0 keeps the argmax)
    max_s: f32,
    max_t: f32,
    /// Σ e^{(s − max_s)/τ}, Σ e^{(t − max_t)/τ}, Σ e^{(s − max_s)/τ} expm1(−δ) with δ = (s − t)/τ − c
    sum_s: f64,
    sum_t: f64,
    sum_s_em: f64,
    /// the shift c (raw logits; see [`top_shift`]), the same for a row and its pieces
    c: f32,
}

/// The shift c = s_k − t_k of the first class k with the largest s (0 when that is not finite):
/// δ = ((s − t) − c)/τ is then exactly 0 for the class that leads p, whose gradient p (w − KL) is
/// a difference of small numbers when p_k ≈ 1 — w_k = δ_k + l must not carry an error of ulp(c).
#[inline(always)]
pub(super) fn top_shift<S: Simd, E: Load<Real = f32>>(simd: S, s: &[E], t: &[E]) -> f32 {
    // the first block holding the row's max, from each block's max (vector code), then the class
    // within that block (a short scalar search)
    let (mut buf, mut by) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    let (mut m, mut at) = (f32::NEG_INFINITY, usize::MAX);
    for (j, c) in s.chunks(BLOCK).enumerate() {
        let x = E::load(simd, c, &mut buf);
        // per-position maxima over 32 lanes (a loop LLVM vectorises), then those 32
        let mut lanes = [f32::NEG_INFINITY; 32];
        for part in x.chunks(32) {
            for (l, &v) in lanes.iter_mut().zip(part) {
                *l = l.max(v);
            }
        }
        let bm = hmax(&lanes);
        if bm > m {
            (m, at) = (bm, j);
        }
    }
    if at == usize::MAX {
        return 0.0;
    }
    let r = at * BLOCK..(at * BLOCK + BLOCK).min(s.len());
    let x = E::load(simd, &s[r.clone()], &mut buf);
    let y = E::load(simd, &t[r], &mut by);
    let c = x.iter().position(|&v| v == m).map_or(0.0, |i| x[i] - y[i]);
    if c.is_finite() {
        c
    } else {
        0.0
    }
}

/// Sweep 1; `None` when a logit is not finite.
#[inline(always)]
pub(super) fn stats<S: Simd, E: Load<Real = f32>, const B: usize>(simd: S, s: &[E], t: &[E], inv: f32, inv64: f64, c: f32) -> Option<SoftmaxSums> {
    let (mut bx, mut by) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    let (mut ea, mut eb, mut em) = ([0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let (mut sum_s, mut sum_t, mut sum_s_em) = ([0.0f64; B], [0.0f64; B], [0.0f64; B]);
    let mut bad = [0.0f32; B];
    let (mut max_s, mut max_t) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for (xs, ys) in s.chunks(8 * B).zip(t.chunks(8 * B)) {
        let (mut mxa, mut mxb) = ([f32::NEG_INFINITY; B], [f32::NEG_INFINITY; B]);
        for (cx, cy) in xs.chunks(B).zip(ys.chunks(B)) {
            let x = E::load(simd, cx, &mut bx);
            let y = E::load(simd, cy, &mut by);
            let n = x.len();
            let (y, m1, m2, bd) = (&y[..n], &mut mxa[..n], &mut mxb[..n], &mut bad[..n]);
            for i in 0..n {
                m1[i] = m1[i].max(x[i]);
                m2[i] = m2[i].max(y[i]);
                // x − x is NaN exactly when x is ±inf or NaN
                bd[i] = bd[i] + (x[i] - x[i]) + (y[i] - y[i]);
            }
        }
        let used = xs.len().min(B);
        let (na, nb) = (hmax(&mxa[..used]), hmax(&mxb[..used]));
        if na > max_s {
            let r = ((f64::from(max_s) - f64::from(na)) * inv64).exp();
            for (a, d) in sum_s.iter_mut().zip(sum_s_em.iter_mut()) {
                *a *= r;
                *d *= r;
            }
            max_s = na;
        }
        if nb > max_t {
            let r = ((f64::from(max_t) - f64::from(nb)) * inv64).exp();
            for b in &mut sum_t {
                *b *= r;
            }
            max_t = nb;
        }
        for (cx, cy) in xs.chunks(B).zip(ys.chunks(B)) {
            let x = E::load(simd, cx, &mut bx);
            let y = E::load(simd, cy, &mut by);
            let n = x.len();
            let (y, ea, eb, em) = (&y[..n], &mut ea[..n], &mut eb[..n], &mut em[..n]);
            for i in 0..n {
                let e = vmath::exp(simd, (x[i] - max_s) * inv);
                ea[i] = e;
                eb[i] = vmath::exp(simd, (y[i] - max_t) * inv);
                em[i] = e * vmath::exp_m1(simd, -(vmath::diff_minus(simd, x[i], y[i], c) * inv));
            }
            let (sum_s, sum_t, sum_s_em) = (&mut sum_s[..n], &mut sum_t[..n], &mut sum_s_em[..n]);
            for i in 0..n {
                sum_s[i] += f64::from(ea[i]);
                sum_t[i] += f64::from(eb[i]);
                sum_s_em[i] += f64::from(em[i]);
            }
        }
    }
    let used = s.len().min(B);
    if !hsum(&bad[..used]).is_finite() {
        return None;
    }
    Some(SoftmaxSums { max_s, max_t, sum_s: hsum(&sum_s[..used]), sum_t: hsum(&sum_t[..used]), sum_s_em: hsum(&sum_s_em[..used]), c })
}

/// p·φ(r) with r = log p − log c: the non-negative KL summand (`math::kl_term` for finite logits).
#[inline(always)]
fn kl_term<S: Simd>(simd: S, p: f32, c: f32, r: f32) -> f32 {
    let direct = p * (r - 1.0) + c;
    let series = p * vmath::phi(simd, r);
    if r < W_LO {
        direct
    } else {
        series
    }
}

/// (p − q)·w ≥ 0 (`math::sym_term` for finite logits).
#[inline(always)]
fn sym_term<S: Simd>(simd: S, p: f32, q: f32, w: f32) -> f32 {
    let aw = w.abs();
    let base = if w >= 0.0 { p } else { q };
    base * aw * -vmath::exp_m1(simd, -aw)
}

/// p − q without cancellation near w = 0 (`math::prob_diff`).
#[inline(always)]
fn prob_diff<S: Simd>(simd: S, p: f32, q: f32, w: f32) -> f32 {
    let near = -p * vmath::exp_m1(simd, -w);
    if w.abs() < 0.5 {
        near
    } else {
        p - q
    }
}

/// x − ln(1 + x) ≥ 0 for |x| ≤ ½ by the series in z = x/(2 + x) (|z| ≤ ⅓): ln(1 + x) = 2 atanh z,
/// so x − ln(1 + x) = x²/(2 + x) − 2(z³/3 + z⁵/5 + …), the terms of one sign for x > 0 and
/// small beside the first for x < 0; truncated after z¹³ (relative error < 1e-8).
#[inline(always)]
fn x_minus_ln_1p_small<S: Simd>(simd: S, x: f32) -> f32 {
    let d = 2.0 + x;
    let z = x / d;
    let z2 = z * z;
    let _ = simd;
    let poly = vmath::horner::<S, f32, 6>(z2, &[1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0]);
    x * x / d - 2.0 * (z * z2) * poly
}

/// The two JS terms of one class, p φ(log p − log m) and q φ(log q − log m), with one exponential,
/// one expm1 and one log1p. With `big` the larger of p and q and `small` = big·(1 + E),
/// E = expm1(−|w|): m = big (1 + a), a = c E (c: the weight in m of the smaller side), so
///   big·φ = big (a − ln(1 + a))          (a ∈ (−1, 0])
///   small·φ = small (b − ln(1 + b)),     b = (a − E)/(1 + E) ≥ 0, ln(1 + b) = |w| + ln(1 + a),
/// each x − ln(1 + x) by its series for |x| ≤ ½ (no cancellation) and directly beyond, where
/// small·b = −(1 − c) E big stays finite when 1 + E underflows. `lp`, `lq`: log p − log-scale
/// arguments of the exponentials ((x − max)/τ), `inv_sum_s`, `inv_sum_t` their normalisers; `beta_c` = 1 − β.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn js_terms<S: Simd>(simd: S, w: f32, lp: f32, lq: f32, inv_sum_s: f32, inv_sum_t: f32, beta: f32, beta_c: f32) -> (f32, f32) {
    let pos = w >= 0.0;
    let aw = w.abs();
    let big = vmath::exp(simd, if pos { lp } else { lq }) * if pos { inv_sum_s } else { inv_sum_t };
    // c and 1 − c, each rounded once from f64 (1 − c in f32 would lose β's digits for β near 0 or 1)
    let (c, cc) = if pos { (beta_c, beta) } else { (beta, beta_c) };
    let e = vmath::exp_m1(simd, -aw);
    let small = big * (e + 1.0);
    let a = c * e;
    let la = vmath::ln_1p(simd, a);
    let xa = if a >= -0.5 { x_minus_ln_1p_small(simd, a) } else { a - la };
    let big_term = big * xa;
    // b ≤ ½ ⇔ (1 − c)(−E) ≤ ½ (1 + E)
    let b_small = -cc * e <= 0.5 * (e + 1.0);
    let b = -cc * e / (e + 1.0);
    let small_term = if b_small {
        small * x_minus_ln_1p_small(simd, if b_small { b } else { 0.0 })
    } else {
        -cc * e * big - small * (aw + la)
    };
    if pos {
        (big_term, small_term)
    } else {
        (small_term, big_term)
    }
}

/// log p − log m and log q − log m of m = βp + (1−β)q, from w (the scalar `js_log_ratios`).
#[inline(always)]
fn js_log_ratios<S: Simd>(simd: S, w: f32, beta: f32) -> (f32, f32) {
    let pos = w >= 0.0;
    let c = if pos { 1.0 - beta } else { beta };
    let r = -vmath::ln_1p(simd, c * vmath::exp_m1(simd, -w.abs()));
    if pos {
        (r, r - w)
    } else {
        (r + w, r)
    }
}

impl SoftmaxSums {
    /// The statistics of two stretches of a row, relative to the larger maxima.
    pub(super) fn merge(self, o: SoftmaxSums, inv64: f64) -> SoftmaxSums {
        let rescale = |from: f32, to: f32| if from == to { 1.0 } else { ((f64::from(from) - f64::from(to)) * inv64).exp() };
        let (max_s, max_t) = (self.max_s.max(o.max_s), self.max_t.max(o.max_t));
        let (ra, qa) = (rescale(self.max_s, max_s), rescale(o.max_s, max_s));
        let (rb, qb) = (rescale(self.max_t, max_t), rescale(o.max_t, max_t));
        SoftmaxSums { max_s, max_t, sum_s: self.sum_s * ra + o.sum_s * qa, sum_t: self.sum_t * rb + o.sum_t * qb, sum_s_em: self.sum_s_em * ra + o.sum_s_em * qa, c: self.c }
    }

    /// What sweeps 2 and 3 need: c/τ − (lse(s') − lse(t')), accurate when the rows nearly agree
    /// (whatever constant shift lies between them): Σ e^{t'} = e^{−c/τ} Σ e^{s'} (1 + expm1(−δ)), so
    /// it is log1p(D / Σ e^{s'}) when that ratio is > −½, and the plain difference otherwise.
    pub(super) fn shape(&self, prm: &RowParams) -> SweepParams {
        let inv64 = prm.inv_tau;
        let ra = self.sum_s_em / self.sum_s;
        let l = if ra.is_finite() && ra > -0.5 {
            ra.ln_1p()
        } else {
            (f64::from(self.c) - (f64::from(self.max_s) - f64::from(self.max_t))) * inv64 - (self.sum_s.ln() - self.sum_t.ln())
        };
        SweepParams {
            max_s: self.max_s,
            max_t: self.max_t,
            c: self.c,
            l: l as f32,
            inv_sum_s: (1.0 / self.sum_s) as f32,
            inv_sum_t: (1.0 / self.sum_t) as f32,
            inv: inv64 as f32,
            beta: prm.beta as f32,
            beta_c: (1.0 - prm.beta) as f32,
        }
    }
}

/// A row's softmax statistics as sweeps 2 and 3 use them.
#[derive(Debug, Clone, Copy)]
pub(super) struct SweepParams {
    max_s: f32,
    max_t: f32,
    /// w = log p − log q = δ + l with δ = ((s − t) − c)/τ: the shift, and c/τ − (lse(s') − lse(t'))
    c: f32,
    l: f32,
    /// 1 / Σ e^{(s − max_s)/τ}, 1 / Σ e^{(t − max_t)/τ}
    inv_sum_s: f32,
    inv_sum_t: f32,
    inv: f32,
    /// β and 1 − β of JS
    beta: f32,
    beta_c: f32,
}

/// Sweep 2 over a stretch of a row: the sums of the non-negative terms. KL: [Σ p φ]; sym-KL:
/// [Σ (p − q) w] and, with `need3` (its gradients), [·, KL(p‖q), KL(q‖p)]; JS: [KL(p‖m), KL(q‖m)].
#[inline(always)]
pub(super) fn terms<S: Simd, E: Load<Real = f32>, const K: u8, const B: usize>(simd: S, s: &[E], t: &[E], sh: &SweepParams, need3: bool) -> [f64; 3] {
    let SweepParams { max_s, max_t, c, l, inv_sum_s, inv_sum_t, inv, beta, beta_c } = *sh;
    let (mut bx, mut by) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    let (mut t1, mut t2, mut t3) = ([0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let (mut a1, mut a2, mut a3) = ([0.0f64; B], [0.0f64; B], [0.0f64; B]);
    for (cx, cy) in s.chunks(B).zip(t.chunks(B)) {
        let x = E::load(simd, cx, &mut bx);
        let y = E::load(simd, cy, &mut by);
        let n = x.len();
        let (y, t1, t2, t3) = (&y[..n], &mut t1[..n], &mut t2[..n], &mut t3[..n]);
        for i in 0..n {
            let p = vmath::exp(simd, (x[i] - max_s) * inv) * inv_sum_s;
            let q = vmath::exp(simd, (y[i] - max_t) * inv) * inv_sum_t;
            let w = vmath::diff_minus(simd, x[i], y[i], c) * inv + l;
            if K == KL {
                t1[i] = kl_term(simd, p, q, w);
            } else if K == SYM {
                t1[i] = sym_term(simd, p, q, w);
            } else {
                let (a, b) = js_terms(simd, w, (x[i] - max_s) * inv, (y[i] - max_t) * inv, inv_sum_s, inv_sum_t, beta, beta_c);
                t1[i] = a;
                t2[i] = b;
            }
        }
        if need3 {
            for i in 0..n {
                let p = vmath::exp(simd, (x[i] - max_s) * inv) * inv_sum_s;
                let q = vmath::exp(simd, (y[i] - max_t) * inv) * inv_sum_t;
                let w = vmath::diff_minus(simd, x[i], y[i], c) * inv + l;
                t2[i] = kl_term(simd, p, q, w);
                t3[i] = kl_term(simd, q, p, -w);
            }
        }
        let a1 = &mut a1[..n];
        for i in 0..n {
            a1[i] += f64::from(t1[i]);
        }
        if K == JS || need3 {
            let a2 = &mut a2[..n];
            for i in 0..n {
                a2[i] += f64::from(t2[i]);
            }
        }
        if need3 {
            let a3 = &mut a3[..n];
            for i in 0..n {
                a3[i] += f64::from(t3[i]);
            }
        }
    }
    let used = s.len().min(B);
    [hsum(&a1[..used]), hsum(&a2[..used]), hsum(&a3[..used])]
}

/// Whether β makes JS identically 0 (m is p or q).
pub(super) fn js_trivial(prm: &RowParams) -> bool {
    prm.beta == 0.0 || prm.beta == 1.0
}

/// The row's value from the sums of sweep 2.
pub(super) fn value<const K: u8>(sums: [f64; 3], prm: &RowParams) -> f64 {
    match K {
        JS if js_trivial(prm) => 0.0,
        JS => prm.beta * sums[0] + (1.0 - prm.beta) * sums[1],
        _ => sums[0],
    }
}

/// Sweep 3 over a stretch of a row (`gs`, `gt`: the same stretch of the gradient rows): gradients
/// with respect to s/τ and t/τ, scaled by grad_scale (which holds 1/τ); `sums` from sweep 2.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn gradients<S: Simd, E: Load<Real = f32>, G: Elem, const K: u8, const B: usize>(
    simd: S,
    s: &[E],
    t: &[E],
    sh: &SweepParams,
    sums: [f64; 3],
    prm: &RowParams,
    mut gs: Option<&mut [G]>,
    mut gt: Option<&mut [G]>,
) {
    let SweepParams { max_s, max_t, c, l, inv_sum_s, inv_sum_t, inv, beta, beta_c: _ } = *sh;
    let g = prm.grad_scale as f32;
    let trivial = K == JS && js_trivial(prm);
    let (c1, c2, c3) = (sums[0] as f32, sums[1] as f32, sums[2] as f32);
    let (mut bx, mut by) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    let (mut gs32, mut gt32) = ([0.0f32; B], [0.0f32; B]);
    let mut start = 0;
    for (cx, cy) in s.chunks(B).zip(t.chunks(B)) {
        let x = E::load(simd, cx, &mut bx);
        let y = E::load(simd, cy, &mut by);
        let n = x.len();
        let (y, o1, o2) = (&y[..n], &mut gs32[..n], &mut gt32[..n]);
        if trivial {
            o1.fill(0.0);
            o2.fill(0.0);
        } else {
            for i in 0..n {
                let p = vmath::exp(simd, (x[i] - max_s) * inv) * inv_sum_s;
                let q = vmath::exp(simd, (y[i] - max_t) * inv) * inv_sum_t;
                let w = vmath::diff_minus(simd, x[i], y[i], c) * inv + l;
                if K == KL {
                    o1[i] = p * (w - c1);
                    o2[i] = -prob_diff(simd, p, q, w);
                } else if K == SYM {
                    let d = prob_diff(simd, p, q, w);
                    o1[i] = p * (w - c2) + d;
                    o2[i] = -q * (w + c3) - d;
                } else {
                    let (r1, r2) = js_log_ratios(simd, w, beta);
                    o1[i] = beta * p * (r1 - c1);
                    o2[i] = (1.0 - beta) * q * (r2 - c2);
                }
            }
        }
        if let Some(gs) = gs.as_deref_mut() {
            store_scaled(simd, &mut gs[start..start + n], o1, g);
        }
        if let Some(gt) = gt.as_deref_mut() {
            store_scaled(simd, &mut gt[start..start + n], o2, g);
        }
        start += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{available, dispatch_on, Kernel};

    struct JsTerms {
        cases: Vec<(f32, f32, f32)>,
    }

    impl Kernel for JsTerms {
        type Output = Vec<(f32, f32)>;
        fn run<S: Simd>(self, simd: S) -> Vec<(f32, f32)> {
            self.cases
                .iter()
                .map(|&(lp, lq, beta)| {
                let beta_c = (1.0 - f64::from(beta)) as f32;
                js_terms(simd, lp - lq, lp, lq, 1.0, 1.0, beta, beta_c)
            })
            .collect()
        }
    }

    /// Both JS terms of a class, p φ(log p − log m) and q φ(log q − log m), to 1e-6 relative of the
    /// f64 forms (1e-5 beyond |w| = 1), on every path: from w = 0 (exactly 0) through the series and direct ranges to
    /// |w| = 100 (where the smaller probability underflows), for β near 0, ½ and 1.
    #[test]
    fn js_terms_match_the_f64_forms() {
        let mut cases = vec![];
        for beta in [0.5f32, 0.2, 0.01, 0.99] {
            for w in [0.0f32, 1e-6, 1e-4, 1e-2, 0.3, 0.69, 0.7, 1.0, 1.5, 2.0, 5.0, 20.0, 60.0, 100.0] {
                // the larger probability e^{−3}, the smaller e^{−3 − w}
                cases.push((-3.0, -3.0 - w, beta));
                cases.push((-3.0 - w, -3.0, beta));
            }
        }
        for isa in available() {
            let got = dispatch_on(isa, JsTerms { cases: cases.clone() }).unwrap();
            for (&(lp, lq, beta), &(g1, g2)) in cases.iter().zip(&got) {
                let (lp, lq, b) = (f64::from(lp), f64::from(lq), f64::from(beta));
                let w = lp - lq;
                let (r1, r2) = if w >= 0.0 {
                    let a = -((1.0 - b) * (-w).exp_m1()).ln_1p();
                    (a, a - w)
                } else {
                    let c = -(b * w.exp_m1()).ln_1p();
                    (c + w, c)
                };
                let (p, q) = (lp.exp(), lq.exp());
                let m = b * p + (1.0 - b) * q;
                let want = (crate::math::kl_term(p, m, r1), crate::math::kl_term(q, m, r2));
                // beyond |w| = 1, log m = log big + log1p(c·expm1(−|w|)) inherits the rounding of
                // c·expm1(−|w|) near −1 (as the two-pass kernel's f32 forms always did): 1e-5
                let rtol = if w.abs() < 1.0 { 1e-6 } else { 1e-5 };
                for (g, w_) in [(g1, want.0), (g2, want.1)] {
                    let g = f64::from(g);
                    assert!((g - w_).abs() <= rtol * w_ + 1e-38, "{isa} lp={lp} lq={lq} β={beta}: {g} vs {w_}");
                }
            }
        }
    }
}
