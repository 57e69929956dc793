//! SIMD fast path of the sigmoid family (`sigmoid_kl`, `sigmoid_sym_kl`) for f32, f16 and bf16
//! rows: the terms and gradients in f32 lanes with the accurate forms of MATH.md selected per
//! lane (no branches), the row value summed in f64 accumulators.
//!
//! The scalar f64 kernel (`sigmoid::row`) stays the reference and handles every row this path
//! declines, so each documented convention is kept exactly:
//! - f64 input: not taken (f64 keeps the scalar f64 kernel);
//! - a class mask, per-class weights: taken; a masked class or a weight of 0 makes the class
//!   absent (never read: its lanes are replaced before any check), as in the scalar kernel;
//! - −inf in both rows: handled here (the class is absent: 0 to value and gradients);
//! - anything else non-finite (NaN, +inf, −inf in one row only, a logit/τ or a difference that
//!   overflows f32): detected in the same sweep (`(a + b + d)·0` is NaN exactly then), and the
//!   row is recomputed by the scalar kernel, which overwrites every gradient element;
//! - a row value below [`TINY`] (identical rows, or rows of logits so far out that the f32
//!   probabilities are subnormal): recomputed by the scalar kernel too, so relative accuracy holds
//!   where f32 would have lost it.
//!
//! Accuracy: every lane uses σ(a) − σ(b) = σ(b)σ(−a)expm1(a − b) for |a − b| ≤ 1, the difference
//! of complements when both are ≥ 0, log σ(a) − log σ(b) = log1p(σ(−a)expm1(d)) near and a
//! softplus difference far, and φ by its series, each in f32 from `vmath` (≤ 2.5 ulp); d is
//! formed as (s − t)/τ in f32, exact for near-identical rows (Sterbenz). Per-element relative
//! errors are a few 1e-7, and they add without cancellation (every term is ≥ 0).



use super::params::{PairKind, RowParams};
use crate::element::Elem;
use crate::parallel::RowValue;
use crate::rows::GradRows;
use crate::simd::block::{hsum, BLOCK};
use crate::simd::convert::{same_type_slice_mut, store_scaled, with_f32_lanes};
use crate::simd::{dispatch, dispatch_on, vmath, Isa, Kernel, Load, Simd};

/// Row values below this are recomputed by the scalar f64 kernel.
const TINY: f64 = 1e-30;

/// The fast path for one row; `None` when it declines the row (the caller then runs the scalar
/// kernel). `isa`: the path to run on (`None`: the active one).
pub(crate) fn try_row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    weights: Option<&[f64]>,
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    try_row_on(None, kind, s, t, mask, weights, prm, grads)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn try_row_on<E: Elem, G: Elem>(
    isa: Option<Isa>,
    kind: PairKind,
    s: &[E],
    t: &[E],
    mask: Option<&[u8]>,
    weights: Option<&[f64]>,
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    if s.is_empty() || !matches!(kind, PairKind::SigmoidKl | PairKind::SigmoidSymKl) {
        return None;
    }
    with_f32_lanes!(E, (s, t) => typed(isa, kind, s, t, mask, weights, prm, grads)).flatten()
}

fn typed<L: Load<Real = f32>, G: Elem>(
    isa: Option<Isa>,
    kind: PairKind,
    s: &[L],
    t: &[L],
    mask: Option<&[u8]>,
    weights: Option<&[f64]>,
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    let inv_tau = prm.inv_tau as f32;
    if !(inv_tau.is_finite() && inv_tau > 0.0) {
        return None;
    }
    let [gs, gt] = grads;
    let k = SigmoidRow {
        sym: kind == PairKind::SigmoidSymKl,
        s,
        t,
        mask,
        w: weights,
        inv_tau,
        grad_scale: prm.grad_scale,
        gs: gs.as_deref_mut(),
        gt: gt.as_deref_mut(),
    };
    let out = match isa {
        None => dispatch(k),
        Some(isa) => dispatch_on(isa, k).ok()?,
    };
    let (value, present) = out?;
    if !value.is_finite() || value < TINY {
        return None;
    }
    Some(RowValue { value, counts: present > 0.0 })
}

