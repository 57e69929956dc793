//! Long rows of the softmax divergences (at least `parallel::SPLIT_COLS` classes: vocabularies of 10^6,
//! flattened GlobalPointer rows) cut into pieces of `parallel::PIECE` classes that run on several threads.
//!
//! Each sweep of the SIMD kernels runs on the pieces in parallel, and what the pieces return
//! merges associatively: online softmax statistics by rescaling to the larger maximum
//! ([`StretchSums::merge`], [`SoftmaxSums::merge`]), term sums by adding. The merge runs in piece order and
//! the pieces depend on the row length only, so the result is the same whatever the thread count.
//! The one-pass form (`kl`, `sym_kl`) is tried first; a row it declines takes the two-pass one,
//! and a row holding a non-finite logit goes back (`None`) to the scalar kernel, whole.

use super::softmax_onepass::{self, StretchSums, GradientPlan};
use super::softmax_sweep::{self, SweepParams, SoftmaxSums, JS, KL, SYM};
use super::params::{PairKind, RowParams};
use crate::rows::fill;
use crate::element::Elem;
use crate::parallel::{grad_pieces, map_pieces, piece, RowValue, PIECE};
use crate::rows::GradRows;
use crate::simd::block::BLOCK;
use crate::simd::{active, dispatch_on, Isa, Kernel, Load, Simd};

/// The divergence of one long row on `isa` (`None`: the active path); `None` when a logit is not
/// finite (nothing was written).
pub(super) fn row<E: Load<Real = f32>, G: Elem>(
    isa: Option<Isa>,
    kind: PairKind,
    s: &[E],
    t: &[E],
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<RowValue> {
    let isa = match isa {
        None => active(),
        Some(isa) if isa.is_available() => isa,
        Some(_) => return None,
    };
    let value = match kind {
        PairKind::Kl | PairKind::SymKl => one_pass(isa, kind == PairKind::SymKl, s, t, prm, grads),
        _ => None,
    };
    value.or_else(|| two_pass(isa, kind, s, t, prm, grads)).map(|value| RowValue { value, counts: true })
}

/// Runs a sweep's kernel on `isa`, which the caller checked.
fn on<K: Kernel>(isa: Isa, k: K) -> K::Output {
    dispatch_on(isa, k).expect("the path was checked to be available")
}

fn one_pass<E: Load<Real = f32>, G: Elem>(
    isa: Isa,
    sym: bool,
    s: &[E],
    t: &[E],
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<f64> {
    let cols = s.len();
    let want_grad = grads.iter().any(Option::is_some);
    let c = on(isa, OnePassShift { s, t });
    let parts = map_pieces((0..cols.div_ceil(PIECE)).collect(), |j| {
        let r = piece(j, cols);
        on(isa, OnePassSums { sym, phi: !sym || want_grad, s: &s[r.clone()], t: &t[r], prm, c })
    });
    let merged = parts.into_iter().reduce(|a, b| a.merge(b, prm.inv_tau))?;
    let (value, plan) = if sym {
        softmax_onepass::finish::<true>(merged, c, prm, want_grad, false)?
    } else {
        softmax_onepass::finish::<false>(merged, c, prm, want_grad, false)?
    };
    if want_grad {
        map_pieces(grad_pieces(grads, cols), |(r, [gs, gt])| {
            on(isa, OnePassGrads { sym, s: &s[r.clone()], t: &t[r], plan: &plan, gs, gt })
        });
    }
    Some(value)
}

fn two_pass<E: Load<Real = f32>, G: Elem>(
    isa: Isa,
    kind: PairKind,
    s: &[E],
    t: &[E],
    prm: &RowParams,
    grads: &mut GradRows<'_, G>,
) -> Option<f64> {
    let cols = s.len();
    let n = cols.div_ceil(PIECE);
    let want_grad = grads.iter().any(Option::is_some);
    let k = match kind {
        PairKind::Kl => KL,
        PairKind::SymKl => SYM,
        PairKind::Js => JS,
        PairKind::SigmoidKl | PairKind::SigmoidSymKl | PairKind::Tv => return None,
    };
    // one shift for every piece (their statistics merge), from the row's first block
    let c = on(isa, TopShift { s, t });
    let stats = map_pieces((0..n).collect(), |j| {
        let r = piece(j, cols);
        on(isa, TwoPassStats { s: &s[r.clone()], t: &t[r], prm, c })
    });
    // a piece with a non-finite logit (None) hands the whole row back
    let merged = stats.into_iter().collect::<Option<Vec<SoftmaxSums>>>()?.into_iter().reduce(|a, b| a.merge(b, prm.inv_tau))?;
    let sh = merged.shape(prm);
    let need3 = k == SYM && want_grad;
    let sums = map_pieces((0..n).collect(), |j| {
        let r = piece(j, cols);
        on(isa, TwoPassTerms { k, s: &s[r.clone()], t: &t[r], sh: &sh, need3 })
    })
    .into_iter()
    .fold([0.0f64; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
    let value = match k {
        KL => softmax_sweep::value::<KL>(sums, prm),
        SYM => softmax_sweep::value::<SYM>(sums, prm),
        _ => softmax_sweep::value::<JS>(sums, prm),
    };
    if !(value >= softmax_sweep::TINY) && !(k == JS && (prm.beta == 0.0 || prm.beta == 1.0)) {
        return None;
    }
    if want_grad {
        if value.is_finite() {
            map_pieces(grad_pieces(grads, cols), |(r, [gs, gt])| {
                on(isa, TwoPassGrads { k, s: &s[r.clone()], t: &t[r], sh: &sh, sums, prm, gs, gt })
            });
        } else {
            fill(grads, f64::NAN);
        }
    }
    Some(value)
}

struct OnePassShift<'r, E> {
    s: &'r [E],
    t: &'r [E],
}

impl<E: Load<Real = f32>> Kernel for OnePassShift<'_, E> {
    type Output = f32;
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> f32 {
        softmax_onepass::shift::<S, E, BLOCK>(simd, self.s, self.t)
    }
}

struct TopShift<'r, E> {
    s: &'r [E],
    t: &'r [E],
}

impl<E: Load<Real = f32>> Kernel for TopShift<'_, E> {
    type Output = f32;
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> f32 {
        softmax_sweep::top_shift(simd, self.s, self.t)
    }
}

