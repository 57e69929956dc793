//! Property-based fuzzing of the loss kernels (proptest). Random shapes, row strides, logits
//! (finite, huge, ±inf, NaN), labels (valid and invalid: out of range, negative, NaN, above 1,
//! duplicated, ignored), class and row masks, weights and options. Every call must return (never
//! panic), fail exactly when a label or an option is invalid (`Error::BadArgument`), and otherwise
//! give, row by row, what the loss module's conventions promise:
//!
//! - an ignored or masked-out row: 0 with zero gradients;
//! - a NaN or +inf logit among a row's present classes, or a finite logit beyond ±1e300 (after
//!   dividing by τ): NaN with NaN gradients (also, for the losses with a KL term, a row whose
//!   teacher/second logits have no present class: there is no distribution);
//! - otherwise a value ≥ 0 (+inf where the label puts mass on an absent class), finite on rows of
//!   finite logits within ±1e150 with no absent class; a finite value has gradients that are not
//!   NaN (finite in f64 on such rows) and exactly 0 on absent classes; a +inf value NaN gradients.
//!
//! Budget: `PROPTEST_CASES` (default 400 cases per property).

// NaN-aware comparisons (`!(x <= y)`) are the point of several oracles here
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop, clippy::cloned_ref_to_slice_refs, clippy::useless_vec)]

use logitdiv_core::divergence::MAX_SCALED_LOGIT;
use logitdiv_core::{
    bce, gamma_ce, globalpointer_ce, kd_loss, multilabel_ce, rdrop_loss, softmax_ce, sparse_multilabel_ce, BceOptions,
    Elem, Error, GammaOptions, GlobalPointerOptions, GpReduction, KdOptions, LossOutputs, Masks, MultilabelOptions,
    Positives, RdropKind, RdropOptions, Reduction, Rows, RowsMut, SoftmaxCeOptions, SparseMultilabelOptions, Target,
};
use proptest::prelude::*;

mod common;
use common::{config, span};

fn logit() -> impl Strategy<Value = f64> {
    common::logit(
        10,
        vec![0.0, -0.0, 1e-300, 40.0, -40.0, 700.0, -700.0, 746.0, -746.0],
        vec![1e30, -1e30, 1e150, -1e150, 1e300, -1e300, f64::MAX, f64::MIN, 3.0e38],
    )
}

/// A label probability: mostly in [0, 1], sometimes above 1 or invalid.
fn prob() -> impl Strategy<Value = f64> {
    prop_oneof![
        12 => prop::sample::select(vec![0.0, 1.0, 0.5, 0.25, 1e-300, 0.999]),
        1 => prop::sample::select(vec![1.5, 7.0]),
        1 => prop::sample::select(vec![-0.5, f64::NAN, f64::INFINITY, -0.0]),
    ]
}

const REDUCTIONS: [Reduction; 4] = [Reduction::None, Reduction::Sum, Reduction::Mean, Reduction::BatchMean];

/// Logits with their layout, masks and a reduction: the part every loss shares.
#[derive(Debug, Clone)]
struct Base {
    rows: usize,
    cols: usize,
    stride: usize,
    s: Vec<f64>,
    /// second logits (teacher, s2), contiguous
    s2: Vec<f64>,
    class_mask: Option<(usize, Vec<u8>)>,
    row_mask: Option<Vec<u8>>,
    reduction: Reduction,
    want_grad: bool,
    want_grad2: bool,
}

fn base() -> impl Strategy<Value = Base> {
    (0usize..5, 1usize..8, 0usize..3)
        .prop_flat_map(|(rows, cols, pad)| {
            let stride = cols + pad;
            (
                Just((rows, cols, stride)),
                prop::collection::vec(logit(), span(rows, cols, stride)),
                prop::collection::vec(logit(), rows * cols),
                prop::option::weighted(
                    0.3,
                    (
                        prop_oneof![Just(0usize), Just(cols)],
                        prop::collection::vec(prop::sample::select(vec![0u8, 1, 1]), rows.max(1) * cols),
                    ),
                ),
                prop::option::weighted(0.3, prop::collection::vec(prop::sample::select(vec![0u8, 1, 1]), rows)),
                (0usize..4, any::<bool>(), any::<bool>()),
            )
        })
        .prop_map(|((rows, cols, stride), s, s2, class_mask, row_mask, (r, g, g2))| Base {
            rows,
            cols,
            stride,
            s,
            s2,
            class_mask,
            row_mask,
            reduction: REDUCTIONS[r],
            want_grad: g,
            want_grad2: g2,
        })
}

