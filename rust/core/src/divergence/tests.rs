//! Unit tests against naive float64 formulas on well-conditioned rows; the thorough references
//! (mpmath, finite differences, identities, hypothesis) live in the Python test suite.

use super::*;

fn softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

fn naive_kl(s: &[f64], t: &[f64]) -> f64 {
    let (p, q) = (softmax(s), softmax(t));
    p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum()
}

fn run(kind: PairKind, s: &[f64], t: &[f64], opts: &PairOptions<'_>) -> (f64, Vec<f64>, Vec<f64>) {
    let c = s.len();
    let (mut gs, mut gt) = (vec![0.0; c], vec![0.0; c]);
    let mut v = vec![0.0f64; 1];
    let out = PairOutputs {
        values: Some(&mut v[..]),
        grad_s: Some(RowsMut::contiguous(&mut gs, 1, c).unwrap()),
        grad_t: Some(RowsMut::contiguous(&mut gt, 1, c).unwrap()),
    };
    let s_rows = Rows::contiguous(s, 1, c).unwrap();
    let t_rows = Rows::contiguous(t, 1, c).unwrap();
    pair_divergence(kind, s_rows, t_rows, opts, out).unwrap();
    (v[0], gs, gt)
}

const S: [f64; 5] = [0.3, -1.2, 2.0, 0.7, -0.4];
const T: [f64; 5] = [0.1, -0.8, 1.5, 1.1, -0.9];

#[test]
fn kl_matches_naive_formula() {
    let (v, _, _) = run(PairKind::Kl, &S, &T, &PairOptions::default());
    assert!((v - naive_kl(&S, &T)).abs() < 1e-14);
}

#[test]
fn sym_kl_is_sum_of_both_directions() {
    let (v, _, _) = run(PairKind::SymKl, &S, &T, &PairOptions::default());
    assert!((v - naive_kl(&S, &T) - naive_kl(&T, &S)).abs() < 1e-14);
}

#[test]
fn gradients_match_central_differences() {
    for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js, PairKind::SigmoidKl, PairKind::SigmoidSymKl] {
        let opts = PairOptions { temperature: 1.7, beta: 0.3, ..PairOptions::default() };
        let (_, gs, gt) = run(kind, &S, &T, &opts);
        let h = 1e-6;
        for i in 0..S.len() {
            for (which, g) in [(0, &gs), (1, &gt)] {
                let (mut sp, mut tp) = (S, T);
                let (mut sm, mut tm) = (S, T);
                if which == 0 {
                    sp[i] += h;
                    sm[i] -= h;
                } else {
                    tp[i] += h;
                    tm[i] -= h;
                }
                let fd = (run(kind, &sp, &tp, &opts).0 - run(kind, &sm, &tm, &opts).0) / (2.0 * h);
                assert!((fd - g[i]).abs() < 1e-7, "{kind:?} input {which} class {i}: fd {fd} vs {}", g[i]);
            }
        }
    }
}

#[test]
fn equal_rows_give_exact_zero() {
    for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js, PairKind::SigmoidKl, PairKind::SigmoidSymKl] {
        let (v, gs, gt) = run(kind, &S, &S, &PairOptions::default());
        assert_eq!(v, 0.0, "{kind:?}");
        assert!(gs.iter().chain(&gt).all(|g| *g == 0.0), "{kind:?}");
    }
}

#[test]
fn absent_in_both_is_ignored_and_absent_in_q_is_infinite() {
    let inf = f64::NEG_INFINITY;
    let (v, gs, _) = run(PairKind::Kl, &[0.5, inf, 1.0], &[0.2, inf, 0.8], &PairOptions::default());
    assert!((v - naive_kl(&[0.5, 1.0], &[0.2, 0.8])).abs() < 1e-15);
    assert_eq!(gs[1], 0.0);
    let (v, gs, _) = run(PairKind::Kl, &[0.5, 0.1, 1.0], &[0.2, inf, 0.8], &PairOptions::default());
    assert_eq!(v, f64::INFINITY);
    assert!(gs.iter().all(|g| g.is_nan()));
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let (rows, cols) = (64, 3000);
    let s: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1000) as f32 / 97.0).collect();
    let t: Vec<f32> = (0..rows * cols).map(|i| ((i * 104729) % 1000) as f32 / 101.0).collect();
    let compute = || {
        let mut v = vec![0.0f32; rows];
        let out = PairOutputs::<f32, f32> { values: Some(&mut v[..]), ..Default::default() };
        let opts = PairOptions { reduction: Reduction::Sum, ..Default::default() };
        let r = pair_divergence(
            PairKind::SymKl,
            Rows::contiguous(&s, rows, cols).unwrap(),
            Rows::contiguous(&t, rows, cols).unwrap(),
            &opts,
            out,
        )
        .unwrap();
        (r.value, v)
    };
    let (one, two) = crate::testing::with_1_and_2_threads(compute);
    assert_eq!(one.0.to_bits(), two.0.to_bits());
    assert_eq!(one.1, two.1);
}

