//! Losses against labels, with fused gradients with respect to the logits (MATH.md section 2):
//! softmax cross-entropy (class indices with `ignore_index` and label smoothing, or probabilities),
//! binary cross-entropy with `pos_weight`, Su's multilabel softmax cross-entropy (dense 0/1 or soft
//! labels, sparse positives, GlobalPointer spans), the γ-cross-entropy, distillation and R-Drop.
//!
//! Conventions, shared with the divergences (MATH.md, "−inf, masks and bad values"):
//! - a logit of −inf, or a class excluded by the class mask, is an absent class: it contributes
//!   exactly 0 to value and gradient, unless the label puts mass on it, which makes the row +inf
//!   (what the formulas give in the limit);
//! - a row whose value is +inf, or that holds NaN or +inf among its present classes, gets NaN
//!   gradients; NaN or +inf logits make that row NaN and no other, and so does a finite logit
//!   beyond ±1e300 after dividing by τ (`divergence::MAX_SCALED_LOGIT`, the kernels' domain);
//! - a row excluded by the row mask or labelled `ignore_index` is not read: it gives 0, zero
//!   gradients, and does not count for `Reduction::Mean`; neither does a row with no class present;
//! - labels are validated: a class index out of range, a probability that is negative or not finite
//!   (or above 1 for the per-class sigmoid losses), a duplicated positive, are errors naming the row
//!   and the value. When a call fails, what it wrote into the outputs is unspecified.
//!
//! Every value is accumulated in f64 from terms that are each ≥ 0 (the accurate forms of MATH.md),
//! so a confident model's tiny losses keep their digits.

mod bce;
mod bce_simd;
mod ce_params;
mod distill;
mod gamma;
mod globalpointer;
mod labels;
mod multilabel;
mod multilabel_simd;
mod online;
pub(crate) mod outputs;
mod rdrop;
mod softmax_ce;
mod softmax_ce_simd;
mod sparse;


pub use bce::{bce, BceOptions};
pub use distill::{kd_loss, KdOptions};
pub use gamma::{gamma_ce, GammaOptions};
pub use globalpointer::{globalpointer_ce, GlobalPointerOptions, GpReduction};
pub use labels::{Positives, Target};
pub use outputs::{LossOutputs, Masks};
pub use multilabel::{multilabel_ce, MultilabelOptions};
pub use rdrop::{rdrop_loss, RdropKind, RdropOptions};
pub use softmax_ce::{softmax_ce, softmax_ce_ext, CeExtraOutputs, CeReduced, SoftmaxCeOptions};
pub use sparse::{sparse_multilabel_ce, SparseMultilabelOptions};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_llm;
#[cfg(test)]
mod tests_simd;
