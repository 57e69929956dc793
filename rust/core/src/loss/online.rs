//! Online log-sum-exp accumulators in the forms the losses need to stay accurate when the loss is
//! tiny (a confident model): the softmax one keeps the sum *beside* the largest term apart, the
//! multilabel one the sum beside the implicit 1 of lse([x] ∪ {0}).

use crate::math::softplus;

/// log Σ e^{x_i} kept as the running max M and the rest R = Σ_{i ≠ argmax} e^{x_i − M}, rescaled
/// when the max moves. Then −log p_i = (M − x_i) + log1p(R), with no cancellation when p_i ≈ 1,
/// and 1 − p_argmax = R / (1 + R).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaxRest {
    pub max: f64,
    pub rest: f64,
}

impl MaxRest {
    pub const EMPTY: MaxRest = MaxRest { max: f64::NEG_INFINITY, rest: 0.0 };

    /// Adds a finite or +inf-free term `x > −inf`.
    #[inline]
    pub fn push(&mut self, x: f64) {
        if x > self.max {
            self.rest = (self.rest + 1.0) * (self.max - x).exp();
            self.max = x;
        } else {
            self.rest += (x - self.max).exp();
        }
    }

    /// log1p(R) = lse − M.
    #[inline]
    pub fn log1p_rest(&self) -> f64 {
        self.rest.ln_1p()
    }

    /// −log p for the class of logit `x`.
    #[inline]
    pub fn nll(&self, x: f64) -> f64 {
        (self.max - x) + self.log1p_rest()
    }

    /// p for the class of logit `x`.
    #[inline]
    pub fn prob(&self, x: f64) -> f64 {
        (x - self.max).exp() / (1.0 + self.rest)
    }

    /// 1 − p for the class of logit `x`, accurate when p ≈ 1 (only the largest logit can have it).
    #[inline]
    pub fn one_minus_prob(&self, x: f64) -> f64 {
        if x == self.max {
            self.rest / (1.0 + self.rest)
        } else {
            1.0 - self.prob(x)
        }
    }
}

/// log(1 + Σ w_i e^{x_i}) for weights w_i ∈ (0, 1]: the lse([x + log w] ∪ {0}) of the multilabel
/// loss. The sum beside the implicit 1 is kept as (max, Σ w e^{x − max}) and the result formed with
/// log1p, so a loss of 1e-15 keeps its digits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Log1pSumExp {
    max: f64,
    sum: f64,
}

impl Log1pSumExp {
    pub const EMPTY: Log1pSumExp = Log1pSumExp { max: f64::NEG_INFINITY, sum: 0.0 };

    /// Adds w · e^x for finite x (or x = +inf, which makes the result +inf) and w > 0.
    #[inline]
    pub fn push(&mut self, x: f64, w: f64) {
        if x > self.max {
            self.sum = if self.sum == 0.0 { w } else { self.sum * (self.max - x).exp() + w };
            self.max = x;
        } else {
            self.sum += w * (x - self.max).exp();
        }
    }

    /// log(1 + Σ w_i e^{x_i}) ≥ 0.
    #[inline]
    pub fn value(&self) -> f64 {
        if self.sum == 0.0 {
            0.0
        } else if self.max < 700.0 {
            // Σ w e^x itself, formed without going through its logarithm, which would cost
            // |max|·ε of relative accuracy
            (self.sum * self.max.exp()).ln_1p()
        } else {
            softplus(self.max + self.sum.ln())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_rest_matches_direct_lse() {
        let xs = [0.3, -1.0, 2.5, 2.5, -7.0, 1.0];
        let mut m = MaxRest::EMPTY;
        for &x in &xs {
            m.push(x);
        }
        let lse = xs.iter().map(|x: &f64| x.exp()).sum::<f64>().ln();
        assert!((m.max + m.log1p_rest() - lse).abs() < 1e-15);
        let p: f64 = xs.iter().map(|&x| m.prob(x)).sum();
        assert!((p - 1.0).abs() < 1e-15);
        assert!((m.one_minus_prob(2.5) - (1.0 - 2.5f64.exp() / lse.exp())).abs() < 1e-15);
    }

    #[test]
    fn max_rest_keeps_a_tiny_loss() {
        // p_0 = 1/(1 + e^{-40}): −log p_0 = log1p(e^{-40}) ≈ 4.25e-18, lost by lse − x_0.
        let mut m = MaxRest::EMPTY;
        m.push(0.0);
        m.push(-40.0);
        let expect = (-40f64).exp();
        assert!((m.nll(0.0) - expect).abs() <= 1e-15 * expect);
        assert!((m.one_minus_prob(0.0) - expect).abs() <= 1e-15 * expect);
    }

    #[test]
    fn log1p_sum_exp_matches_direct_form_and_keeps_tiny_values() {
        let mut a = Log1pSumExp::EMPTY;
        for &(x, w) in &[(0.5, 1.0), (-2.0, 0.25), (1.5, 0.5)] {
            a.push(x, w);
        }
        let direct = (1.0 + 0.5f64.exp() + 0.25 * (-2f64).exp() + 0.5 * 1.5f64.exp()).ln();
        assert!((a.value() - direct).abs() < 1e-15);
        let mut b = Log1pSumExp::EMPTY;
        b.push(-50.0, 1.0);
        b.push(-52.0, 1.0);
        let expect = (-50f64).exp() + (-52f64).exp();
        assert!((b.value() - expect).abs() <= 1e-15 * expect);
        assert_eq!(Log1pSumExp::EMPTY.value(), 0.0);
    }
}