impl Base {
    fn kept(&self, r: usize) -> bool {
        self.row_mask.as_ref().is_none_or(|m| m[r] != 0)
    }
    fn class_kept(&self, r: usize, i: usize) -> bool {
        self.class_mask.as_ref().is_none_or(|(st, m)| m[r * st + i] != 0)
    }
    fn x(&self, r: usize, i: usize) -> f64 {
        self.s[r * self.stride + i]
    }
    fn masks(&self) -> Masks<'_> {
        Masks {
            classes: self
                .class_mask
                .as_ref()
                .map(|(st, m)| Rows::new(m, self.rows, self.cols, *st).unwrap()),
            rows: self.row_mask.as_deref(),
        }
    }
    /// The rules of the rows of a loss of the logits `s` alone at 1/τ = `inv_tau` (the logits
    /// rounded by `round_e`): class i of row r is present where it is kept, `also(r, i)` and its
    /// logit is not −inf; the rows where `ignored(r)` are ignored.
    fn rules(
        &self,
        inv_tau: f64,
        round_e: impl Fn(f64) -> f64,
        also: impl Fn(usize, usize) -> bool,
        ignored: impl Fn(usize) -> bool,
    ) -> Vec<RowRule> {
        (0..self.rows)
            .map(|r| {
                let row: Vec<f64> = (0..self.cols).map(|i| round_e(self.x(r, i))).collect();
                let present = |i: usize| self.class_kept(r, i) && also(r, i) && row[i] != f64::NEG_INFINITY;
                let mut rule = softmax_like_rule(&[row.clone()], inv_tau, present, self.cols);
                rule.ignored = ignored(r);
                rule
            })
            .collect()
    }
}

/// What a row must satisfy: is it read at all, and may it be NaN / must it be finite.
#[derive(Debug, Clone, Copy)]
struct RowRule {
    /// ignored (row mask, ignore_index): exactly 0 with zero gradients
    ignored: bool,
    /// a bad logit among the present classes: NaN (value and gradients)
    nan: bool,
    /// NaN is allowed (a side with no distribution)
    may_nan: bool,
    /// finite value and (in f64) finite gradients
    finite: bool,
}

/// A finite logit scaled beyond the domain, NaN or +inf.
fn out_of_domain(x: f64, a: f64) -> bool {
    !(a.abs() <= MAX_SCALED_LOGIT) && x != f64::NEG_INFINITY
}

/// The rule of row `r` for the logits in `rows_of` (each (row → its logits)), present classes by
/// `present(i)`.
fn softmax_like_rule(xs: &[Vec<f64>], inv_tau: f64, present: impl Fn(usize) -> bool, cols: usize) -> RowRule {
    let (mut nan, mut finite) = (false, true);
    for row in xs {
        for i in 0..cols {
            if !present(i) {
                finite = false;
                continue;
            }
            let (x, a) = (row[i], row[i] * inv_tau);
            if out_of_domain(x, a) {
                nan = true;
            }
            if !(a.abs() <= 1e150) {
                finite = false;
            }
        }
    }
    RowRule {
        ignored: false,
        nan,
        may_nan: false,
        finite: finite && !nan,
    }
}

struct Got {
    result: Result<f64, Error>,
    values: Vec<f64>,
    grads: [Vec<f64>; 2],
}

/// Checks the rows of a successful call against their rules.
fn check_rows(
    got: &Got,
    rules: &[RowRule],
    cols: usize,
    want: [bool; 2],
    is_f64: bool,
    absent: impl Fn(usize, usize) -> bool,
) -> Result<(), TestCaseError> {
    let total = match &got.result {
        Ok(v) => *v,
        Err(e) => return Err(TestCaseError::fail(format!("valid call failed: {e}"))),
    };
    prop_assert!(total.is_nan() || total >= 0.0, "reduced value {total}");
    for (r, rule) in rules.iter().enumerate() {
        let v = got.values[r];
        if rule.ignored {
            prop_assert!(v == 0.0, "row {r}: ignored, value {v}");
        } else if rule.nan {
            prop_assert!(v.is_nan(), "row {r}: expected NaN, got {v}");
        } else {
            prop_assert!(
                v >= 0.0 || (rule.may_nan && v.is_nan()),
                "row {r}: expected a value ≥ 0, got {v}"
            );
            if rule.finite {
                prop_assert!(v.is_finite(), "row {r}: expected a finite value, got {v}");
            }
        }
        for (k, g) in got.grads.iter().enumerate() {
            if !want[k] {
                continue;
            }
            let row = &g[r * cols..(r + 1) * cols];
            if rule.ignored {
                prop_assert!(row.iter().all(|&x| x == 0.0), "row {r}: ignored, gradient {k} {row:?}");
            } else if v.is_finite() {
                for (i, &x) in row.iter().enumerate() {
                    prop_assert!(
                        !x.is_nan(),
                        "row {r}, class {i}: gradient {k} is NaN for the finite value {v}"
                    );
                    if is_f64 && rule.finite {
                        prop_assert!(
                            x.is_finite(),
                            "row {r}, class {i}: gradient {k} {x} for the finite value {v}"
                        );
                    }
                    if absent(r, i) && k == 0 {
                        prop_assert!(x == 0.0, "row {r}, class {i}: gradient {x} on an absent class");
                    }
                }
            } else {
                prop_assert!(
                    row.iter().all(|x| x.is_nan()),
                    "row {r}: value {v}, gradient {k} {row:?}"
                );
            }
        }
    }
    Ok(())
}