struct OnePassSums<'r, E> {
    sym: bool,
    phi: bool,
    s: &'r [E],
    t: &'r [E],
    prm: &'r RowParams,
    c: f32,
}

impl<E: Load<Real = f32>> Kernel for OnePassSums<'_, E> {
    type Output = StretchSums;
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> StretchSums {
        let (s, t, c, inv64) = (self.s, self.t, self.c, self.prm.inv_tau);
        let inv = inv64 as f32;
        match (self.sym, self.phi) {
            (false, _) => softmax_onepass::partial::<S, E, false, true, BLOCK>(simd, s, t, inv, inv64, c),
            (true, false) => softmax_onepass::partial::<S, E, true, false, BLOCK>(simd, s, t, inv, inv64, c),
            (true, true) => softmax_onepass::partial::<S, E, true, true, BLOCK>(simd, s, t, inv, inv64, c),
        }
    }
}

struct OnePassGrads<'r, 'g, E, G> {
    sym: bool,
    s: &'r [E],
    t: &'r [E],
    plan: &'r GradientPlan,
    gs: Option<&'g mut [G]>,
    gt: Option<&'g mut [G]>,
}

impl<E: Load<Real = f32>, G: Elem> Kernel for OnePassGrads<'_, '_, E, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        if self.sym {
            softmax_onepass::gradients::<S, E, G, true>(simd, self.s, self.t, self.plan, self.gs, self.gt)
        } else {
            softmax_onepass::gradients::<S, E, G, false>(simd, self.s, self.t, self.plan, self.gs, self.gt)
        }
    }
}

