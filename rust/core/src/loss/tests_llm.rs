//! Unit tests of the LLM-training options of `softmax_ce` (class weights, z-loss, soft-capping,
//! accuracy) against naive float64 formulas and central differences; the PyTorch and
//! Liger-Kernel references live in the Python suite (tests/test_llm_options.py).

use super::*;
use crate::reduction::Reduction;
use crate::rows::{Rows, RowsMut};

const S: [f64; 10] = [0.3, -1.2, 2.0, 0.7, -0.4, 1.1, 0.05, -2.5, 1.9, 0.6];
const W: [f64; 5] = [0.5, 2.0, 1.0, 0.25, 3.0];

fn lse(x: &[f64]) -> f64 {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// PyTorch's F.cross_entropy(x, y, weight=w, label_smoothing=ε, reduction="none") of one row,
/// plus z · lse², on the capped logits: (1−ε) w_y (lse − x_y) + ε/C Σ w_i (lse − x_i).
fn naive_row(x: &[f64], y: usize, w: &[f64], eps: f64, z: f64, cap: Option<f64>) -> f64 {
    let x: Vec<f64> = x.iter().map(|v| cap.map_or(*v, |c| c * (v / c).tanh())).collect();
    let l = lse(&x);
    let c = x.len() as f64;
    let smooth: f64 = x.iter().zip(w).map(|(x, w)| w * (l - x)).sum();
    (1.0 - eps) * w[y] * (l - x[y]) + eps / c * smooth + z * l * l
}

struct Call<'a> {
    opts: SoftmaxCeOptions<'a>,
    labels: &'a [i64],
}

/// (reduced value, z-term reduced, per-row values, gradient, accuracy)
fn run(x: &[f64], c: &Call<'_>) -> (f64, f64, Vec<f64>, Vec<f64>, f64) {
    let rows = c.labels.len();
    let cols = x.len() / rows;
    let (mut v, mut g, mut zv) = (vec![0.0; rows], vec![0.0; x.len()], vec![0.0; rows]);
    let out = LossOutputs::<f64, f64> {
        values: Some(&mut v),
        grad: Some(RowsMut::contiguous(&mut g, rows, cols).unwrap()),
        grad_second: None,
    };
    let extra = CeExtraOutputs { z_values: Some(&mut zv), correct: None, accuracy: true };
    let target: Target<'_, f64> = Target::Classes { labels: c.labels, ignore_index: -100 };
    let r = softmax_ce_ext(Rows::contiguous(x, rows, cols).unwrap(), target, &c.opts, out, extra).unwrap();
    (r.loss.value, r.z_loss, v, g, r.accuracy)
}

fn check_grad(what: &str, x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) {
    for i in 0..x.len() {
        let fd = crate::testing::central_difference(&f, x, i);
        assert!((fd - grad[i]).abs() < 2e-7 * (1.0 + fd.abs()), "{what}, element {i}: fd {fd} vs {}", grad[i]);
    }
}

#[test]
fn weight_z_loss_and_softcap_match_the_definitions_in_every_reduction() {
    let labels = [2i64, -100, 4, 1];
    let x: Vec<f64> = [S, S.map(|v| 0.7 * v - 0.2)].concat().into_iter().chain(S.iter().map(|v| 3.0 * v)).collect();
    let x = &x[..20];
    for (eps, z, cap, weighted) in
        [(0.0, 0.0, None, true), (0.1, 1e-2, None, true), (0.2, 0.0, Some(1.5), true), (0.1, 0.05, Some(2.0), false)]
    {
        let ones = [1.0; 5];
        let w: &[f64] = if weighted { &W } else { &ones };
        let per_row: Vec<f64> = labels
            .iter()
            .enumerate()
            .map(|(r, &y)| if y < 0 { 0.0 } else { naive_row(&x[5 * r..5 * r + 5], y as usize, w, eps, z, cap) })
            .collect();
        let zs: Vec<f64> = labels
            .iter()
            .enumerate()
            .map(|(r, &y)| {
                let xs: Vec<f64> = x[5 * r..5 * r + 5].iter().map(|v| cap.map_or(*v, |c| c * (v / c).tanh())).collect();
                if y < 0 {
                    0.0
                } else {
                    z * lse(&xs).powi(2)
                }
            })
            .collect();
        let (sum, zsum): (f64, f64) = (per_row.iter().sum(), zs.iter().sum());
        // PyTorch's weighted mean divides the CE part by Σ w_y over the rows not ignored;
        // Liger-Kernel divides the z-term by the number of those rows
        let den: f64 = labels.iter().filter(|&&y| y >= 0).map(|&y| w[y as usize]).sum();
        let mean = (sum - zsum) / den + zsum / 3.0;
        for (reduction, want, want_z) in [
            (Reduction::None, sum, zsum),
            (Reduction::Sum, sum, zsum),
            (Reduction::Mean, mean, zsum / 3.0),
            (Reduction::BatchMean, sum / 4.0, zsum / 4.0),
        ] {
            let call = Call {
                opts: SoftmaxCeOptions {
                    label_smoothing: eps,
                    reduction,
                    weight: weighted.then_some(&W[..]),
                    z_loss: z,
                    softcap: cap,
                    ..Default::default()
                },
                labels: &labels,
            };
            let (v, zr, rows_v, g, acc) = run(x, &call);
            let what = format!("ε={eps} z={z} cap={cap:?} weighted={weighted} {reduction:?}");
            assert!((v - want).abs() < 1e-13 * want.abs().max(1.0), "{what}: {v} vs {want}");
            assert!((zr - want_z).abs() < 1e-13 * want_z.abs().max(1.0), "{what}: z {zr} vs {want_z}");
            if reduction == Reduction::None {
                for (a, b) in rows_v.iter().zip(&per_row) {
                    assert!((a - b).abs() < 1e-13, "{what}: row {a} vs {b}");
                }
            }
            check_grad(&what, x, &g, |xx| run(xx, &call).0);
            // the argmax of rows 0, 2, 3 is 2, 2, 3 against labels 2, 4, 1: one of three
            assert_eq!(acc, 1.0 / 3.0, "{what}");
        }
    }
}

