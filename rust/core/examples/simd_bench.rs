//! Microbenchmark of the SIMD paths: elements per second of exp, ln, ln_1p, exp_m1, phi,
//! x_minus_log1p and log-sum-exp over a 32768-element array, on every available path, beside
//! std's scalar functions (for phi and x_minus_log1p f64: `math`'s scalar versions). One thread.
//!
//! cargo run --release -p logitdiv-core --example simd_bench

use std::hint::black_box;
use std::time::{Duration, Instant};

use half::f16;
use logitdiv_core::simd::map::{map_on, Func};
use logitdiv_core::simd::logsumexp::logsumexp_on;
use logitdiv_core::simd::{available, Isa, Load, Real};

const N: usize = 32 * 1024;

/// Best time per call of each of `fs`, measured round-robin (so a busy moment hits every
/// variant alike): 15 rounds, each running every variant long enough to be measurable.
fn best_times(fs: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let reps: Vec<u32> = fs
        .iter_mut()
        .map(|f| {
            let mut reps = 1;
            loop {
                let start = Instant::now();
                for _ in 0..reps {
                    f();
                }
                if start.elapsed() >= Duration::from_millis(10) {
                    return reps;
                }
                reps *= 2;
            }
        })
        .collect();
    let mut best = vec![Duration::MAX; fs.len()];
    for _ in 0..15 {
        for ((f, &n), b) in fs.iter_mut().zip(&reps).zip(&mut best) {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            *b = (*b).min(start.elapsed() / n);
        }
    }
    best
}

fn rate(d: Duration) -> f64 {
    N as f64 / d.as_secs_f64() / 1e9
}

/// Inputs spread over the range where each function is used.
fn inputs<T: Real>(func: Func) -> Vec<T> {
    let (lo, hi) = match func {
        Func::Exp | Func::ExpM1 => (-20.0, 20.0),
        Func::Ln => (1e-3, 1e3),
        Func::Ln1p | Func::XMinusLog1p => (-0.9, 10.0),
        Func::Phi => (-5.0, 5.0),
    };
    (0..N).map(|i| T::from_f64(lo + (hi - lo) * ((i * 7919) % N) as f64 / N as f64)).collect()
}

fn std_f32(func: Func) -> Option<fn(f32) -> f32> {
    Some(match func {
        Func::Exp => f32::exp,
        Func::ExpM1 => f32::exp_m1,
        Func::Ln => f32::ln,
        Func::Ln1p => f32::ln_1p,
        _ => return None,
    })
}

fn std_f64(func: Func) -> Option<fn(f64) -> f64> {
    Some(match func {
        Func::Exp => f64::exp,
        Func::ExpM1 => f64::exp_m1,
        Func::Ln => f64::ln,
        Func::Ln1p => f64::ln_1p,
        Func::Phi => logitdiv_core::math::phi,
        Func::XMinusLog1p => logitdiv_core::math::x_minus_log1p,
    })
}

fn print_row(name: &str, base: Option<f64>, rates: &[f64]) {
    print!("| {name:<17} | {:>9} |", base.map_or("—".into(), |b| format!("{b:.3}")));
    for &r in rates {
        match base {
            Some(b) => print!(" {r:>7.3} ({:>5.1}×) |", r / b),
            None => print!(" {r:>7.3}          |"),
        }
    }
    println!();
}

fn row<T: Real>(name: &str, func: Func, std_fn: Option<fn(T) -> T>, isas: &[Isa]) {
    let x = inputs::<T>(func);
    let mut out = vec![T::ZERO; N];
    let out = std::cell::RefCell::new(&mut out);
    let mut base = || {
        if let Some(f) = std_fn {
            for (o, &v) in out.borrow_mut().iter_mut().zip(black_box(&x)) {
                *o = f(v);
            }
        }
    };
    let mut paths: Vec<Box<dyn FnMut()>> = isas
        .iter()
        .map(|&isa| {
            let (x, out) = (&x, &out);
            Box::new(move || map_on(isa, func, black_box(x), &mut out.borrow_mut()).unwrap()) as Box<dyn FnMut()>
        })
        .collect();
    let mut fs: Vec<&mut dyn FnMut()> = Vec::new();
    if std_fn.is_some() {
        fs.push(&mut base);
    }
    fs.extend(paths.iter_mut().map(|f| &mut **f as &mut dyn FnMut()));
    let t = best_times(&mut fs);
    let (base, t) = if std_fn.is_some() { (Some(rate(t[0])), &t[1..]) } else { (None, &t[..]) };
    print_row(name, base, &t.iter().map(|&d| rate(d)).collect::<Vec<_>>());
}

fn lse_row<T: Load>(name: &str, isas: &[Isa], from_f64: fn(f64) -> T, to_f64: fn(T) -> f64) {
    let x: Vec<T> = (0..N).map(|i| from_f64(((i * 7919) % N) as f64 / N as f64 * 20.0 - 10.0)).collect();
    // std baseline: max, then Σ e^{x − max} with std's f64 exp, two passes.
    let mut base = || {
        let x = black_box(&x);
        let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(to_f64(v)));
        let s: f64 = x.iter().map(|&v| (to_f64(v) - m).exp()).sum();
        black_box(m + s.ln());
    };
    let mut paths: Vec<Box<dyn FnMut()>> = isas
        .iter()
        .map(|&isa| {
            let x = &x;
            Box::new(move || {
                black_box(logsumexp_on(isa, black_box(x)).unwrap());
            }) as Box<dyn FnMut()>
        })
        .collect();
    let mut fs: Vec<&mut dyn FnMut()> = vec![&mut base];
    fs.extend(paths.iter_mut().map(|f| &mut **f as &mut dyn FnMut()));
    let t = best_times(&mut fs);
    print_row(name, Some(rate(t[0])), &t[1..].iter().map(|&d| rate(d)).collect::<Vec<_>>());
}

fn main() {
    let isas = available();
    println!("{N} elements per call, one thread; Gelem/s (speed-up over std's scalar function); best of 15, round-robin\n");
    print!("| function          | std       |");
    for isa in &isas {
        print!(" {:<16} |", isa.name());
    }
    println!();
    print!("|-------------------|-----------|");
    for _ in &isas {
        print!("------------------|");
    }
    println!();
    for func in Func::ALL {
        row::<f32>(&format!("{} f32", func.name()), func, std_f32(func), &isas);
    }
    for func in Func::ALL {
        row::<f64>(&format!("{} f64", func.name()), func, std_f64(func), &isas);
    }
    lse_row::<f32>("logsumexp f32", &isas, |v| v as f32, f64::from);
    lse_row::<f64>("logsumexp f64", &isas, |v| v, |v| v);
    lse_row::<f16>("logsumexp f16", &isas, f16::from_f64, f16::to_f64);
}
