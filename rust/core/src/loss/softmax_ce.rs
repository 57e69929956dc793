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
use super::ce_params::{CeParams, RowStats};
use super::online::MaxRest;
use crate::check::{check_masks, check_outputs, check_softcap, check_temperature, check_unit};
use super::outputs::{fill_one, store, FirstError, LossOutputs, Masks};
use crate::math::out_of_domain;
use crate::element::Elem;
use crate::error::{bad_argument, bad_shape, Error};
use crate::math::{softcap, softcap_slope};
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::{GradRows, fill};
use crate::reduction::{finish, CompensatedSum, Reduced, Reduction};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
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
    /// Per-class weights w_c, finite and ≥ 0, one per class (PyTorch's `weight`): the row value
    /// becomes −Σ_c w_c t_c log p_c, and with class labels `Reduction::Mean` divides the sum by
    /// Σ w_y over the rows not ignored (PyTorch's mean over weighted targets). With probability
    /// targets `Mean` stays the mean over the rows that count, as in PyTorch.
    pub weight: Option<&'a [f64]>,
    /// The z-loss scale z ≥ 0 (PaLM's, Liger-Kernel's `lse_square_scale`): z · lse(s')² is added
    /// to the value of every row that counts, s' the logits the softmax sees. Under `Mean` this
    /// term is divided by the number of rows that count (never by the weights), as in Liger-Kernel.
    pub z_loss: f64,
    /// Logit soft-capping c > 0 (Gemma 2): every finite logit becomes c · tanh(x / c) before the
    /// temperature; gradients go through the cap exactly. `None`: no cap.
    pub softcap: Option<f64>,
}

impl Default for SoftmaxCeOptions<'_> {
    fn default() -> Self {
        SoftmaxCeOptions {
            label_smoothing: 0.0,
            temperature: 1.0,
            masks: Masks::default(),
            reduction: Reduction::None,
            weight: None,
            z_loss: 0.0,
            softcap: None,
        }
    }
}

/// The extra outputs of [`softmax_ce_ext`]; `None` means "don't compute it".
#[derive(Debug)]
pub struct CeExtraOutputs<'a, V> {
    /// The z-term z · lse(s')² of every row (0 for a row that does not count).
    pub z_values: Option<&'a mut [V]>,
    /// 1 where the row's argmax (the first largest present logit) is its label (for probability
    /// targets: the first largest target probability), else 0; 0 for a row that does not count.
    pub correct: Option<&'a mut [V]>,
    /// Count the correct rows (for [`CeReduced::accuracy`]) even without `correct`.
    pub accuracy: bool,
}

impl<V> Default for CeExtraOutputs<'_, V> {
    fn default() -> Self {
        CeExtraOutputs { z_values: None, correct: None, accuracy: false }
    }
}

/// What [`softmax_ce_ext`] returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CeReduced {
    /// The loss, reduced (for `Reduction::None`, the sum of the row values).
    pub loss: Reduced,
    /// The z-term as it enters the reduced loss: Σ z·lse² for `None` and `Sum`, divided by the rows
    /// that count for `Mean` and by all rows for `BatchMean`; 0 when z_loss is 0.
    pub z_loss: f64,
    /// Rows whose argmax is their label, among the rows that count (0 unless asked for).
    pub correct: usize,
    /// correct / rows that count; NaN when no row counts or accuracy was not asked for.
    pub accuracy: f64,
}

/// The options of one row beyond label smoothing and temperature (PyTorch's class weights and
/// the LLM options of Liger-Kernel's cross-entropy); [`RowOpts::PLAIN`] has them all off.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowOpts<'w> {
    /// w_c ≥ 0 per class.
    pub weight: Option<&'w [f64]>,
    /// c > 0: x ← c · tanh(x / c) before the temperature.
    pub softcap: Option<f64>,
    /// The z-loss scale: z · lse² joins the row value.
    pub z: f64,
    /// Gradient scale of the z-term (the cross-entropy's is `CeParams::grad_scale`; they differ
    /// under a weighted mean).
    pub z_grad_scale: f64,
    /// Find the row's argmax (for the accuracy).
    pub argmax: bool,
}