#[test]
fn bad_options_are_rejected() {
    let s = Rows::contiguous(&S[..], 1, 5).unwrap();
    let bad_tau = PairOptions { temperature: -1.0, ..Default::default() };
    let e = pair_divergence::<f64, f64>(PairKind::Kl, s, s, &bad_tau, PairOutputs::default()).unwrap_err();
    assert!(e.to_string().contains("temperature"));
    let bad_beta = PairOptions { beta: 1.5, ..Default::default() };
    assert!(pair_divergence::<f64, f64>(PairKind::Js, s, s, &bad_beta, PairOutputs::default()).is_err());
    let t = Rows::contiguous(&S[..4], 1, 4).unwrap();
    assert!(pair_divergence::<f64, f64>(PairKind::Kl, s, t, &Default::default(), PairOutputs::default()).is_err());
}

/// KL(Bern(σ(a)) ‖ Bern(σ(a+d))) by its Taylor series in d: σ'(a) d²/2 + σ''(a) d³/6 + ….
fn bernoulli_kl_series(a: f64, d: f64) -> f64 {
    let (sp, sm) = (1.0 / (1.0 + (-a).exp()), 1.0 / (1.0 + a.exp()));
    let u = sp * sm;
    u * d * d / 2.0 + u * (sm - sp) * d * d * d / 6.0 + u * (1.0 - 6.0 * u) * d.powi(4) / 24.0
}

#[test]
fn nearly_identical_rows_keep_their_digits_with_a_temperature() {
    // Two-class rows [x, 0], [x + e, 0] at τ = 0.7: a = x/τ ≈ 30 and d = e/τ ≈ 1e-9. The KL is
    // ~5e-32; lse(a) − lse(b) taken as a plain difference (error ~ulp(30) = 3.6e-15) or w taken as
    // s/τ − t/τ would contribute errors of ~1e-29 instead.
    let tau = 0.7;
    for &(x, e) in &[(21.0, 7e-10), (-3.5, 2e-12), (7.0, 1e-6)] {
        let (s, t) = ([x, 0.0], [x + e, 0.0]);
        let d = (t[0] - s[0]) / tau;
        let expect = bernoulli_kl_series(s[0] / tau, d);
        let opts = PairOptions { temperature: tau, ..PairOptions::default() };
        for kind in [PairKind::Kl, PairKind::SigmoidKl] {
            let (s1, t1) = if kind == PairKind::Kl { (&s[..], &t[..]) } else { (&s[..1], &t[..1]) };
            let (v, _, _) = run(kind, s1, t1, &opts);
            assert!((v - expect).abs() <= 1e-10 * expect, "{kind:?} x={x} e={e}: {v} vs {expect}");
        }
    }
}

#[test]
fn minus_inf_against_an_underflowing_probability_is_infinite() {
    let ninf = f64::NEG_INFINITY;
    // softmax([0, −800])[1] = e^−800 underflows to 0 but is positive: KL against −inf is +inf
    for kind in [PairKind::Kl, PairKind::SymKl, PairKind::SigmoidKl, PairKind::SigmoidSymKl] {
        let (v, gs, _) = run(kind, &[0.5, -800.0], &[0.0, ninf], &PairOptions::default());
        assert_eq!(v, f64::INFINITY, "{kind:?}");
        assert!(gs.iter().all(|g| g.is_nan()), "{kind:?}");
    }
    let (v, _, _) = run(PairKind::SigmoidSymKl, &[ninf], &[-800.0], &PairOptions::default());
    assert_eq!(v, f64::INFINITY);
}

