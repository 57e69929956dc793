//! Reductions over rows, and the compensated sum that makes them accurate and order-independent
//! of the thread count (blocks of rows are summed in a fixed order).

use crate::error::{bad_argument, Error};

/// How per-row values are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// One value per row.
    None,
    /// The sum of the row values.
    Sum,
    /// The sum divided by the number of rows that count (rows with no class present, or whose
    /// label is ignored, don't). 0 when no row counts.
    Mean,
    /// The sum divided by the number of rows (PyTorch's name).
    BatchMean,
}

impl Reduction {
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name {
            "none" => Ok(Reduction::None),
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            "batchmean" => Ok(Reduction::BatchMean),
            other => Err(bad_argument(format!(
                "reduction must be one of 'none', 'sum', 'mean', 'batchmean'; got {other:?}"
            ))),
        }
    }

    /// The gradient scale applied inside the kernel; `Mean` is corrected afterwards when some
    /// rows did not count.
    pub(crate) fn grad_scale(self, rows: usize) -> f64 {
        match self {
            Reduction::None | Reduction::Sum => 1.0,
            Reduction::Mean | Reduction::BatchMean => 1.0 / rows.max(1) as f64,
        }
    }
}

/// The result of a call: the reduced value (the sum for `Reduction::None`) and how many rows counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reduced {
    pub value: f64,
    pub counted: usize,
    pub rows: usize,
}

/// Neumaier's compensated sum. Non-finite terms are added plainly so inf and NaN propagate.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CompensatedSum {
    sum: f64,
    comp: f64,
}

impl CompensatedSum {
    #[inline]
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if t.is_finite() {
            if self.sum.abs() >= x.abs() {
                self.comp += (self.sum - t) + x;
            } else {
                self.comp += (x - t) + self.sum;
            }
        }
        self.sum = t;
    }

    pub fn merge(&mut self, other: CompensatedSum) {
        self.add(other.sum);
        self.comp += other.comp;
    }

    pub fn value(&self) -> f64 {
        if self.sum.is_finite() {
            self.sum + self.comp
        } else {
            self.sum
        }
    }
}

/// Combines a total and the counts into the reduced value.
pub(crate) fn finish(reduction: Reduction, total: f64, counted: usize, rows: usize) -> f64 {
    match reduction {
        Reduction::None | Reduction::Sum => total,
        Reduction::Mean => {
            if counted == 0 {
                0.0
            } else {
                total / counted as f64
            }
        }
        Reduction::BatchMean => {
            if rows == 0 {
                0.0
            } else {
                total / rows as f64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compensated_sum_keeps_small_terms() {
        let mut s = CompensatedSum::default();
        s.add(1e16);
        for _ in 0..1000 {
            s.add(1.0);
        }
        s.add(-1e16);
        assert_eq!(s.value(), 1000.0);
    }

    #[test]
    fn compensated_sum_propagates_inf_and_nan() {
        let mut s = CompensatedSum::default();
        s.add(1.0);
        s.add(f64::INFINITY);
        s.add(2.0);
        assert_eq!(s.value(), f64::INFINITY);
        s.add(f64::NAN);
        assert!(s.value().is_nan());
    }

    #[test]
    fn mean_of_no_counted_rows_is_zero() {
        assert_eq!(finish(Reduction::Mean, 0.0, 0, 5), 0.0);
        assert_eq!(finish(Reduction::BatchMean, 6.0, 2, 3), 2.0);
        assert!(Reduction::parse("avg").is_err());
    }
}
