//! Scalar functions in the accurate forms of MATH.md. Every divergence term here is a sum of
//! non-negative pieces free of cancellation, so near-identical rows keep their digits.

/// Below this |w| the series forms are used; above it the direct forms lose at most a few ulps.
const SMALL: f64 = 0.5;

/// φ(w) = w − 1 + e^{−w} for |w| < 0.5, by its Taylor series Σ_{k≥2} (−w)^k / k!.
#[inline]
fn phi_series(w: f64) -> f64 {
    // Horner in x = −w; 16 terms leave < 1e-18 relative at |w| = 0.5.
    const INV_FACT: [f64; 15] = [
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362880.0,
        1.0 / 3628800.0,
        1.0 / 39916800.0,
        1.0 / 479001600.0,
        1.0 / 6227020800.0,
        1.0 / 87178291200.0,
        1.0 / 1307674368000.0,
        1.0 / 20922789888000.0,
    ];
    let x = -w;
    let mut acc = 0.0;
    for c in INV_FACT.iter().rev() {
        acc = acc * x + c;
    }
    acc * x * x
}

/// φ(w) = w − 1 + e^{−w} ≥ 0, the KL summand per unit of probability.
#[inline]
pub fn phi(w: f64) -> f64 {
    if w.abs() < SMALL {
        phi_series(w)
    } else if w == f64::NEG_INFINITY {
        f64::INFINITY
    } else {
        w - 1.0 + (-w).exp()
    }
}

/// `a · φ(r)` where `r = log a − log c` for two probabilities `a`, `c`: the non-negative summand of
/// KL(a‖c) = Σ a (r − 1) + c. `c` is passed so that `a e^{−r}` is never formed (it may overflow),
/// and `a = 0` gives `c`, the limit. `r = +inf` (a finite logit against −inf) is +inf even when
/// `a` underflowed to 0: the support is decided by the logits, not by rounding.
#[inline]
pub fn kl_term(a: f64, c: f64, r: f64) -> f64 {
    if r == f64::INFINITY {
        f64::INFINITY
    } else if a == 0.0 {
        c
    } else if r.abs() < SMALL {
        a * phi_series(r)
    } else {
        // ≥ 0 in exact arithmetic; when the logits are so large (|s/τ| ≳ 1e16 · |w|) that `r`
        // carries a rounding error larger than itself, the computed form can dip below 0: the
        // term is then 0 (NaN stays NaN)
        let v = a * (r - 1.0) + c;
        if v < 0.0 {
            0.0
        } else {
            v
        }
    }
}

/// `p − q` for two probabilities with `w = log p − log q`, without cancellation when w ≈ 0.
#[inline]
pub fn prob_diff(p: f64, q: f64, w: f64) -> f64 {
    if w.abs() < SMALL {
        -p * (-w).exp_m1()
    } else {
        p - q
    }
}

/// `(p − q) · w` with `w = log p − log q`: the non-negative summand of the symmetric KL.
/// `w = ±inf` (−inf in one row only) is +inf even when the other probability underflowed to 0.
#[inline]
pub fn sym_term(p: f64, q: f64, w: f64) -> f64 {
    if w.is_infinite() {
        f64::INFINITY
    } else if w >= 0.0 {
        if p == 0.0 {
            0.0
        } else {
            p * w * -(-w).exp_m1()
        }
    } else if q == 0.0 {
        0.0
    } else {
        q * -w * -w.exp_m1()
    }
}

/// (−1)^k / k for k = 0..=30 (0 for k < 2): the series x − log(1 + x) = Σ_{k≥2} (−1)^k x^k / k,
/// its coefficients computed once (a division per term per call cost ~400 cycles a row).
const LOG1P_SERIES: [f64; 31] = {
    let mut c = [0.0; 31];
    let mut k = 2;
    while k <= 30 {
        c[k] = if k % 2 == 0 { 1.0 } else { -1.0 } / k as f64;
        k += 1;
    }
    c
};

/// Σ_{k=2}^{top} c[k] x^{k−2} by Horner's rule, from the top term down.
#[inline(always)]
fn horner_from(c: &[f64; 31], top: usize, x: f64) -> f64 {
    let mut acc = 0.0;
    for k in (2..=top).rev() {
        acc = acc * x + c[k];
    }
    acc
}