struct SigmoidRow<'a, L, G> {
    sym: bool,
    s: &'a [L],
    t: &'a [L],
    mask: Option<&'a [u8]>,
    w: Option<&'a [f64]>,
    inv_tau: f32,
    grad_scale: f64,
    gs: Option<&'a mut [G]>,
    gt: Option<&'a mut [G]>,
}

/// σ(a), σ(−a) from e = e^{−|a|}, exact in form for every finite a.
#[inline(always)]
fn sigmoids(a: f32, e: f32) -> (f32, f32) {
    let big = 1.0 / (1.0 + e); // σ(|a|)
    let small = e * big; // σ(−|a|)
    if a >= 0.0 {
        (big, small)
    } else {
        (small, big)
    }
}

/// σ(a) − σ(b) as `math::sigmoid_diff_d`, selected branch-free.
#[inline(always)]
fn sig_diff(a: f32, b: f32, d: f32, sa: (f32, f32), sb: (f32, f32), em: f32) -> f32 {
    let near = sb.0 * sa.1 * em;
    let both_pos = sb.1 - sa.1;
    let other = sa.0 - sb.0;
    let far = if (a >= 0.0) & (b >= 0.0) { both_pos } else { other };
    if d.abs() <= 1.0 {
        near
    } else {
        far
    }
}

/// Blocks whose f32 terms are summed per position before they join the f64 accumulators.
const FOLD: usize = 8;

/// acc += f (widened), and f cleared.
#[inline(always)]
fn fold_into(acc: &mut [f64], f: &mut [f32]) {
    for (a, v) in acc.iter_mut().zip(f.iter_mut()) {
        *a += f64::from(*v);
        *v = 0.0;
    }
}

/// σ(a) − σ(b) with d = a − b, from two exponentials and one division: given ea = e^{−|a|},
/// eb = e^{−|b|} (`vmath::exp_nonpos`), ua = 1 + ea, ub = 1 + eb and r = 1/(ua·ub), σ(a) − σ(b) = N·r where N is, by
/// the signs of a and b, eb − ea, ea − eb, 1 − ea·eb or ea·eb − 1 — and, for |d| ≤ ½ where those
/// cancel, the same from one expm1 of ∓d (`vmath::exp_m1_small`): eb·(−expm1(−d)) or
/// eb·expm1(d) for equal signs, −expm1(−d) or expm1(d) for mixed ones. Returns
/// (σ(a) − σ(b), ua, ub, r) for the gradients (σ'(a) = ea·ub²·r²).
#[inline(always)]
fn sym_diff<S: Simd>(simd: S, a: f32, b: f32, d: f32, ea: f32, eb: f32) -> (f32, f32, f32, f32) {
    let (pa, same) = (a >= 0.0, (a >= 0.0) == (b >= 0.0));
    let z = if pa { -d } else { d };
    let em = vmath::exp_m1_small(simd, z.max(-0.5).min(0.5));
    let near = (if same { eb } else { 1.0 }) * (if pa { -em } else { em });
    let eab = ea * eb;
    let far_pos = if same { eb - ea } else { 1.0 - eab };
    let far_neg = if same { ea - eb } else { eab - 1.0 };
    let far = if pa { far_pos } else { far_neg };
    let num = if d.abs() <= 0.5 { near } else { far };
    let (ua, ub) = (1.0 + ea, 1.0 + eb);
    let r = 1.0 / (ua * ub);
    (num * r, ua, ub, r)
}

/// `p·φ(r)` with `c = p e^{−r}` (`math::kl_term` for finite r): φ by its series where it is
/// accurate, `p(r − 1) + c` for r ≤ −2.5 (where e^{−r} may overflow; p = 0 gives c).
#[inline(always)]
fn kl_term<S: Simd>(s: S, p: f32, c: f32, r: f32) -> f32 {
    let series = p * vmath::phi(s, r.max(-2.5));
    let direct = p * (r - 1.0) + c;
    if r > -2.5 {
        series
    } else {
        direct
    }
}

