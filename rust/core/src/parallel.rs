//! Rows in parallel. Work is cut into blocks of whole rows whose size depends only on the shape,
//! so results are bit-identical whatever the thread count; blocks run on logitdiv's own rayon pool
//! (size from `LOGITDIV_NUM_THREADS` or [`set_num_threads`]), and small calls stay on the calling
//! thread. The pool is rebuilt in a child after `fork`, where the parent's threads do not exist.

use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::element::Elem;
use crate::error::{bad_argument, Error};
use crate::reduce::{finish, CompensatedSum, Reduced, Reduction};
use crate::rows::RowsMut;

/// Elements per block of rows; also the size below which a call runs on the calling thread.
const BLOCK_ELEMS: usize = 1 << 15;

struct Pool {
    pool: Arc<ThreadPool>,
    threads: usize,
    pid: u32,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("LOGITDIV_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn build(threads: usize) -> Result<Pool, Error> {
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("logitdiv-{i}"))
        .build()
        .map_err(|e| bad_argument(format!("could not start {threads} threads: {e}")))?;
    Ok(Pool { pool: Arc::new(pool), threads, pid: std::process::id() })
}

/// The pool, built on first use and again in a forked child.
fn pool() -> Option<(Arc<ThreadPool>, usize)> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let stale = guard.as_ref().is_none_or(|p| p.pid != std::process::id());
    if stale {
        let threads = guard.as_ref().map_or_else(default_threads, |p| p.threads);
        *guard = build(threads).ok();
    }
    guard.as_ref().map(|p| (Arc::clone(&p.pool), p.threads))
}

/// Sets the number of worker threads (0 restores the default: `LOGITDIV_NUM_THREADS` or the
/// number of CPUs).
pub fn set_num_threads(n: usize) -> Result<(), Error> {
    let threads = if n == 0 { default_threads() } else { n };
    if threads > 4096 {
        return Err(bad_argument(format!("number of threads must be at most 4096; got {threads}")));
    }
    let new = build(threads)?;
    *POOL.lock().unwrap_or_else(|e| e.into_inner()) = Some(new);
    Ok(())
}

/// The number of worker threads calls will use.
pub fn num_threads() -> usize {
    pool().map_or(1, |(_, n)| n)
}

/// What a row kernel reports for its row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowValue {
    pub value: f64,
    /// Whether the row counts for `Reduction::Mean`.
    pub counts: bool,
}

/// The writable gradient rows handed to a row kernel (up to two inputs have gradients).
pub(crate) type GradRows<'g, E> = [Option<&'g mut [E]>; 2];

struct Block<'a, E, V> {
    first: usize,
    rows: usize,
    values: Option<&'a mut [V]>,
    grads: [Option<RowsMut<'a, E>>; 2],
}

/// Totals over all rows.
struct RowTotals {
    pub sum: f64,
    pub counted: usize,
}

/// Runs `kernel(row, grads)` for every row, writes per-row values into `values` (rounded to `V`),
/// and returns the compensated sum of the values and the number of rows that count.
fn for_each_row<E, V, K>(
    rows: usize,
    cols: usize,
    mut values: Option<&mut [V]>,
    mut grads: [Option<RowsMut<'_, E>>; 2],
    kernel: K,
) -> RowTotals
where
    E: Elem,
    V: Elem,
    K: Fn(usize, GradRows<'_, E>) -> RowValue + Sync,
{
    let per_block = (BLOCK_ELEMS / cols.max(1)).max(1);
    let mut blocks = Vec::with_capacity(rows.div_ceil(per_block));
    let mut first = 0;
    while first < rows {
        let n = per_block.min(rows - first);
        let v = values.take().map(|v| {
            let (head, tail) = v.split_at_mut(n);
            values = Some(tail);
            head
        });
        let g = [
            grads[0].as_mut().map(|g| g.split_off_front(n)),
            grads[1].as_mut().map(|g| g.split_off_front(n)),
        ];
        blocks.push(Block { first, rows: n, values: v, grads: g });
        first += n;
    }

    let run = |mut b: Block<'_, E, V>| -> (CompensatedSum, usize) {
        let mut sum = CompensatedSum::default();
        let mut counted = 0;
        for r in 0..b.rows {
            let [g0, g1] = &mut b.grads;
            let out = kernel(b.first + r, [g0.as_mut().map(|g| g.row_mut(r)), g1.as_mut().map(|g| g.row_mut(r))]);
            if let Some(v) = b.values.as_deref_mut() {
                v[r] = V::from_f64(out.value);
            }
            sum.add(out.value);
            counted += usize::from(out.counts);
        }
        (sum, counted)
    };

    let parts: Vec<(CompensatedSum, usize)> = match pool() {
        Some((pool, threads)) if threads > 1 && rows.saturating_mul(cols) > BLOCK_ELEMS => {
            pool.install(|| blocks.into_par_iter().map(run).collect())
        }
        _ => blocks.into_iter().map(run).collect(),
    };
    let mut total = CompensatedSum::default();
    let mut counted = 0;
    for (s, c) in parts {
        total.merge(s);
        counted += c;
    }
    RowTotals { sum: total.value(), counted }
}

/// Runs `kernel` over every row (see [`for_each_row`]) and applies `reduction`: the kernel scales
/// gradients by `reduction.grad_scale(rows)`, and `Mean` is corrected here when some rows did not count.
pub(crate) fn reduce_rows<E, V, K>(
    reduction: Reduction,
    rows: usize,
    cols: usize,
    values: Option<&mut [V]>,
    mut grads: [Option<RowsMut<'_, E>>; 2],
    kernel: K,
) -> Reduced
where
    E: Elem,
    V: Elem,
    K: Fn(usize, GradRows<'_, E>) -> RowValue + Sync,
{
    let [g0, g1] = &mut grads;
    let totals = for_each_row(rows, cols, values, [g0.as_mut().map(|g| g.reborrow()), g1.as_mut().map(|g| g.reborrow())], kernel);
    if reduction == Reduction::Mean && totals.counted > 0 && totals.counted != rows {
        rescale(&mut grads, rows as f64 / totals.counted as f64);
    }
    Reduced { value: finish(reduction, totals.sum, totals.counted, rows), counted: totals.counted, rows }
}

/// Multiplies every gradient element by `factor` (the `Mean` correction when some rows did not count).
fn rescale<E: Elem>(grads: &mut [Option<RowsMut<'_, E>>; 2], factor: f64) {
    for g in grads.iter_mut().flatten() {
        for r in 0..g.rows() {
            for x in g.row_mut(r) {
                *x = E::from_f64(x.to_f64() * factor);
            }
        }
    }
}