impl RowOpts<'_> {
    pub const PLAIN: RowOpts<'static> = RowOpts { weight: None, softcap: None, z: 0.0, z_grad_scale: 0.0, argmax: false };

    #[inline]
    pub fn is_plain(&self) -> bool {
        self.weight.is_none() && self.softcap.is_none() && self.z == 0.0 && !self.argmax
    }

    /// The logit the softmax sees before the temperature.
    #[inline]
    fn cap(&self, raw: f64) -> f64 {
        match self.softcap {
            Some(c) => softcap(raw, c),
            None => raw,
        }
    }
}

/// What sweep 1 gathers beside [`RowStats`] under [`RowOpts`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extra {
    /// Σ w_i over the present classes (n unweighted).
    pub wsum: f64,
    /// The first present class with the largest logit (`usize::MAX`: none), and the first class
    /// with the largest target probability.
    pub argmax: usize,
    pub target_argmax: usize,
}

/// Sweep 1 over a row: the softmax statistics over the present classes, with the label's sums.
/// Probabilities are validated as they are read.
pub(crate) fn stats<E: Elem, T: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    inv_tau: f64,
    row: usize,
) -> Result<RowStats, Error> {
    stats_ext(s, target, mask, inv_tau, &RowOpts::PLAIN, row).map(|(st, _)| st)
}

/// [`stats`] under the options of `o`: logits soft-capped, the label's sums weighted
/// (Σ w_i y_i (M − x_i) in `a`, Σ w_i (M − x_i) in `b`, Σ w_i y_i in `ysum`, Σ w_i in
/// [`Extra::wsum`]), the argmax found. With `RowOpts::PLAIN` the very operations of the
/// unweighted statistics (a weight of 1 multiplies exactly).
pub(crate) fn stats_ext<E: Elem, T: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    inv_tau: f64,
    o: &RowOpts<'_>,
    row: usize,
) -> Result<(RowStats, Extra), Error> {
    let mut st = RowStats {
        lse: MaxRest::EMPTY,
        n: 0,
        ysum: 0.0,
        a: 0.0,
        b: 0.0,
        x_label: f64::NEG_INFINITY,
        bad: false,
        unsupported: false,
    };
    let mut ex = Extra { wsum: 0.0, argmax: usize::MAX, target_argmax: usize::MAX };
    let (mut best, mut best_y) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
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
                if o.argmax && y > best_y {
                    (best_y, ex.target_argmax) = (y, i);
                }
                y
            }
            None => 0.0,
        };
        let raw = s[i].to_f64();
        let x = o.cap(raw) * inv_tau;
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
        if o.argmax && (ex.argmax == usize::MAX || raw > best) {
            (best, ex.argmax) = (raw, i);
        }
        let w = o.weight.map_or(1.0, |w| w[i]);
        if x > st.lse.max {
            // the sums of (M − x) grow by the shift of M for every term already in them
            let shift = x - st.lse.max;
            if st.ysum > 0.0 {
                st.a += st.ysum * shift;
            }
            if st.n > 0 {
                st.b += ex.wsum * shift;
            }
        }
        st.lse.push(x);
        st.n += 1;
        ex.wsum += w;
        st.ysum += w * y;
        st.a += w * y * (st.lse.max - x);
        st.b += w * (st.lse.max - x);
    }
    if let RowTarget::Class(y) = target {
        let x = o.cap(s[y].to_f64()) * inv_tau;
        st.x_label = x;
        ex.target_argmax = y;
        if mask.is_some_and(|m| m[y] == 0) || x == f64::NEG_INFINITY {
            st.unsupported = true;
        } else {
            let w = o.weight.map_or(1.0, |w| w[y]);
            st.ysum = w;
            st.a = w * (st.lse.max - x);
        }
    }
    Ok((st, ex))
}

/// −Σ w_i t_i log p_i with t = (1−ε)·y + ε/n, from weighted statistics: (1−ε)(a + Σwy·l) +
/// (ε/n)(b + Σw·l), l = log1p(R); every part ≥ 0.
fn weighted_value(st: &RowStats, ex: &Extra, eps: f64) -> f64 {
    let l = st.lse.log1p_rest();
    let mut v = 0.0;
    if eps < 1.0 {
        v += (1.0 - eps) * (st.a + st.ysum * l);
    }
    if eps > 0.0 {
        v += eps / st.n as f64 * (st.b + ex.wsum * l);
    }
    v
}

