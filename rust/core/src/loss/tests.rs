//! Unit tests against naive float64 formulas on well-conditioned rows, and central differences;
//! the thorough references (PyTorch, bert4keras transcriptions, mpmath) live in the Python suite.

use super::*;
use crate::reduction::Reduction;
use crate::rows::{Rows, RowsMut};
use crate::testing::central_difference;

const S: [f64; 5] = [0.3, -1.2, 2.0, 0.7, -0.4];
const T: [f64; 5] = [0.1, -0.8, 1.5, 1.1, -0.9];
const Y: [f64; 5] = [0.1, 0.0, 0.6, 0.3, 0.0];
const NEG_INF: f64 = f64::NEG_INFINITY;

fn lse(x: &[f64]) -> f64 {
    let m = x.iter().cloned().fold(NEG_INF, f64::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

fn naive_ce(s: &[f64], y: &[f64]) -> f64 {
    let l = lse(s);
    s.iter().zip(y).map(|(s, y)| y * (l - s)).sum()
}

fn naive_kl(s: &[f64], t: &[f64]) -> f64 {
    let (ls, lt) = (lse(s), lse(t));
    s.iter().zip(t).map(|(s, t)| (s - ls).exp() * ((s - ls) - (t - lt))).sum()
}

fn onehot(c: usize, n: usize) -> Vec<f64> {
    (0..n).map(|i| f64::from(u8::from(i == c))).collect()
}

fn rows(x: &[f64]) -> Rows<'_, f64> {
    Rows::contiguous(x, 1, x.len()).unwrap()
}

/// Outputs of a two-input loss on one row: both gradients, no values.
fn both_grads<'a>(g1: &'a mut [f64], g2: &'a mut [f64]) -> LossOutputs<'a, f64, f64> {
    let (n1, n2) = (g1.len(), g2.len());
    LossOutputs {
        values: None,
        grad: Some(RowsMut::contiguous(g1, 1, n1).unwrap()),
        grad_second: Some(RowsMut::contiguous(g2, 1, n2).unwrap()),
    }
}

/// Checks `grad` against central differences of `f` at `x`.
fn check_grad(what: &str, x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) {
    for i in 0..x.len() {
        let fd = central_difference(&f, x, i);
        assert!((fd - grad[i]).abs() < 1e-7, "{what}, class {i}: fd {fd} vs {}", grad[i]);
    }
}

fn ce(s: &[f64], target: Target<'_, f64>, opts: &SoftmaxCeOptions<'_>) -> (f64, Vec<f64>) {
    let mut g = vec![0.0; s.len()];
    let out =
        LossOutputs::<f64, f64> { grad: Some(RowsMut::contiguous(&mut g, 1, s.len()).unwrap()), ..Default::default() };
    let r = softmax_ce(rows(s), target, opts, out).unwrap();
    (r.value, g)
}

#[test]
fn softmax_ce_matches_naive_formulas_and_differences() {
    let labels = [2i64];
    let hard = Target::Classes { labels: &labels, ignore_index: -100 };
    for (eps, tau) in [(0.0, 1.0), (0.1, 1.0), (0.2, 1.7)] {
        let opts = SoftmaxCeOptions { label_smoothing: eps, temperature: tau, ..Default::default() };
        let scaled: Vec<f64> = S.iter().map(|s| s / tau).collect();
        let smoothed: Vec<f64> = onehot(2, 5).iter().map(|y| (1.0 - eps) * y + eps / 5.0).collect();
        let (v, g) = ce(&S, hard, &opts);
        assert!((v - naive_ce(&scaled, &smoothed)).abs() < 1e-14, "ε={eps} τ={tau}");
        check_grad("hard ce", &S, &g, |x| ce(x, hard, &opts).0);
        let soft = Target::Probs(rows(&Y));
        let (v, g) = ce(&S, soft, &opts);
        let smoothed: Vec<f64> = Y.iter().map(|y| (1.0 - eps) * y + eps / 5.0).collect();
        assert!((v - naive_ce(&scaled, &smoothed)).abs() < 1e-14);
        check_grad("soft ce", &S, &g, |x| ce(x, soft, &opts).0);
    }
}

#[test]
fn softmax_ce_keeps_a_tiny_loss() {
    // −log p_0 = log1p(e^{−50} + e^{−60}) ≈ 1.93e-22, which lse − s_0 rounds to 0
    let s = [50.0, 0.0, -10.0];
    let labels = [0i64];
    let (v, g) = ce(&s, Target::Classes { labels: &labels, ignore_index: -1 }, &Default::default());
    let expect = (-50f64).exp() + (-60f64).exp();
    assert!((v - expect).abs() <= 1e-15 * expect, "{v} vs {expect}");
    assert!((g[0] + expect).abs() <= 1e-15 * expect, "{} vs {}", g[0], -expect);
}

#[test]
fn ignored_rows_do_not_count_for_the_mean() {
    let s = [S, T, S].concat();
    let labels = [1i64, -100, 3];
    let target: Target<'_, f64> = Target::Classes { labels: &labels, ignore_index: -100 };
    let mut g = vec![0.0; 15];
    let opts = SoftmaxCeOptions { reduction: Reduction::Mean, ..Default::default() };
    let out = LossOutputs::<f64, f64> { grad: Some(RowsMut::contiguous(&mut g, 3, 5).unwrap()), ..Default::default() };
    let r = softmax_ce(Rows::contiguous(&s, 3, 5).unwrap(), target, &opts, out).unwrap();
    let expect = (naive_ce(&S, &onehot(1, 5)) + naive_ce(&S, &onehot(3, 5))) / 2.0;
    assert!((r.value - expect).abs() < 1e-14);
    assert_eq!(r.counted, 2);
    assert!(g[5..10].iter().all(|x| *x == 0.0));
    let (_, g0) = ce(&S, Target::Classes { labels: &[1], ignore_index: -100 }, &Default::default());
    assert!((g[0] - g0[0] / 2.0).abs() < 1e-16);
}

#[test]
fn absent_classes_and_bad_values() {
    let labels = [0i64];
    let hard: Target<'_, f64> = Target::Classes { labels: &labels, ignore_index: -100 };
    // −inf is an absent class: same as dropping it
    let (v, g) = ce(&[0.5, NEG_INF, 1.0], hard, &Default::default());
    assert!((v - naive_ce(&[0.5, 1.0], &[1.0, 0.0])).abs() < 1e-15);
    assert_eq!(g[1], 0.0);
    // label on an absent class: +inf, NaN gradients
    let (v, g) = ce(&[NEG_INF, 0.0, 1.0], hard, &Default::default());
    assert_eq!(v, f64::INFINITY);
    assert!(g.iter().all(|x| x.is_nan()));
    // NaN: NaN row
    let (v, _) = ce(&[0.0, f64::NAN, 1.0], hard, &Default::default());
    assert!(v.is_nan());
}

#[test]
fn bad_labels_are_errors_naming_row_and_value() {
    let s = [S, T].concat();
    let lg = Rows::contiguous(&s, 2, 5).unwrap();
    let opts = SoftmaxCeOptions::default();
    let e = softmax_ce::<f64, f64, f64>(
        lg,
        Target::Classes { labels: &[1, 5], ignore_index: -100 },
        &opts,
        LossOutputs::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("row 1 is 5"), "{e}");
    let mut y = [Y, Y].concat();
    y[7] = -0.5;
    let e = softmax_ce::<f64, f64, f64>(
        lg,
        Target::Probs(Rows::contiguous(&y, 2, 5).unwrap()),
        &opts,
        LossOutputs::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("-0.5 at row 1, class 2"), "{e}");
    let pos = [1i64, 3, 1];
    let e = sparse_multilabel_ce::<f64, f64>(
        rows(&S),
        Positives { indices: Rows::contiguous(&pos, 1, 3).unwrap(), pad: -1 },
        &Default::default(),
        LossOutputs::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("class 1 is listed twice"), "{e}");
    let bad_eps = SoftmaxCeOptions { label_smoothing: 1.5, ..Default::default() };
    assert!(softmax_ce::<f64, f64, f64>(
        lg,
        Target::Classes { labels: &[1, 1], ignore_index: -100 },
        &bad_eps,
        LossOutputs::default()
    )
    .is_err());
}

fn naive_bce(s: &[f64], y: &[f64], pw: &[f64], w: &[f64]) -> f64 {
    let sp = |x: f64| (1.0 + x.exp()).ln();
    (0..s.len()).map(|i| w[i] * (pw[i] * y[i] * sp(-s[i]) + (1.0 - y[i]) * sp(s[i]))).sum()
}

#[test]
fn bce_matches_naive_formula_and_differences() {
    let pw = [1.0, 2.0, 0.5, 3.0, 1.0];
    let w = [1.0, 0.5, 2.0, 1.0, 0.0];
    let run = |x: &[f64]| {
        let mut g = vec![0.0; 5];
        let opts = BceOptions { pos_weight: Some(rows(&pw)), weights: Some(rows(&w)), ..Default::default() };
        let out =
            LossOutputs::<f64, f64> { grad: Some(RowsMut::contiguous(&mut g, 1, 5).unwrap()), ..Default::default() };
        (bce(rows(x), rows(&Y), &opts, out).unwrap().value, g)
    };
    let (v, g) = run(&S);
    assert!((v - naive_bce(&S, &Y, &pw, &w)).abs() < 1e-14);
    check_grad("bce", &S, &g, |x| run(x).0);
}

fn ml(s: &[f64], y: &[f64]) -> (f64, Vec<f64>) {
    let mut g = vec![0.0; s.len()];
    let out =
        LossOutputs::<f64, f64> { grad: Some(RowsMut::contiguous(&mut g, 1, s.len()).unwrap()), ..Default::default() };
    (multilabel_ce(rows(s), rows(y), &Default::default(), out).unwrap().value, g)
}

fn naive_multilabel(s: &[f64], y: &[f64]) -> f64 {
    let neg: Vec<f64> = s.iter().zip(y).map(|(s, y)| s + (1.0 - y).ln()).chain([0.0]).collect();
    let pos: Vec<f64> = s.iter().zip(y).map(|(s, y)| -s + y.ln()).chain([0.0]).collect();
    lse(&neg) + lse(&pos)
}

#[test]
fn multilabel_matches_naive_formula_and_differences() {
    for y in [Y, [1.0, 0.0, 1.0, 0.0, 0.0]] {
        let (v, g) = ml(&S, &y);
        assert!((v - naive_multilabel(&S, &y)).abs() < 1e-14);
        check_grad("multilabel", &S, &g, |x| ml(x, &y).0);
    }
}

#[test]
fn multilabel_with_one_positive_is_softmax_ce_against_the_negatives() {
    // log(1 + Σ_neg e^{s}) + log(1 + e^{−s_j}) = CE of class j over [s_j, negatives] (+ 0 with s_j appended)
    let y = onehot(2, 5);
    let (v, _) = ml(&S, &y);
    let mut row = vec![0.0];
    row.extend(S.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, s)| s - S[2]));
    let ce_of_j = naive_ce(&row, &onehot(0, row.len()));
    let neg_plus_zero: Vec<f64> = S.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, s)| *s).chain([0.0]).collect();
    let expect = lse(&neg_plus_zero) + (1.0 + (-S[2]).exp()).ln();
    assert!((v - expect).abs() < 1e-14);
    assert!(ce_of_j > 0.0);
}