/// A long sigmoid row (cut into pieces on several threads) against the same row computed whole by
/// the row kernel: every gradient element bit for bit (each depends on its own class only), the
/// value to rounding (the sum's order differs); with a mask and weights, f32 and f64, and the
/// row conventions (NaN anywhere, −inf in one row only) applied to the whole row.
#[test]
fn long_sigmoid_rows_in_pieces_match_the_whole_row() {
    use crate::parallel::SPLIT_COLS;
    use crate::testing::noise;
    fn check<E: Elem>(kind: PairKind, s: &[E], t: &[E], mask: &[u8], weights: &[f64], what: &str) {
        let c = s.len();
        let prm = RowParams { inv_tau: 1.0 / 1.5, beta: 0.5, grad_scale: 0.25 };
        let (mut ws, mut wt) = (vec![0.0f64; c], vec![0.0f64; c]);
        let want = row::sigmoid_row(kind, s, t, Some(mask), Some(weights), &prm, [Some(&mut ws), Some(&mut wt)]);
        let (mut gs, mut gt) = (vec![0.0f64; c], vec![0.0f64; c]);
        let got = row::sigmoid_row_in_pieces(kind, s, t, Some(mask), Some(weights), &prm, [Some(&mut gs), Some(&mut gt)]);
        assert_eq!(got.counts, want.counts, "{what}");
        if want.value.is_finite() {
            assert!((got.value - want.value).abs() <= 1e-12 * want.value, "{what}: {} vs {}", got.value, want.value);
            let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&gs, &ws) && same(&gt, &wt), "{what}: gradients");
        } else {
            assert_eq!(got.value.is_nan(), want.value.is_nan(), "{what}: {} vs {}", got.value, want.value);
            assert!(gs.iter().chain(&gt).all(|g| g.is_nan()), "{what}: gradients of a non-finite row");
        }
    }
    let c = SPLIT_COLS + 777;
    let s: Vec<f64> = noise(c, 1).iter().map(|v| v * 6.0).collect();
    let t: Vec<f64> = s.iter().zip(noise(c, 2)).map(|(v, n)| v + 0.2 * n).collect();
    let mask: Vec<u8> = (0..c).map(|i| u8::from(i % 97 != 3)).collect();
    let weights: Vec<f64> = noise(c, 3).iter().map(|v| 1.0 + v * 0.5).collect();
    for kind in [PairKind::SigmoidKl, PairKind::SigmoidSymKl] {
        let (s32, t32): (Vec<f32>, Vec<f32>) = (s.iter().map(|&v| v as f32).collect(), t.iter().map(|&v| v as f32).collect());
        check(kind, &s, &t, &mask, &weights, &format!("{kind:?} f64"));
        check(kind, &s32, &t32, &mask, &weights, &format!("{kind:?} f32"));
        for (pos, bad, in_t) in [(c - 5, f32::NAN, false), (40_000, f32::NEG_INFINITY, true)] {
            let (mut a, mut b) = (s32.clone(), t32.clone());
            if in_t {
                b[pos] = bad;
            } else {
                a[pos] = bad;
            }
            check(kind, &a, &b, &mask, &weights, &format!("{kind:?} f32 with {bad} at {pos}"));
        }
    }
}

fn naive_tv(s: &[f64], t: &[f64]) -> f64 {
    let (p, q) = (softmax(s), softmax(t));
    0.5 * p.iter().zip(&q).map(|(p, q)| (p - q).abs()).sum::<f64>()
}

fn capped(x: &[f64], c: f64) -> Vec<f64> {
    x.iter().map(|v| c * (v / c).tanh()).collect()
}

fn central_differences(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
            xp[i] += h;
            xm[i] -= h;
            (f(&xp) - f(&xm)) / (2.0 * h)
        })
        .collect()
}

#[test]
fn tv_matches_its_definition_and_its_gradient_the_differences() {
    for tau in [1.0, 1.7] {
        let opts = PairOptions { temperature: tau, ..PairOptions::default() };
        let (v, gs, gt) = run(PairKind::Tv, &S, &T, &opts);
        let sc = |x: &[f64]| x.iter().map(|v| v / tau).collect::<Vec<_>>();
        assert!((v - naive_tv(&sc(&S), &sc(&T))).abs() < 1e-15);
        let fs = central_differences(&S, |x| naive_tv(&sc(x), &sc(&T)));
        let ft = central_differences(&T, |x| naive_tv(&sc(&S), &sc(x)));
        for i in 0..S.len() {
            assert!((gs[i] - fs[i]).abs() < 1e-8 && (gt[i] - ft[i]).abs() < 1e-8, "τ={tau} class {i}");
        }
    }
    // equal rows: exactly 0, and the subgradient 0 (sign 0 everywhere)
    let (v, gs, _) = run(PairKind::Tv, &S, &S, &PairOptions::default());
    assert_eq!(v, 0.0);
    assert!(gs.iter().all(|g| *g == 0.0));
    // a shift of one row changes nothing; disjoint supports give 1, finite gradients
    let shifted: Vec<f64> = T.iter().map(|v| v + 40.0).collect();
    assert!((run(PairKind::Tv, &S, &shifted, &PairOptions::default()).0 - naive_tv(&S, &T)).abs() < 1e-14);
    let (v, gs, gt) = run(PairKind::Tv, &[0.0, f64::NEG_INFINITY], &[f64::NEG_INFINITY, 0.0], &PairOptions::default());
    assert_eq!(v, 1.0);
    assert!(gs.iter().chain(&gt).all(|g| g.is_finite()));
}

