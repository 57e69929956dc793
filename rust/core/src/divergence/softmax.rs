//! The softmax family row kernel: online max/sum statistics in one sweep, the accurate
//! non-negative terms in a second, the gradients (if asked) in a third while the row is in cache.

use std::cell::RefCell;

use super::params::{PairKind, RowParams};
use crate::math::out_of_domain;
use crate::rows::fill;
use crate::element::Elem;
use crate::math::{kl_term, prob_diff, softcap, softcap_slope, sym_term};
use crate::parallel::RowValue;
use crate::rows::GradRows;
use crate::simd::{vmath, Scalar};

/// Online log-sum-exp of one row x: the running max and Σ e^{x − max}, rescaled when the max
/// moves; beside it D = Σ e^{x − max} expm1(y − x + c') for the other row y and a shift c', so
/// that lse(y) + c' − lse(x) = log1p(D / Σ e^{x − max}) (see [`shifted_lse_diff`]).
#[derive(Clone, Copy)]
struct Online {
    max: f64,
    sum: f64,
    dsum: f64,
    /// false once a class has x = −inf < y: D then misses e^{y} there
    dsum_ok: bool,
}

impl Online {
    const EMPTY: Online = Online { max: f64::NEG_INFINITY, sum: 0.0, dsum: 0.0, dsum_ok: true };

    /// Adds x, with `em` = expm1(y − x) for the other row's logit y.
    #[inline]
    fn push(&mut self, x: f64, em: f64) {
        if x > self.max {
            let r = (self.max - x).exp();
            self.sum = self.sum * r + 1.0;
            self.dsum = self.dsum * r + em;
            self.max = x;
        } else if x > f64::NEG_INFINITY {
            let e = (x - self.max).exp();
            self.sum += e;
            self.dsum += e * em;
        } else {
            self.dsum_ok = false;
        }
    }

    /// e^{lse(y) − lse(x)} − 1, if D describes it.
    fn ratio(&self) -> Option<f64> {
        let r = self.dsum / self.sum;
        (self.dsum_ok && r.is_finite()).then_some(r)
    }
}

/// l = c' − (lse(a) − lse(b)) for the shift c' = c/τ of δ = a − b − c', exact to ~1e-16 of |l|
/// (not of |lse|) when the rows nearly agree, whatever constant shift lies between them: it is
/// log1p of a ratio > −½ from either side's D, else the plain difference (c' − (max_a − max_b)) −
/// (log Σ_a − log Σ_b). The plain difference's absolute error of ~ulp(lse) would otherwise
/// dominate w = log p − log q = δ + l on nearly identical rows. Also returns the scale of its
/// absolute rounding error (in units of the float64 epsilon).
fn shifted_lse_diff(sa: &Online, sb: &Online, c: f64) -> (f64, f64) {
    match (sb.ratio(), sa.ratio()) {
        (Some(rb), _) if rb > -0.5 => {
            let v = -rb.ln_1p();
            (v, v.abs())
        }
        (_, Some(ra)) if ra > -0.5 => {
            let v = ra.ln_1p();
            (v, v.abs())
        }
        _ => {
            let (dm, la, lb) = (sa.max - sb.max, sa.sum.ln(), sb.sum.ln());
            ((c - dm) - (la - lb), c.abs() + dm.abs() + la.abs() + lb.abs())
        }
    }
}

/// The log-ratios a = log p − log m and b = log q − log m of the JS mixture m = βp + (1−β)q,
/// from w = log p − log q, without cancellation near w = 0 and without overflow.
#[inline]
fn js_log_ratios(w: f64, beta: f64) -> (f64, f64) {
    if w >= 0.0 {
        let a = -((1.0 - beta) * (-w).exp_m1()).ln_1p();
        (a, a - w)
    } else {
        let b = -(beta * w.exp_m1()).ln_1p();
        (b + w, b)
    }
}

/// Running sums of the second sweep.
#[derive(Default)]
struct Sums {
    /// kl: KL(p‖q); sym_kl: Σ (p−q)w; js: KL(p‖m)
    first: f64,
    /// sym_kl: KL(p‖q); js: KL(q‖m)
    second: f64,
    /// sym_kl: KL(q‖p)
    third: f64,
}

/// The probability sums of the total variation's gradient, by the sign of w = log p − log q:
/// p_j (σ_j − Σ σ_i p_i) is formed as p_j (2P₋ + P₀) for σ_j = +1, −p_j (2P₊ + P₀) for σ_j = −1
/// and p_j (P₋ − P₊) for σ_j = 0 (Σ p = 1), sums of non-negative terms; likewise for q.
#[derive(Default)]
struct SignSums {
    /// [Σ_{w>0}, Σ_{w<0}, Σ_{w=0}] of p, and of q
    p: [f64; 3],
    q: [f64; 3],
}