/// Sweep 2: writes `scale · (Σt · p_i − t_i)` for every class (0 where absent), t = (1−ε)·y + ε/n.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grad_sweep<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    inv_tau: f64,
    st: &RowStats,
    eps: f64,
    scale: f64,
    add: bool,
    g: &mut [G],
) {
    let ex = Extra { wsum: st.n as f64, argmax: usize::MAX, target_argmax: usize::MAX };
    grad_sweep_ext(s, target, mask, inv_tau, st, &ex, &RowOpts::PLAIN, eps, scale, add, g);
}

/// [`grad_sweep`] under the options of `o`: with weights, scale · (W_t p_i − w_i t_i), W_t =
/// Σ w_c t_c; plus the z-term's z_grad_scale · 2z·lse·p_i; all times the cap's slope sech²(x/c).
#[allow(clippy::too_many_arguments)]
pub(crate) fn grad_sweep_ext<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    inv_tau: f64,
    st: &RowStats,
    ex: &Extra,
    o: &RowOpts<'_>,
    eps: f64,
    scale: f64,
    add: bool,
    g: &mut [G],
) {
    let n = st.n as f64;
    let tsum = (1.0 - eps) * st.ysum + eps;
    let spread = if eps > 0.0 { eps / n } else { 0.0 };
    // W_t = Σ w_c t_c, weighted
    let wt = (1.0 - eps) * st.ysum + spread * ex.wsum;
    // 1 − p for a class at the max
    let top_rest = st.lse.rest / (1.0 + st.lse.rest);
    // d(z·lse²)/dx_i = 2z·lse·p_i
    let zg = if o.z != 0.0 { o.z_grad_scale * 2.0 * o.z * (st.lse.max + st.lse.log1p_rest()) } else { 0.0 };
    for i in 0..s.len() {
        let raw = s[i].to_f64();
        let x = o.cap(raw) * inv_tau;
        let v = if mask.is_some_and(|m| m[i] == 0) || x == f64::NEG_INFINITY {
            0.0
        } else {
            let y = match target {
                RowTarget::Class(c) => f64::from(u8::from(c == i)),
                RowTarget::Probs(p) => p[i].to_f64(),
            };
            let t = (1.0 - eps) * y + spread;
            let top = x == st.lse.max && st.lse.rest < 1.0;
            let d = match o.weight {
                // p > ½: Σt·p − t = (Σt − t) − Σt·(1 − p), free of cancellation when p ≈ 1
                None if top => ((1.0 - eps) * (st.ysum - y) + (eps - spread)) - tsum * top_rest,
                None => tsum * st.lse.prob(x) - t,
                Some(w) => {
                    let w = w[i];
                    if top {
                        ((1.0 - eps) * (st.ysum - w * y) + spread * (ex.wsum - w)) - wt * top_rest
                    } else {
                        wt * st.lse.prob(x) - w * t
                    }
                }
            };
            let mut v = scale * d;
            if zg != 0.0 {
                v += zg * st.lse.prob(x);
            }
            if let Some(c) = o.softcap {
                v *= softcap_slope(raw, c);
            }
            v
        };
        store(&mut g[i], v, add);
    }
}

/// The cross-entropy of one row that is not ignored; `Err` for invalid probabilities.
pub(crate) fn ce_row<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    prm: &CeParams,
    grad: Option<&mut [G]>,
    row: usize,
) -> Result<RowValue, Error> {
    ce_row_ext(s, target, mask, prm, &RowOpts::PLAIN, grad, row).map(|(v, _)| v)
}

/// What a row reports beside its value under [`RowOpts`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowExtra {
    /// z · lse² (included in the row value).
    pub z: f64,
    /// The argmax is the label.
    pub correct: bool,
}