#[test]
fn tv_of_nearly_equal_rows_keeps_its_digits() {
    // p − q formed as p·(−expm1(−w)): a difference δ = 2^-40 in one logit (exact) gives
    // TV = p(1−p)·δ to first order
    let s = [0.3, -1.2, 2.0, 0.7, -0.4];
    let mut t = s;
    let delta = 2f64.powi(-40);
    t[2] += delta;
    let p = softmax(&s)[2];
    let want = p * (1.0 - p) * delta;
    let v = run(PairKind::Tv, &s, &t, &PairOptions::default()).0;
    assert!((v - want).abs() < 1e-6 * want, "{v} vs {want}");
}

#[test]
fn softcap_is_the_divergence_of_the_capped_logits_with_gradients_through_the_cap() {
    let (c, s, t): (f64, Vec<f64>, Vec<f64>) = (1.5, S.iter().map(|v| 2.0 * v).collect(), T.iter().map(|v| 2.0 * v).collect());
    for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js, PairKind::Tv] {
        let opts = PairOptions { softcap: Some(c), temperature: 1.3, ..PairOptions::default() };
        let plain = PairOptions { temperature: 1.3, ..PairOptions::default() };
        let (v, gs, gt) = run(kind, &s, &t, &opts);
        let f = |a: &[f64], b: &[f64]| run(kind, &capped(a, c), &capped(b, c), &plain).0;
        assert!((v - f(&s, &t)).abs() < 1e-15, "{kind:?}");
        let fs = central_differences(&s, |x| f(x, &t));
        let ft = central_differences(&t, |x| f(&s, x));
        for i in 0..s.len() {
            assert!((gs[i] - fs[i]).abs() < 1e-8 && (gt[i] - ft[i]).abs() < 1e-8, "{kind:?} class {i}");
        }
    }
    let bad = PairOptions { softcap: Some(1.0), ..PairOptions::default() };
    let out = PairOutputs::<f64, f64>::default();
    let r = pair_divergence(PairKind::SigmoidKl, Rows::contiguous(&S, 1, 5).unwrap(), Rows::contiguous(&T, 1, 5).unwrap(), &bad, out);
    assert!(r.unwrap_err().to_string().contains("softmax divergences"));
    let zero = PairOptions { softcap: Some(0.0), ..PairOptions::default() };
    let out = PairOutputs::<f64, f64>::default();
    let r = pair_divergence(PairKind::Kl, Rows::contiguous(&S, 1, 5).unwrap(), Rows::contiguous(&T, 1, 5).unwrap(), &zero, out);
    assert!(r.unwrap_err().to_string().contains("softcap"));
}