#[test]
fn softcap_gradient_keeps_its_digits_far_out_on_the_tanh() {
    // x/c = 20: 1 − tanh² is 0 in float64, the slope 4e^{−40}/(1+e^{−40})² is not
    let (c, x) = (1.0, [20.0, 0.0, -1.0]);
    let call = Call { opts: SoftmaxCeOptions { softcap: Some(c), ..Default::default() }, labels: &[1] };
    let (_, _, _, g, _) = run(&x, &call);
    let capped: Vec<f64> = x.iter().map(|v| (v / c).tanh() * c).collect();
    let p0 = (capped[0] - lse(&capped)).exp();
    let want = p0 * 4.0 * (-40f64).exp() / (1.0 + (-40f64).exp()).powi(2);
    assert!(g[0] > 0.0 && (g[0] - want).abs() <= 1e-13 * want, "{} vs {want}", g[0]);
}

#[test]
fn accuracy_takes_the_first_largest_logit_and_counts_only_counted_rows() {
    let x = [1.0, 3.0, 3.0, 0.0, /* row 1 */ 2.0, 2.0, 0.0, 0.0, /* row 2 */ 0.0, 0.0, 0.0, 5.0];
    let labels = [2i64, 0, -100];
    let mut correct = vec![9.0f64; 3];
    let extra = CeExtraOutputs { z_values: None, correct: Some(&mut correct), accuracy: true };
    let target: Target<'_, f64> = Target::Classes { labels: &labels, ignore_index: -100 };
    let opts = SoftmaxCeOptions { reduction: Reduction::Mean, ..Default::default() };
    let out = LossOutputs::<f64, f64>::default();
    let r = softmax_ce_ext(Rows::contiguous(&x, 3, 4).unwrap(), target, &opts, out, extra).unwrap();
    assert_eq!(correct, vec![0.0, 1.0, 0.0]);
    assert_eq!((r.correct, r.loss.counted, r.accuracy), (1, 2, 0.5));
    // probability targets: the target's argmax
    let y = [0.1, 0.2, 0.7, 0.0];
    let extra = CeExtraOutputs::<f64> { z_values: None, correct: None, accuracy: true };
    let r = softmax_ce_ext(
        Rows::contiguous(&[0.0, 1.0, 4.0, 0.0], 1, 4).unwrap(),
        Target::Probs(Rows::contiguous(&y, 1, 4).unwrap()),
        &SoftmaxCeOptions::default(),
        LossOutputs::<f64, f64>::default(),
        extra,
    )
    .unwrap();
    assert_eq!(r.accuracy, 1.0);
}

#[test]
fn unit_weights_give_the_unweighted_results() {
    let labels = [2i64, 4];
    let x = S;
    let plain = Call { opts: SoftmaxCeOptions { label_smoothing: 0.1, ..Default::default() }, labels: &labels };
    let ones = [1.0; 5];
    let unit = Call {
        opts: SoftmaxCeOptions { label_smoothing: 0.1, weight: Some(&ones), ..Default::default() },
        labels: &labels,
    };
    let (a, b) = (run(&x, &plain), run(&x, &unit));
    assert!((a.0 - b.0).abs() < 1e-15);
    for (u, v) in a.3.iter().zip(&b.3) {
        assert!((u - v).abs() < 1e-16);
    }
}

#[test]
fn bad_options_are_errors_naming_them() {
    let x = S;
    let labels = [2i64, 4];
    let target: Target<'_, f64> = Target::Classes { labels: &labels, ignore_index: -100 };
    let call = |opts: SoftmaxCeOptions<'_>| {
        softmax_ce(Rows::contiguous(&x, 2, 5).unwrap(), target, &opts, LossOutputs::<f64, f64>::default())
            .unwrap_err()
            .to_string()
    };
    let short = [1.0; 4];
    assert!(call(SoftmaxCeOptions { weight: Some(&short), ..Default::default() }).contains("weight holds 4"));
    let neg = [1.0, -1.0, 1.0, 1.0, 1.0];
    assert!(call(SoftmaxCeOptions { weight: Some(&neg), ..Default::default() }).contains("at class 1"));
    assert!(call(SoftmaxCeOptions { z_loss: -1e-4, ..Default::default() }).contains("z_loss"));
    assert!(call(SoftmaxCeOptions { z_loss: f64::NAN, ..Default::default() }).contains("z_loss"));
    for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(call(SoftmaxCeOptions { softcap: Some(c), ..Default::default() }).contains("softcap"), "{c}");
    }
}

#[test]
fn absent_classes_stay_absent_under_the_cap() {
    // −inf is a class that is not there: capping must not turn it into −c
    let x = [0.5, f64::NEG_INFINITY, -0.3];
    let call = Call { opts: SoftmaxCeOptions { softcap: Some(2.0), ..Default::default() }, labels: &[0] };
    let (v, _, _, g, _) = run(&x, &call);
    let capped = [2.0 * (0.25f64).tanh(), 2.0 * (-0.15f64).tanh()];
    assert!((v - (lse(&capped) - capped[0])).abs() < 1e-15);
    assert_eq!(g[1], 0.0);
}