/// [`ce_row`] under the options of `o` (the SIMD path takes plain rows only).
pub(crate) fn ce_row_ext<E: Elem, T: Elem, G: Elem>(
    s: &[E],
    target: RowTarget<'_, T>,
    mask: Option<&[u8]>,
    prm: &CeParams,
    o: &RowOpts<'_>,
    mut grad: Option<&mut [G]>,
    row: usize,
) -> Result<(RowValue, RowExtra), Error> {
    let plain = o.is_plain();
    if let (true, None, RowTarget::Class(label)) = (plain, mask, target) {
        if let Some(v) = super::softmax_ce_simd::class_row(s, label, prm, grad.as_deref_mut()) {
            return Ok((v, RowExtra::default()));
        }
    }
    let (st, ex) = stats_ext(s, target, mask, prm.inv_tau, o, row)?;
    if st.bad {
        fill_one(grad, f64::NAN);
        let z = if o.z != 0.0 { f64::NAN } else { 0.0 };
        return Ok((RowValue { value: f64::NAN, counts: true }, RowExtra { z, correct: false }));
    }
    if st.n == 0 {
        if !prm.add {
            fill_one(grad, 0.0);
        }
        return Ok((RowValue { value: 0.0, counts: false }, RowExtra::default()));
    }
    let ce = if st.unsupported {
        f64::INFINITY
    } else if o.weight.is_some() {
        weighted_value(&st, &ex, prm.eps)
    } else {
        st.value(prm.eps)
    };
    let z = if o.z != 0.0 {
        let lse = st.lse.max + st.lse.log1p_rest();
        o.z * lse * lse
    } else {
        0.0
    };
    let value = ce + z;
    if let Some(g) = grad {
        if !value.is_finite() {
            g.fill(G::from_f64(f64::NAN));
        } else if plain {
            grad_sweep(s, target, mask, prm.inv_tau, &st, prm.eps, prm.grad_scale, prm.add, g);
        } else {
            grad_sweep_ext(s, target, mask, prm.inv_tau, &st, &ex, o, prm.eps, prm.grad_scale, prm.add, g);
        }
    }
    let correct = o.argmax && ex.argmax != usize::MAX && ex.argmax == ex.target_argmax;
    Ok((RowValue { value, counts: true }, RowExtra { z, correct }))
}

/// Zeroes the gradient rows of an ignored row and reports it as not counting.
pub(crate) fn ignored_row<E: Elem>(g: &mut GradRows<'_, E>) -> RowValue {
    fill(g, 0.0);
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
    softmax_ce_ext(logits, target, opts, out, CeExtraOutputs::default()).map(|r| r.loss)
}

/// Checks the options of [`SoftmaxCeOptions`] beyond the labels and masks.
fn check_ce_options(opts: &SoftmaxCeOptions<'_>, cols: usize) -> Result<(), Error> {
    check_temperature(opts.temperature)?;
    check_unit("label_smoothing", opts.label_smoothing)?;
    if let Some(w) = opts.weight {
        if w.len() != cols {
            return Err(bad_shape(format!("weight holds {} values; expected {cols}, one per class", w.len())));
        }
        if let Some((i, x)) = w.iter().enumerate().find(|(_, x)| !(x.is_finite() && **x >= 0.0)) {
            return Err(bad_argument(format!("weight must be finite and ≥ 0; got {x} at class {i}")));
        }
    }
    if !(opts.z_loss.is_finite() && opts.z_loss >= 0.0) {
        return Err(bad_argument(format!("z_loss must be finite and ≥ 0; got {}", opts.z_loss)));
    }
    check_softcap(opts.softcap)
}