impl<L: Load<Real = f32>, G: Elem> Kernel for SigmoidRow<'_, L, G> {
    /// (row value, number of present classes), or `None` for a row with a non-finite value.
    type Output = Option<(f64, f64)>;

    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> Self::Output {
        // value only: the gradient terms are not computed at all
        if self.gs.is_none() && self.gt.is_none() {
            self.body::<S, false>(simd)
        } else {
            self.body::<S, true>(simd)
        }
    }
}

impl<L: Load<Real = f32>, G: Elem> SigmoidRow<'_, L, G> {
    #[inline(always)]
    fn body<S: Simd, const GRAD: bool>(self, simd: S) -> Option<(f64, f64)> {
        let SigmoidRow { sym, s, t, mask, w, inv_tau, grad_scale, mut gs, mut gt } = self;
        let mut bs = [0.0f32; BLOCK];
        let mut bt = [0.0f32; BLOCK];
        let mut term = [0.0f32; BLOCK];
        let mut ds = [0.0f32; BLOCK];
        let mut dt = [0.0f32; BLOCK];
        let mut pres = [0.0f32; BLOCK];
        let mut chk = [0.0f32; BLOCK];
        let mut acc = [0.0f64; BLOCK];
        let mut fsum = [0.0f32; BLOCK];
        let mut blocks = 0usize;
        let used = s.len().min(BLOCK);
        let ones = [1.0f64; BLOCK];
        // without mask and weights every class is kept (absent only when −inf in both rows)
        let weighted = w.is_some();
        let plain = !weighted && mask.is_none();
        let mut keep = [1.0f32; BLOCK];
        let (mut va, mut vb, mut vd) = ([0.0f32; BLOCK], [0.0f32; BLOCK], [0.0f32; BLOCK]);
        let (mut live, mut ea, mut eb) = ([0.0f32; BLOCK], [0.0f32; BLOCK], [0.0f32; BLOCK]);
        let mut scaled = [0.0f32; BLOCK];
        let mut off = 0;
        for (cs, ct) in s.chunks(BLOCK).zip(t.chunks(BLOCK)) {
            let x = L::load(simd, cs, &mut bs);
            let y = L::load(simd, ct, &mut bt);
            let n = x.len();
            let w = match w {
                Some(w) => &w[off..off + n],
                None => &ones[..n],
            };
            // Classes kept by the mask and the weights (the others are absent, never read).
            let keep = &mut keep[..n];
            if !plain {
                for i in 0..n {
                    keep[i] = if w[i] != 0.0 { 1.0 } else { 0.0 };
                }
            }
            if let Some(m) = mask {
                let m = &m[off..off + n];
                for i in 0..n {
                    keep[i] = if m[i] != 0 { keep[i] } else { 0.0 };
                }
            }
            let keep = &keep[..n];
            let (y, term, ds, dt, pres, chk) =
                (&y[..n], &mut term[..n], &mut ds[..n], &mut dt[..n], &mut pres[..n], &mut chk[..n]);
            // One f32 loop per kind, each straight-line.
            if sym {
                // three loops, each light enough to keep its constants in registers: the scaled
                // logits (absent classes zeroed), the two exponentials, the rest
                let (va, vb, vd, live, ea, eb) =
                    (&mut va[..n], &mut vb[..n], &mut vd[..n], &mut live[..n], &mut ea[..n], &mut eb[..n]);
                for i in 0..n {
                    let (xv, yv) = (x[i], y[i]);
                    let (a0, b0, d0) = (xv * inv_tau, yv * inv_tau, (xv - yv) * inv_tau);
                    let absent = (keep[i] == 0.0) | ((a0 == f32::NEG_INFINITY) & (b0 == f32::NEG_INFINITY));
                    va[i] = if absent { 0.0 } else { a0 };
                    vb[i] = if absent { 0.0 } else { b0 };
                    vd[i] = if absent { 0.0 } else { d0 };
                    live[i] = if absent { 0.0 } else { 1.0 };
                    chk[i] += (va[i] + vb[i] + vd[i]) * 0.0;
                    pres[i] += live[i];
                }
                for i in 0..n {
                    ea[i] = vmath::exp_nonpos(simd, -va[i].abs());
                    eb[i] = vmath::exp_nonpos(simd, -vb[i].abs());
                }
                for i in 0..n {
                    let (a, b, d) = (va[i], vb[i], vd[i]);
                    let (diff, ua, ub, r) = sym_diff(simd, a, b, d, ea[i], eb[i]);
                    // absent classes have d = 0, so their term is 0 already
                    term[i] = d * diff;
                    if GRAD {
                        // σ'(a) = e^{−|a|}/(1 + e^{−|a|})² = ea·ub²·r²
                        let r2 = r * r;
                        let g_s = (ea[i] * (ub * ub) * r2) * d + diff;
                        let g_t = -((eb[i] * (ua * ua) * r2) * d) - diff;
                        ds[i] = g_s * live[i];
                        dt[i] = g_t * live[i];
                    }
                }
            } else {
                for i in 0..n {
                    let (xv, yv) = (x[i], y[i]);
                    let (a0, b0, d0) = (xv * inv_tau, yv * inv_tau, (xv - yv) * inv_tau);
                    let absent = (keep[i] == 0.0) | ((a0 == f32::NEG_INFINITY) & (b0 == f32::NEG_INFINITY));
                    let a = if absent { 0.0 } else { a0 };
                    let b = if absent { 0.0 } else { b0 };
                    let d = if absent { 0.0 } else { d0 };
                    chk[i] += (a + b + d) * 0.0;
                    let ea = vmath::exp(simd, -a.abs());
                    let eb = vmath::exp(simd, -b.abs());
                    let sa = sigmoids(a, ea);
                    let sb = sigmoids(b, eb);
                    let em = vmath::exp_m1(simd, d.max(-2.0).min(2.0));
                    let emn = -em / (1.0 + em); // expm1(−d)
                    let near = d.abs() <= 1.0;
                    // r1 = log σ(a) − log σ(b), r2 = log σ(−a) − log σ(−b)
                    let (la, lb) = (vmath::ln_1p(simd, ea), vmath::ln_1p(simd, eb));
                    let r1_far = ((-b).max(0.0) - (-a).max(0.0)) + (lb - la);
                    let r2_far = (b.max(0.0) - a.max(0.0)) + (lb - la);
                    let r1_near = vmath::ln_1p(simd, sa.1 * em);
                    let r2_near = vmath::ln_1p(simd, sa.0 * emn);
                    let r1 = if near { r1_near } else { r1_far };
                    let r2 = if near { r2_near } else { r2_far };
                    let v = kl_term(simd, sa.0, sb.0, r1) + kl_term(simd, sa.1, sb.1, r2);
                    let diff = sig_diff(a, b, d, sa, sb, em);
                    let g_s = sa.0 * sa.1 * d;
                    term[i] = if absent { 0.0 } else { v };
                    if GRAD {
                        ds[i] = if absent { 0.0 } else { g_s };
                        dt[i] = if absent { 0.0 } else { -diff };
                    }
                    pres[i] += f32::from(u8::from(!absent));
                }
            }
            // Widening loops (f64 width): value, gradients.
            if weighted {
                let acc = &mut acc[..n];
                for i in 0..n {
                    acc[i] += w[i] * f64::from(term[i]);
                }
            } else {
                // the terms are ≥ 0: summed in f32 per position over [`FOLD`] blocks (at most
                // FOLD roundings, relative), then into the f64 accumulators
                let f = &mut fsum[..n];
                for i in 0..n {
                    f[i] += term[i];
                }
                blocks += 1;
                if blocks == FOLD {
                    fold_into(&mut acc[..used], &mut fsum[..used]);
                    blocks = 0;
                }
            }
            // scale·w·d in f64, rounded once to f32 (then to a half type by a vector conversion),
            // the same bits with or without weights of 1
            for (out, d) in [(gs.as_deref_mut(), &ds[..n]), (gt.as_deref_mut(), &dt[..n])] {
                let Some(g) = out else { continue };
                let g = &mut g[off..off + n];
                if let Some(g) = same_type_slice_mut::<G, f64>(g) {
                    for i in 0..n {
                        g[i] = grad_scale * w[i] * f64::from(d[i]);
                    }
                } else {
                    let scaled = &mut scaled[..n];
                    for i in 0..n {
                        scaled[i] = (grad_scale * w[i] * f64::from(d[i])) as f32;
                    }
                    store_scaled(simd, g, scaled, 1.0);
                }
            }
            off += n;
        }
        fold_into(&mut acc[..used], &mut fsum[..used]);
        if hsum(&chk[..used]).is_nan() {
            return None;
        }
        // classes present, counted per lane in f32: exact below 2^24 per lane (rows < 2^32 classes)
        Some((hsum(&acc[..used]), f64::from(hsum(&pres[..used]))))
    }
}