/// Output buffers (values always, gradients as asked), filled with a sentinel.
struct Bufs<E> {
    values: Vec<f64>,
    g0: Vec<E>,
    g1: Vec<E>,
}

impl<E: Elem> Bufs<E> {
    fn new(rows: usize, cols: usize) -> Self {
        Bufs {
            values: vec![-7.0; rows],
            g0: vec![E::from_f64(-7.0); rows * cols],
            g1: vec![E::from_f64(-7.0); rows * cols],
        }
    }
    fn outputs(&mut self, rows: usize, cols: usize, want: [bool; 2]) -> LossOutputs<'_, E, f64> {
        LossOutputs {
            values: Some(&mut self.values[..]),
            grad: want[0].then(|| RowsMut::contiguous(&mut self.g0, rows, cols).unwrap()),
            grad_second: want[1].then(|| RowsMut::contiguous(&mut self.g1, rows, cols).unwrap()),
        }
    }
    fn got(self, result: Result<f64, Error>) -> Got {
        let f = |x: Vec<E>| x.into_iter().map(Elem::to_f64).collect();
        Got {
            result,
            values: self.values,
            grads: [f(self.g0), f(self.g1)],
        }
    }
}

fn elems<E: Elem>(x: &[f64]) -> Vec<E> {
    x.iter().map(|&v| E::from_f64(v)).collect()
}

fn round<E: Elem>(x: f64) -> f64 {
    E::from_f64(x).to_f64()
}

fn expect_err(got: &Got) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(got.result, Err(Error::BadArgument(_))),
        "an invalid label or option was accepted: {:?}",
        got.result
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// softmax_ce and gamma_ce (class indices or probabilities)

#[derive(Debug, Clone)]
struct CeCase {
    b: Base,
    /// class indices (Some) or probabilities (None: `probs`)
    labels: Option<Vec<i64>>,
    probs: Vec<f64>,
    ignore_index: i64,
    eps: f64,
    temperature: f64,
    gamma: f64,
    threshold: Option<f64>,
}

fn ce_case() -> impl Strategy<Value = CeCase> {
    base()
        .prop_flat_map(|b| {
            let (rows, cols) = (b.rows, b.cols);
            (
                Just(b),
                prop::option::weighted(0.6, prop::collection::vec(prop_oneof![8 => 0..cols as i64, 1 => Just(-100i64), 1 => -2i64..cols as i64 + 2], rows)),
                prop::collection::vec(prob(), rows * cols),
                prop::sample::select(vec![-100i64, -1, 0]),
                prop_oneof![6 => prop::sample::select(vec![0.0, 0.1, 1.0]), 1 => prop::sample::select(vec![-0.1, 1.5, f64::NAN])],
                prop_oneof![6 => prop::sample::select(vec![1.0, 0.5, 3.0]), 1 => prop::sample::select(vec![0.0, -1.0, 5e-324, f64::NAN])],
                prop_oneof![6 => prop::sample::select(vec![0.0, 0.3, 0.999]), 1 => prop::sample::select(vec![1.0, -0.1, f64::NAN])],
                prop::option::of(prop_oneof![6 => prop::sample::select(vec![0.0, 0.5, 1.0]), 1 => prop::sample::select(vec![1.5, -0.5, f64::NAN])]),
            )
        })
        .prop_map(|(b, labels, probs, ignore_index, eps, temperature, gamma, threshold)| CeCase {
            b,
            labels,
            probs,
            ignore_index,
            eps,
            temperature,
            gamma,
            threshold,
        })
}

fn tau_ok(t: f64) -> bool {
    t.is_finite() && t > 0.0 && (1.0 / t).is_finite()
}

fn unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

/// Whether the labels of the kept, not ignored rows are valid.
fn ce_labels_ok(c: &CeCase) -> bool {
    let b = &c.b;
    (0..b.rows).filter(|&r| b.kept(r)).all(|r| match &c.labels {
        Some(l) => l[r] == c.ignore_index || (0..b.cols as i64).contains(&l[r]),
        None => c.probs[r * b.cols..(r + 1) * b.cols]
            .iter()
            .all(|&y| y >= 0.0 && y.is_finite()),
    })
}

