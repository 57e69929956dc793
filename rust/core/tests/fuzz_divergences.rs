//! Property-based fuzzing of the divergence kernels (proptest: cargo-fuzz needs a nightly
//! toolchain). Random shapes, row strides, values (finite, huge, subnormal, ±inf, NaN), masks,
//! weights, temperatures, β, reductions, element types and requested outputs. Every call must return
//! (never panic), reject exactly the invalid options, and give what MATH.md's "−inf, masks and bad
//! values" promises, row by row:
//!
//! - no class present → 0 with zero gradients; a NaN or +inf among the present classes, or a finite
//!   logit whose scaled value |x/τ| exceeds 1e300 (the kernels' domain) → NaN;
//! - otherwise the value is ≥ 0 (never NaN for finite input), +inf exactly where the supports
//!   differ, and finite on finite rows whose scaled logits stay within ±1e150;
//! - a finite value has finite gradients that are exactly 0 on absent classes; a non-finite value
//!   has NaN gradients;
//! - equal rows give exactly 0; the reductions agree with the per-row values.
//!
//! Budget: `PROPTEST_CASES` (default 600 cases per property; the CI runs the default).

// NaN-aware comparisons (`!(x <= y)`) are the point of the oracle
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use half::f16;
use logitdiv_core::divergence::MAX_SCALED_LOGIT;
use logitdiv_core::{pair_divergence, Elem, Error, PairKind, PairOptions, PairOutputs, Reduction, Rows, RowsMut};
use proptest::prelude::*;

mod common;
use common::{config, span};

/// A logit: mostly ordinary, sometimes extreme or non-finite.
fn logit() -> impl Strategy<Value = f64> {
    common::logit(
        8,
        vec![0.0, -0.0, 1e-300, -1e-300, 5e-324, 40.0, -40.0, 700.0, -700.0, 746.0, -746.0],
        vec![1e30, -1e30, 1e150, -1e150, 1e300, -1e300, f64::MAX, f64::MIN, 65504.0, 3.0e38],
    )
}

const KINDS: [PairKind; 5] = [
    PairKind::Kl,
    PairKind::SymKl,
    PairKind::Js,
    PairKind::SigmoidKl,
    PairKind::SigmoidSymKl,
];
const REDUCTIONS: [Reduction; 4] = [Reduction::None, Reduction::Sum, Reduction::Mean, Reduction::BatchMean];

#[derive(Debug, Clone)]
struct Case {
    kind: PairKind,
    rows: usize,
    cols: usize,
    s_stride: usize,
    t_stride: usize,
    s: Vec<f64>,
    t: Vec<f64>,
    /// (stride 0 or cols, data)
    mask: Option<(usize, Vec<u8>)>,
    weights: Option<(usize, Vec<f64>)>,
    temperature: f64,
    beta: f64,
    reduction: Reduction,
    want_values: bool,
    want_gs: bool,
    want_gt: bool,
    /// t is a copy of s (equal rows; shown in a failing case)
    #[allow(dead_code)]
    equal: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (0usize..5, 1usize..9, 0usize..3, 0usize..3, 0usize..5, any::<bool>()).prop_flat_map(|(rows, cols, ps, pt, k, equal)| {
        let (s_stride, t_stride) = (cols + ps, cols + pt);
        let per_row = prop_oneof![Just(0usize), Just(cols)];
        (
            Just((rows, cols, s_stride, t_stride, KINDS[k], equal)),
            prop::collection::vec(logit(), span(rows, cols, s_stride)),
            prop::collection::vec(logit(), span(rows, cols, t_stride)),
            prop::option::weighted(0.4, (per_row.clone(), prop::collection::vec(prop::sample::select(vec![0u8, 1, 1, 7]), rows.max(1) * cols))),
            prop::option::weighted(
                0.4,
                (
                    per_row,
                    prop::collection::vec(
                        prop_oneof![
                            8 => prop::sample::select(vec![0.0, 0.5, 1.0, 2.0, 1e-3, 1e3]),
                            1 => prop::sample::select(vec![-1.0, f64::NAN, f64::INFINITY, -0.0]),
                        ],
                        rows.max(1) * cols,
                    ),
                ),
            ),
            prop_oneof![
                8 => prop::sample::select(vec![1.0, 0.5, 2.0, 0.1, 10.0, 1e-3, 1e3]),
                1 => prop::sample::select(vec![1e-300, 1e300, 2.3e-308, 5e-324, 0.0, -1.0, f64::NAN, f64::INFINITY]),
            ],
            prop_oneof![
                8 => prop::sample::select(vec![0.5, 0.0, 1.0, 0.25, 0.9, 1e-12]),
                1 => prop::sample::select(vec![-0.1, 1.5, f64::NAN, f64::INFINITY]),
            ],
            (0usize..4, any::<bool>(), any::<bool>(), any::<bool>()),
        )
    })
    .prop_map(|((rows, cols, s_stride, t_stride, kind, equal), s, t, mask, weights, temperature, beta, (red, v, gs, gt))| {
        let t = if equal && s_stride == t_stride { s.clone() } else { t };
        Case {
            kind,
            rows,
            cols,
            s_stride,
            t_stride,
            equal: equal && s_stride == t_stride,
            s,
            t,
            mask,
            weights,
            temperature,
            beta,
            reduction: REDUCTIONS[red],
            want_values: v,
            want_gs: gs,
            want_gt: gt,
        }
    })
}