/// float32 gradient rows are scratch while a short row's sweep runs (the one-pass kernel keeps its
/// exponentials there): whatever they held before, and whichever kernel finally takes a row —
/// declined ones included (equal rows, ±inf, NaN, a far class, one dominant class) — the call
/// writes every entry, the same bits as into zeroed rows.
#[test]
fn float32_gradient_rows_are_overwritten_whatever_they_held() {
    use crate::testing::noise;
    let c = 100;
    let mut rows: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    let base: Vec<f32> = noise(c, 5).iter().map(|v| (v * 4.0) as f32).collect();
    let near: Vec<f32> = base.iter().zip(noise(c, 6)).map(|(v, n)| v + 0.3 * n as f32).collect();
    rows.push((base.clone(), near.clone())); // a clean row (kept terms)
    rows.push((base.clone(), base.clone())); // equal rows: 0
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut s = base.clone();
        s[37] = bad;
        rows.push((s, near.clone()));
    }
    let mut far = near.clone();
    far[12] = base[12] + 60.0;
    rows.push((base.clone(), far));
    let mut dominant = base.clone();
    dominant[3] = 40.0;
    rows.push((dominant.clone(), dominant.iter().map(|v| v + 1e-3).collect()));
    // (the best SIMD path here; tests/test_simd_paths.py runs the same on every path)
    {
        let isa = crate::simd::active();
        for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js] {
            for (k, (s, t)) in rows.iter().enumerate() {
                let run = |fill: f32| {
                    let (mut gs, mut gt) = (vec![fill; c], vec![fill; c]);
                    let mut v = vec![0.0f32; 1];
                    let out = PairOutputs {
                        values: Some(&mut v[..]),
                        grad_s: Some(RowsMut::contiguous(&mut gs, 1, c).unwrap()),
                        grad_t: Some(RowsMut::contiguous(&mut gt, 1, c).unwrap()),
                    };
                    let opts = PairOptions::default();
                    pair_divergence(kind, Rows::contiguous(s, 1, c).unwrap(), Rows::contiguous(t, 1, c).unwrap(), &opts, out)
                        .unwrap();
                    (v[0].to_bits(), gs.iter().map(|g| g.to_bits()).collect::<Vec<_>>(), gt.iter().map(|g| g.to_bits()).collect::<Vec<_>>())
                };
                assert_eq!(run(0.0), run(7.0), "{isa} {kind:?} row {k}");
                assert_eq!(run(0.0), run(f32::NAN), "{isa} {kind:?} row {k}");
            }
        }
    }
}

/// Through the public entry point: bit-identical values and gradients with 1 and 3 threads, and a
/// −inf class (the scalar kernel's convention) in one of two long rows.
#[test]
fn split_rows_do_not_depend_on_the_thread_count() {
    use crate::parallel::SPLIT_COLS;
    use crate::testing::noise;
    let (rows, cols) = (2, SPLIT_COLS + 1000);
    // s of spread 6, t = s + noise of size 0.2
    let s: Vec<f64> = noise(rows * cols, 3).iter().map(|v| v * 6.0).collect();
    let t: Vec<f32> = s.iter().zip(noise(rows * cols, 4)).map(|(v, n)| (v + 0.2 * n) as f32).collect();
    let mut s: Vec<f32> = s.iter().map(|&v| v as f32).collect();
    s[cols + 99] = f32::NEG_INFINITY;
    let compute = |kind| {
        let (mut v, mut gs, mut gt) = (vec![0.0f64; rows], vec![0.0f32; rows * cols], vec![0.0f32; rows * cols]);
        let out = PairOutputs {
            values: Some(&mut v[..]),
            grad_s: Some(RowsMut::contiguous(&mut gs, rows, cols).unwrap()),
            grad_t: Some(RowsMut::contiguous(&mut gt, rows, cols).unwrap()),
        };
        let opts = PairOptions { reduction: Reduction::Mean, ..Default::default() };
        let (a, b) = (Rows::contiguous(&s, rows, cols).unwrap(), Rows::contiguous(&t, rows, cols).unwrap());
        let r = pair_divergence(kind, a, b, &opts, out).unwrap();
        (r.value.to_bits(), v, gs, gt)
    };
    for kind in [PairKind::Kl, PairKind::SymKl, PairKind::Js] {
        crate::parallel::set_num_threads(1).unwrap();
        let one = compute(kind);
        crate::parallel::set_num_threads(3).unwrap();
        let three = compute(kind);
        crate::parallel::set_num_threads(0).unwrap();
        let bits = |x: &(u64, Vec<f64>, Vec<f32>, Vec<f32>)| {
            let g = x.2.iter().chain(&x.3).map(|v| v.to_bits()).collect::<Vec<_>>();
            (x.0, x.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), g)
        };
        assert!(bits(&one) == bits(&three), "{kind:?}");
        // the row with −inf in s only: the scalar kernel's value (+inf for sym-KL, whose
        // KL(q‖p) is infinite; finite for KL(p‖q) and JS)
        let prm = RowParams { inv_tau: 1.0, beta: 0.5, grad_scale: 0.5 };
        let (mut gs, mut gt) = (vec![0.0f64; cols], vec![0.0f64; cols]);
        let want = softmax::row(kind, &s[cols..], &t[cols..], None, &prm, [Some(&mut gs), Some(&mut gt)]).value;
        assert_eq!(want.is_finite(), kind != PairKind::SymKl);
        assert!(one.1[1] == want || (one.1[1] - want).abs() <= 1e-5 * want, "{kind:?}: {} vs {want}", one.1[1]);
    }
}