/// x − log(1 + x) ≥ 0 for x > −1, accurate near 0.
#[inline]
pub fn x_minus_log1p(x: f64) -> f64 {
    if x.abs() < 1e-2 {
        // the same series, 9 terms: the first left out is below 1e-17 of the result here (the
        // one-pass kernels call this once per row, often with a tiny x)
        horner_from(&LOG1P_SERIES, 10, x) * x * x
    } else if x.abs() < 0.25 {
        // Σ_{k≥2} (−1)^k x^k / k
        horner_from(&LOG1P_SERIES, 30, x) * x * x
    } else {
        x - x.ln_1p()
    }
}

/// σ(x) = 1 / (1 + e^{−x}), without overflow.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{−|x|}).
#[inline]
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// σ(a) − σ(b) without cancellation when a ≈ b: σ(b) σ(−a) expm1(a − b).
#[inline]
pub fn sigmoid_diff(a: f64, b: f64) -> f64 {
    sigmoid_diff_d(a, b, a - b)
}

/// [`sigmoid_diff`] given `d = a − b` from the caller, who may know it more accurately than the
/// rounded `a` and `b` do (e.g. `(s − t)/τ` against `s/τ − t/τ`).
#[inline]
pub fn sigmoid_diff_d(a: f64, b: f64, d: f64) -> f64 {
    if d.abs() <= 1.0 {
        sigmoid(b) * sigmoid(-a) * d.exp_m1()
    } else if a >= 0.0 && b >= 0.0 {
        // both σ near 1: subtract the small complements instead
        sigmoid(-b) - sigmoid(-a)
    } else {
        sigmoid(a) - sigmoid(b)
    }
}

/// log σ(a) − log σ(b) = log1p(σ(−a) expm1(a − b)), accurate when a ≈ b.
#[inline]
pub fn log_sigmoid_ratio(a: f64, b: f64) -> f64 {
    log_sigmoid_ratio_d(a, b, a - b)
}

/// [`log_sigmoid_ratio`] given `d = a − b` from the caller (see [`sigmoid_diff_d`]).
#[inline]
pub fn log_sigmoid_ratio_d(a: f64, b: f64, d: f64) -> f64 {
    if d.abs() <= 1.0 {
        (sigmoid(-a) * d.exp_m1()).ln_1p()
    } else {
        softplus(-b) - softplus(-a)
    }
}

/// The soft cap of a logit, c · tanh(x / c) (Gemma 2's logit soft-capping; c > 0). Only finite
/// logits are capped: −inf stays −inf (an absent class stays absent), and +inf and NaN stay what
/// they are, so the conventions for bad values are those of the uncapped logit.
#[inline]
pub fn softcap(x: f64, c: f64) -> f64 {
    if x.is_finite() {
        c * (x / c).tanh()
    } else {
        x
    }
}

/// d/dx [c · tanh(x / c)] = 1 − tanh²(x/c) = sech²(x/c), formed as 4e^{−2|u|} / (1 + e^{−2|u|})²
/// with u = x/c: no cancellation where tanh² → 1 (1 − tanh² would lose every digit there), and
/// exactly 0 once e^{−2|u|} underflows.
#[inline]
pub fn softcap_slope(x: f64, c: f64) -> f64 {
    let e = (-2.0 * (x / c).abs()).exp();
    let d = 1.0 + e;
    4.0 * e / (d * d)
}

/// The largest |logit/τ| the kernels take: beyond it the accurate forms' differences (of logits,
/// of log-sum-exps) could overflow float64 and turn into NaN or a wrong sign.
pub const MAX_SCALED_LOGIT: f64 = 1e300;

