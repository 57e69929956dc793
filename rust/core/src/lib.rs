//! logitdiv-core: divergences and losses computed straight from logits, with their gradients.
//!
//! The crate holds the mathematics and nothing else: no Python, no C types. Every function works on
//! a matrix of logit rows (the last axis holds the classes), generic over the element type
//! ([`Elem`]: f32, f64, f16, bf16), computes in f64, and runs rows in parallel ([`parallel`]).
//! The formulas and their accurate forms are those of the project's MATH.md: [`divergence`] holds the
//! divergences between two logit arrays, [`loss`] the losses against labels.

pub mod check;
pub mod divergence;
pub mod element;
pub mod error;
pub mod loss;
pub mod math;
pub mod parallel;
pub mod reduction;
pub mod rows;
pub mod simd;
#[cfg(test)]
mod testing;

pub use divergence::{pair_divergence, PairKind, PairOptions, PairOutputs};
pub use element::Elem;
pub use error::Error;
pub use loss::{
    bce, gamma_ce, globalpointer_ce, kd_loss, multilabel_ce, rdrop_loss, softmax_ce, sparse_multilabel_ce, BceOptions,
    GammaOptions, GlobalPointerOptions, GpReduction, KdOptions, LossOutputs, Masks, MultilabelOptions, Positives,
    RdropKind, RdropOptions, SoftmaxCeOptions, SparseMultilabelOptions, Target, softmax_ce_ext, CeExtraOutputs, CeReduced,
};
pub use parallel::{num_threads, set_num_threads};
pub use reduction::{Reduced, Reduction};
pub use rows::{Rows, RowsMut};