#[cfg(test)]
mod tests {
    use super::super::sigmoid;
    use super::*;
    use half::{bf16, f16};
    use crate::testing::noise;
    use crate::simd::available;

    type Run = (Option<RowValue>, Vec<f32>, Vec<f32>);

    fn fast(isa: Isa, kind: PairKind, s: &[f32], t: &[f32], w: Option<&[f64]>, prm: &RowParams) -> Run {
        let (mut gs, mut gt) = (vec![0.0f32; s.len()], vec![0.0f32; s.len()]);
        let v = try_row_on(isa.into(), kind, s, t, None, w, prm, &mut [Some(&mut gs[..]), Some(&mut gt[..])]);
        (v, gs, gt)
    }

    fn scalar(kind: PairKind, s: &[f32], t: &[f32], w: Option<&[f64]>, prm: &RowParams) -> (RowValue, Vec<f64>, Vec<f64>) {
        let (mut gs, mut gt) = (vec![0.0f64; s.len()], vec![0.0f64; s.len()]);
        let v = sigmoid::row(kind, s, t, None, w, prm, [Some(&mut gs[..]), Some(&mut gt[..])]);
        (v, gs, gt)
    }

    fn close(got: f64, want: f64, rtol: f64, atol: f64) -> bool {
        (got - want).abs() <= rtol * want.abs() + atol
    }