#[test]
fn sparse_and_globalpointer_equal_the_dense_loss() {
    let y = [1.0, 0.0, 1.0, 0.0, 0.0];
    let (dense, dense_g) = ml(&S, &y);
    let pos = [2i64, -1, 0];
    let mut g = vec![0.0; 5];
    let out = LossOutputs::<f64, f64> { grad: Some(RowsMut::contiguous(&mut g, 1, 5).unwrap()), ..Default::default() };
    let positives = Positives { indices: Rows::contiguous(&pos, 1, 3).unwrap(), pad: -1 };
    let v = sparse_multilabel_ce(rows(&S), positives, &Default::default(), out).unwrap().value;
    assert!((v - dense).abs() < 1e-14);
    assert!(g.iter().zip(&dense_g).all(|(a, b)| (a - b).abs() < 1e-15));

    // GlobalPointer, L = 3, token 2 masked: the present spans are (0,0), (0,1), (1,1)
    let logits: Vec<f64> = (0..9).map(|i| (i as f64 * 0.37).sin() * 3.0).collect();
    let spans = [0i64, 1, -1, -1];
    let mask = [1u8, 1, 0];
    let mut g = vec![1.0; 9];
    let out = LossOutputs::<f64, f64> { grad: Some(RowsMut::contiguous(&mut g, 1, 9).unwrap()), ..Default::default() };
    let opts = GlobalPointerOptions { token_mask: Some(Rows::contiguous(&mask, 1, 3).unwrap()), ..Default::default() };
    let positives = Positives { indices: Rows::contiguous(&spans, 1, 4).unwrap(), pad: -1 };
    let v = globalpointer_ce(Rows::contiguous(&logits, 1, 9).unwrap(), positives, &opts, out).unwrap().value;
    let masked: Vec<f64> = (0..9).map(|c| if [0, 1, 4].contains(&c) { logits[c] } else { NEG_INF }).collect();
    let (dense, dense_g) = ml(&masked, &onehot(1, 9));
    assert!((v - dense).abs() < 1e-14);
    assert!(g.iter().zip(&dense_g).all(|(a, b)| (a - b).abs() < 1e-15), "{g:?} vs {dense_g:?}");
}

