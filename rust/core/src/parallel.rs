//! Rows in parallel. Work is cut into blocks of whole rows whose size depends only on the shape,
//! so results are bit-identical whatever the thread count; blocks run on logitdiv's own rayon pool
//! (size from `LOGITDIV_NUM_THREADS` or [`set_num_threads`]), and small calls stay on the calling
//! thread. The pool is rebuilt in a child after `fork`, where the parent's threads do not exist.
//!
//! Fork safety: only the forking thread survives in a child, so nothing the child does may wait on
//! a lock or a thread of the parent. The pool's lock is held only for a few loads and stores (a
//! pool is built outside it); a child never touches the parent's pool again (it is leaked, not
//! dropped: dropping it would signal worker threads that do not exist); and in a child whose
//! lock was caught held at the fork, calls run on the calling thread rather than block.

use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::element::Elem;
use crate::error::{bad_argument, Error};
use crate::reduction::{finish, CompensatedSum, Reduced, Reduction};
use crate::rows::{GradRows, RowsMut};

/// Elements per block of rows.
const BLOCK_ELEMS: usize = 1 << 15;

/// Calls of fewer elements run on the calling thread: waking a sleeping worker costs 50–80 µs
/// on the 2-core machine, the time of ~60k elements of a softmax CE (measured: (64, 1000) took
/// 195 µs on 2 threads against 160 µs on one; from ~190k elements on, 2 threads win).
const PARALLEL_MIN_ELEMS: usize = 4 * BLOCK_ELEMS;

struct Pool {
    pool: Arc<ThreadPool>,
    threads: usize,
    pid: u32,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// The process that last held `POOL` (0: none yet); another value than ours means we are a
/// forked child.
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Locks `POOL`. In a forked child the lock may have been held, at the fork, by a thread that does
/// not exist here: there (and before this process installed a pool, which a child of a fork at
/// that moment cannot tell apart) it is only tried, and None if it stays busy — never waited on.
/// The lock is only ever held for a few loads and stores, so a live holder lets go at once.
fn lock_pool() -> Option<MutexGuard<'static, Option<Pool>>> {
    if OWNER.load(Ordering::Acquire) == std::process::id() {
        return Some(POOL.lock().unwrap_or_else(|e| e.into_inner()));
    }
    for _ in 0..1000 {
        match POOL.try_lock() {
            Ok(g) => return Some(g),
            Err(TryLockError::Poisoned(e)) => return Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
    None
}

/// Installs `new` as the pool of this process. A previous pool of the same process is returned
/// (to be dropped outside the lock); one inherited from the parent of a fork is leaked.
fn install(guard: &mut Option<Pool>, new: Pool) -> Option<Pool> {
    let old = guard.replace(new);
    OWNER.store(std::process::id(), Ordering::Release);
    match old {
        Some(p) if p.pid != std::process::id() => {
            std::mem::forget(p);
            None
        }
        other => other,
    }
}

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

/// The pool, built on first use and again in a forked child (with the parent's thread count);
/// None when no pool can be had (the caller then runs on its own thread).
fn pool() -> Option<(Arc<ThreadPool>, usize)> {
    let pid = std::process::id();
    let threads = {
        let guard = lock_pool()?;
        match guard.as_ref() {
            Some(p) if p.pid == pid => return Some((Arc::clone(&p.pool), p.threads)),
            Some(p) => p.threads,
            None => default_threads(),
        }
    };
    // built outside the lock: spawning threads takes long, and a fork meanwhile must not find the
    // lock held
    let new = build(threads).ok()?;
    let mut guard = lock_pool()?;
    if let Some(p) = guard.as_ref().filter(|p| p.pid == pid) {
        // another thread installed one meanwhile: use it (ours is dropped, its threads end)
        return Some((Arc::clone(&p.pool), p.threads));
    }
    let got = (Arc::clone(&new.pool), new.threads);
    let old = install(&mut guard, new);
    drop(guard);
    drop(old);
    Some(got)
}

/// Sets the number of worker threads (0 restores the default: `LOGITDIV_NUM_THREADS` or the
/// number of CPUs).
pub fn set_num_threads(n: usize) -> Result<(), Error> {
    let threads = if n == 0 { default_threads() } else { n };
    crate::check::check_threads(threads)?;
    let new = build(threads)?;
    let mut guard = lock_pool().ok_or_else(|| bad_argument("the thread pool is busy in this forked child; try again"))?;
    let old = install(&mut guard, new);
    drop(guard);
    drop(old); // outside the lock: ending the old pool's threads may take a moment
    Ok(())
}

/// The number of worker threads calls will use.
pub fn num_threads() -> usize {
    pool().map_or(1, |(_, n)| n)
}

/// Rows with at least this many classes are cut into pieces of [`PIECE`] classes that run on
/// several threads (kernels whose partial results merge: the softmax divergences' online
/// statistics, the sigmoid divergences' sums). The pieces depend on the row length alone.
pub(crate) const SPLIT_COLS: usize = 1 << 18;

/// Classes per piece: both rows of a piece (256 KiB of f32) stay in L2 between a piece's sweeps.
pub(crate) const PIECE: usize = 1 << 15;

/// The classes of piece `j` of a row of `cols`.
pub(crate) fn piece(j: usize, cols: usize) -> Range<usize> {
    j * PIECE..((j + 1) * PIECE).min(cols)
}

/// One piece of each gradient row asked for, with its classes.
pub(crate) type GradPiece<'g, E> = (Range<usize>, [Option<&'g mut [E]>; 2]);

/// The gradient rows cut into the pieces of the row (every piece, whether or not a gradient
/// was asked for).
pub(crate) fn grad_pieces<'g, E>(grads: &'g mut GradRows<'_, E>, cols: usize) -> Vec<GradPiece<'g, E>> {
    let [gs, gt] = grads;
    let mut a = gs.as_deref_mut().map(|g| g.chunks_mut(PIECE));
    let mut b = gt.as_deref_mut().map(|g| g.chunks_mut(PIECE));
    (0..cols.div_ceil(PIECE))
        .map(|j| (piece(j, cols), [a.as_mut().and_then(Iterator::next), b.as_mut().and_then(Iterator::next)]))
        .collect()
}

/// `f(piece)` for every piece, in parallel on the pool when it has more than one thread, with the
/// results in the pieces' order: what a caller makes of them (a merge in that order) does not
/// depend on the thread count. A row kernel that calls it is already on the pool, where rayon
/// runs the pieces beside the other rows' work.
pub(crate) fn map_pieces<T, R, F>(pieces: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync + Send,
{
    match pool() {
        Some((pool, threads)) if threads > 1 && pieces.len() > 1 => pool.install(|| pieces.into_par_iter().map(f).collect()),
        _ => pieces.into_iter().map(f).collect(),
    }
}

/// What a row kernel reports for its row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowValue {
    pub value: f64,
    /// Whether the row counts for `Reduction::Mean`.
    pub counts: bool,
}

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
        Some((pool, threads)) if threads > 1 && rows.saturating_mul(cols) >= PARALLEL_MIN_ELEMS => {
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
