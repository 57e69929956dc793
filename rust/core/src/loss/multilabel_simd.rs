//! SIMD fast path of Su's multilabel CE (dense 0/1 or soft labels) for f32, f16 and bf16 logits:
//! log Z_neg + log Z_pos, Z_neg = 1 + Σ (1−y) e^{x}, Z_pos = 1 + Σ y e^{−x}, and the gradient
//! (1−y) e^{x}/Z_neg − y e^{−x}/Z_pos, in three sweeps over the row (maxima; sums; gradients),
//! exponentials in f32 lanes, sums in f64 accumulators. A row of hard (0/1) labels, found in the
//! first sweep, takes one exponential per class (its own side's) instead of two.
//!
//! `multilabel::multilabel_row` (f64) stays the reference and handles every row declined here:
//! f64 logits, a class mask, a label outside [0, 1] or NaN (the scalar kernel reports the error),
//! a NaN or +inf logit, −inf with a positive label (value +inf). A −inf logit with label 0 is an
//! absent class, handled here as in the scalar kernel. Weights 1 − y and y are formed in f64 from
//! the label and rounded to f32 once, so soft labels near 0 or 1 keep their digits; log Z is
//! formed exactly as the scalar kernel does (log1p of the sum below a max of 700, softplus above),
//! so small losses keep their digits. The gradient uses e^{x − m}·e^{m − log Z} with the f32 max m,
//! so no f32 rounding of log Z enters the exponent.



use crate::element::Elem;
use crate::math::softplus;
use crate::parallel::RowValue;
use crate::simd::block::{hmax, hsum, Blocked, BlockedRow, BLOCK};
use crate::simd::convert::{store_scaled, with_f32_lanes};
use crate::simd::{dispatch, dispatch_on, vmath, Isa, Load, Simd};

/// The fast path for one row (`None`: declined, run the scalar kernel).
pub(crate) fn try_row<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    y: &[T],
    mask: Option<&[u8]>,
    scale: f64,
    add: bool,
    grad: Option<&mut [G]>,
) -> Option<RowValue> {
    try_row_on(None, s, y, mask, scale, add, grad)
}

pub(crate) fn try_row_on<E: Elem, T: Elem, G: Elem>(
    isa: Option<Isa>,
    s: &[E],
    y: &[T],
    mask: Option<&[u8]>,
    scale: f64,
    add: bool,
    grad: Option<&mut [G]>,
) -> Option<RowValue> {
    if mask.is_some() || s.is_empty() || y.len() != s.len() {
        return None;
    }
    with_f32_lanes!(E, (s) => typed(isa, s, y, scale, add, grad)).flatten()
}

fn typed<L: Load<Real = f32>, T: Elem, G: Elem>(
    isa: Option<Isa>,
    s: &[L],
    y: &[T],
    scale: f64,
    add: bool,
    grad: Option<&mut [G]>,
) -> Option<RowValue> {
    let k = MultilabelRow { s, y, scale, add, grad };
    match isa {
        None => dispatch(Blocked(k)),
        Some(isa) => dispatch_on(isa, Blocked(k)).ok()?,
    }
}

struct MultilabelRow<'a, L, T, G> {
    s: &'a [L],
    y: &'a [T],
    scale: f64,
    add: bool,
    grad: Option<&'a mut [G]>,
}

/// Labels of one block as f32 weights (1 − y, y), formed in f64; `ok` is 0 for a valid label,
/// NaN otherwise.
#[inline(always)]
fn load_labels<T: Elem>(y: &[T], wn: &mut [f32], wp: &mut [f32], ok: &mut [f32]) {
    let n = y.len();
    let (wn, wp, ok) = (&mut wn[..n], &mut wp[..n], &mut ok[..n]);
    for i in 0..n {
        let v = y[i].to_f64();
        wn[i] = (1.0 - v) as f32;
        wp[i] = v as f32;
        ok[i] = if (v >= 0.0) & (v <= 1.0) { 0.0 } else { f32::NAN };
    }
}

/// (e^{x − m_neg}, e^{−x − m_pos}) of one class, both ≤ 1. With `HARD` labels (weight `wp` 0 or 1)
/// only the class's own side is used: one exponential, of that side's argument, for both
/// entries (the other side's weight is 0).
#[inline(always)]
fn side_exps<S: Simd, const HARD: bool>(simd: S, v: f32, wp: f32, sh_neg: f32, sh_pos: f32) -> (f32, f32) {
    let (a_neg, a_pos) = ((v - sh_neg).min(0.0), (-v - sh_pos).min(0.0));
    if HARD {
        let e = vmath::exp(simd, if wp > 0.0 { a_pos } else { a_neg });
        (e, e)
    } else {
        (vmath::exp(simd, a_neg), vmath::exp(simd, a_pos))
    }
}

