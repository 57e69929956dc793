//! What a divergence row kernel is told: the kind, and the per-row parameters. Kept apart from
//! `divergence/mod.rs` (the entry point) so the row kernels depend on it and not on their caller.

use crate::error::{bad_argument, Error};

/// Which divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    /// KL(p‖q), p = softmax(s/τ), q = softmax(t/τ).
    Kl,
    /// KL(p‖q) + KL(q‖p).
    SymKl,
    /// β KL(p‖m) + (1−β) KL(q‖m), m = β p + (1−β) q.
    Js,
    /// Σ_i KL(Bern(σ(s_i/τ)) ‖ Bern(σ(t_i/τ))).
    SigmoidKl,
    /// Σ_i (σ(s_i/τ) − σ(t_i/τ)) (s_i/τ − t_i/τ), the GlobalPointer KL.
    SigmoidSymKl,
    /// The total variation distance ½ Σ_i |p_i − q_i|.
    Tv,
}

impl PairKind {
    pub fn parse(name: &str) -> Result<Self, Error> {
        Ok(match name {
            "kl" => PairKind::Kl,
            "sym_kl" => PairKind::SymKl,
            "js" => PairKind::Js,
            "sigmoid_kl" => PairKind::SigmoidKl,
            "sigmoid_sym_kl" | "gp_kl" => PairKind::SigmoidSymKl,
            "tv" => PairKind::Tv,
            other => {
                return Err(bad_argument(format!(
                    "unknown divergence {other:?}; expected one of kl, sym_kl, js, tv, sigmoid_kl, sigmoid_sym_kl"
                )))
            }
        })
    }

    pub(crate) fn is_sigmoid(self) -> bool {
        matches!(self, PairKind::SigmoidKl | PairKind::SigmoidSymKl)
    }
}

/// Per-row parameters shared by the row kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowParams {
    pub inv_tau: f64,
    pub beta: f64,
    /// Gradient scale: reduction factor × 1/τ.
    pub grad_scale: f64,
}