/// Rules of the rows of a CE-like loss on logits `b.s` at temperature `tau`.
fn ce_rules(c: &CeCase, tau: f64, round_e: impl Fn(f64) -> f64) -> Vec<RowRule> {
    let b = &c.b;
    b.rules(1.0 / tau, round_e, |_, _| true, |r| {
        !b.kept(r) || c.labels.as_ref().is_some_and(|l| l[r] == c.ignore_index)
    })
}

fn check_ce<E: Elem>(c: &CeCase, gamma_loss: bool) -> Result<(), TestCaseError> {
    let b = &c.b;
    let s = elems::<E>(&b.s);
    let logits = Rows::new(&s, b.rows, b.cols, b.stride).unwrap();
    let probs = Rows::contiguous(&c.probs, b.rows, b.cols).unwrap();
    let mut bufs = Bufs::<E>::new(b.rows, b.cols);
    let want = [b.want_grad, false];
    let (valid, tau, result);
    let gamma_case;
    let c = if gamma_loss {
        // gamma_ce takes class indices only
        gamma_case = CeCase {
            labels: Some(c.labels.clone().unwrap_or_else(|| vec![0; b.rows])),
            ..c.clone()
        };
        &gamma_case
    } else {
        c
    };
    if gamma_loss {
        let labels: Vec<i64> = c.labels.clone().unwrap();
        let opts = GammaOptions {
            gamma: c.gamma,
            threshold: c.threshold,
            ignore_index: c.ignore_index,
            masks: b.masks(),
            reduction: b.reduction,
        };
        result = gamma_ce(logits, &labels, &opts, bufs.outputs(b.rows, b.cols, want)).map(|r| r.value);
        let labels_ok = (0..b.rows)
            .filter(|&r| b.kept(r))
            .all(|r| labels[r] == c.ignore_index || (0..b.cols as i64).contains(&labels[r]));
        valid = labels_ok && (0.0..1.0).contains(&c.gamma) && c.threshold.is_none_or(unit);
        tau = 1.0;
    } else {
        let target = match &c.labels {
            Some(l) => Target::Classes {
                labels: l,
                ignore_index: c.ignore_index,
            },
            None => Target::Probs(probs),
        };
        let opts = SoftmaxCeOptions {
            label_smoothing: c.eps,
            temperature: c.temperature,
            masks: b.masks(),
            reduction: b.reduction,
            ..SoftmaxCeOptions::default()
        };
        result = softmax_ce(logits, target, &opts, bufs.outputs(b.rows, b.cols, want)).map(|r| r.value);
        valid = ce_labels_ok(c) && unit(c.eps) && tau_ok(c.temperature);
        tau = c.temperature;
    }
    let got = bufs.got(result);
    if !valid {
        return expect_err(&got);
    }
    let rules = ce_rules(c, tau, round::<E>);
    check_rows(&got, &rules, b.cols, want, E::NAME == "f64", |r, i| {
        !b.class_kept(r, i) || round::<E>(b.x(r, i)) == f64::NEG_INFINITY
    })
}

// ---------------------------------------------------------------------------------------------
// bce and multilabel_ce (dense labels)

#[derive(Debug, Clone)]
struct DenseCase {
    b: Base,
    y: Vec<f64>,
    pos_weight: Option<(usize, Vec<f64>)>,
    weights: Option<(usize, Vec<f64>)>,
}

fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![10 => prop::sample::select(vec![0.0, 1.0, 0.5, 3.0]), 1 => prop::sample::select(vec![-1.0, f64::NAN, f64::INFINITY])]
}

fn dense_case() -> impl Strategy<Value = DenseCase> {
    base()
        .prop_flat_map(|b| {
            let (rows, cols) = (b.rows, b.cols);
            let per = prop_oneof![Just(0usize), Just(cols)];
            (
                Just(b),
                prop::collection::vec(prob(), rows * cols),
                prop::option::weighted(0.3, (per.clone(), prop::collection::vec(weight(), rows.max(1) * cols))),
                prop::option::weighted(0.3, (per, prop::collection::vec(weight(), rows.max(1) * cols))),
            )
        })
        .prop_map(|(b, y, pos_weight, weights)| DenseCase {
            b,
            y,
            pos_weight,
            weights,
        })
}

fn per_class_ok(w: &Option<(usize, Vec<f64>)>, rows: usize, cols: usize) -> bool {
    match w {
        None => true,
        Some((st, w)) => {
            let n = if *st == 0 { rows.min(1) } else { rows };
            (0..n).all(|r| w[r * st..r * st + cols].iter().all(|x| x.is_finite() && *x >= 0.0))
        }
    }
}

