//! The softmax family row kernel: online max/sum statistics in one sweep, the accurate
//! non-negative terms in a second, the gradients (if asked) in a third while the row is in cache.

use super::{fill, out_of_domain, PairKind, RowParams};
use crate::element::Elem;
use crate::math::{kl_term, prob_diff, sym_term};
use crate::parallel::{GradRows, RowValue};

/// Online log-sum-exp of one row x: the running max and Σ e^{x − max}, rescaled when the max
/// moves; beside it D = Σ e^{x − max} expm1(y − x) for the other row y, so that
/// lse(y) − lse(x) = log1p(D / Σ e^{x − max}) (see [`lse_diff`]).
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

/// lse(a) − lse(b), exact to ~1e-16 of |a − b| (not of |lse|) when the rows nearly agree: it is
/// log1p of a ratio > −½ from either side's D, else the plain difference (max_a − max_b) +
/// (log Σ_a − log Σ_b). The plain difference's absolute error of ~ulp(lse) would otherwise
/// dominate w = log p − log q on nearly identical rows. Also returns the scale of its absolute
/// rounding error (in units of the float64 epsilon).
fn lse_diff(sa: &Online, sb: &Online) -> (f64, f64) {
    match (sb.ratio(), sa.ratio()) {
        (Some(rb), _) if rb > -0.5 => {
            let v = rb.ln_1p();
            (v, v.abs())
        }
        (_, Some(ra)) if ra > -0.5 => {
            let v = -ra.ln_1p();
            (v, v.abs())
        }
        _ => {
            let (dm, la, lb) = (sa.max - sb.max, sa.sum.ln(), sb.sum.ln());
            (dm + (la - lb), dm.abs() + la.abs() + lb.abs())
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

/// Gradients are written as `G`: the input type, or f64 where a loss adds further terms to them.
pub(crate) fn row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    prm: &RowParams,
    mut grads: GradRows<'_, G>,
) -> RowValue {
    // Clean rows (no mask; every logit finite, checked there) of f32/f16/bf16 take the SIMD path.
    if mask.is_none() {
        if let Some(v) = super::softmax_simd::row(kind, s, t, prm, &mut grads) {
            return v;
        }
    }
    let want_grad = grads.iter().any(Option::is_some);
    let present = |i: usize| mask.is_none_or(|m| m[i] != 0);
    // (s/τ, t/τ, (s − t)/τ): the difference is taken before scaling so that it carries no rounding
    // error of s/τ and t/τ, which would dominate it on nearly identical rows.
    let load = |i: usize| {
        let (x, y) = (s[i].to_f64(), t[i].to_f64());
        (x * prm.inv_tau, y * prm.inv_tau, (x - y) * prm.inv_tau)
    };

    // Sweep 1: softmax statistics of both rows over the classes present in either.
    let (mut sa, mut sb) = (Online::EMPTY, Online::EMPTY);
    let mut n_present = 0usize;
    for i in 0..s.len() {
        if !present(i) {
            continue;
        }
        let (a, b, d) = load(i);
        if out_of_domain(s[i].to_f64(), a) || out_of_domain(t[i].to_f64(), b) {
            fill(&mut grads, f64::NAN);
            return RowValue { value: f64::NAN, counts: true };
        }
        if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
            continue;
        }
        n_present += 1;
        sa.push(a, (-d).exp_m1());
        sb.push(b, d.exp_m1());
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
    let (dlse, dlse_err) = lse_diff(&sa, &sb);
    let beta = prm.beta;
    // Per class: p, q, and w = log p − log q. log p = (a − max) − log Σ: lse = max + log Σ itself
    // would lose log Σ when |max| is large. w has two forms; the one with the smaller rounding error
    // is taken: d − dlse on nearly identical rows (no cancellation; an error in dlse enters the sums
    // at second order only), log p − log q where the logits are so large (|s/τ| ≳ 1e16) that d and
    // dlse carry absolute errors beyond |w| — there d − dlse would be inconsistent with p and q.
    let class = |a: f64, b: f64, d: f64| {
        let (ra, rb) = (a - max_a, b - max_b);
        let (lp, lq) = (ra - ln_a, rb - ln_b);
        let w = if d.abs() + dlse_err <= ra.abs() + rb.abs() + ln_a.abs() + ln_b.abs() { d - dlse } else { lp - lq };
        (lp.exp(), lq.exp(), w)
    };

    // Sweep 2: the non-negative terms.
    let mut sums = Sums::default();
    for i in 0..s.len() {
        if !present(i) {
            continue;
        }
        let (a, b, d) = load(i);
        if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
            continue;
        }
        let (p, q, w) = class(a, b, d);
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
        let (a, b, d) = load(i);
        let (ds, dt) = if !present(i) || (a == f64::NEG_INFINITY && b == f64::NEG_INFINITY) {
            (0.0, 0.0)
        } else {
            let (p, q, w) = class(a, b, d);
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
