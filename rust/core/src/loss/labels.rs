//! The labels the losses take, and their validation: class indices, probabilities, and positives
//! given as class indices or as (start, end) spans.

use crate::check::check_same;
use super::outputs::Masks;
use crate::element::Elem;
use crate::error::{bad_argument, bad_shape, Error};
use crate::rows::Rows;

/// The labels of a softmax loss.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a, T> {
    /// One class index per row, in [0, C); rows labelled `ignore_index` are ignored.
    Classes { labels: &'a [i64], ignore_index: i64 },
    /// A weight per class and row, finite and ≥ 0 (a distribution; rows need not sum to 1: the
    /// loss is −Σ y_i log p_i as in PyTorch).
    Probs(Rows<'a, T>),
}

impl<T> Target<'_, T> {
    pub(crate) fn check_shape(&self, rows: usize, cols: usize) -> Result<(), Error> {
        match self {
            Target::Classes { labels, .. } => {
                if labels.len() != rows {
                    return Err(bad_shape(format!(
                        "the target holds {} class indices; expected {rows}, one per row",
                        labels.len()
                    )));
                }
                Ok(())
            }
            Target::Probs(p) => check_same("the target probabilities", rows, cols, p.rows(), p.cols()),
        }
    }

    /// Checks every class index of a row that is read (not ignored, not masked out).
    pub(crate) fn check_classes(&self, cols: usize, masks: &Masks<'_>) -> Result<(), Error> {
        if let Target::Classes { labels, ignore_index } = *self {
            for (r, &y) in labels.iter().enumerate() {
                if y != ignore_index && masks.row_kept(r) && !(0..cols as i64).contains(&y) {
                    return Err(bad_argument(format!(
                        "target at row {r} is {y}; class indices must lie in [0, {cols}) or equal ignore_index ({ignore_index})"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The label of row `r`: `None` if it is ignored.
    #[inline]
    pub(crate) fn row(&self, r: usize) -> Option<RowTarget<'_, T>> {
        match self {
            Target::Classes { labels, ignore_index } => {
                let y = labels[r];
                (y != *ignore_index).then_some(RowTarget::Class(y as usize))
            }
            Target::Probs(p) => Some(RowTarget::Probs(p.row(r))),
        }
    }
}

/// The label of one row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RowTarget<'r, T> {
    Class(usize),
    Probs(&'r [T]),
}

/// The error for a probability that is negative, not finite, or (when `at_most_one`) above 1.
pub(crate) fn bad_probability<T: Elem>(row: usize, probs: &[T], at_most_one: bool) -> Error {
    let bad = probs.iter().enumerate().map(|(i, y)| (i, y.to_f64())).find(|&(_, y)| !valid_probability(y, at_most_one));
    let (i, y) = bad.unwrap_or((0, f64::NAN));
    let range = if at_most_one { "lie in [0, 1]" } else { "be finite and ≥ 0" };
    bad_argument(format!("target probabilities must {range}; got {y} at row {row}, class {i}"))
}

#[inline]
pub(crate) fn valid_probability(y: f64, at_most_one: bool) -> bool {
    y >= 0.0 && if at_most_one { y <= 1.0 } else { y.is_finite() }
}

/// Positive classes per row: K indices per row (a row of `2K` (start, end) pairs for spans), the
/// entries equal to `pad` (both entries of a pair, for spans) being padding.
#[derive(Debug, Clone, Copy)]
pub struct Positives<'a> {
    pub indices: Rows<'a, i64>,
    pub pad: i64,
}

/// How a row of positives names its classes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Naming {
    /// Flat class indices in [0, C).
    Flat,
    /// (start, end) pairs of token positions in [0, len), class = start · len + end; `heads` (to
    /// name the batch and head in messages).
    Spans { len: usize, heads: usize },
}

impl Positives<'_> {
    pub(crate) fn check_shape(&self, rows: usize, naming: Naming) -> Result<(), Error> {
        if self.indices.rows() != rows {
            return Err(bad_shape(format!(
                "the positives have {} rows; expected {rows} like the logits",
                self.indices.rows()
            )));
        }
        if matches!(naming, Naming::Spans { .. }) && self.indices.cols() % 2 != 0 {
            return Err(bad_shape(format!(
                "spans come as (start, end) pairs; a row of positives holds {} numbers",
                self.indices.cols()
            )));
        }
        Ok(())
    }

    /// The positive classes of row `r`, sorted, padding left out; an entry out of range or a class
    /// listed twice is an error naming the row and the value.
    pub(crate) fn sorted(&self, r: usize, cols: usize, naming: Naming) -> Result<Vec<usize>, Error> {
        let raw = self.indices.row(r);
        let mut out = Vec::with_capacity(raw.len());
        match naming {
            Naming::Flat => {
                for &v in raw {
                    if v == self.pad {
                        continue;
                    }
                    if !(0..cols as i64).contains(&v) {
                        return Err(bad_argument(format!(
                            "positive class {v} at row {r} is out of range: class indices must lie in [0, {cols}) or equal pad ({})",
                            self.pad
                        )));
                    }
                    out.push(v as usize);
                }
            }
            Naming::Spans { len, heads } => {
                for pair in raw.chunks_exact(2) {
                    let (a, b) = (pair[0], pair[1]);
                    if a == self.pad && b == self.pad {
                        continue;
                    }
                    if !(0..len as i64).contains(&a) || !(0..len as i64).contains(&b) {
                        return Err(bad_argument(format!(
                            "span ({a}, {b}) of batch {}, head {} is out of range: positions must lie in [0, {len}) (or both equal pad, {})",
                            r / heads.max(1),
                            r % heads.max(1),
                            self.pad
                        )));
                    }
                    out.push(a as usize * len + b as usize);
                }
            }
        }
        out.sort_unstable();
        if let Some(w) = out.windows(2).find(|w| w[0] == w[1]) {
            return Err(match naming {
                Naming::Flat => bad_argument(format!("class {} is listed twice among the positives of row {r}", w[0])),
                Naming::Spans { len, heads } => bad_argument(format!(
                    "span ({}, {}) is listed twice among the positives of batch {}, head {}",
                    w[0] / len,
                    w[0] % len,
                    r / heads.max(1),
                    r % heads.max(1)
                )),
            });
        }
        Ok(out)
    }
}
