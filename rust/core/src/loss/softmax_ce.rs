//! Softmax cross-entropy against class indices (with `ignore_index` and label smoothing) or against
//! probabilities: value −Σ t_i log p_i with t = (1−ε)·y + ε/C, gradient Σt · p − t (MATH.md §2).
//!
//! One sweep gathers the softmax statistics in the form of [`MaxRest`] together with the
//! non-negative sums Σ y_i (M − x_i) and Σ (M − x_i), rescaled online when the max M moves, so the
//! value is a sum of non-negative terms: (1−ε)(Σ y_i (M − x_i) + Σy log1p(R)) + ε(mean (M − x_i) +
//! log1p(R)). A second sweep writes the gradient, with 1 − p = R/(1+R) for the largest logit.
//! C counts the classes present in the row (−inf and masked classes are absent): with none absent
//! it is PyTorch's C.

use super::labels::{bad_probability, valid_probability, RowTarget, Target};
use super::online::MaxRest;
use super::{
    check_masks, check_outputs, check_temperature, check_unit, fill_one, store, FirstError, LossOutputs, Masks,
};
use crate::divergence::out_of_domain;
use crate::element::Elem;
use crate::error::Error;
use crate::parallel::{reduce_rows, GradRows, RowValue};
use crate::reduce::{Reduced, Reduction};
use crate::rows::Rows;

/// Options of [`softmax_ce`].
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxCeOptions<'a> {
    /// ε ∈ [0, 1]: the target becomes (1−ε)·y + ε/C.
    pub label_smoothing: f64,
    /// τ > 0: the logits are divided by it first.
    pub temperature: f64,
    pub masks: Masks<'a>,
    pub reduction: Reduction,
}

impl Default for SoftmaxCeOptions<'_> {
    fn default() -> Self {
        SoftmaxCeOptions { label_smoothing: 0.0, temperature: 1.0, masks: Masks::default(), reduction: Reduction::None }
    }
}

/// Softmax statistics of one row and its label.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    pub lse: MaxRest,
    /// Number of present classes.
    pub n: usize,
    /// Σ y_i over the present classes (1 for a class label).
    pub ysum: f64,
    /// Σ y_i (M − x_i) (M − x_y for a class label).
    pub a: f64,
    /// Σ (M − x_i) over the present classes.
    pub b: f64,
    /// The logit of the labelled class (class labels).
    pub x_label: f64,
    /// NaN or +inf among the present classes.
    pub bad: bool,
    /// The label puts mass on an absent class.
    pub unsupported: bool,
}

impl Stats {
    /// −Σ t_i log p_i with t = (1−ε)·y + ε/n.
    pub fn value(&self, eps: f64) -> f64 {
        let l = self.lse.log1p_rest();
        let mut v = 0.0;
        if eps < 1.0 {
            v += (1.0 - eps) * (self.a + self.ysum * l);
        }
        if eps > 0.0 {
            v += eps * (self.b / self.n as f64 + l);
        }
        v
    }
}

/// Sweep 1 over a row: the softmax statistics over the present classes, with the label's sums.
/// Probabilities are validated as they are read.
pub(crate) fn stats<E: Elem, T: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    inv_tau: f64,
    row: usize,
) -> Result<Stats, Error> {
    let mut st = Stats {
        lse: MaxRest::EMPTY,
        n: 0,
        ysum: 0.0,
        a: 0.0,
        b: 0.0,
        x_label: f64::NEG_INFINITY,
        bad: false,
        unsupported: false,
    };
    let probs = match target {
        RowTarget::Probs(p) => Some(p),
        RowTarget::Class(_) => None,
    };
    for i in 0..s.len() {
        let y = match probs {
            Some(p) => {
                let y = p[i].to_f64();
                if !valid_probability(y, false) {
                    return Err(bad_probability(row, p, false));
                }
                y
            }
            None => 0.0,
        };
        let raw = s[i].to_f64();
        let x = raw * inv_tau;
        if mask.is_some_and(|m| m[i] == 0) {
            st.unsupported |= y > 0.0;
            continue;
        }
        if out_of_domain(raw, x) {
            st.bad = true;
            continue;
        }
        if x == f64::NEG_INFINITY {
            st.unsupported |= y > 0.0;
            continue;
        }
        if x > st.lse.max {
            // the sums of (M − x) grow by the shift of M for every term already in them
            let shift = x - st.lse.max;
            if st.ysum > 0.0 {
                st.a += st.ysum * shift;
            }
            if st.n > 0 {
                st.b += st.n as f64 * shift;
            }
        }
        st.lse.push(x);
        st.n += 1;
        st.ysum += y;
        st.a += y * (st.lse.max - x);
        st.b += st.lse.max - x;
    }
    if let RowTarget::Class(y) = target {
        let x = s[y].to_f64() * inv_tau;
        st.x_label = x;
        if mask.is_some_and(|m| m[y] == 0) || x == f64::NEG_INFINITY {
            st.unsupported = true;
        } else {
            st.ysum = 1.0;
            st.a = st.lse.max - x;
        }
    }
    Ok(st)
}

