//! logitdiv-core: divergences and losses computed straight from logits, with their gradients.
//!
//! The crate holds the mathematics and nothing else: no Python, no C types. Every function works on
//! a matrix of logit rows (the last axis holds the classes), generic over the element type
//! ([`Elem`]: f32, f64, f16, bf16), computes in f64, and runs rows in parallel ([`parallel`]).
//! The formulas and their accurate forms are those of the project's MATH.md.

pub mod divergence;
pub mod element;
pub mod error;
pub mod math;
pub mod parallel;
pub mod reduce;
pub mod rows;
pub mod simd;

pub use divergence::{pair_divergence, PairKind, PairOptions, PairOutputs};
pub use element::Elem;
pub use error::Error;
pub use parallel::{num_threads, set_num_threads};
pub use reduce::{Reduced, Reduction};
pub use rows::{Rows, RowsMut};
