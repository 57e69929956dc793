//! Throughput of the divergence kernels on the benchmark's LM shape, straight from Rust (no
//! Python in the way): G element pairs per second, value only and value + both gradients, for
//! 1 thread and all threads, float32 and float16.
//!
//! cargo run --release -p logitdiv-core --example kernel_bench [-- ROWS COLS [KIND ...]]
//! (KERNEL_BENCH_VALUE_ONLY=1 skips the gradients, KERNEL_BENCH_F32_ONLY=1 the float16 input,
//! KERNEL_BENCH_THREADS=N runs N threads only; KIND may also be softmax_ce or rdrop)

use std::hint::black_box;

use half::f16;
use logitdiv_core::{
    pair_divergence, rdrop_loss, set_num_threads, softmax_ce, Elem, LossOutputs, PairKind, PairOptions, PairOutputs,
    RdropOptions, Reduction, Rows, RowsMut, SoftmaxCeOptions, Target,
};

/// Deterministic noise in [−1, 1).
fn noise(n: usize, seed: u64) -> impl Iterator<Item = f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    })
}

/// Seconds now: wall clock, or with `KERNEL_BENCH_CPU_TIME=1` the calling thread's CPU time
/// (for 1-thread runs on a busy machine: the work all runs on the calling thread then).
fn now() -> f64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_MONOTONIC: i32 = 1;
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let clock = if std::env::var_os("KERNEL_BENCH_CPU_TIME").is_some() { CLOCK_THREAD_CPUTIME_ID } else { CLOCK_MONOTONIC };
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one Timespec (two 64-bit fields on 64-bit Linux) into `ts`.
    unsafe { clock_gettime(clock, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// Best of 7 runs, in seconds.
fn best(mut f: impl FnMut()) -> f64 {
    f();
    (0..7)
        .map(|_| {
            let t0 = now();
            f();
            now() - t0
        })
        .fold(f64::INFINITY, f64::min)
}

/// Times `call(false)` (the value) and `call(true)` (value and gradients; skipped with
/// KERNEL_BENCH_VALUE_ONLY=1), best of 7 each, on each thread count, and prints their throughput
/// over the rows × cols `unit`s: "`name` `label` (rows, cols) threads=N: value X G `unit`/s,
/// value+`grads_name` Y G `unit`/s".
fn report(
    name: &str,
    label: &str,
    (rows, cols): (usize, usize),
    (unit, grads_name): (&str, &str),
    threads: &[usize],
    mut call: impl FnMut(bool),
) {
    let count = (rows * cols) as f64;
    for &n in threads {
        set_num_threads(n).unwrap();
        let value = best(|| call(false));
        let grads = if std::env::var_os("KERNEL_BENCH_VALUE_ONLY").is_some() {
            f64::NAN
        } else {
            best(|| call(true))
        };
        println!(
            "{name} {label} ({rows}, {cols}) threads={n}: value {:.3} G {unit}/s, value+{grads_name} {:.3} G {unit}/s",
            count / value / 1e9,
            count / grads / 1e9
        );
    }
}

/// `n` logits: noise of seed 1, times 4.
fn logits<E: Elem>(n: usize) -> Vec<E> {
    noise(n, 1).map(|v| E::from_f64(v * 4.0)).collect()
}

/// `x` + 0.3 · noise of seed 2: the second logits of a pair.
fn perturbed<E: Elem>(x: &[E]) -> Vec<E> {
    x.iter().zip(noise(x.len(), 2)).map(|(&v, e)| E::from_f64(v.to_f64() + e * 0.3)).collect()
}

/// `rows` class labels in 0..cols (noise of seed 5).
fn labels(rows: usize, cols: usize) -> Vec<i64> {
    noise(rows, 5).map(|v| ((v + 1.0) / 2.0 * cols as f64) as i64 % cols as i64).collect()
}

fn run<E: Elem>(label: &str, kind: PairKind, rows: usize, cols: usize, threads: &[usize]) {
    let s: Vec<E> = logits(rows * cols);
    let t = perturbed(&s);
    let (mut gs, mut gt) = (vec![E::from_f64(0.0); rows * cols], vec![E::from_f64(0.0); rows * cols]);
    let opts = PairOptions { reduction: Reduction::Sum, ..PairOptions::default() };
    let (sr, tr) = (Rows::contiguous(&s, rows, cols).unwrap(), Rows::contiguous(&t, rows, cols).unwrap());
    report(&format!("{kind:?}"), label, (rows, cols), ("pairs", "grads"), threads, |grads| {
        let out: PairOutputs<'_, E, f64> = PairOutputs {
            values: None,
            grad_s: grads.then(|| RowsMut::contiguous(&mut gs, rows, cols).unwrap()),
            grad_t: grads.then(|| RowsMut::contiguous(&mut gt, rows, cols).unwrap()),
        };
        black_box(pair_divergence(kind, sr, tr, &opts, out).unwrap());
    });
}

/// Softmax cross-entropy against class labels: value, and value + gradient.
fn run_ce<E: Elem>(label: &str, rows: usize, cols: usize, threads: &[usize]) {
    let s: Vec<E> = logits(rows * cols);
    let labels = labels(rows, cols);
    let mut g = vec![E::from_f64(0.0); rows * cols];
    let opts = SoftmaxCeOptions { reduction: Reduction::Mean, ..SoftmaxCeOptions::default() };
    let sr = Rows::contiguous(&s, rows, cols).unwrap();
    let target = || -> Target<'_, f32> { Target::Classes { labels: &labels, ignore_index: -100 } };
    report("softmax_ce", label, (rows, cols), ("elem", "grad"), threads, |grads| {
        let grad = grads.then(|| RowsMut::contiguous(&mut g, rows, cols).unwrap());
        let out: LossOutputs<'_, E, f64> = LossOutputs { values: None, grad, grad_second: None };
        black_box(softmax_ce(sr, target(), &opts, out).unwrap());
    });
}

/// R-Drop (softmax kind, α = 4) against class labels: value, and value + both gradients.
fn run_rdrop<E: Elem>(label: &str, rows: usize, cols: usize, threads: &[usize]) {
    let s1: Vec<E> = logits(rows * cols);
    let s2 = perturbed(&s1);
    let labels = labels(rows, cols);
    let (mut g1, mut g2) = (vec![E::from_f64(0.0); rows * cols], vec![E::from_f64(0.0); rows * cols]);
    let opts = RdropOptions { alpha: 4.0, reduction: Reduction::Mean, ..RdropOptions::default() };
    let (r1, r2) = (Rows::contiguous(&s1, rows, cols).unwrap(), Rows::contiguous(&s2, rows, cols).unwrap());
    let target = || -> Target<'_, f32> { Target::Classes { labels: &labels, ignore_index: -100 } };
    report("rdrop", label, (rows, cols), ("pairs", "grads"), threads, |grads| {
        let out: LossOutputs<'_, E, f64> = LossOutputs {
            values: None,
            grad: grads.then(|| RowsMut::contiguous(&mut g1, rows, cols).unwrap()),
            grad_second: grads.then(|| RowsMut::contiguous(&mut g2, rows, cols).unwrap()),
        };
        black_box(rdrop_loss(r1, r2, target(), &opts, out).unwrap());
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = args.first().and_then(|a| a.parse().ok()).unwrap_or(2048);
    let cols = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32000);
    let threads: Vec<usize> = match std::env::var("KERNEL_BENCH_THREADS") {
        Ok(n) => vec![n.trim().parse().expect("KERNEL_BENCH_THREADS: a number")],
        Err(_) => vec![1, std::thread::available_parallelism().map_or(1, |n| n.get())],
    };
    if args.get(2).map(String::as_str) == Some("rdrop") {
        run_rdrop::<f32>("f32", rows, cols, &threads);
        if std::env::var_os("KERNEL_BENCH_F32_ONLY").is_none() {
            run_rdrop::<f16>("f16", rows, cols, &threads);
        }
        return;
    }
    if args.get(2).map(String::as_str) == Some("softmax_ce") {
        run_ce::<f32>("f32", rows, cols, &threads);
        if std::env::var_os("KERNEL_BENCH_F32_ONLY").is_none() {
            run_ce::<f16>("f16", rows, cols, &threads);
        }
        return;
    }
    let kinds: Vec<PairKind> = if args.len() > 2 {
        args[2..]
            .iter()
            .map(|k| PairKind::parse(k).unwrap())
            .collect()
    } else {
        vec![
            PairKind::Kl,
            PairKind::SymKl,
            PairKind::Js,
            PairKind::SigmoidKl,
            PairKind::SigmoidSymKl,
        ]
    };
    for kind in kinds {
        run::<f32>("f32", kind, rows, cols, &threads);
        if std::env::var_os("KERNEL_BENCH_F32_ONLY").is_none() {
            run::<f16>("f16", kind, rows, cols, &threads);
        }
    }
}