struct TwoPassStats<'r, E> {
    s: &'r [E],
    t: &'r [E],
    prm: &'r RowParams,
    c: f32,
}

impl<E: Load<Real = f32>> Kernel for TwoPassStats<'_, E> {
    type Output = Option<SoftmaxSums>;
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> Option<SoftmaxSums> {
        softmax_sweep::stats::<S, E, BLOCK>(simd, self.s, self.t, self.prm.inv_tau as f32, self.prm.inv_tau, self.c)
    }
}

struct TwoPassTerms<'r, E> {
    k: u8,
    s: &'r [E],
    t: &'r [E],
    sh: &'r SweepParams,
    need3: bool,
}

impl<E: Load<Real = f32>> Kernel for TwoPassTerms<'_, E> {
    type Output = [f64; 3];
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) -> [f64; 3] {
        let (s, t, sh, need3) = (self.s, self.t, self.sh, self.need3);
        match self.k {
            KL => softmax_sweep::terms::<S, E, KL, BLOCK>(simd, s, t, sh, need3),
            SYM => softmax_sweep::terms::<S, E, SYM, BLOCK>(simd, s, t, sh, need3),
            _ => softmax_sweep::terms::<S, E, JS, BLOCK>(simd, s, t, sh, need3),
        }
    }
}

struct TwoPassGrads<'r, 'g, E, G> {
    k: u8,
    s: &'r [E],
    t: &'r [E],
    sh: &'r SweepParams,
    sums: [f64; 3],
    prm: &'r RowParams,
    gs: Option<&'g mut [G]>,
    gt: Option<&'g mut [G]>,
}