fn check_dense<E: Elem>(c: &DenseCase, is_bce: bool) -> Result<(), TestCaseError> {
    let b = &c.b;
    let s = elems::<E>(&b.s);
    let logits = Rows::new(&s, b.rows, b.cols, b.stride).unwrap();
    let target = Rows::contiguous(&c.y, b.rows, b.cols).unwrap();
    let mut bufs = Bufs::<E>::new(b.rows, b.cols);
    let want = [b.want_grad, false];
    fn per_class<'a>(w: &'a Option<(usize, Vec<f64>)>, b: &Base) -> Option<Rows<'a, f64>> {
        w.as_ref().map(|(st, w)| Rows::new(w, b.rows, b.cols, *st).unwrap())
    }
    let result = if is_bce {
        let opts = BceOptions {
            pos_weight: per_class(&c.pos_weight, b),
            weights: per_class(&c.weights, b),
            masks: b.masks(),
            reduction: b.reduction,
        };
        bce(logits, target, &opts, bufs.outputs(b.rows, b.cols, want))
    } else {
        let opts = MultilabelOptions {
            masks: b.masks(),
            reduction: b.reduction,
        };
        multilabel_ce(logits, target, &opts, bufs.outputs(b.rows, b.cols, want))
    }
    .map(|r| r.value);
    let got = bufs.got(result);
    let labels_ok = (0..b.rows)
        .filter(|&r| b.kept(r))
        .all(|r| c.y[r * b.cols..(r + 1) * b.cols].iter().all(|&y| unit(y)));
    let options_ok =
        !is_bce || (per_class_ok(&c.pos_weight, b.rows, b.cols) && per_class_ok(&c.weights, b.rows, b.cols));
    if !(labels_ok && options_ok) {
        return expect_err(&got);
    }
    let w_of = |r: usize, i: usize| {
        if is_bce {
            c.weights.as_ref().map_or(1.0, |(st, w)| w[r * st + i])
        } else {
            1.0
        }
    };
    let rules = b.rules(1.0, round::<E>, |r, i| w_of(r, i) != 0.0, |r| !b.kept(r));
    check_rows(&got, &rules, b.cols, want, E::NAME == "f64", |r, i| {
        !b.class_kept(r, i) || w_of(r, i) == 0.0 || round::<E>(b.x(r, i)) == f64::NEG_INFINITY
    })
}

// ---------------------------------------------------------------------------------------------
// sparse_multilabel_ce and globalpointer_ce (positives)

#[derive(Debug, Clone)]
struct SparseCase {
    b: Base,
    k: usize,
    positives: Vec<i64>,
    pad: i64,
}

fn sparse_case() -> impl Strategy<Value = SparseCase> {
    (base(), 0usize..4, prop::sample::select(vec![-1i64, 0]))
        .prop_flat_map(|(b, k, pad)| {
            let n = b.rows * k;
            let cols = b.cols as i64;
            (
                Just((b, k, pad)),
                prop::collection::vec(prop_oneof![6 => 0..cols, 2 => Just(pad), 1 => -3i64..cols + 3], n),
            )
        })
        .prop_map(|((b, k, pad), positives)| SparseCase { b, k, positives, pad })
}

/// The sorted positive classes of a row, or None when one is out of range or listed twice.
fn positives_of(raw: &[i64], pad: i64, cols: usize) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for &v in raw {
        if v == pad {
            continue;
        }
        if !(0..cols as i64).contains(&v) {
            return None;
        }
        out.push(v as usize);
    }
    out.sort_unstable();
    let n = out.len();
    out.dedup();
    (out.len() == n).then_some(out)
}

fn check_sparse<E: Elem>(c: &SparseCase) -> Result<(), TestCaseError> {
    let b = &c.b;
    let s = elems::<E>(&b.s);
    let logits = Rows::new(&s, b.rows, b.cols, b.stride).unwrap();
    let positives = Positives {
        indices: Rows::contiguous(&c.positives, b.rows, c.k).unwrap(),
        pad: c.pad,
    };
    let mut bufs = Bufs::<E>::new(b.rows, b.cols);
    let want = [b.want_grad, false];
    let opts = SparseMultilabelOptions {
        masks: b.masks(),
        reduction: b.reduction,
    };
    let result = sparse_multilabel_ce(logits, positives, &opts, bufs.outputs(b.rows, b.cols, want)).map(|r| r.value);
    let got = bufs.got(result);
    let row_pos = |r: usize| positives_of(&c.positives[r * c.k..(r + 1) * c.k], c.pad, b.cols);
    if (0..b.rows).filter(|&r| b.kept(r)).any(|r| row_pos(r).is_none()) {
        return expect_err(&got);
    }
    let rules = b.rules(1.0, round::<E>, |_, _| true, |r| !b.kept(r));
    check_rows(&got, &rules, b.cols, want, E::NAME == "f64", |r, i| {
        !b.class_kept(r, i) || round::<E>(b.x(r, i)) == f64::NEG_INFINITY
    })
}