struct Outcome {
    result: Result<f64, Error>,
    counted: usize,
    values: Vec<f64>,
    gs: Vec<f64>,
    gt: Vec<f64>,
}

fn is_sigmoid(k: PairKind) -> bool {
    matches!(k, PairKind::SigmoidKl | PairKind::SigmoidSymKl)
}

/// Runs the case with element type E (inputs rounded to E), with the given reduction.
fn run<E: Elem>(c: &Case, reduction: Reduction, values: bool, gs: bool, gt: bool) -> Outcome {
    let s: Vec<E> = c.s.iter().map(|&x| E::from_f64(x)).collect();
    let t: Vec<E> = c.t.iter().map(|&x| E::from_f64(x)).collect();
    let s_rows = Rows::new(&s, c.rows, c.cols, c.s_stride).unwrap();
    let t_rows = Rows::new(&t, c.rows, c.cols, c.t_stride).unwrap();
    let mask = c
        .mask
        .as_ref()
        .map(|(st, m)| Rows::new(m, c.rows, c.cols, *st).unwrap());
    let weights = c
        .weights
        .as_ref()
        .map(|(st, w)| Rows::new(w, c.rows, c.cols, *st).unwrap());
    let opts = PairOptions {
        temperature: c.temperature,
        beta: c.beta,
        mask,
        weights,
        reduction,
        ..PairOptions::default()
    };
    let n = c.rows * c.cols;
    // values in f64: the kernel's own value, before any rounding to a narrower value type
    let (mut v, mut g1, mut g2) = (
        vec![-7.0f64; c.rows],
        vec![E::from_f64(-7.0); n],
        vec![E::from_f64(-7.0); n],
    );
    let out = PairOutputs::<E, f64> {
        values: values.then_some(&mut v[..]),
        grad_s: gs.then(|| RowsMut::contiguous(&mut g1, c.rows, c.cols).unwrap()),
        grad_t: gt.then(|| RowsMut::contiguous(&mut g2, c.rows, c.cols).unwrap()),
    };
    let r = pair_divergence(c.kind, s_rows, t_rows, &opts, out);
    let f = |x: Vec<E>| x.into_iter().map(Elem::to_f64).collect::<Vec<f64>>();
    Outcome {
        counted: r.as_ref().map_or(0, |r| r.counted),
        result: r.map(|r| r.value),
        values: v,
        gs: f(g1),
        gt: f(g2),
    }
}

