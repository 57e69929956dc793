//! What a softmax cross-entropy row kernel is told and what its first sweep finds, shared by the
//! f64 kernel (`softmax_ce.rs`) and its SIMD path (`softmax_ce_simd.rs`).

use super::online::MaxRest;

/// Parameters of one cross-entropy row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CeParams {
    pub inv_tau: f64,
    pub eps: f64,
    /// Gradient scale: reduction factor × 1/τ × the weight of the term in its loss.
    pub grad_scale: f64,
    /// Add the gradient to what the row holds (a loss of several terms).
    pub add: bool,
}

/// Softmax statistics of one row and its label.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowStats {
    pub lse: MaxRest,
    /// Number of present classes.
    pub n: usize,
    /// Σ y_i over the present classes (1 for a class label).
    pub ysum: f64,
    /// Σ y_i (M − x_i) (M − x_y for a class label).
    pub a: f64,
    /// Σ (M − x_i) over the present classes.
    pub b: f64,
    /// The logit of the labelled class (class labels).
    pub x_label: f64,
    /// NaN or +inf among the present classes.
    pub bad: bool,
    /// The label puts mass on an absent class.
    pub unsupported: bool,
}

impl RowStats {
    /// −Σ t_i log p_i with t = (1−ε)·y + ε/n.
    pub fn value(&self, eps: f64) -> f64 {
        let l = self.lse.log1p_rest();
        let mut v = 0.0;
        if eps < 1.0 {
            v += (1.0 - eps) * (self.a + self.ysum * l);
        }
        if eps > 0.0 {
            v += eps * (self.b / self.n as f64 + l);
        }
        v
    }
}