/// [`softmax_ce`] with the extra outputs of `extra`: the z-term per row and reduced, and the
/// accuracy (rows whose argmax is their label, over the rows that count).
pub fn softmax_ce_ext<E: Elem, T: Elem, V: Elem>(
    logits: Rows<'_, E>,
    target: Target<'_, T>,
    opts: &SoftmaxCeOptions<'_>,
    out: LossOutputs<'_, E, V>,
    extra: CeExtraOutputs<'_, V>,
) -> Result<CeReduced, Error> {
    let (rows, cols) = (logits.rows(), logits.cols());
    validate_target(&target, &opts.masks, rows, cols)?;
    check_outputs(&out, rows, cols, false)?;
    check_ce_options(opts, cols)?;
    for (what, v) in [("z-term", &extra.z_values), ("accuracy", &extra.correct)] {
        if let Some(v) = v {
            if v.len() != rows {
                return Err(bad_shape(format!(
                    "the {what} output holds {} values; expected {rows}, one per row",
                    v.len()
                )));
            }
        }
    }
    let inv_tau = 1.0 / opts.temperature;
    let masks = opts.masks;
    let reduction = opts.reduction;
    // With class labels and weights, PyTorch's mean divides by Σ w_y over the rows not ignored
    // (`den`), Liger-Kernel's z-term by the number of those rows (`kept`): the two parts have
    // their own gradient scales, known before the rows run, and the rows are summed.
    let weighted_mean = match target {
        Target::Classes { labels, ignore_index } if opts.weight.is_some() && reduction == Reduction::Mean => {
            let w = opts.weight.unwrap_or_default();
            let mut den = CompensatedSum::default();
            let mut kept = 0usize;
            for (r, &y) in labels.iter().enumerate() {
                if y != ignore_index && masks.row_kept(r) {
                    den.add(w[y as usize]);
                    kept += 1;
                }
            }
            Some((den.value(), kept))
        }
        _ => None,
    };
    let inv = |d: f64| if d > 0.0 { 1.0 / d } else { 0.0 };
    let (ce_scale, z_scale, kernel_reduction) = match weighted_mean {
        Some((den, kept)) => (inv(den) * inv_tau, inv(kept as f64) * inv_tau, Reduction::Sum),
        None => {
            let g = reduction.grad_scale(rows) * inv_tau;
            (g, g, reduction)
        }
    };
    let prm = CeParams { inv_tau, eps: opts.label_smoothing, grad_scale: ce_scale, add: false };
    let ro = RowOpts {
        weight: opts.weight,
        softcap: opts.softcap,
        z: opts.z_loss,
        z_grad_scale: z_scale,
        argmax: extra.accuracy || extra.correct.is_some(),
    };
    // per-row extras, written by the row kernels (each row by one kernel): O(rows)
    let z_rows: Vec<AtomicU64> = if ro.z != 0.0 { (0..rows).map(|_| AtomicU64::new(0)).collect() } else { Vec::new() };
    let correct_rows: Vec<AtomicU8> =
        if extra.correct.is_some() { (0..rows).map(|_| AtomicU8::new(0)).collect() } else { Vec::new() };
    let n_correct = AtomicUsize::new(0);
    let errors = FirstError::default();
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let Some(t) = masks.row_kept(r).then(|| target.row(r)).flatten() else {
            return ignored_row(&mut g);
        };
        let (v, x) = ce_row_ext(logits.row(r), t, masks.class_row(r), &prm, &ro, g[0].as_deref_mut(), r)
            .unwrap_or_else(|e| {
                errors.report(r, e);
                (RowValue { value: f64::NAN, counts: true }, RowExtra::default())
            });
        if let Some(z) = z_rows.get(r) {
            z.store(x.z.to_bits(), Ordering::Relaxed);
        }
        if x.correct {
            n_correct.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = correct_rows.get(r) {
                c.store(1, Ordering::Relaxed);
            }
        }
        v
    };
    let reduced = reduce_rows(kernel_reduction, rows, cols, out.values, [out.grad, None], kernel);
    let reduced = errors.into_result(reduced)?;
    let mut zsum = CompensatedSum::default();
    for z in &z_rows {
        zsum.add(f64::from_bits(z.load(Ordering::Relaxed)));
    }
    let zsum = zsum.value();
    let (loss, z_loss) = match weighted_mean {
        Some((den, kept)) => {
            let (ce, z) = (reduced.value - zsum, zsum);
            let z = z * inv(kept as f64);
            (Reduced { value: ce * inv(den) + z, ..reduced }, z)
        }
        None => (reduced, finish(reduction, zsum, reduced.counted, rows)),
    };
    if let Some(zv) = extra.z_values {
        for (o, z) in zv.iter_mut().zip(z_rows.iter().map(|z| f64::from_bits(z.load(Ordering::Relaxed))).chain(std::iter::repeat(0.0))) {
            *o = V::from_f64(z);
        }
    }
    if let Some(cv) = extra.correct {
        for (o, c) in cv.iter_mut().zip(&correct_rows) {
            *o = V::from_f64(f64::from(c.load(Ordering::Relaxed)));
        }
    }
    let correct = n_correct.into_inner();
    let accuracy = if ro.argmax && loss.counted > 0 { correct as f64 / loss.counted as f64 } else { f64::NAN };
    Ok(CeReduced { loss, z_loss, correct, accuracy })
}