    fn check(kind: PairKind, s: &[f32], t: &[f32], w: Option<&[f64]>, tau: f64, rtol: f64) {
        let prm = RowParams { inv_tau: 1.0 / tau, beta: 0.5, grad_scale: 0.5 / tau };
        let (want, ws, wt) = scalar(kind, s, t, w, &prm);
        let gmax = ws.iter().chain(&wt).fold(0.0f64, |m, g| m.max(g.abs()));
        for isa in available() {
            let (got, gs, gt) = fast(isa, kind, s, t, w, &prm);
            let got = got.unwrap_or_else(|| panic!("{isa} {kind:?}: declined a clean row"));
            assert_eq!(got.counts, want.counts);
            assert!(close(got.value, want.value, rtol, 0.0), "{isa} {kind:?} tau={tau}: {} vs {}", got.value, want.value);
            for i in 0..s.len() {
                for (g, h) in [(gs[i], ws[i]), (gt[i], wt[i])] {
                    assert!(
                        close(f64::from(g), h, 2e-5, 1e-6 * gmax),
                        "{isa} {kind:?} i={i} s={} t={}: grad {g} vs {h}",
                        s[i],
                        t[i]
                    );
                }
            }
        }
    }

    const KINDS: [PairKind; 2] = [PairKind::SigmoidSymKl, PairKind::SigmoidKl];

    /// The value-only loops (no gradient asked) against the scalar kernel, far and near rows,
    /// every path.
    #[test]
    fn value_only_matches_the_scalar_kernel() {
        for (n, scale, eps, tau) in [
            (9usize, 3.0, 0.5, 1.0),
            (300, 8.0, 1e-3, 1.0),
            (5000, 30.0, 2.0, 0.7),
            (4099, 60.0, 1e-5, 1.0),
        ] {
            let s: Vec<f32> = noise(n, n as u64)
                .iter()
                .map(|v| (v * scale) as f32)
                .collect();
            let t: Vec<f32> = s
                .iter()
                .zip(noise(n, 3))
                .map(|(&v, e)| v + (e * eps) as f32)
                .collect();
            let prm = RowParams {
                inv_tau: 1.0 / tau,
                beta: 0.5,
                grad_scale: 1.0,
            };
            for kind in KINDS {
                let (want, _, _) = scalar(kind, &s, &t, None, &prm);
                for isa in available() {
                    let got = try_row_on::<f32, f32>(
                        isa.into(),
                        kind,
                        &s,
                        &t,
                        None,
                        None,
                        &prm,
                        &mut [None, None],
                    )
                    .unwrap_or_else(|| panic!("{isa} {kind:?}: declined"));
                    assert!(
                        close(got.value, want.value, 2e-6, 0.0),
                        "{isa} {kind:?} n={n}: {} vs {}",
                        got.value,
                        want.value
                    );
                }
            }
        }
    }

