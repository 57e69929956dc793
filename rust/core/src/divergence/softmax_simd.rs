//! SIMD fast path of the softmax divergences (`kl`, `sym_kl`, `js`) for float32, float16 and
//! bfloat16 rows: computed in f32 lanes, summed in f64 accumulators, on the active SIMD path.
//!
//! Taken for rows with no mask and at least [`MIN_COLS`] classes; the first sweep also checks that
//! every logit is finite, and a row holding −inf, +inf or NaN is handed back (`None`) to the
//! scalar f64 kernel in `softmax.rs` before anything is written, so every documented convention for
//! special values stays that kernel's. float64 rows always take the scalar kernel (its f64 accuracy
//! is the contract there).
//!
//! The sweeps, as in the scalar kernel:
//! 1. per span of 8 blocks (2048 classes, or 256 on a short row; in L1): the span's maxima of
//!    both rows and a finiteness flag, then
//!    Σ e^{(x − max)/τ}, Σ e^{(y − max)/τ} and D = Σ e^{(x − max)/τ} expm1((y − x)/τ), rescaled
//!    when a maximum moves; lse(s') − lse(t') = −log1p(D / Σ e^{…}) when that ratio is > −½, so
//!    w = log p − log q keeps its digits on nearly identical rows;
//! 2. the non-negative terms p φ(w) (kl), (p − q) w (sym_kl), the JS terms, branch-free;
//! 3. gradients, only when asked, while the row is still in cache.
//!
//! Each f32 term carries a few 1e-7 of relative error, and all terms are ≥ 0, so the sums keep
//! ~1e-6 relative accuracy; an error in the lse difference enters only at second order.



use super::softmax_onepass::{self, Outcome};
use super::softmax_split;
use super::softmax_sweep::{gradients, js_trivial, stats, terms, top_shift, value, JS, KL, SYM, TINY};
use super::params::{PairKind, RowParams};
use crate::element::Elem;
use crate::parallel::RowValue;
use crate::rows::{GradRows, fill};
use crate::simd::block::{BLOCK, LANES, SHORT_ROW};
use crate::simd::convert::with_f32_lanes;
use crate::simd::{dispatch, dispatch_on, Isa, Kernel, Load, Simd};

/// Rows with fewer classes keep the scalar kernel.
pub(crate) const MIN_COLS: usize = 16;

/// The fast path for one row, on the active SIMD path; `None` when the row is not for it (the
/// caller then runs the scalar kernel; nothing was written).
#[inline]
pub(crate) fn row<E: Elem, G: Elem>(
    kind: PairKind,
    s: &[E],
    t: &[E],
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    row_on(None, kind, s, t, prm, grads)
}

/// The same on a named path (`None`: the active one).
pub(crate) fn row_on<E: Elem, G: Elem>(
    isa: Option<Isa>,
    kind: PairKind,
    s: &[E],
    t: &[E],
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    if s.len() < MIN_COLS || s.len() != t.len() || !matches!(kind, PairKind::Kl | PairKind::SymKl | PairKind::Js) {
        return None;
    }
    with_f32_lanes!(E, (s, t) => run(isa, PairRow { kind, s, t, prm, grads })).flatten()
}

/// R-Drop's softmax row from one sweep (`softmax_onepass::rdrop_row`) on the active SIMD path;
/// `None` when the row is not for it (the caller's kernels then overwrite every gradient entry).
pub(crate) fn rdrop_row<E: Elem, G: Elem>(
    s: &[E],
    t: &[E],
    label: usize,
    half: f64,
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    if s.len() < MIN_COLS {
        return None;
    }
    with_f32_lanes!(E, (s, t) => dispatch(Rdrop { s, t, label, half, prm, grads })).flatten()
}

struct Rdrop<'r, 'a, 'g, E, G> {
    s: &'r [E],
    t: &'r [E],
    label: usize,
    half: f64,
    prm: &'r RowParams,
    grads: &'a mut GradRows<'g, G>,
}

impl<E: Load<Real = f32>, G: Elem> Kernel for Rdrop<'_, '_, '_, E, G> {
    type Output = Option<RowValue>;

    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> Option<RowValue> {
        match softmax_onepass::rdrop_row::<S, E, G>(simd, self.s, self.t, self.label, self.half, self.prm, self.grads) {
            Outcome::Done(v) => Some(v),
            Outcome::Declined => None,
        }
    }
}

fn run<E: Load<Real = f32>, G: Elem>(isa: Option<Isa>, k: PairRow<'_, '_, '_, E, G>) -> Option<RowValue> {
    if k.s.len() >= crate::parallel::SPLIT_COLS {
        return softmax_split::row(isa, k.kind, k.s, k.t, k.prm, k.grads);
    }
    match isa {
        None => dispatch(k),
        Some(isa) => dispatch_on(isa, k).ok().flatten(),
    }
}