/// Sweep 2: writes `scale · (Σt · p_i − t_i)` for every class (0 where absent), t = (1−ε)·y + ε/n.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grad_sweep<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    inv_tau: f64,
    st: &Stats,
    eps: f64,
    scale: f64,
    add: bool,
    g: &mut [G],
) {
    let n = st.n as f64;
    let tsum = (1.0 - eps) * st.ysum + eps;
    let spread = if eps > 0.0 { eps / n } else { 0.0 };
    // 1 − p for a class at the max
    let top_rest = st.lse.rest / (1.0 + st.lse.rest);
    for i in 0..s.len() {
        let x = s[i].to_f64() * inv_tau;
        let d = if mask.is_some_and(|m| m[i] == 0) || x == f64::NEG_INFINITY {
            0.0
        } else {
            let y = match target {
                RowTarget::Class(c) => f64::from(u8::from(c == i)),
                RowTarget::Probs(p) => p[i].to_f64(),
            };
            let t = (1.0 - eps) * y + spread;
            if x == st.lse.max && st.lse.rest < 1.0 {
                // p > ½: Σt·p − t = (Σt − t) − Σt·(1 − p), free of cancellation when p ≈ 1
                ((1.0 - eps) * (st.ysum - y) + (eps - spread)) - tsum * top_rest
            } else {
                tsum * st.lse.prob(x) - t
            }
        };
        store(&mut g[i], scale * d, add);
    }
}

/// Parameters of one cross-entropy row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CeParams {
    pub inv_tau: f64,
    pub eps: f64,
    /// Gradient scale: reduction factor × 1/τ × the weight of the term in its loss.
    pub grad_scale: f64,
    /// Add the gradient to what the row holds (a loss of several terms).
    pub add: bool,
}

/// The cross-entropy of one row that is not ignored; `Err` for invalid probabilities.
pub(crate) fn ce_row<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    prm: &CeParams,
    mut grad: Option<&mut [G]>,
    row: usize,
) -> Result<RowValue, Error> {
    if let (None, RowTarget::Class(label)) = (mask, target) {
        if let Some(v) = super::softmax_ce_simd::class_row(s, label, prm, grad.as_deref_mut()) {
            return Ok(v);
        }
    }
    let st = stats(s, target, mask, prm.inv_tau, row)?;
    if st.bad {
        fill_one(grad, f64::NAN);
        return Ok(RowValue { value: f64::NAN, counts: true });
    }
    if st.n == 0 {
        if !prm.add {
            fill_one(grad, 0.0);
        }
        return Ok(RowValue { value: 0.0, counts: false });
    }
    let value = if st.unsupported { f64::INFINITY } else { st.value(prm.eps) };
    if let Some(g) = grad {
        if value.is_finite() {
            grad_sweep(s, target, mask, prm.inv_tau, &st, prm.eps, prm.grad_scale, prm.add, g);
        } else {
            g.fill(G::from_f64(f64::NAN));
        }
    }
    Ok(RowValue { value, counts: true })
}

/// Zeroes the gradient rows of an ignored row and reports it as not counting.
pub(crate) fn ignored_row<E: Elem>(g: &mut GradRows<'_, E>) -> RowValue {
    super::fill_all(g, 0.0);
    RowValue { value: 0.0, counts: false }
}

/// Checks the options shared by the softmax losses against labels.
pub(crate) fn validate_target<T>(
    target: &Target<'_, T>,
    masks: &Masks<'_>,
    rows: usize,
    cols: usize,
) -> Result<(), Error> {
    target.check_shape(rows, cols)?;
    check_masks(masks, rows, cols)?;
    target.check_classes(cols, masks)
}

/// Softmax cross-entropy of every row of `logits` against `target`, writing what `out` asks for;
/// returns the reduced value (for `Reduction::None`, the sum of the row values).
pub fn softmax_ce<E: Elem, T: Elem, V: Elem>(
    logits: Rows<'_, E>,
    target: Target<'_, T>,
    opts: &SoftmaxCeOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (logits.rows(), logits.cols());
    validate_target(&target, &opts.masks, rows, cols)?;
    check_outputs(&out, rows, cols, false)?;
    check_temperature(opts.temperature)?;
    check_unit("label_smoothing", opts.label_smoothing)?;
    let inv_tau = 1.0 / opts.temperature;
    let prm = CeParams {
        inv_tau,
        eps: opts.label_smoothing,
        grad_scale: opts.reduction.grad_scale(rows) * inv_tau,
        add: false,
    };
    let masks = opts.masks;
    let errors = FirstError::default();
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let Some(t) = masks.row_kept(r).then(|| target.row(r)).flatten() else {
            return ignored_row(&mut g);
        };
        ce_row(logits.row(r), t, masks.class_row(r), &prm, g[0].as_deref_mut(), r).unwrap_or_else(|e| {
            errors.report(r, e);
            RowValue { value: f64::NAN, counts: true }
        })
    };
    let reduced = reduce_rows(opts.reduction, rows, cols, out.values, [out.grad, None], kernel);
    errors.into_result(reduced)
}
