//! Where the losses write (their outputs and masks) and the helpers every loss kernel shares: the
//! first row error, gradient fills and stores, f64 gradient scratch rows. Kept apart from
//! `loss/mod.rs`, which only declares and re-exports, so the kernels and `check.rs` depend on it
//! without depending on each other.

use std::cell::RefCell;
use std::sync::Mutex;

use crate::element::Elem;
use crate::error::Error;
use crate::rows::GradRows;
use crate::rows::{Rows, RowsMut};

/// Where results go; `None` means "don't compute it". `values` receives one value per row.
#[derive(Debug, Default)]
pub struct LossOutputs<'a, E, V> {
    pub values: Option<&'a mut [V]>,
    /// The gradient with respect to the (first) logits.
    pub grad: Option<RowsMut<'a, E>>,
    /// The gradient with respect to the second logits: the teacher of `kd_loss`, `s2` of `rdrop_loss`.
    pub grad_second: Option<RowsMut<'a, E>>,
}

/// Rows and classes to leave out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Masks<'a> {
    /// Classes to keep (non-zero) or exclude (0), one per class; stride 0 repeats one row. An
    /// excluded class is absent, exactly as a −inf logit.
    pub classes: Option<Rows<'a, u8>>,
    /// Rows to keep (non-zero) or ignore (0), one per row.
    pub rows: Option<&'a [u8]>,
}

impl Masks<'_> {
    #[inline]
    pub(crate) fn row_kept(&self, r: usize) -> bool {
        self.rows.is_none_or(|m| m[r] != 0)
    }

    #[inline]
    pub(crate) fn class_row(&self, r: usize) -> Option<&[u8]> {
        self.classes.as_ref().map(|m| m.row(r))
    }
}

/// The lowest-numbered row whose labels were found invalid by a row kernel, and its error: kernels
/// run in parallel, the error reported is the same whatever the thread count.
#[derive(Debug, Default)]
pub(crate) struct FirstError(Mutex<Option<(usize, Error)>>);

impl FirstError {
    pub fn report(&self, row: usize, e: Error) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|(r, _)| row < *r) {
            *slot = Some((row, e));
        }
    }

    pub fn into_result<T>(self, ok: T) -> Result<T, Error> {
        match self.0.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((_, e)) => Err(e),
            None => Ok(ok),
        }
    }
}

/// Writes `x` into every element of one gradient row, if it was asked for.
#[inline]
pub(crate) fn fill_one<E: Elem>(g: Option<&mut [E]>, x: f64) {
    if let Some(g) = g {
        g.fill(E::from_f64(x));
    }
}

thread_local! {
    /// Per-thread f64 gradient rows of the losses made of several terms.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on f64 gradient rows of `cols` elements standing for the output rows that were asked
/// for, then rounds them once into those rows: a loss of several terms (kd_loss, rdrop_loss) adds
/// its gradients in f64, never in the storage type (two roundings to bf16 of terms that nearly
/// cancel would lose the difference). Every term's first kernel overwrites the whole row.
pub(crate) fn with_f64_grads<E: Elem, R>(
    grads: &mut GradRows<'_, E>,
    cols: usize,
    f: impl FnOnce(GradRows<'_, f64>) -> R,
) -> R {
    if grads.iter().all(Option::is_none) {
        return f([None, None]);
    }
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.resize(2 * cols, 0.0);
        let (b0, b1) = buf.split_at_mut(cols);
        let [g0, g1] = grads;
        let r = f([g0.is_some().then_some(&mut b0[..]), g1.is_some().then_some(&mut b1[..])]);
        for (out, scratch) in [(g0, &*b0), (g1, &*b1)] {
            if let Some(out) = out.as_deref_mut() {
                for (o, x) in out.iter_mut().zip(scratch) {
                    *o = E::from_f64(*x);
                }
            }
        }
        r
    })
}

/// Stores `d` into a gradient element, or adds it to what is there when `add` (a loss made of
/// several terms, each written by its own kernel).
#[inline]
pub(crate) fn store<E: Elem>(slot: &mut E, d: f64, add: bool) {
    *slot = E::from_f64(if add { slot.to_f64() + d } else { d });
}