#[derive(Debug, Clone)]
struct GpCase {
    batch: usize,
    heads: usize,
    len: usize,
    s: Vec<f64>,
    k: usize,
    spans: bool,
    positives: Vec<i64>,
    pad: i64,
    token_mask: Option<Vec<u8>>,
    reduction: usize,
    want_grad: bool,
}

fn gp_case() -> impl Strategy<Value = GpCase> {
    (
        1usize..3,
        1usize..3,
        1usize..4,
        0usize..3,
        any::<bool>(),
        prop::sample::select(vec![-1i64, 0]),
    )
        .prop_flat_map(|(batch, heads, len, k, spans, pad)| {
            let n = batch * heads * k * if spans { 2 } else { 1 };
            let hi = if spans { len as i64 } else { (len * len) as i64 };
            (
                Just((batch, heads, len, k, spans, pad)),
                prop::collection::vec(logit(), batch * heads * len * len),
                prop::collection::vec(prop_oneof![6 => 0..hi, 2 => Just(pad), 1 => -2i64..hi + 2], n),
                prop::option::weighted(
                    0.4,
                    prop::collection::vec(prop::sample::select(vec![0u8, 1, 1]), batch * len),
                ),
                (0usize..5, any::<bool>()),
            )
        })
        .prop_map(
            |((batch, heads, len, k, spans, pad), s, positives, token_mask, (reduction, want_grad))| GpCase {
                batch,
                heads,
                len,
                s,
                k,
                spans,
                positives,
                pad,
                token_mask,
                reduction,
                want_grad,
            },
        )
}

fn check_gp<E: Elem>(c: &GpCase) -> Result<(), TestCaseError> {
    let (rows, cols) = (c.batch * c.heads, c.len * c.len);
    let per_row = c.k * if c.spans { 2 } else { 1 };
    let s = elems::<E>(&c.s);
    let logits = Rows::contiguous(&s, rows, cols).unwrap();
    let positives = Positives {
        indices: Rows::contiguous(&c.positives, rows, per_row).unwrap(),
        pad: c.pad,
    };
    let reduction = match c.reduction {
        4 => GpReduction::SumHeadsMeanBatch,
        r => GpReduction::Rows(REDUCTIONS[r]),
    };
    let opts = GlobalPointerOptions {
        heads: c.heads,
        token_mask: c
            .token_mask
            .as_ref()
            .map(|m| Rows::contiguous(m, c.batch, c.len).unwrap()),
        spans: c.spans,
        reduction,
    };
    let mut bufs = Bufs::<E>::new(rows, cols);
    let want = [c.want_grad, false];
    let result = globalpointer_ce(logits, positives, &opts, bufs.outputs(rows, cols, want)).map(|r| r.value);
    let got = bufs.got(result);
    // the positives of each row as flat classes (spans: both entries pad = padding)
    let row_pos = |r: usize| -> Option<Vec<usize>> {
        let raw = &c.positives[r * per_row..(r + 1) * per_row];
        if !c.spans {
            return positives_of(raw, c.pad, cols);
        }
        let mut flat = Vec::new();
        for p in raw.chunks_exact(2) {
            if p[0] == c.pad && p[1] == c.pad {
                continue;
            }
            if !(0..c.len as i64).contains(&p[0]) || !(0..c.len as i64).contains(&p[1]) {
                return None;
            }
            flat.push(p[0] * c.len as i64 + p[1]);
        }
        positives_of(&flat, -1, cols)
    };
    if (0..rows).any(|r| row_pos(r).is_none()) {
        return expect_err(&got);
    }
    let present = |r: usize, i: usize| {
        let (a, bb) = (i / c.len, i % c.len);
        let tok = |j: usize| c.token_mask.as_ref().is_none_or(|m| m[(r / c.heads) * c.len + j] != 0);
        a <= bb && tok(a) && tok(bb) && round::<E>(c.s[r * cols + i]) != f64::NEG_INFINITY
    };
    let rules: Vec<RowRule> = (0..rows)
        .map(|r| {
            let row: Vec<f64> = (0..cols).map(|i| round::<E>(c.s[r * cols + i])).collect();
            softmax_like_rule(&[row], 1.0, |i| present(r, i), cols)
        })
        .collect();
    check_rows(&got, &rules, cols, want, E::NAME == "f64", |r, i| !present(r, i))
}

// ---------------------------------------------------------------------------------------------
// kd_loss and rdrop_loss (two logit inputs)

#[derive(Debug, Clone)]
struct PairCase {
    ce: CeCase,
    with_target: bool,
    alpha: f64,
    t2: bool,
    sigmoid: bool,
}