impl SignSums {
    #[inline]
    fn slot(w: f64) -> usize {
        if w > 0.0 {
            0
        } else if w < 0.0 {
            1
        } else {
            2
        }
    }

    #[inline]
    fn add(&mut self, p: f64, q: f64, w: f64) {
        let k = Self::slot(w);
        self.p[k] += p;
        self.q[k] += q;
    }

    /// σ_j − Σ_i σ_i x_i for the sums `x` of p or q, σ_j the sign of w_j.
    #[inline]
    fn centred(x: &[f64; 3], w: f64) -> f64 {
        match Self::slot(w) {
            0 => 2.0 * x[1] + x[2],
            1 => -(2.0 * x[0] + x[2]),
            _ => x[1] - x[0],
        }
    }
}

/// The f64 reference kernel (the SIMD path's oracle; `divergence::row::softmax_row` tries the SIMD
/// path first). Gradients are written as `G`: the input type, or f64 where a loss adds further terms to them.
pub(crate) fn row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    prm: &RowParams,
    mut grads: GradRows<'_, G>,
) -> RowValue {
    let want_grad = grads.iter().any(Option::is_some);
    let present = |i: usize| mask.is_none_or(|m| m[i] != 0);
    // (s/τ, t/τ); their difference is never taken (see δ below)
    let load = |i: usize| (s[i].to_f64() * prm.inv_tau, t[i].to_f64() * prm.inv_tau);
    // The shift c = s_k − t_k of the first present class k with the largest finite s, and
    // δ = ((s − t) − c)/τ with s − t formed exactly: w = log p − log q = δ + l then carries no
    // error of ulp(c) — float64 logits with a constant shift between the rows — and δ_k = 0 for
    // the class leading p, whose gradient p (w − KL) is a difference of small numbers when p ≈ 1.
    let mut top: Option<(f64, usize)> = None;
    for i in (0..s.len()).filter(|&i| present(i)) {
        let x = s[i].to_f64();
        if x.is_finite() && top.is_none_or(|(m, _)| x > m) {
            top = Some((x, i));
        }
    }
    let c = top.map_or(0.0, |(x, k)| x - t[k].to_f64());
    let c = if c.is_finite() { c } else { 0.0 };
    let delta = |i: usize| vmath::diff_minus(Scalar::new(), s[i].to_f64(), t[i].to_f64(), c) * prm.inv_tau;

    // Sweep 1: softmax statistics of both rows over the classes present in either.
    let (mut sa, mut sb) = (Online::EMPTY, Online::EMPTY);
    let mut n_present = 0usize;
    for i in 0..s.len() {
        if !present(i) {
            continue;
        }
        let (a, b) = load(i);
        if out_of_domain(s[i].to_f64(), a) || out_of_domain(t[i].to_f64(), b) {
            fill(&mut grads, f64::NAN);
            return RowValue { value: f64::NAN, counts: true };
        }
        if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
            continue;
        }
        n_present += 1;
        let dl = delta(i);
        sa.push(a, (-dl).exp_m1());
        sb.push(b, dl.exp_m1());
    }
    if n_present == 0 {
        fill(&mut grads, 0.0);
        return RowValue { value: 0.0, counts: false };
    }
    if sa.max == f64::NEG_INFINITY || sb.max == f64::NEG_INFINITY {
        // one side puts −inf on every present class: no distribution
        fill(&mut grads, f64::NAN);
        return RowValue { value: f64::NAN, counts: true };
    }
    let (max_a, max_b, ln_a, ln_b) = (sa.max, sb.max, sa.sum.ln(), sb.sum.ln());
    let (l, l_err) = shifted_lse_diff(&sa, &sb, c * prm.inv_tau);
    let beta = prm.beta;
    // Per class: p, q, and w = log p − log q. log p = (a − max) − log Σ: lse = max + log Σ itself
    // would lose log Σ when |max| is large. w has two forms; the one with the smaller rounding error
    // is taken: δ + l on nearly identical rows (no cancellation; an error in l enters the sums
    // at second order only), log p − log q where the logits are so large (|s/τ| ≳ 1e16) that δ and
    // l carry absolute errors beyond |w| — there δ + l would be inconsistent with p and q.
    let class = |i: usize, a: f64, b: f64| {
        let (ra, rb) = (a - max_a, b - max_b);
        let (lp, lq) = (ra - ln_a, rb - ln_b);
        let dl = delta(i);
        let w = if dl.abs() + l_err <= ra.abs() + rb.abs() + ln_a.abs() + ln_b.abs() + 2.0 { dl + l } else { lp - lq };
        (lp.exp(), lq.exp(), w)
    };

    // Sweep 2: the non-negative terms.
    let mut sums = Sums::default();
    let mut signs = SignSums::default();
    for i in 0..s.len() {
        if !present(i) {
            continue;
        }
        let (a, b) = load(i);
        if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
            continue;
        }
        let (p, q, w) = class(i, a, b);
        match kind {
            PairKind::Kl => sums.first += kl_term(p, q, w),
            PairKind::SymKl => {
                sums.first += sym_term(p, q, w);
                if want_grad {
                    sums.second += kl_term(p, q, w);
                    sums.third += kl_term(q, p, -w);
                }
            }
            PairKind::Js => {
                let (ra, rb) = js_log_ratios(w, beta);
                let m = beta * p + (1.0 - beta) * q;
                sums.first += kl_term(p, m, ra);
                sums.second += kl_term(q, m, rb);
            }
            PairKind::Tv => {
                // |p − q| from the cancellation-free difference
                sums.first += prob_diff(p, q, w).abs();
                if want_grad {
                    signs.add(p, q, w);
                }
            }
            PairKind::SigmoidKl | PairKind::SigmoidSymKl => unreachable!("sigmoid kinds use their own kernel"),
        }
    }
    let value = match kind {
        PairKind::Js => {
            // β = 0 or 1 makes m equal q or p: the divergence is 0 whatever the other KL is.
            if beta == 0.0 || beta == 1.0 {
                0.0
            } else {
                beta * sums.first + (1.0 - beta) * sums.second
            }
        }
        PairKind::Tv => 0.5 * sums.first,
        _ => sums.first,
    };
    if !want_grad {
        return RowValue { value, counts: true };
    }
    if !value.is_finite() {
        fill(&mut grads, f64::NAN);
        return RowValue { value, counts: true };
    }

    // Sweep 3: gradients with respect to s/τ and t/τ, scaled by grad_scale (which holds 1/τ).
    let g = prm.grad_scale;
    let js_trivial = beta == 0.0 || beta == 1.0;
    let [gs, gt] = &mut grads;
    for i in 0..s.len() {
        let (a, b) = load(i);
        let (ds, dt) = if !present(i) || (a == f64::NEG_INFINITY && b == f64::NEG_INFINITY) {
            (0.0, 0.0)
        } else {
            let (p, q, w) = class(i, a, b);
            let d = prob_diff(p, q, w);
            // p·x and q·x where p or q is 0 are 0 (the limit), even when x is infinite
            let p_times = |x: f64| if p == 0.0 { 0.0 } else { p * x };
            let q_times = |x: f64| if q == 0.0 { 0.0 } else { q * x };
            match kind {
                PairKind::Kl => (p_times(w - sums.first), -d),
                PairKind::SymKl => (p_times(w - sums.second) + d, -q_times(w + sums.third) - d),
                PairKind::Js if js_trivial => (0.0, 0.0),
                PairKind::Js => {
                    let (ra, rb) = js_log_ratios(w, beta);
                    (beta * p_times(ra - sums.first), (1.0 - beta) * q_times(rb - sums.second))
                }
                // a subgradient: sign(p − q) taken as 0 where p = q
                PairKind::Tv => (
                    0.5 * p_times(SignSums::centred(&signs.p, w)),
                    -0.5 * q_times(SignSums::centred(&signs.q, w)),
                ),
                PairKind::SigmoidKl | PairKind::SigmoidSymKl => unreachable!(),
            }
        };
        if let Some(gs) = gs.as_deref_mut() {
            gs[i] = G::from_f64(g * ds);
        }
        if let Some(gt) = gt.as_deref_mut() {
            gt[i] = G::from_f64(g * dt);
        }
    }
    RowValue { value, counts: true }
}