#[test]
fn gamma_ce_at_zero_is_softmax_ce_and_its_gradient_matches_differences() {
    let labels = [3i64];
    let run = |x: &[f64], gamma: f64, threshold: Option<f64>| {
        let mut g = vec![0.0; 5];
        let out =
            LossOutputs::<f64, f64> { grad: Some(RowsMut::contiguous(&mut g, 1, 5).unwrap()), ..Default::default() };
        let opts = GammaOptions { gamma, threshold, ..Default::default() };
        (gamma_ce(rows(x), &labels, &opts, out).unwrap().value, g)
    };
    let (v, g) = run(&S, 0.0, None);
    let (c, cg) = ce(&S, Target::Classes { labels: &labels, ignore_index: -100 }, &Default::default());
    assert_eq!(v, c);
    assert_eq!(g, cg);
    let (_, g) = run(&S, 0.3, None);
    check_grad("gamma_ce", &S, &g, |x| run(x, 0.3, None).0);
    // threshold: gradient max(b, r)·(p − onehot)
    let (_, g) = run(&S, 0.3, Some(0.9));
    assert!(g.iter().zip(&cg).all(|(a, b)| (a - 0.9 * b).abs() < 1e-15));
}

#[test]
fn kd_loss_matches_formula_and_differences() {
    let labels = [2i64];
    let (tau, alpha) = (2.5, 0.7);
    let run = |s: &[f64], t: &[f64]| {
        let (mut gs, mut gt) = (vec![0.0; 5], vec![0.0; 5]);
        let out = both_grads(&mut gs, &mut gt);
        let opts = KdOptions { temperature: tau, alpha, ..Default::default() };
        let target: Option<Target<'_, f64>> = Some(Target::Classes { labels: &labels, ignore_index: -100 });
        (kd_loss(rows(s), rows(t), target, &opts, out).unwrap().value, gs, gt)
    };
    let (v, gs, gt) = run(&S, &T);
    let st: Vec<f64> = S.iter().map(|x| x / tau).collect();
    let tt: Vec<f64> = T.iter().map(|x| x / tau).collect();
    let expect = (1.0 - alpha) * naive_ce(&S, &onehot(2, 5)) + alpha * tau * tau * naive_kl(&tt, &st);
    assert!((v - expect).abs() < 1e-14);
    check_grad("kd student", &S, &gs, |x| run(x, &T).0);
    check_grad("kd teacher", &T, &gt, |x| run(&S, x).0);
}

