//! References for φ(w) = w − 1 + e^{−w} and x − ln(1 + x), which std lacks: their series summed
//! in double-double arithmetic (~106 bits), exact to well under 0.01 ulp of f64 where used.

/// hi + lo, |lo| ≤ ulp(hi)/2.
#[derive(Debug, Clone, Copy)]
struct Dd(f64, f64);

fn two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    let bb = s - a;
    Dd(s, (a - (s - bb)) + (b - bb))
}

fn quick_two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    Dd(s, b - (s - a))
}

fn add(x: Dd, y: Dd) -> Dd {
    let s = two_sum(x.0, y.0);
    let t = two_sum(x.1, y.1);
    let s = quick_two_sum(s.0, s.1 + t.0);
    quick_two_sum(s.0, s.1 + t.1)
}

fn mul_f64(x: Dd, b: f64) -> Dd {
    let p = x.0 * b;
    quick_two_sum(p, x.0.mul_add(b, -p) + x.1 * b)
}

fn div_f64(x: Dd, d: f64) -> Dd {
    let q1 = x.0 / d;
    let p = q1 * d;
    let r = add(x, Dd(-p, -q1.mul_add(d, -p)));
    quick_two_sum(q1, r.0 / d)
}

/// Σ_{k≥2} c_k with c_k = x·c_{k−1}/k (φ, from c_1 = x) or c_k = (−1)^k x^k/k (x − ln(1+x)).
fn series(x: f64, factorial: bool) -> f64 {
    let mut power = Dd(x, 0.0); // x^k/k! or x^k
    let mut sum = Dd(0.0, 0.0);
    for k in 2..5000 {
        power = mul_f64(power, x);
        let term = if factorial {
            power = div_f64(power, k as f64);
            power
        } else {
            let t = div_f64(power, k as f64);
            if k % 2 == 0 {
                t
            } else {
                Dd(-t.0, -t.1)
            }
        };
        sum = add(sum, term);
        if term.0.abs() < 1e-36 * sum.0.abs() && k as f64 > x.abs() + 2.0 {
            break;
        }
    }
    sum.0 + sum.1
}

/// φ(w), exact to < 0.01 ulp for |w| ≤ 20 (the alternating series loses at most 30 of its 106
/// bits there); outside, the direct form with std's exp (within 1 ulp).
pub(super) fn phi(w: f64) -> f64 {
    if w.abs() <= 20.0 {
        series(-w, true)
    } else if w == f64::NEG_INFINITY {
        f64::INFINITY
    } else {
        (w - 1.0) + (-w).exp()
    }
}

/// x − ln(1 + x), exact to < 0.01 ulp for |x| ≤ 0.9; outside, x − std's ln_1p(x) subtracted
/// exactly (then within ~3 ulp: std's error, magnified at most 3.5× by the cancellation).
pub(super) fn x_minus_log1p(x: f64) -> f64 {
    if x.abs() <= 0.9 {
        series(x, false)
    } else if x == f64::INFINITY {
        f64::INFINITY
    } else if !x.ln_1p().is_finite() {
        x - x.ln_1p() // x ≤ −1: +inf or NaN
    } else {
        let d = add(Dd(x, 0.0), Dd(-x.ln_1p(), 0.0));
        d.0 + d.1
    }
}

#[test]
fn references_agree_with_std_where_std_is_exact_enough() {
    for w in [3.0f64, -3.0, 15.0, -15.0, 0.7] {
        let direct = (w - 1.0) + (-w).exp();
        assert!((phi(w) - direct).abs() <= 4e-16 * direct, "{w}");
    }
    assert!((phi(1e-5) - 0.5e-10 * (1.0 - 1e-5 / 3.0)).abs() < 1e-21);
    assert!((x_minus_log1p(0.5) - (0.5 - 1.5f64.ln())).abs() <= 1e-16);
    assert!((x_minus_log1p(1e-5) - 0.5e-10 * (1.0 - 2e-5 / 3.0)).abs() < 1e-20);
}