struct PairRow<'r, 'a, 'g, E, G> {
    kind: PairKind,
    s: &'r [E],
    t: &'r [E],
    prm: &'r RowParams,
    grads: &'a mut GradRows<'g, G>,
}

impl<E: Load<Real = f32>, G: Elem> Kernel for PairRow<'_, '_, '_, E, G> {
    type Output = Option<RowValue>;

    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> Option<RowValue> {
        match self.kind {
            PairKind::Kl => body::<S, E, G, KL>(simd, self),
            PairKind::SymKl => body::<S, E, G, SYM>(simd, self),
            PairKind::Js => body::<S, E, G, JS>(simd, self),
            PairKind::SigmoidKl | PairKind::SigmoidSymKl | PairKind::Tv => None,
        }
    }
}

#[inline(always)]
fn body<S: Simd, E: Load<Real = f32>, G: Elem, const K: u8>(simd: S, k: PairRow<'_, '_, '_, E, G>) -> Option<RowValue> {
    let PairRow { s, t, prm, grads, .. } = k;
    if K == KL || K == SYM {
        let one_pass = if K == SYM {
            softmax_onepass::row::<S, E, G, true>(simd, s, t, prm, grads)
        } else {
            softmax_onepass::row::<S, E, G, false>(simd, s, t, prm, grads)
        };
        if let Outcome::Done(v) = one_pass {
            return Some(v);
        }
    }
    if s.len() < SHORT_ROW {
        two_pass::<S, E, G, K, LANES>(simd, s, t, prm, grads)
    } else {
        two_pass::<S, E, G, K, BLOCK>(simd, s, t, prm, grads)
    }
}

/// The two-pass kernel in blocks of `B` classes (accumulators of `B` lanes: [`LANES`] for a short
/// row, whose work is less than zeroing and folding [`BLOCK`]-sized ones). Out of line in debug
/// builds: there `inline(always)` would put both instances' arrays in one frame, beyond a test
/// thread's stack; a release build inlines it into the path's entry point, as it must.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline(never))]
fn two_pass<S: Simd, E: Load<Real = f32>, G: Elem, const K: u8, const B: usize>(
    simd: S,
    s: &[E],
    t: &[E],
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    let want_grad = grads.iter().any(Option::is_some);
    let inv = prm.inv_tau as f32;
    let c = top_shift(simd, s, t);
    let st = stats::<S, E, B>(simd, s, t, inv, prm.inv_tau, c)?;
    let sh = st.shape(prm);
    let sums = terms::<S, E, K, B>(simd, s, t, &sh, K == SYM && want_grad);
    let value = value::<K>(sums, prm);
    if !(value >= TINY) && !(K == JS && js_trivial(prm)) {
        // far below f32's normal range the lanes' terms lose relative digits (or it is NaN or 0):
        // the scalar f64 kernel computes it, equal rows included (exactly 0 there); a JS with β of
        // 0 or 1 is exactly 0 here too
        return None;
    }
    if !want_grad {
        return Some(RowValue { value, counts: true });
    }
    if !value.is_finite() {
        fill(grads, f64::NAN);
        return Some(RowValue { value, counts: true });
    }
    let [gs, gt] = grads;
    gradients::<S, E, G, K, B>(simd, s, t, &sh, sums, prm, gs.as_deref_mut(), gt.as_deref_mut());
    Some(RowValue { value, counts: true })
}

#[cfg(test)]
mod tests {
    use super::super::softmax;
    use super::*;
    use half::{bf16, f16};
    use crate::testing::noise;
    use crate::simd::available;

    type Out = (f64, Vec<f64>, Vec<f64>);

    fn scalar<E: Elem>(kind: PairKind, s: &[E], t: &[E], prm: &RowParams) -> Out {
        let (mut gs, mut gt) = (vec![0.0f64; s.len()], vec![0.0f64; s.len()]);
        let v = softmax::row(kind, s, t, Some(&vec![1u8; s.len()]), prm, [Some(&mut gs), Some(&mut gt)]);
        (v.value, gs, gt)
    }

    fn fast<E: Elem>(isa: Isa, kind: PairKind, s: &[E], t: &[E], prm: &RowParams) -> Option<Out> {
        let (mut gs, mut gt) = (vec![0.0f64; s.len()], vec![0.0f64; s.len()]);
        let v = row_on(Some(isa), kind, s, t, prm, &mut [Some(&mut gs), Some(&mut gt)])?;
        Some((v.value, gs, gt))
    }