fn pair_case() -> impl Strategy<Value = PairCase> {
    (
        ce_case(),
        any::<bool>(),
        prop_oneof![6 => prop::sample::select(vec![0.0, 0.5, 1.0, 2.0]), 1 => prop::sample::select(vec![-1.0, f64::NAN, f64::INFINITY])],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ce, with_target, alpha, t2, sigmoid)| PairCase { ce, with_target, alpha, t2, sigmoid })
}

fn check_pair<E: Elem>(c: &PairCase, kd: bool) -> Result<(), TestCaseError> {
    let cc = &c.ce;
    let b = &cc.b;
    let (s, s2) = (elems::<E>(&b.s), elems::<E>(&b.s2));
    let first = Rows::new(&s, b.rows, b.cols, b.stride).unwrap();
    let second = Rows::contiguous(&s2, b.rows, b.cols).unwrap();
    let probs = Rows::contiguous(&cc.probs, b.rows, b.cols).unwrap();
    let target = match &cc.labels {
        Some(l) => Target::Classes {
            labels: l,
            ignore_index: cc.ignore_index,
        },
        None => Target::Probs(probs),
    };
    let want = [b.want_grad, b.want_grad2];
    let mut bufs = Bufs::<E>::new(b.rows, b.cols);
    let sigmoid = !kd && c.sigmoid;
    let (result, valid, tau) = if kd {
        let opts = KdOptions {
            temperature: cc.temperature,
            alpha: c.alpha,
            t2: c.t2,
            label_smoothing: cc.eps,
            masks: b.masks(),
            reduction: b.reduction,
        };
        let target = c.with_target.then_some(target);
        let r = kd_loss(first, second, target, &opts, bufs.outputs(b.rows, b.cols, want)).map(|r| r.value);
        let labels_ok = !c.with_target || ce_labels_ok(cc);
        (
            r,
            labels_ok && tau_ok(cc.temperature) && unit(c.alpha) && unit(cc.eps),
            cc.temperature,
        )
    } else {
        let kind = if sigmoid {
            RdropKind::Sigmoid
        } else {
            RdropKind::Softmax
        };
        let eps = if sigmoid && c.t2 { 0.0 } else { cc.eps };
        let opts = RdropOptions {
            alpha: c.alpha,
            kind,
            label_smoothing: eps,
            masks: b.masks(),
            reduction: b.reduction,
        };
        let r = rdrop_loss(first, second, target, &opts, bufs.outputs(b.rows, b.cols, want)).map(|r| r.value);
        let labels_ok = if sigmoid {
            cc.labels.is_none()
                && eps == 0.0
                && (0..b.rows)
                    .filter(|&r| b.kept(r))
                    .all(|r| cc.probs[r * b.cols..(r + 1) * b.cols].iter().all(|&y| unit(y)))
        } else {
            ce_labels_ok(cc)
        };
        (r, labels_ok && c.alpha.is_finite() && c.alpha >= 0.0 && unit(eps), 1.0)
    };
    let got = bufs.got(result);
    if !valid {
        return expect_err(&got);
    }
    let rules: Vec<RowRule> = (0..b.rows)
        .map(|r| {
            let ignored =
                !b.kept(r) || (c.with_target || !kd) && cc.labels.as_ref().is_some_and(|l| l[r] == cc.ignore_index);
            let one: Vec<f64> = (0..b.cols).map(|i| round::<E>(b.x(r, i))).collect();
            let two: Vec<f64> = (0..b.cols).map(|i| round::<E>(b.s2[r * b.cols + i])).collect();
            let present = |i: usize| b.class_kept(r, i) && (one[i] != f64::NEG_INFINITY || two[i] != f64::NEG_INFINITY);
            // the terms that read the inputs: kd reads both in its KL term (α > 0, at 1/T) and the
            // student in its CE term (a target and α < 1); rdrop reads both in every term
            let kl_read = !kd || c.alpha > 0.0;
            let ce_read = !kd || (c.with_target && c.alpha < 1.0);
            let mut parts = Vec::new();
            if kl_read {
                parts.push(softmax_like_rule(
                    &[one.clone(), two.clone()],
                    1.0 / tau,
                    present,
                    b.cols,
                ));
            }
            if ce_read {
                let inputs = if kd {
                    vec![one.clone()]
                } else {
                    vec![one.clone(), two.clone()]
                };
                parts.push(softmax_like_rule(&inputs, 1.0, present, b.cols));
            }
            let mut rule = RowRule {
                ignored: false,
                nan: false,
                may_nan: false,
                finite: true,
            };
            for p in parts {
                rule.nan |= p.nan;
                rule.finite &= p.finite;
            }
            rule.finite &= !rule.nan;
            if kl_read && one.iter().chain(&two).any(|&x| x == f64::NEG_INFINITY) {
                // a −inf in one input only: a side may have no present class (NaN) or the supports differ
                rule.finite = false;
                rule.may_nan = true;
            }
            rule.ignored = ignored;
            rule
        })
        .collect();
    check_rows(&got, &rules, b.cols, want, E::NAME == "f64", |r, i| !b.class_kept(r, i))
}