/// log(1 + e^m · S) as `Log1pSumExp::value`.
#[inline(always)]
fn log1p_sum(m: f64, sum: f64) -> f64 {
    if sum == 0.0 {
        0.0
    } else if m < 700.0 {
        (sum * m.exp()).ln_1p()
    } else {
        softplus(m + sum.ln())
    }
}

impl<L: Load<Real = f32>, T: Elem, G: Elem> BlockedRow for MultilabelRow<'_, L, T, G> {
    type Output = Option<RowValue>;

    fn len(&self) -> usize {
        self.s.len()
    }

    #[inline(always)]
    fn body<S: Simd, const B: usize>(self, simd: S) -> Option<RowValue> {
        body::<S, L, T, G, B>(simd, self)
    }
}

/// The three sweeps in blocks of `B` classes (the accumulators: `B` lanes).
#[inline(always)]
fn body<S: Simd, L: Load<Real = f32>, T: Elem, G: Elem, const B: usize>(
    simd: S,
    row: MultilabelRow<'_, L, T, G>,
) -> Option<RowValue> {
    let MultilabelRow { s, y, scale, add, grad } = row;
    let mut bx = [0.0f32; BLOCK];
    let mut wn = [0.0f32; B];
    let mut wp = [0.0f32; B];
    let mut ok = [0.0f32; B];
    let used = s.len().min(B);

    // Sweep 1: the maxima of x over the negative part and of −x over the positive part, the
    // validity check, the count of present classes.
    let mut mn = [f32::NEG_INFINITY; B];
    let mut mp = [f32::NEG_INFINITY; B];
    let mut chk = [0.0f32; B];
    let mut cnt = [0.0f32; B];
    let mut soft = [0.0f32; B];
    for (cs, cy) in s.chunks(B).zip(y.chunks(B)) {
        let x = L::load(simd, cs, &mut bx);
        let n = x.len();
        load_labels(cy, &mut wn, &mut wp, &mut ok);
        let (wn, wp, ok) = (&wn[..n], &wp[..n], &ok[..n]);
        let (mn, mp, chk, cnt) = (&mut mn[..n], &mut mp[..n], &mut chk[..n], &mut cnt[..n]);
        let soft = &mut soft[..n];
        for i in 0..n {
            // a class on both sides (a soft label) needs both exponentials
            soft[i] += if (wn[i] > 0.0) & (wp[i] > 0.0) { 1.0 } else { 0.0 };
            let v = x[i];
            let absent = v == f32::NEG_INFINITY;
            // −inf with a positive label, NaN, +inf: NaN in the check
            let bad = if absent { if wp[i] > 0.0 { f32::NAN } else { 0.0 } } else { (v - v) * 0.0 };
            chk[i] += bad + ok[i];
            let xn = if !absent & (wn[i] > 0.0) { v } else { f32::NEG_INFINITY };
            let xp = if !absent & (wp[i] > 0.0) { -v } else { f32::NEG_INFINITY };
            mn[i] = mn[i].max(xn);
            mp[i] = mp[i].max(xp);
            cnt[i] += f32::from(u8::from(!absent));
        }
    }
    if hsum(&chk[..used]).is_nan() {
        return None;
    }
    let (m_neg, m_pos) = (hmax(&mn[..used]), hmax(&mp[..used]));
    // the shifts: the maxima, or 0 for an empty part (whose sum is then 0)
    let (sh_neg, sh_pos) = (if m_neg.is_finite() { m_neg } else { 0.0 }, if m_pos.is_finite() { m_pos } else { 0.0 });
    // hard labels: each class is on one side, whose exponential is the only one needed (the
    // same value as the two-sided form gives, one exponential per class instead of two)
    let hard = hsum(&soft[..used]) == 0.0;

    let sides = Sides { sh_neg, sh_pos, used };
    let (s_neg, s_pos) = if hard { sums::<S, L, T, B, true>(simd, s, y, &sides) } else { sums::<S, L, T, B, false>(simd, s, y, &sides) };
    let log_zneg = log1p_sum(f64::from(sh_neg), s_neg);
    let log_zpos = log1p_sum(f64::from(sh_pos), s_pos);
    let value = log_zneg + log_zpos;
    if !value.is_finite() {
        return None;
    }
    if let Some(g) = grad {
        // (1−y) e^{x − m}·e^{m − log Z_neg} − y e^{−x − m'}·e^{m' − log Z_pos}
        let c = [(f64::from(sh_neg) - log_zneg).exp() as f32, (f64::from(sh_pos) - log_zpos).exp() as f32];
        if hard {
            gradients::<S, L, T, G, B, true>(simd, s, y, &sides, c, scale, add, g);
        } else {
            gradients::<S, L, T, G, B, false>(simd, s, y, &sides, c, scale, add, g);
        }
    }
    Some(RowValue { value, counts: hsum(&cnt[..used]) > 0.0 })
}