    #[test]
    fn every_path_matches_the_scalar_kernel() {
        for (n, scale) in [(1usize, 3.0), (7, 3.0), (300, 8.0), (1000, 30.0), (5000, 2.0)] {
            let s: Vec<f32> = noise(n, n as u64).iter().map(|v| (v * scale) as f32).collect();
            let t: Vec<f32> = noise(n, n as u64 + 1).iter().map(|v| (v * scale) as f32).collect();
            let w: Vec<f64> = noise(n, 9).iter().map(|v| (v + 1.0) * (if v.abs() < 0.1 { 0.0 } else { 1.0 })).collect();
            for kind in KINDS {
                for tau in [1.0, 2.5] {
                    check(kind, &s, &t, None, tau, 1e-5);
                }
                check(kind, &s, &t, Some(&w), 1.0, 1e-5);
            }
        }
    }

    #[test]
    fn near_identical_rows_keep_their_digits() {
        for offset in [0.0, 12.0, -20.0] {
            let s: Vec<f32> = noise(3000, 5).iter().map(|v| (v * 4.0 + offset) as f32).collect();
            let t: Vec<f32> = s.iter().zip(noise(3000, 6)).map(|(&v, e)| v + (e * 1e-4) as f32).collect();
            for kind in KINDS {
                check(kind, &s, &t, None, 1.0, 1e-5);
            }
        }
    }

    #[test]
    fn far_logits_and_both_neg_inf() {
        let mut s: Vec<f32> = noise(777, 1).iter().map(|v| (v * 200.0) as f32).collect();
        let mut t: Vec<f32> = noise(777, 2).iter().map(|v| (v * 200.0) as f32).collect();
        for i in (0..777).step_by(5) {
            s[i] = f32::NEG_INFINITY;
            t[i] = f32::NEG_INFINITY;
        }
        s[3] = -1e12;
        t[3] = -1e12;
        s[4] = 40.0;
        t[4] = 40.5;
        for kind in KINDS {
            check(kind, &s, &t, None, 1.0, 1e-5);
        }
    }

    #[test]
    fn masked_and_zero_weight_classes_are_never_read() {
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        let s: Vec<f32> = noise(300, 11).iter().map(|v| (v * 4.0) as f32).collect();
        let t: Vec<f32> = noise(300, 12).iter().map(|v| (v * 4.0) as f32).collect();
        let mut s_nan = s.clone();
        s_nan[10] = f32::NAN;
        s_nan[299] = f32::INFINITY;
        let mut mask = vec![1u8; 300];
        mask[10] = 0;
        mask[299] = 0;
        let w: Vec<f64> = mask.iter().map(|&m| f64::from(m)).collect();
        for kind in KINDS {
            let (mut ws, mut wt) = (vec![0.0f64; 300], vec![0.0f64; 300]);
            let want = sigmoid::row(kind, &s, &t, Some(&mask), None, &prm, [Some(&mut ws[..]), Some(&mut wt[..])]);
            for isa in available() {
                for (m, w) in [(Some(&mask[..]), None), (None, Some(&w[..]))] {
                    let (mut gs, mut gt) = (vec![1.0f32; 300], vec![1.0f32; 300]);
                    let got = try_row_on(Some(isa), kind, &s_nan, &t, m, w, &prm, &mut [Some(&mut gs[..]), Some(&mut gt[..])])
                        .expect("declined");
                    assert!(close(got.value, want.value, 1e-5, 0.0), "{isa}");
                    assert_eq!((gs[10], gt[10], gs[299], gt[299]), (0.0, 0.0, 0.0, 0.0));
                }
            }
        }
    }