/// Whether the options are valid (the call must succeed exactly then).
fn options_valid(c: &Case) -> bool {
    let tau_ok = c.temperature.is_finite() && c.temperature > 0.0 && (1.0 / c.temperature).is_finite();
    let beta_ok = c.kind != PairKind::Js || (0.0..=1.0).contains(&c.beta);
    let weights_ok = match &c.weights {
        None => true,
        Some((st, w)) => {
            let read_rows = if *st == 0 { c.rows.min(1) } else { c.rows };
            is_sigmoid(c.kind)
                && (0..read_rows).all(|r| w[r * st..r * st + c.cols].iter().all(|x| x.is_finite() && *x >= 0.0))
        }
    };
    tau_ok && beta_ok && weights_ok
}

#[derive(Debug, PartialEq)]
enum Expect {
    /// no class present: exactly 0
    Zero,
    Nan,
    Inf,
    /// ≥ 0; finite when `bounded`
    Finite {
        bounded: bool,
    },
}

/// What row `r` must give, from the inputs as rounded to the element type (`round`).
fn expect_row(c: &Case, r: usize, round: impl Fn(f64) -> f64) -> (Expect, Vec<bool>, bool) {
    let inv_tau = 1.0 / c.temperature;
    let mut present = vec![false; c.cols];
    let (mut any, mut bad, mut s_any, mut t_any, mut mismatch, mut huge) = (false, false, false, false, false, false);
    let mut all_equal = true;
    for (i, p) in present.iter_mut().enumerate() {
        let m = c.mask.as_ref().is_none_or(|(st, m)| m[r * st + i] != 0);
        let w = c.weights.as_ref().map_or(1.0, |(st, w)| w[r * st + i]);
        let (x, y) = (round(c.s[r * c.s_stride + i]), round(c.t[r * c.t_stride + i]));
        let (a, b) = (x * inv_tau, y * inv_tau);
        if !m || (is_sigmoid(c.kind) && w == 0.0) {
            continue;
        }
        // NaN, +inf, or a finite logit whose scaled value is beyond ±1e300: the row is NaN
        let out = |x: f64, a: f64| !(a.abs() <= MAX_SCALED_LOGIT) && x != f64::NEG_INFINITY;
        if out(x, a) || out(y, b) {
            bad = true;
            any = true;
            continue;
        }
        if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
            continue;
        }
        *p = true;
        any = true;
        all_equal &= x.to_bits() == y.to_bits();
        s_any |= a > f64::NEG_INFINITY;
        t_any |= b > f64::NEG_INFINITY;
        let one_sided = (a == f64::NEG_INFINITY) != (b == f64::NEG_INFINITY);
        mismatch |= match c.kind {
            PairKind::Kl => a > f64::NEG_INFINITY && b == f64::NEG_INFINITY,
            PairKind::SymKl | PairKind::SigmoidSymKl => one_sided,
            PairKind::SigmoidKl => a > f64::NEG_INFINITY && b == f64::NEG_INFINITY,
            PairKind::Js | PairKind::Tv => false,
        };
        huge |= (a.abs() > 1e150 && a.is_finite())
            || (b.abs() > 1e150 && b.is_finite())
            || (((x - y) * inv_tau).is_infinite() && !one_sided)
            || inv_tau > 1e150;
    }
    let e = if !any {
        Expect::Zero
    } else if bad || (!is_sigmoid(c.kind) && (!s_any || !t_any)) {
        Expect::Nan
    } else if mismatch {
        Expect::Inf
    } else if all_equal {
        Expect::Zero
    } else {
        Expect::Finite { bounded: !huge }
    };
    (e, present, any)
}

