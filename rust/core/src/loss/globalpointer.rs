//! The GlobalPointer loss (bert4keras' `global_pointer_crossentropy`, GPLinker's
//! `globalpointer_crossentropy`): the sparse multilabel CE of every (batch, head) row of logits
//! shaped (B, heads, L, L) over the spans (i, j) with i ≤ j between unmasked tokens. The token mask
//! and the upper-triangle rule are applied inside the kernel, as absent classes: no −1e12 constants
//! (which overflow float16), and exactly the dense multilabel CE on logits set to −inf there.
//! Gradients are 0 on the masked spans.

use std::ops::Range;

use super::labels::{Naming, Positives};
use super::sparse::{runs, sparse_row};
use crate::check::check_outputs;
use super::outputs::{fill_one, FirstError, LossOutputs};
use crate::element::Elem;
use crate::error::{bad_argument, bad_shape, Error};
use crate::parallel::{reduce_rows, RowValue};
use crate::rows::GradRows;
use crate::reduction::{Reduced, Reduction};
use crate::rows::Rows;

/// How the (batch, head) row values are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpReduction {
    /// One of the row reductions over the B·heads rows. `BatchMean` (sum / (B·heads)) is bert4keras'
    /// NER `global_pointer_crossentropy` (K.mean over batch × heads).
    Rows(Reduction),
    /// The sum over heads averaged over the batch (sum / B): GPLinker's `globalpointer_crossentropy`
    /// (K.mean(K.sum(loss, axis=1))).
    SumHeadsMeanBatch,
}

impl GpReduction {
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name {
            "sum_heads_mean_batch" => Ok(GpReduction::SumHeadsMeanBatch),
            other => Reduction::parse(other).map(GpReduction::Rows).map_err(|_| {
                bad_argument(format!(
                    "reduction must be one of 'none', 'sum', 'mean', 'batchmean', 'sum_heads_mean_batch'; got {other:?}"
                ))
            }),
        }
    }
}

/// Options of [`globalpointer_ce`].
#[derive(Debug, Clone, Copy)]
pub struct GlobalPointerOptions<'a> {
    /// Number of heads (entity types); the logit rows are the B·heads (batch, head) pairs in order.
    pub heads: usize,
    /// Tokens to keep (non-zero), shape (B, L); spans touching a masked token are absent.
    pub token_mask: Option<Rows<'a, u8>>,
    /// Whether a row of positives holds (start, end) pairs, or flat indices start · L + end.
    pub spans: bool,
    pub reduction: GpReduction,
}

impl Default for GlobalPointerOptions<'_> {
    fn default() -> Self {
        GlobalPointerOptions { heads: 1, token_mask: None, spans: true, reduction: GpReduction::Rows(Reduction::None) }
    }
}

/// The present classes of a row: spans (i, j), i ≤ j, both tokens kept, as ascending flat ranges.
fn span_segments(len: usize, tokens: Option<&[u8]>) -> Vec<Range<usize>> {
    let token_runs = match tokens {
        Some(m) => runs(m),
        None => std::iter::once(0..len).collect(),
    };
    let mut out = Vec::new();
    for run in &token_runs {
        for i in run.clone() {
            for r in &token_runs {
                let lo = r.start.max(i);
                if lo < r.end {
                    out.push(i * len + lo..i * len + r.end);
                }
            }
        }
    }
    out
}

/// The GlobalPointer loss of logits (B·heads rows of L·L classes) against their positive spans;
/// returns the reduced value (for `GpReduction::Rows(Reduction::None)`, the sum of the row values).
pub fn globalpointer_ce<E: Elem, V: Elem>(
    logits: Rows<'_, E>,
    positives: Positives<'_>,
    opts: &GlobalPointerOptions<'_>,
    out: LossOutputs<'_, E, V>,
) -> Result<Reduced, Error> {
    let (rows, cols) = (logits.rows(), logits.cols());
    let heads = opts.heads;
    if heads == 0 || rows % heads != 0 {
        return Err(bad_shape(format!("{rows} logit rows do not split into batches of {heads} heads")));
    }
    let batch = rows / heads;
    let len = (cols as f64).sqrt().round() as usize;
    if len * len != cols {
        return Err(bad_shape(format!("a GlobalPointer row holds L·L span logits; got {cols}, not a square")));
    }
    if let Some(m) = &opts.token_mask {
        if (m.rows(), m.cols()) != (batch, len) {
            return Err(bad_shape(format!(
                "the token mask has shape ({}, {}); expected ({batch}, {len}), (batch, sequence length)",
                m.rows(),
                m.cols()
            )));
        }
    }
    let naming = if opts.spans { Naming::Spans { len, heads } } else { Naming::Flat };
    positives.check_shape(rows, naming)?;
    check_outputs(&out, rows, cols, false)?;
    let (reduction, scale) = match opts.reduction {
        GpReduction::Rows(r) => (r, r.grad_scale(rows)),
        GpReduction::SumHeadsMeanBatch => (Reduction::Sum, 1.0 / batch.max(1) as f64),
    };
    let token_mask = opts.token_mask;
    let errors = FirstError::default();
    let kernel = |r: usize, mut g: GradRows<'_, E>| {
        let grad = g[0].as_deref_mut();
        let pos = match positives.sorted(r, cols, naming) {
            Ok(p) => p,
            Err(e) => {
                errors.report(r, e);
                fill_one(grad, f64::NAN);
                return RowValue { value: f64::NAN, counts: true };
            }
        };
        let segments = span_segments(len, token_mask.as_ref().map(|m| m.row(r / heads)));
        sparse_row(logits.row(r), &segments, &pos, scale, grad)
    };
    let mut reduced = reduce_rows(reduction, rows, cols, out.values, [out.grad, None], kernel);
    if opts.reduction == GpReduction::SumHeadsMeanBatch {
        reduced.value /= batch.max(1) as f64;
    }
    errors.into_result(reduced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_segments_cover_the_upper_triangle_of_kept_tokens() {
        // L = 4, token 2 masked: spans (0,0),(0,1),(0,3),(1,1),(1,3),(3,3)
        let segs = span_segments(4, Some(&[1, 1, 0, 1]));
        let classes: Vec<usize> = segs.into_iter().flatten().collect();
        assert_eq!(classes, vec![0, 1, 3, 5, 7, 15]);
        let all: Vec<usize> = span_segments(3, None).into_iter().flatten().collect();
        assert_eq!(all, vec![0, 1, 2, 4, 5, 8]);
    }
}