/// The shifts of both sides (their maxima, 0 for an empty side) and the lanes a row uses.
struct Sides {
    sh_neg: f32,
    sh_pos: f32,
    used: usize,
}

/// Sweep 2: (S_neg, S_pos) = (Σ (1−y) e^{x − m_neg}, Σ y e^{−x − m_pos}); `HARD`: one
/// exponential per class ([`side_exps`]).
#[inline(always)]
fn sums<S: Simd, L: Load<Real = f32>, T: Elem, const B: usize, const HARD: bool>(
    simd: S,
    s: &[L],
    y: &[T],
    sd: &Sides,
) -> (f64, f64) {
    let mut bx = [0.0f32; BLOCK];
    let (mut wn, mut wp, mut ok) = ([0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let (mut tn, mut tp) = ([0.0f32; B], [0.0f32; B]);
    let (mut an, mut ap) = ([0.0f64; B], [0.0f64; B]);
    for (cs, cy) in s.chunks(B).zip(y.chunks(B)) {
        let x = L::load(simd, cs, &mut bx);
        let n = x.len();
        load_labels(cy, &mut wn, &mut wp, &mut ok);
        let (wn, wp) = (&wn[..n], &wp[..n]);
        let (tn, tp) = (&mut tn[..n], &mut tp[..n]);
        for i in 0..n {
            // −inf (absent, label 0): e^{−inf} = 0 on the negative side, weight 0 on the other
            let (en, ep) = side_exps::<S, HARD>(simd, x[i], wp[i], sd.sh_neg, sd.sh_pos);
            tn[i] = wn[i] * en;
            tp[i] = if wp[i] > 0.0 { wp[i] * ep } else { 0.0 };
        }
        let (an, ap) = (&mut an[..n], &mut ap[..n]);
        for i in 0..n {
            an[i] += f64::from(tn[i]);
            ap[i] += f64::from(tp[i]);
        }
    }
    (hsum(&an[..sd.used]), hsum(&ap[..sd.used]))
}

/// Sweep 3: the gradient (1−y) e^{x − m_neg}·c[0] − y e^{−x − m_pos}·c[1], times `scale`,
/// written (or added).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gradients<S: Simd, L: Load<Real = f32>, T: Elem, G: Elem, const B: usize, const HARD: bool>(
    simd: S,
    s: &[L],
    y: &[T],
    sd: &Sides,
    [cn, cp]: [f32; 2],
    scale: f64,
    add: bool,
    g: &mut [G],
) {
    let mut bx = [0.0f32; BLOCK];
    let (mut wn, mut wp, mut ok) = ([0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let mut d = [0.0f32; B];
    let mut off = 0;
    for (cs, cy) in s.chunks(B).zip(y.chunks(B)) {
        let x = L::load(simd, cs, &mut bx);
        let n = x.len();
        load_labels(cy, &mut wn, &mut wp, &mut ok);
        let (wn, wp, d) = (&wn[..n], &wp[..n], &mut d[..n]);
        for i in 0..n {
            let (en, ep) = side_exps::<S, HARD>(simd, x[i], wp[i], sd.sh_neg, sd.sh_pos);
            let pos = if wp[i] > 0.0 { wp[i] * (ep * cp) } else { 0.0 };
            d[i] = wn[i] * (en * cn) - pos;
        }
        let g = &mut g[off..off + n];
        if add {
            for i in 0..n {
                g[i] = G::from_f64(g[i].to_f64() + scale * f64::from(d[i]));
            }
        } else {
            // in lanes, as the other kernels store (a scalar f64 product and rounding per
            // class cost more than the two exponentials)
            store_scaled(simd, g, d, scale as f32);
        }
        off += n;
    }
}