    fn check(what: &str, got: &Out, want: &Out, rtol: f64) {
        assert!(
            (got.0 - want.0).abs() <= rtol * want.0.abs() + 1e-300,
            "{what}: value {} vs {} (rel {:e})",
            got.0,
            want.0,
            (got.0 - want.0) / want.0
        );
        for (name, g, w) in [("grad_s", &got.1, &want.1), ("grad_t", &got.2, &want.2)] {
            let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                assert!((a - b).abs() <= 2e-5 * scale + 1e-6 * b.abs(), "{what}: {name}[{i}] {a} vs {b} (max |g| {scale})");
            }
        }
    }

    fn cases() -> Vec<(usize, f64, f64, f64)> {
        // (classes, logit scale, relative perturbation, τ)
        vec![
            (16, 3.0, 0.5, 1.0),
            (100, 10.0, 0.1, 1.0),
            (1000, 30.0, 1e-4, 1.0),
            (5000, 30.0, 1e-6, 2.0),
            (32_000, 20.0, 1e-3, 0.7),
            (70_001, 8.0, 0.3, 1.0),
            (3000, 5.0, 3.0, 1.0),
        ]
    }

    #[test]
    fn fast_path_matches_the_scalar_kernel_on_every_path() {
        for (c, scale, eps, tau) in cases() {
            let s64: Vec<f64> = noise(c, c as u64).iter().map(|v| v * scale).collect();
            let t64: Vec<f64> = s64.iter().zip(noise(c, 7 + c as u64)).map(|(v, n)| v + eps * scale * n).collect();
            let s: Vec<f32> = s64.iter().map(|&v| v as f32).collect();
            let t: Vec<f32> = t64.iter().map(|&v| v as f32).collect();
            for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js] {
                for beta in [0.5, 0.2, 1.0] {
                    if beta != 0.5 && kind != PairKind::Js {
                        continue;
                    }
                    let prm = RowParams { inv_tau: 1.0 / tau, beta, grad_scale: 0.5 / tau };
                    let want = scalar(kind, &s, &t, &prm);
                    for isa in available() {
                        let got = fast(isa, kind, &s, &t, &prm).expect("a clean row takes the fast path");
                        check(&format!("{isa} {kind:?} c={c} eps={eps} tau={tau} beta={beta}"), &got, &want, 2e-5);
                    }
                }
            }
        }
    }

    #[test]
    fn half_inputs_match_the_scalar_kernel() {
        let c = 4099;
        let s64: Vec<f64> = noise(c, 1).iter().map(|v| v * 6.0).collect();
        let t64: Vec<f64> = s64.iter().zip(noise(c, 2)).map(|(v, n)| v + 0.05 * n).collect();
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js] {
            let (h1, h2): (Vec<f16>, Vec<f16>) =
                (s64.iter().map(|&v| f16::from_f64(v)).collect(), t64.iter().map(|&v| f16::from_f64(v)).collect());
            let (b1, b2): (Vec<bf16>, Vec<bf16>) =
                (s64.iter().map(|&v| bf16::from_f64(v)).collect(), t64.iter().map(|&v| bf16::from_f64(v)).collect());
            let (wh, wb) = (scalar(kind, &h1, &h2, &prm), scalar(kind, &b1, &b2, &prm));
            for isa in available() {
                check(&format!("{isa} f16 {kind:?}"), &fast(isa, kind, &h1, &h2, &prm).unwrap(), &wh, 2e-5);
                check(&format!("{isa} bf16 {kind:?}"), &fast(isa, kind, &b1, &b2, &prm).unwrap(), &wb, 2e-5);
            }
        }
    }

    #[test]
    fn special_rows_and_f64_are_left_to_the_scalar_kernel() {
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        let base = vec![0.5f32; 64];
        for bad in [f32::NEG_INFINITY, f32::INFINITY, f32::NAN] {
            for pos in [0, 31, 63] {
                let mut s = base.clone();
                s[pos] = bad;
                for isa in available() {
                    assert!(fast(isa, PairKind::Kl, &s, &base, &prm).is_none());
                    assert!(fast(isa, PairKind::Kl, &base, &s, &prm).is_none());
                }
            }
        }
        let x = vec![0.5f64; 64];
        assert!(fast(Isa::Scalar, PairKind::Kl, &x, &x, &prm).is_none());
        assert!(fast(Isa::Scalar, PairKind::Kl, &base[..MIN_COLS - 1], &base[..MIN_COLS - 1], &prm).is_none());
    }

    #[test]
    fn identical_rows_give_exactly_zero() {
        let s: Vec<f32> = noise(3000, 5).iter().map(|v| (v * 25.0) as f32).collect();
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        for isa in available() {
            for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js] {
                // a value below TINY is the scalar kernel's: the fast path declines it
                assert!(fast(isa, kind, &s, &s, &prm).is_none(), "{isa} {kind:?}");
                let (mut gs, mut gt) = (vec![1.0f32; s.len()], vec![1.0f32; s.len()]);
                let v = softmax::row(kind, &s, &s, None, &prm, [Some(&mut gs[..]), Some(&mut gt[..])]);
                assert_eq!(v.value, 0.0, "{isa} {kind:?}");
                assert!(gs.iter().chain(&gt).all(|g| g.abs() < 1e-12), "{isa} {kind:?}");
            }
        }
    }
}