/// Whether logit `x`, scaled to `a` = x/τ, makes its row NaN: `x` is NaN or +inf, or a finite
/// logit whose scaled value lies beyond ±[`MAX_SCALED_LOGIT`] (overflowing to ±inf included). Only
/// an input of −inf itself marks an absent class.
#[inline]
pub(crate) fn out_of_domain(x: f64, a: f64) -> bool {
    (a.is_nan() || a.abs() > MAX_SCALED_LOGIT) && x != f64::NEG_INFINITY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_matches_direct_form_where_that_is_accurate() {
        for &w in &[0.49, -0.49, 0.3, -0.2, 0.51, 2.0, -3.0] {
            let direct = w - 1.0 + f64::exp(-w);
            assert!((phi(w) - direct).abs() <= 1e-14 * direct.abs().max(1e-300), "w={w}");
        }
    }

    #[test]
    fn phi_small_w_is_half_w_squared() {
        let w = 1e-6;
        let expect = w * w / 2.0 - w * w * w / 6.0 + w * w * w * w / 24.0;
        assert!((phi(w) - expect).abs() <= 1e-15 * expect);
    }

    #[test]
    fn kl_term_limits() {
        assert_eq!(kl_term(0.0, 0.25, f64::NEG_INFINITY), 0.25);
        assert_eq!(kl_term(0.5, 0.0, f64::INFINITY), f64::INFINITY);
        // a probability that underflowed against an absent class is still a support mismatch
        assert_eq!(kl_term(0.0, 0.0, f64::INFINITY), f64::INFINITY);
        assert_eq!(sym_term(0.0, 0.0, f64::INFINITY), f64::INFINITY);
        assert_eq!(sym_term(0.0, 0.0, f64::NEG_INFINITY), f64::INFINITY);
    }

    #[test]
    fn sigmoid_diff_is_accurate_near_equal_arguments() {
        let (a, b) = (30.0, 30.0 - 1e-9);
        // σ'(30) · 1e-9 to first order
        let expect = sigmoid(30.0) * sigmoid(-30.0) * 1e-9;
        assert!((sigmoid_diff(a, b) - expect).abs() <= 1e-6 * expect);
    }

    #[test]
    fn x_minus_log1p_is_non_negative_and_accurate() {
        for &x in &[1e-8, -1e-8, 0.2, -0.2, 0.3, 5.0, -0.9] {
            let v = x_minus_log1p(x);
            assert!(v >= 0.0);
            if x.abs() > 0.1 {
                assert!((v - (x - f64::ln_1p(x))).abs() <= 1e-13 * v);
            }
        }
        assert!((x_minus_log1p(1e-8) - 5e-17).abs() < 1e-24);
    }

    #[test]
    fn log_sigmoid_ratio_matches_softplus_difference() {
        for &(a, b) in &[(0.3, -0.2), (5.0, 4.5), (-7.0, -6.2), (2.0, -3.0)] {
            let direct = softplus(-b) - softplus(-a);
            assert!((log_sigmoid_ratio(a, b) - direct).abs() <= 1e-13 * direct.abs());
        }
    }
    #[test]
    fn softcap_and_its_slope() {
        let c = 30.0;
        for &x in &[0.0, 1e-8, -3.0, 25.0, 300.0, -1e4] {
            let t: f64 = (x / c as f64).tanh();
            assert!((softcap(x, c) - c * t).abs() <= 1e-15 * c);
            // the slope against a central difference of the cap, where that is accurate
            if x.abs() < 100.0 {
                let h = 1e-5;
                let fd = (softcap(x + h, c) - softcap(x - h, c)) / (2.0 * h);
                assert!((softcap_slope(x, c) - fd).abs() < 1e-9, "x={x}");
            }
        }
        // far out, 1 − tanh² is 0 in floating point; the slope keeps its digits: 4e^{-2u}
        let u = 20.0f64;
        let want = 4.0 * (-2.0 * u).exp() / (1.0 + (-2.0 * u).exp()).powi(2);
        assert!((softcap_slope(u * c, c) - want).abs() <= 1e-15 * want);
        assert!(1.0 - (u).tanh().powi(2) < 1e-16);
        assert_eq!(softcap_slope(1e6, 1.0), 0.0);
        assert_eq!(softcap(f64::NEG_INFINITY, c), f64::NEG_INFINITY);
        assert_eq!(softcap(f64::INFINITY, c), f64::INFINITY);
        assert!(softcap(f64::NAN, c).is_nan());
    }
}
