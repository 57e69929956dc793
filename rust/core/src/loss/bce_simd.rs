//! SIMD fast path of `bce` (BCE with logits, no pos_weight, no weights, no mask) for f32, f16 and
//! bf16 logits: y softplus(−x) + (1 − y) softplus(x) with softplus(±x) = max(±x, 0) +
//! log1p(e^{−|x|}) (both parts ≥ 0, no cancellation) and gradient (1 − y) σ(x) − y σ(−x), in f32
//! lanes with f64 row sums. The scalar kernel in `bce.rs` handles every row declined here: a label
//! outside [0, 1] or NaN (it reports the error), a NaN or +inf logit, −inf with a positive label.
//! A −inf logit with label 0 is an absent class (0, not counted), as in the scalar kernel.



use crate::element::Elem;
use crate::parallel::RowValue;
use crate::simd::block::{hsum, Blocked, BlockedRow, BLOCK};
use crate::simd::convert::{store_scaled, with_f32_lanes};
use crate::simd::{dispatch, dispatch_on, vmath, Isa, Load, Simd};

/// The fast path for one row (`None`: declined, run the scalar kernel). Writes `scale · d` into
/// `grad` when given.
pub(crate) fn try_row<E: Elem, T: Elem>(s: &[E], y: &[T], scale: f64, grad: Option<&mut [E]>) -> Option<RowValue> {
    try_row_on(None, s, y, scale, grad)
}

pub(crate) fn try_row_on<E: Elem, T: Elem>(
    isa: Option<Isa>,
    s: &[E],
    y: &[T],
    scale: f64,
    grad: Option<&mut [E]>,
) -> Option<RowValue> {
    if s.is_empty() || y.len() != s.len() {
        return None;
    }
    with_f32_lanes!(E, (s) => typed(isa, s, y, scale, grad)).flatten()
}

fn typed<L: Load<Real = f32>, T: Elem, G: Elem>(
    isa: Option<Isa>,
    s: &[L],
    y: &[T],
    scale: f64,
    grad: Option<&mut [G]>,
) -> Option<RowValue> {
    let k = BceRow { s, y, scale, grad };
    match isa {
        None => dispatch(Blocked(k)),
        Some(isa) => dispatch_on(isa, Blocked(k)).ok()?,
    }
}

struct BceRow<'a, L, T, G> {
    s: &'a [L],
    y: &'a [T],
    scale: f64,
    grad: Option<&'a mut [G]>,
}

impl<L: Load<Real = f32>, T: Elem, G: Elem> BlockedRow for BceRow<'_, L, T, G> {
    type Output = Option<RowValue>;

    fn len(&self) -> usize {
        self.s.len()
    }

    #[inline(always)]
    fn body<S: Simd, const B: usize>(self, simd: S) -> Option<RowValue> {
        body::<S, L, T, G, B>(simd, self)
    }
}