thread_local! {
    /// Per-thread f64 rows of [`capped_row`]: the capped logits of both rows and their gradients.
    static CAPPED: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// [`row`] of the soft-capped logits c · tanh(x / c) (formed in f64; −inf stays absent, +inf and
/// NaN stay bad), with the gradients carried through the cap: each is multiplied by the slope
/// sech²(x / c) at the input's logit.
pub(crate) fn capped_row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    c: f64,
    prm: &RowParams,
    grads: GradRows<'_, G>,
) -> RowValue {
    CAPPED.with(|cell| {
        let mut buf = cell.borrow_mut();
        let n = s.len();
        buf.resize(4 * n, 0.0);
        let (cs, rest) = buf.split_at_mut(n);
        let (ct, rest) = rest.split_at_mut(n);
        let (gs, gt) = rest.split_at_mut(n);
        for i in 0..n {
            cs[i] = softcap(s[i].to_f64(), c);
            ct[i] = softcap(t[i].to_f64(), c);
        }
        let [out_s, out_t] = grads;
        let v = row::<f64, f64>(
            kind,
            cs,
            ct,
            mask,
            prm,
            [out_s.is_some().then_some(&mut gs[..]), out_t.is_some().then_some(&mut gt[..])],
        );
        for (out, g, x) in [(out_s, &*gs, s), (out_t, &*gt, t)] {
            if let Some(out) = out {
                for i in 0..n {
                    out[i] = G::from_f64(g[i] * softcap_slope(x[i].to_f64(), c));
                }
            }
        }
        v
    })
}