/// The properties, one line each: `name: check::<element type>(extra arguments) on strategy;` is
/// the test `name` running `check::<E>(&case, extra arguments)` on 400 cases of `strategy()`.
macro_rules! properties {
    ($($name:ident: $check:ident::<$t:ty>($($arg:expr),*) on $strategy:ident;)+) => {
        proptest! {
            #![proptest_config(config(400))]
            $(
                #[test]
                fn $name(c in $strategy()) { $check::<$t>(&c $(, $arg)*)?; }
            )+
        }
    };
}

properties! {
    softmax_ce_f64: check_ce::<f64>(false) on ce_case;
    softmax_ce_f32: check_ce::<f32>(false) on ce_case;
    gamma_ce_f64: check_ce::<f64>(true) on ce_case;
    bce_f64: check_dense::<f64>(true) on dense_case;
    bce_f32: check_dense::<f32>(true) on dense_case;
    multilabel_ce_f64: check_dense::<f64>(false) on dense_case;
    sparse_multilabel_ce_f64: check_sparse::<f64>() on sparse_case;
    globalpointer_ce_f64: check_gp::<f64>() on gp_case;
    globalpointer_ce_f32: check_gp::<f32>() on gp_case;
    kd_loss_f64: check_pair::<f64>(true) on pair_case;
    kd_loss_f32: check_pair::<f32>(true) on pair_case;
    rdrop_loss_f64: check_pair::<f64>(false) on pair_case;
}

/// The failing cases the fuzzing found, kept as fixed tests.
mod regressions {
    use super::*;

    /// Class-index labels with the default ignore_index.
    fn classes(labels: &[i64]) -> Target<'_, f64> {
        Target::Classes {
            labels,
            ignore_index: -100,
        }
    }

    #[test]
    fn kd_loss_with_alpha_one_checks_its_probability_labels() {
        let (s, t, y) = ([0.0, 0.0], [0.0, 1.0], [-1.0, 2.0]);
        let opts = KdOptions {
            alpha: 1.0,
            ..KdOptions::default()
        };
        let r = kd_loss(
            Rows::contiguous(&s, 1, 2).unwrap(),
            Rows::contiguous(&t, 1, 2).unwrap(),
            Some(Target::Probs(Rows::contiguous(&y, 1, 2).unwrap())),
            &opts,
            LossOutputs::<f64, f64>::default(),
        );
        assert!(matches!(r, Err(Error::BadArgument(m)) if m.contains("got -1 at row 0, class 0")));
    }

    #[test]
    fn a_nan_row_of_rdrop_has_nan_gradients_for_both_inputs() {
        // with α = 0 the NaN of s1's CE left s2's CE gradient finite
        let (s1, s2, labels) = ([f64::NAN, 0.0], [0.0, 0.0], [1i64]);
        let (mut g1, mut g2, mut v) = (vec![0.0f64; 2], vec![0.0f64; 2], vec![0.0f64; 1]);
        let out = LossOutputs {
            values: Some(&mut v[..]),
            grad: Some(RowsMut::contiguous(&mut g1, 1, 2).unwrap()),
            grad_second: Some(RowsMut::contiguous(&mut g2, 1, 2).unwrap()),
        };
        let opts = RdropOptions {
            alpha: 0.0,
            ..RdropOptions::default()
        };
        rdrop_loss(
            Rows::contiguous(&s1, 1, 2).unwrap(),
            Rows::contiguous(&s2, 1, 2).unwrap(),
            classes(&labels),
            &opts,
            out,
        )
        .unwrap();
        assert!(v[0].is_nan() && g1.iter().chain(&g2).all(|x| x.is_nan()));
    }

    #[test]
    fn a_logit_beyond_the_domain_makes_a_loss_row_nan() {
        let (s, labels) = ([1e301, 0.0, 0.0, 0.0], [1i64, 0]);
        let mut v = vec![0.0f64; 2];
        let out = LossOutputs::<f64, f64> {
            values: Some(&mut v[..]),
            ..Default::default()
        };
        softmax_ce(
            Rows::contiguous(&s, 2, 2).unwrap(),
            classes(&labels),
            &SoftmaxCeOptions::default(),
            out,
        )
        .unwrap();
        assert!(v[0].is_nan() && v[1] == std::f64::consts::LN_2);
    }
}