/// One sweep in blocks of `B` classes (the accumulators: `B` lanes).
#[inline(always)]
fn body<S: Simd, L: Load<Real = f32>, T: Elem, G: Elem, const B: usize>(
    simd: S,
    row: BceRow<'_, L, T, G>,
) -> Option<RowValue> {
    let BceRow { s, y, scale, mut grad } = row;
    let mut bx = [0.0f32; BLOCK];
    let (mut wn, mut wp, mut ok) = ([0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let (mut term, mut d, mut pres) = ([0.0f32; B], [0.0f32; B], [0.0f32; B]);
    let mut chk = [0.0f32; B];
    let (mut acc, mut cnt) = ([0.0f64; B], [0.0f64; B]);
    let mut off = 0;
    for (cs, cy) in s.chunks(B).zip(y.chunks(B)) {
        let x = L::load(simd, cs, &mut bx);
        let n = x.len();
        {
            let (wn, wp, ok) = (&mut wn[..n], &mut wp[..n], &mut ok[..n]);
            for i in 0..n {
                let v = cy[i].to_f64();
                wn[i] = (1.0 - v) as f32;
                wp[i] = v as f32;
                ok[i] = if (v >= 0.0) & (v <= 1.0) { 0.0 } else { f32::NAN };
            }
        }
        let (wn, wp, ok) = (&wn[..n], &wp[..n], &ok[..n]);
        let (term, d, pres, chk) = (&mut term[..n], &mut d[..n], &mut pres[..n], &mut chk[..n]);
        for i in 0..n {
            let v = x[i];
            let absent = v == f32::NEG_INFINITY;
            let bad = if absent { if wp[i] > 0.0 { f32::NAN } else { 0.0 } } else { (v - v) * 0.0 };
            chk[i] += bad + ok[i];
            let xv = if absent { 0.0 } else { v };
            let e = vmath::exp(simd, -xv.abs());
            let sp = vmath::ln_1p(simd, e);
            let (sp_pos, sp_neg) = (xv.max(0.0) + sp, (-xv).max(0.0) + sp); // softplus(x), softplus(−x)
            let big = 1.0 / (1.0 + e);
            let small = e * big;
            let (sig, sig_neg) = if xv >= 0.0 { (big, small) } else { (small, big) };
            let t = wp[i] * sp_neg + wn[i] * sp_pos;
            let g = wn[i] * sig - wp[i] * sig_neg;
            term[i] = if absent { 0.0 } else { t };
            d[i] = if absent { 0.0 } else { g };
            pres[i] = if absent { 0.0 } else { 1.0 };
        }
        let (acc, cnt) = (&mut acc[..n], &mut cnt[..n]);
        for i in 0..n {
            acc[i] += f64::from(term[i]);
            cnt[i] += f64::from(pres[i]);
        }
        if let Some(g) = grad.as_deref_mut() {
            // in lanes (a scalar f64 product and rounding per class cost more than the terms)
            store_scaled(simd, &mut g[off..off + n], d, scale as f32);
        }
        off += n;
    }
    let used = s.len().min(B);
    if hsum(&chk[..used]).is_nan() {
        return None;
    }
    let value = hsum(&acc[..used]);
    if !value.is_finite() {
        return None;
    }
    Some(RowValue { value, counts: hsum(&cnt[..used]) > 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::{sigmoid, softplus};
    use crate::simd::available;

    #[test]
    fn every_path_matches_the_f64_formula() {
        let n = 1500;
        let s: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 60.0).collect();
        let hard: Vec<f64> = (0..n).map(|i| if i % 7 == 0 { 1.0 } else { 0.0 }).collect();
        let soft: Vec<f64> = (0..n).map(|i| (i * 31 % 101) as f64 / 100.0).collect();
        for y in [hard, soft] {
            let want: f64 = s
                .iter()
                .zip(&y)
                .map(|(&x, &y)| {
                    let x = f64::from(x);
                    y * softplus(-x) + (1.0 - y) * softplus(x)
                })
                .sum();
            for isa in available() {
                let mut g = vec![0.0f32; n];
                let got = try_row_on(Some(isa), &s, &y, 0.5, Some(&mut g[..])).unwrap();
                assert!((got.value - want).abs() <= 1e-6 * want, "{isa}: {} vs {want}", got.value);
                for i in 0..n {
                    let x = f64::from(s[i]);
                    let w = 0.5 * ((1.0 - y[i]) * sigmoid(x) - y[i] * sigmoid(-x));
                    let mag = 0.5 * ((1.0 - y[i]) * sigmoid(x) + y[i] * sigmoid(-x));
                    assert!((f64::from(g[i]) - w).abs() <= 1e-6 * mag + 1e-12, "{isa} {i}");
                }
            }
        }
        // declined rows
        let mut bad = s.clone();
        bad[3] = f32::NAN;
        assert!(try_row_on::<f32, f64>(Some(Isa::Scalar), &bad, &vec![0.0; n], 1.0, None).is_none());
        bad[3] = f32::NEG_INFINITY;
        let mut y1 = vec![0.0; n];
        assert!(try_row_on::<f32, f64>(Some(Isa::Scalar), &bad, &y1, 1.0, None).is_some());
        y1[3] = 0.5;
        assert!(try_row_on::<f32, f64>(Some(Isa::Scalar), &bad, &y1, 1.0, None).is_none());
        y1[3] = 2.0;
        assert!(try_row_on::<f32, f64>(Some(Isa::Scalar), &s, &y1, 1.0, None).is_none());
    }
}
