//! Row-major matrix views: `rows` rows of `cols` elements, row `i` starting at `i * stride`.
//! A stride of 0 repeats one row for every row (a broadcast mask or weight vector).

use crate::element::Elem;
use crate::error::{bad_shape, Error};

/// A read-only matrix of rows.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    stride: usize,
}

/// The number of elements a `rows` × `cols` view with this stride spans, or None on overflow.
fn span(rows: usize, cols: usize, stride: usize) -> Option<usize> {
    if rows == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(stride)?.checked_add(cols)
}

fn check_view(what: &str, len: usize, rows: usize, cols: usize, stride: usize) -> Result<(), Error> {
    // stride 0 repeats one row (a broadcast mask or weight vector), also over zero rows
    if stride < cols && stride != 0 {
        return Err(bad_shape(format!(
            "{what}: row stride {stride} is shorter than a row of {cols} elements"
        )));
    }
    let need = span(rows, cols, stride).ok_or_else(|| {
        bad_shape(format!("{what}: {rows} rows × stride {stride} overflows the address space"))
    })?;
    if len < need {
        return Err(bad_shape(format!(
            "{what}: a {rows}×{cols} view with row stride {stride} needs {need} elements, the buffer has {len}"
        )));
    }
    Ok(())
}

/// `rows()`, `cols()` and `stride()` of a view (both views hold the same three fields).
macro_rules! shape_accessors {
    () => {
        pub fn rows(&self) -> usize {
            self.rows
        }

        pub fn cols(&self) -> usize {
            self.cols
        }

        pub fn stride(&self) -> usize {
            self.stride
        }
    };
}

impl<'a, T> Rows<'a, T> {
    /// A view of `rows` rows of `cols` elements; `stride` is the distance between row starts
    /// (≥ `cols`, or 0 to repeat one row).
    pub fn new(data: &'a [T], rows: usize, cols: usize, stride: usize) -> Result<Self, Error> {
        check_view("input", data.len(), rows, cols, stride)?;
        Ok(Rows { data, rows, cols, stride })
    }

    /// A C-contiguous view.
    pub fn contiguous(data: &'a [T], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, cols)
    }

    shape_accessors!();

    /// The underlying buffer.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [T] {
        let start = i * self.stride;
        &self.data[start..start + self.cols]
    }
}

/// A writable matrix of rows (strides ≥ cols, so rows never overlap).
#[derive(Debug)]
pub struct RowsMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    stride: usize,
}

impl<'a, T> RowsMut<'a, T> {
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, stride: usize) -> Result<Self, Error> {
        if stride < cols {
            return Err(bad_shape(format!(
                "output: row stride {stride} is shorter than a row of {cols} elements"
            )));
        }
        check_view("output", data.len(), rows, cols, stride)?;
        Ok(RowsMut { data, rows, cols, stride })
    }

    pub fn contiguous(data: &'a mut [T], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, cols)
    }

    shape_accessors!();

    /// The underlying buffer.
    pub fn into_data(self) -> &'a mut [T] {
        self.data
    }

    #[inline]
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        let start = i * self.stride;
        &mut self.data[start..start + self.cols]
    }

    /// A shorter-lived view of the same rows, leaving `self` usable afterwards.
    pub fn reborrow(&mut self) -> RowsMut<'_, T> {
        RowsMut { data: &mut *self.data, rows: self.rows, cols: self.cols, stride: self.stride }
    }

    /// Splits off the first `n` rows; `self` keeps the rest.
    pub fn split_off_front(&mut self, n: usize) -> RowsMut<'a, T> {
        assert!(n <= self.rows);
        let data = std::mem::take(&mut self.data);
        let cut = if n == self.rows { data.len() } else { n * self.stride };
        let (front, back) = data.split_at_mut(cut);
        self.data = back;
        self.rows -= n;
        RowsMut { data: front, rows: n, cols: self.cols, stride: self.stride }
    }
}

/// The writable gradient rows handed to a row kernel (up to two inputs have gradients).
pub(crate) type GradRows<'g, E> = [Option<&'g mut [E]>; 2];

/// Writes `x` into every element of the gradient rows that were asked for.
pub(crate) fn fill<E: Elem>(g: &mut GradRows<'_, E>, x: f64) {
    for row in g.iter_mut().flatten() {
        row.fill(E::from_f64(x));
    }
}