#[test]
fn rdrop_matches_formula_and_differences() {
    let labels = [1i64];
    let y = [1.0, 0.0, 1.0, 0.0, 0.0];
    for kind in [RdropKind::Softmax, RdropKind::Sigmoid] {
        let run = |a: &[f64], b: &[f64]| {
            let (mut g1, mut g2) = (vec![0.0; 5], vec![0.0; 5]);
            let out = both_grads(&mut g1, &mut g2);
            let target = match kind {
                RdropKind::Softmax => Target::Classes { labels: &labels, ignore_index: -100 },
                RdropKind::Sigmoid => Target::Probs(rows(&y)),
            };
            let opts = RdropOptions { alpha: 4.0, kind, ..Default::default() };
            (rdrop_loss(rows(a), rows(b), target, &opts, out).unwrap().value, g1, g2)
        };
        let (v, g1, g2) = run(&S, &T);
        let expect = match kind {
            RdropKind::Softmax => {
                naive_ce(&S, &onehot(1, 5)) + naive_ce(&T, &onehot(1, 5)) + 2.0 * (naive_kl(&S, &T) + naive_kl(&T, &S))
            }
            RdropKind::Sigmoid => {
                let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
                let kl: f64 = S.iter().zip(&T).map(|(a, b)| (sig(*a) - sig(*b)) * (a - b)).sum();
                naive_multilabel(&S, &y) + naive_multilabel(&T, &y) + 2.0 * kl
            }
        };
        assert!((v - expect).abs() < 1e-13, "{kind:?}: {v} vs {expect}");
        check_grad("rdrop s1", &S, &g1, |x| run(x, &T).0);
        check_grad("rdrop s2", &T, &g2, |x| run(&S, x).0);
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let (nrows, cols) = (64, 3000);
    let s: Vec<f32> = (0..nrows * cols).map(|i| ((i * 7919) % 1000) as f32 / 97.0).collect();
    let labels: Vec<i64> = (0..nrows as i64).map(|r| (r * 37) % cols as i64).collect();
    let compute = || {
        let mut v = vec![0.0f32; nrows];
        let mut g = vec![0.0f32; nrows * cols];
        let out = LossOutputs::<f32, f32> {
            values: Some(&mut v[..]),
            grad: Some(RowsMut::contiguous(&mut g, nrows, cols).unwrap()),
            grad_second: None,
        };
        let opts = SoftmaxCeOptions { label_smoothing: 0.1, reduction: Reduction::Sum, ..Default::default() };
        let target: Target<'_, f32> = Target::Classes { labels: &labels, ignore_index: -100 };
        let r = softmax_ce(Rows::contiguous(&s, nrows, cols).unwrap(), target, &opts, out).unwrap();
        (r.value, v, g)
    };
    let (one, two) = crate::testing::with_1_and_2_threads(compute);
    assert_eq!(one.0.to_bits(), two.0.to_bits());
    assert_eq!(one.1, two.1);
    assert_eq!(one.2, two.2);
}