impl<E: Load<Real = f32>, G: Elem> Kernel for TwoPassGrads<'_, '_, E, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let (s, t, sh, sums, prm, gs, gt) = (self.s, self.t, self.sh, self.sums, self.prm, self.gs, self.gt);
        match self.k {
            KL => softmax_sweep::gradients::<S, E, G, KL, BLOCK>(simd, s, t, sh, sums, prm, gs, gt),
            SYM => softmax_sweep::gradients::<S, E, G, SYM, BLOCK>(simd, s, t, sh, sums, prm, gs, gt),
            _ => softmax_sweep::gradients::<S, E, G, JS, BLOCK>(simd, s, t, sh, sums, prm, gs, gt),
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::super::softmax;
    use super::*;
    use crate::parallel::SPLIT_COLS;
    use crate::simd::available;
    use crate::testing::noise;

    type Out = (f64, Vec<f64>, Vec<f64>);

    /// A long row pair: s of spread `scale`, t = s + noise of size `eps` (+ one far class).
    fn pair(cols: usize, scale: f64, eps: f64, far: bool) -> (Vec<f64>, Vec<f64>) {
        let s: Vec<f64> = noise(cols, 3).iter().map(|v| v * scale).collect();
        let mut t: Vec<f64> = s.iter().zip(noise(cols, 4)).map(|(v, n)| v + eps * n).collect();
        if far {
            // q's mass where p is tiny: the one-pass form declines, the two-pass one takes it
            t[cols / 2 + 17] = s[cols / 2 + 17] + 40.0;
        }
        (s, t)
    }

    fn scalar<E: Elem>(kind: PairKind, s: &[E], t: &[E], prm: &RowParams) -> Out {
        let (mut gs, mut gt) = (vec![0.0; s.len()], vec![0.0; s.len()]);
        let v = softmax::row(kind, s, t, Some(&vec![1u8; s.len()]), prm, [Some(&mut gs), Some(&mut gt)]);
        (v.value, gs, gt)
    }

    fn split<E: Load<Real = f32>>(isa: Isa, kind: PairKind, s: &[E], t: &[E], prm: &RowParams) -> Option<Out> {
        let (mut gs, mut gt) = (vec![0.0; s.len()], vec![0.0; s.len()]);
        let v = row(Some(isa), kind, s, t, prm, &mut [Some(&mut gs), Some(&mut gt)])?;
        Some((v.value, gs, gt))
    }

    fn softmax_f64<E: Elem>(x: &[E], inv_tau: f64) -> Vec<f64> {
        let m = x.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
        let e: Vec<f64> = x.iter().map(|v| ((v.to_f64() - m) * inv_tau).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|v| v / z).collect()
    }

    /// Values to 2e-5; each gradient element to 2e-5 of the largest plus 1e-6 of the size of the
    /// terms it is formed from, g·(p_i + q_i): where one row is nearly one-hot, the gradient at
    /// its leading class is a difference far below those terms (r_i − KL), which f32 cannot
    /// resolve (the scalar f64 kernel can).
    fn check<E: Elem>(what: &str, got: &Out, want: &Out, s: &[E], t: &[E], prm: &RowParams) {
        assert!((got.0 - want.0).abs() <= 2e-5 * want.0, "{what}: value {} vs {}", got.0, want.0);
        let (p, q) = (softmax_f64(s, prm.inv_tau), softmax_f64(t, prm.inv_tau));
        for (g, w) in [(&got.1, &want.1), (&got.2, &want.2)] {
            let top = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                let terms = prm.grad_scale * (p[i] + q[i]);
                assert!((a - b).abs() <= 2e-5 * top + 1e-6 * (b.abs() + terms), "{what}: grad[{i}] {a} vs {b}");
            }
        }
    }

    /// Pieces merged give the scalar f64 kernel's value and gradients, on every path, through the
    /// one-pass form and (a far class) the two-pass one, for f32 and float16 rows.
    #[test]
    fn a_split_row_matches_the_scalar_kernel() {
        let cols = SPLIT_COLS + PIECE / 2 + 123; // a short last piece
        for (scale, eps, far, tau) in [(8.0, 0.3, false, 1.0), (20.0, 1e-3, false, 0.7), (5.0, 0.1, true, 1.0)] {
            let (s, t) = pair(cols, scale, eps, far);
            let (s32, t32): (Vec<f32>, Vec<f32>) = (s.iter().map(|&v| v as f32).collect(), t.iter().map(|&v| v as f32).collect());
            let (s16, t16): (Vec<f16>, Vec<f16>) =
                (s.iter().map(|&v| f16::from_f64(v)).collect(), t.iter().map(|&v| f16::from_f64(v)).collect());
            for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js] {
                let prm = RowParams { inv_tau: 1.0 / tau, beta: 0.3, grad_scale: 0.5 / tau };
                let (w32, w16) = (scalar(kind, &s32, &t32, &prm), scalar(kind, &s16, &t16, &prm));
                for isa in available() {
                    let what = format!("{isa} {kind:?} scale={scale} eps={eps} far={far}");
                    check(&format!("{what} f32"), &split(isa, kind, &s32, &t32, &prm).expect("finite rows"), &w32, &s32, &t32, &prm);
                    check(&format!("{what} f16"), &split(isa, kind, &s16, &t16, &prm).expect("finite rows"), &w16, &s16, &t16, &prm);
                }
            }
        }
    }

    /// A non-finite logit anywhere hands the whole row back, with nothing written.
    #[test]
    fn special_values_go_back_to_the_scalar_kernel() {
        let (s, t) = pair(SPLIT_COLS, 4.0, 0.2, false);
        let t32: Vec<f32> = t.iter().map(|&v| v as f32).collect();
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 1.0 };
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut s32: Vec<f32> = s.iter().map(|&v| v as f32).collect();
            s32[SPLIT_COLS - 5] = bad;
            for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js] {
                let mut gs = vec![7.0f64; SPLIT_COLS];
                assert!(row(None, kind, &s32, &t32, &prm, &mut [Some(&mut gs), None]).is_none(), "{kind:?} {bad}");
                assert!(gs.iter().all(|&g| g == 7.0), "{kind:?} {bad}: written");
            }
        }
    }
}
