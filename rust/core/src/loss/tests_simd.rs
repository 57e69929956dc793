//! The SIMD paths of the losses against their f64 reference kernels, on every available path.
//! Here, above both, so that neither the fast path nor the reference depends on the other.

mod multilabel {
    use super::super::multilabel::multilabel_row;
    use super::super::multilabel_simd::*;
    use crate::testing::noise;
    use crate::simd::available;

    fn check(s: &[f32], y: &[f64], add: bool) {
        let ones = vec![1u8; s.len()];
        let mut want_g = vec![0.25f64; s.len()];
        let want = multilabel_row(s, y, Some(&ones), 0.5, add, Some(&mut want_g[..]), 0).unwrap();
        let gmax = want_g.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for isa in available() {
            let mut g = vec![0.25f64; s.len()];
            let got = try_row_on(Some(isa), s, y, None, 0.5, add, Some(&mut g[..])).expect("declined a clean row");
            assert_eq!(got.counts, want.counts);
            assert!((got.value - want.value).abs() <= 1e-6 * want.value.abs(), "{isa}: {} vs {}", got.value, want.value);
            for i in 0..s.len() {
                assert!((g[i] - want_g[i]).abs() <= 1e-5 * want_g[i].abs() + 1e-7 * gmax, "{isa} i={i}: {} vs {}", g[i], want_g[i]);
            }
        }
    }

    #[test]
    fn every_path_matches_the_scalar_kernel() {
        for (n, sc) in [(1usize, 3.0), (9, 5.0), (300, 8.0), (5000, 3.0), (4096, 40.0)] {
            let s: Vec<f32> = noise(n, n as u64).iter().map(|v| (v * sc) as f32).collect();
            let hard: Vec<f64> = noise(n, 77).iter().map(|v| if *v > 0.9 { 1.0 } else { 0.0 }).collect();
            let soft: Vec<f64> = noise(n, 78).iter().map(|v| (v + 1.0) / 2.0).collect();
            for add in [false, true] {
                check(&s, &hard, add);
                check(&s, &soft, add);
            }
        }
    }

    #[test]
    fn confident_rows_keep_tiny_losses() {
        // Positives far above 0, negatives far below: a loss near 1e-15.
        let n = 1000;
        let y: Vec<f64> = (0..n).map(|i| if i % 10 == 0 { 1.0 } else { 0.0 }).collect();
        let s: Vec<f32> = y.iter().map(|&v| if v > 0.0 { 40.0 } else { -45.0 }).collect();
        check(&s, &y, false);
        let mut s2 = s.clone();
        s2[3] = f32::NEG_INFINITY; // absent negative
        check(&s2, &y, false);
    }

    #[test]
    fn special_rows_are_declined() {
        let s = vec![0.5f32; 300];
        let y = vec![0.0f64; 300];
        for isa in available() {
            for (i, bad) in [(3, f32::NAN), (280, f32::INFINITY)] {
                let mut s = s.clone();
                s[i] = bad;
                assert!(try_row_on::<f32, f64, f32>(Some(isa), &s, &y, None, 1.0, false, None).is_none());
            }
            let mut s2 = s.clone();
            let mut y2 = y.clone();
            s2[7] = f32::NEG_INFINITY;
            y2[7] = 1.0;
            assert!(try_row_on::<f32, f64, f32>(Some(isa), &s2, &y2, None, 1.0, false, None).is_none());
            let mut y3 = y.clone();
            y3[299] = 1.5;
            assert!(try_row_on::<f32, f64, f32>(Some(isa), &s, &y3, None, 1.0, false, None).is_none());
            y3[299] = f64::NAN;
            assert!(try_row_on::<f32, f64, f32>(Some(isa), &s, &y3, None, 1.0, false, None).is_none());
        }
    }
}

mod softmax_ce {
    use half::f16;

    use super::super::labels::RowTarget;
    use super::super::ce_params::CeParams;
    use super::super::softmax_ce::ce_row;
    use crate::element::Elem;
    use crate::testing::noise;

    /// (value, gradient) of one row: the fast path for f32/f16 input, the scalar f64 kernel for
    /// the same values widened to f64.
    fn row<E: Elem, G: Elem>(s: &[E], label: usize, prm: &CeParams, garbage: f64) -> (f64, Vec<f64>) {
        let mut g = vec![G::from_f64(garbage); s.len()];
        let v = ce_row::<E, f64, G>(s, RowTarget::Class(label), None, prm, Some(&mut g), 0).unwrap();
        (v.value, g.iter().map(|x| x.to_f64()).collect())
    }