fn check<E: Elem>(c: &Case) -> Result<(), TestCaseError> {
    let got = run::<E>(c, c.reduction, c.want_values, c.want_gs, c.want_gt);
    if !options_valid(c) {
        prop_assert!(
            matches!(got.result, Err(Error::BadArgument(_))),
            "invalid options accepted: {:?}",
            got.result.map(|_| ())
        );
        return Ok(());
    }
    let total = match &got.result {
        Ok(v) => *v,
        Err(e) => return Err(TestCaseError::fail(format!("valid call failed: {e}"))),
    };
    let round = |x: f64| E::from_f64(x).to_f64();
    let none = if c.reduction == Reduction::None && c.want_values {
        None
    } else {
        Some(run::<E>(c, Reduction::None, true, false, false))
    };
    let values = none.as_ref().map_or(&got.values, |o| &o.values);
    let mut counted = 0;
    for r in 0..c.rows {
        let v = values[r];
        let (e, present, any) = expect_row(c, r, round);
        match e {
            Expect::Zero => prop_assert!(v == 0.0, "row {r}: expected 0, got {v}"),
            Expect::Nan => prop_assert!(v.is_nan(), "row {r}: expected NaN, got {v}"),
            Expect::Inf => prop_assert!(v == f64::INFINITY, "row {r}: expected +inf, got {v}"),
            Expect::Finite { bounded } => {
                prop_assert!(v >= 0.0, "row {r}: expected a value ≥ 0, got {v}");
                if bounded {
                    prop_assert!(v.is_finite(), "row {r}: expected a finite value, got {v}");
                }
                if c.kind == PairKind::Js && bounded {
                    let h = |x: f64| if x > 0.0 { -x * x.ln() } else { 0.0 };
                    let bound = h(c.beta) + h(1.0 - c.beta);
                    prop_assert!(
                        v <= bound * (1.0 + 1e-6) + 1e-12,
                        "row {r}: js {v} above its bound {bound}"
                    );
                }
            }
        }
        let no_class = !any;
        counted += usize::from(!no_class);
        for (want, g) in [(c.want_gs, &got.gs), (c.want_gt, &got.gt)] {
            if !want {
                continue;
            }
            let row = &g[r * c.cols..(r + 1) * c.cols];
            if v.is_finite() {
                for (i, &x) in row.iter().enumerate() {
                    // a finite value has gradients that are not NaN, and finite ones in f64 on
                    // bounded rows (a narrower storage type may round a large gradient to ±inf)
                    prop_assert!(!x.is_nan(), "row {r}, class {i}: gradient {x} for a finite value {v}");
                    if E::NAME == "f64" && matches!(e, Expect::Finite { bounded: true }) {
                        prop_assert!(x.is_finite(), "row {r}, class {i}: gradient {x} for a finite value {v}");
                    }
                    if !present[i] {
                        prop_assert!(x == 0.0, "row {r}, class {i}: gradient {x} on an absent class");
                    }
                    if e == Expect::Zero && !no_class {
                        prop_assert!(x == 0.0, "row {r}, class {i}: gradient {x} on equal rows");
                    }
                }
            } else {
                prop_assert!(
                    row.iter().all(|x| x.is_nan()),
                    "row {r}: value {v} but gradients {row:?}"
                );
            }
        }
    }
    // the reductions agree with the per-row values (the sum is computed the same way: bit-identical)
    let sum = none.as_ref().map_or(Ok(total), |o| o.result.clone()).unwrap();
    let want = match c.reduction {
        Reduction::None | Reduction::Sum => sum,
        Reduction::Mean => {
            if counted == 0 {
                0.0
            } else {
                sum / counted as f64
            }
        }
        Reduction::BatchMean => {
            if c.rows == 0 {
                0.0
            } else {
                sum / c.rows as f64
            }
        }
    };
    prop_assert!(
        total.to_bits() == want.to_bits() || total.is_nan() && want.is_nan(),
        "{:?}: {total} vs {want}",
        c.reduction
    );
    if c.reduction != Reduction::None {
        prop_assert_eq!(got.counted, counted);
    }
    // values that were not asked for are not written; gradients not asked for are not written
    if !c.want_values {
        prop_assert!(got.values.iter().all(|&x| x == -7.0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(600))]

    #[test]
    fn divergences_f64(c in case()) {
        check::<f64>(&c)?;
    }

    #[test]
    fn divergences_f32(c in case()) {
        check::<f32>(&c)?;
    }

    #[test]
    fn divergences_f16(c in case()) {
        check::<f16>(&c)?;
    }
}

/// The failing cases the fuzzing found, kept as fixed tests.
mod regressions {
    use super::*;

    fn one_row(kind: PairKind, s: &[f64], t: &[f64], opts: &PairOptions<'_>, grads: bool) -> (f64, Vec<f64>, Vec<f64>) {
        let c = s.len();
        let (mut v, mut gs, mut gt) = (vec![0.0; 1], vec![0.0; c], vec![0.0; c]);
        let out = PairOutputs::<f64, f64> {
            values: Some(&mut v[..]),
            grad_s: grads.then(|| RowsMut::contiguous(&mut gs, 1, c).unwrap()),
            grad_t: grads.then(|| RowsMut::contiguous(&mut gt, 1, c).unwrap()),
        };
        pair_divergence(
            kind,
            Rows::contiguous(s, 1, c).unwrap(),
            Rows::contiguous(t, 1, c).unwrap(),
            opts,
            out,
        )
        .unwrap();
        (v[0], gs, gt)
    }

    /// The default options but for the temperature (the reproducers below are about extreme τ).
    fn at_temperature(temperature: f64) -> PairOptions<'static> {
        PairOptions {
            temperature,
            ..PairOptions::default()
        }
    }

    #[test]
    fn kl_of_one_class_at_a_huge_scaled_logit_is_zero_not_negative() {
        // w = d − dlse carried a rounding error of 3e285 ≫ |w| = 0: the KL term was −3e285
        let opts = at_temperature(1e-298);
        assert_eq!(
            one_row(PairKind::Kl, &[28.98056288903222], &[21.71819179595983], &opts, false).0,
            0.0
        );
    }

    #[test]
    fn js_on_logits_of_1e33_stays_within_its_bound() {
        // log p − log q lost its digits to lse = max + log Σ at |max| = 1e33: JS was 0.75 > 0.5623
        let opts = PairOptions {
            temperature: 1e-3,
            beta: 0.25,
            ..PairOptions::default()
        };
        let (v, _, _) = one_row(
            PairKind::Js,
            &[0.0, 0.0, 1e30, 1e30],
            &[0.0, 0.0, -5.856940575768658, f64::NEG_INFINITY],
            &opts,
            false,
        );
        let bound = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        assert!((v - bound).abs() <= 1e-12 * bound, "{v} vs {bound}");
    }

    #[test]
    fn a_large_weight_times_one_over_tau_gives_no_nan_gradient() {
        // (1/τ · w) overflowed to inf, and inf · 0 made the gradient of equal rows NaN
        let w = [1000.0];
        let opts = PairOptions {
            temperature: 2.3e-308,
            weights: Some(Rows::new(&w, 1, 1, 0).unwrap()),
            ..PairOptions::default()
        };
        let (v, gs, gt) = one_row(PairKind::SigmoidSymKl, &[0.0], &[0.0], &opts, true);
        assert_eq!((v, gs[0], gt[0]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn a_subnormal_temperature_is_refused() {
        // 1/τ = inf turned every logit into NaN or ±inf
        let opts = at_temperature(5e-324);
        let s = [0.0, 1.0];
        let out = PairOutputs::<f64, f64>::default();
        let r = pair_divergence(
            PairKind::Kl,
            Rows::contiguous(&s, 1, 2).unwrap(),
            Rows::contiguous(&s, 1, 2).unwrap(),
            &opts,
            out,
        );
        assert!(matches!(r, Err(Error::BadArgument(m)) if m.contains("reciprocal")));
    }

    #[test]
    fn finite_logits_scaled_beyond_the_domain_make_the_row_nan() {
        // 2.9e301 and −7.6 / 2.3e-308 = −inf (overflow): NaN, never a finite logit taken as absent
        let opts = at_temperature(2.3e-308);
        assert!(
            one_row(PairKind::Kl, &[-7.5585256317875125, 0.0], &[0.0, 0.0], &opts, false)
                .0
                .is_nan()
        );
        let opts = at_temperature(1e-300);
        assert!(one_row(PairKind::SigmoidKl, &[28.98], &[0.0], &opts, false).0.is_nan());
    }

    #[test]
    fn a_zero_stride_view_of_zero_rows_is_a_view() {
        let m = [1u8; 3];
        assert!(Rows::new(&m, 0, 3, 0).is_ok());
    }
}