    #[test]
    fn special_rows_are_declined() {
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        let base = vec![0.5f32; 300];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut s = base.clone();
            s[257] = bad;
            for kind in KINDS {
                for isa in available() {
                    assert!(fast(isa, kind, &s, &base, None, &prm).0.is_none(), "{isa} {bad}");
                }
            }
        }
        // identical rows: value 0, left to the scalar kernel
        assert!(fast(Isa::Scalar, PairKind::SigmoidSymKl, &base, &base, None, &prm).0.is_none());
        // overflow of s/τ
        let prm = RowParams { inv_tau: 1e10, beta: 0.5, grad_scale: 1.0 };
        let s = vec![1e30f32; 10];
        assert!(fast(Isa::Scalar, PairKind::SigmoidSymKl, &s, &base[..10], None, &prm).0.is_none());
    }

    #[test]
    fn half_inputs() {
        let s: Vec<f16> = noise(600, 3).iter().map(|v| f16::from_f64(v * 6.0)).collect();
        let t: Vec<f16> = noise(600, 4).iter().map(|v| f16::from_f64(v * 6.0)).collect();
        let sb: Vec<bf16> = s.iter().map(|v| bf16::from_f32(v.to_f32())).collect();
        let tb: Vec<bf16> = t.iter().map(|v| bf16::from_f32(v.to_f32())).collect();
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        for kind in KINDS {
            let (want, _, _) = scalar(
                kind,
                &s.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
                &t.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
                None,
                &prm,
            );
            for isa in available() {
                let mut g = vec![f16::ZERO; 600];
                let got = try_row_on(Some(isa), kind, &s, &t, None, None, &prm, &mut [Some(&mut g[..]), None]).unwrap();
                assert!(close(got.value, want.value, 1e-5, 0.0), "{isa}");
                let got = try_row_on::<bf16, f64>(Some(isa), kind, &sb, &tb, None, None, &prm, &mut [None, None]).unwrap();
                assert!(got.value > 0.0);
            }
        }
    }

    /// Single-thread timing of the fast path on each ISA against the scalar f64 kernel:
    /// `cargo test --release -p logitdiv-core sigmoid_simd::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing() {
        use std::time::Instant;
        let n = 65536;
        let s: Vec<f32> = noise(n, 1).iter().map(|v| (v * 5.0) as f32).collect();
        let t: Vec<f32> = s.iter().zip(noise(n, 2)).map(|(&v, e)| v + (e * 0.1) as f32).collect();
        let (s64, t64): (Vec<f64>, Vec<f64>) = (s.iter().map(|&v| v.into()).collect(), t.iter().map(|&v| v.into()).collect());
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        let best = |f: &mut dyn FnMut()| {
            (0..15)
                .map(|_| {
                    let t0 = Instant::now();
                    f();
                    t0.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let (mut gs, mut gt) = (vec![0.0f32; n], vec![0.0f32; n]);
        for kind in KINDS {
            for grad in [false, true] {
                let mut sc = || {
                    let g = if grad { [Some(&mut gs[..]), Some(&mut gt[..])] } else { [None, None] };
                    std::hint::black_box(sigmoid_scalar_only(kind, &s64, &t64, &prm, g));
                };
                let base = best(&mut sc);
                let mut line = format!("{kind:?} grad={grad}: scalar f64 kernel {:.1} Melem/s", n as f64 / base / 1e6);
                for isa in available() {
                    let mut fa = || {
                        let mut g = if grad { [Some(&mut gs[..]), Some(&mut gt[..])] } else { [None, None] };
                        std::hint::black_box(try_row_on(Some(isa), kind, &s, &t, None, None, &prm, &mut g));
                    };
                    let tt = best(&mut fa);
                    line += &format!(", {isa} {:.1} Melem/s ({:.1}x)", n as f64 / tt / 1e6, base / tt);
                }
                println!("{line}");
            }
        }
    }

    /// The scalar f64 kernel alone, as it ran before the fast path: on f64 copies of the rows,
    /// which the fast path declines (the kernel converts every element to f64 anyway).
    fn sigmoid_scalar_only(kind: PairKind, s: &[f64], t: &[f64], prm: &RowParams, g: GradRows<'_, f32>) -> RowValue {
        sigmoid::row(kind, s, t, None, None, prm, g)
    }
}