    /// A long row keeps its terms relative to each span's running max: rows whose max moves from
    /// span to span (rising, falling, one late spike, 100 000 classes) give every gradient entry
    /// to its own relative accuracy against the f64 kernel, whatever the buffer held.
    #[test]
    fn long_rows_whose_max_moves_keep_their_gradients() {
        let n = 100_000;
        let noise_row = noise(n, 3);
        let rows: Vec<Vec<f32>> = vec![
            (0..n).map(|i| (i as f64 * 4e-4 + noise_row[i]) as f32).collect(),
            (0..n).map(|i| (-(i as f64) * 4e-4 + noise_row[i]) as f32).collect(),
            (0..n).map(|i| if i == 77_777 { 30.0 } else { (noise_row[i] * 8.0) as f32 }).collect(),
        ];
        for x in &rows {
            for tau in [1.0, 0.5] {
                let prm = CeParams { inv_tau: 1.0 / tau, eps: 0.0, grad_scale: 1.0, add: false };
                let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                let (want, gw) = row::<f64, f64>(&wide, 5, &prm, 0.0);
                for garbage in [0.0, 7.0, f64::NAN] {
                    let (got, g) = row::<f32, f32>(x, 5, &prm, garbage);
                    assert!((got - want).abs() <= 1e-6 * want.abs(), "tau={tau}: {got} vs {want}");
                    // every entry to its own relative accuracy (the recomputing sweep reaches 3.9e-6 on
                    // these rows: the f32 exponential of a logit of size ~40, times 1/Z, rounded)
                    for (i, (a, b)) in g.iter().zip(&gw).enumerate() {
                        assert!((a - b).abs() <= 5e-6 * b.abs() + 1e-37, "tau={tau}: g[{i}] {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_row_length_matches_the_scalar_kernel() {
        // lengths around the lane chunks (W = 16) and the short/long boundary (1024)
        let lengths = (1..=40).chain([63, 64, 65, 100, 1000, 1023, 1024, 1025, 3000]);
        for n in lengths {
            for (eps, tau, scale) in [(0.0, 1.0, 4.0), (0.1, 0.5, 8.0), (0.0, 2.0, 30.0)] {
                let x: Vec<f32> = noise(n, n as u64).iter().map(|v| (v * scale) as f32).collect();
                let top = (0..n).fold(0, |b, i| if x[i] > x[b] { i } else { b });
                for label in [0, n / 2, top] {
                    let prm = CeParams { inv_tau: 1.0 / tau, eps, grad_scale: 0.25 / tau, add: false };
                    let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                    let (want, gw) = row::<f64, f64>(&wide, label, &prm, 0.0);
                    let gmax = gw.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    // f32 gradients (the stored-terms sweep for short rows) and f64 ones
                    for (got, g) in [row::<f32, f32>(&x, label, &prm, 7.0), row::<f32, f64>(&x, label, &prm, 7.0)] {
                        assert!((got - want).abs() <= 1e-5 * want.abs() + 1e-12, "n={n} eps={eps}: {got} vs {want}");
                        for (i, (a, b)) in g.iter().zip(&gw).enumerate() {
                            assert!((a - b).abs() <= 1e-5 * gmax + 1e-7 * b.abs(), "n={n} label={label}: g[{i}] {a} vs {b}");
                        }
                    }
                    let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
                    let hw: Vec<f64> = h.iter().map(|v| v.to_f64()).collect();
                    let (want, _) = row::<f64, f64>(&hw, label, &prm, 0.0);
                    let (got, _) = row::<f16, f32>(&h, label, &prm, 7.0);
                    assert!((got - want).abs() <= 1e-5 * want.abs() + 1e-12, "f16 n={n}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn a_declined_row_overwrites_the_scratch_terms() {
        // a non-finite logit sends the row to the scalar kernel after the fast sweep has used the
        // gradient row for its terms: every entry must come out as the scalar kernel's
        for n in [5, 100, 1000] {
            for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                let mut x: Vec<f32> = noise(n, 3).iter().map(|v| (v * 4.0) as f32).collect();
                x[n - 1] = bad;
                let prm = CeParams { inv_tau: 1.0, eps: 0.1, grad_scale: 1.0, add: false };
                let wide: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
                let (want, gw) = row::<f64, f64>(&wide, 1, &prm, 0.0);
                let (got, g) = row::<f32, f32>(&x, 1, &prm, 7.0);
                assert!(got.is_nan() == want.is_nan() && (got.is_nan() || got == want), "{bad}: {got} vs {want}");
                for (a, b) in g.iter().zip(&gw) {
                    assert!(a.is_nan() == b.is_nan() && (a.is_nan() || (a - b).abs() <= 1e-6 * b.abs().max(1e-30)), "{bad}: {a} vs {b}");
                }
            }
        }
    }
}
