//! Microbenchmark of the SIMD paths: elements per second of exp, ln, ln_1p, exp_m1, phi,
//! x_minus_log1p and log-sum-exp over a 32768-element array, on every available path, beside
//! std's scalar functions (for phi and x_minus_log1p f64: `math`'s scalar versions). One thread.
//!
//! cargo run --release -p logitdiv-core --example simd_bench

use std::hint::black_box;
use std::time::{Duration, Instant};

use half::f16;
use logitdiv_core::simd::map::{map_on, Func};
use logitdiv_core::simd::reduce::logsumexp_on;
use logitdiv_core::simd::{available, Isa, Load, Real};

const N: usize = 32 * 1024;

/// Best time of several runs of `f`, each repeated long enough to be measurable.
fn time(mut f: impl FnMut()) -> Duration {
    let mut reps = 1;
    loop {
        let start = Instant::now();
        for _ in 0..reps {
            f();
        }
        if start.elapsed() >= Duration::from_millis(20) {
            break;
        }
        reps *= 2;
    }
    (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            start.elapsed() / reps
        })
        .min()
        .unwrap()
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

fn row<T: Real>(name: &str, func: Func, std_fn: Option<fn(T) -> T>, isas: &[Isa]) {
    let x = inputs::<T>(func);
    let mut out = vec![T::ZERO; N];
    let base = std_fn.map(|f| {
        rate(time(|| {
            for (o, &v) in out.iter_mut().zip(black_box(&x)) {
                *o = f(v);
            }
            black_box(&out);
        }))
    });
    print!("| {name:<15} | {:>9} |", base.map_or("—".into(), |b| format!("{b:.3}")));
    for &isa in isas {
        let r = rate(time(|| {
            map_on(isa, func, black_box(&x), &mut out).unwrap();
            black_box(&out);
        }));
        match base {
            Some(b) => print!(" {r:>7.3} ({:>5.1}×) |", r / b),
            None => print!(" {r:>7.3}          |"),
        }
    }
    println!();
}

fn lse_row<T: Load>(name: &str, isas: &[Isa], from_f64: fn(f64) -> T, to_f64: fn(T) -> f64) {
    let x: Vec<T> = (0..N).map(|i| from_f64(((i * 7919) % N) as f64 / N as f64 * 20.0 - 10.0)).collect();
    // std baseline: max, then Σ e^{x − max} with std's exp of the element's compute type, in f64.
    let base = rate(time(|| {
        let x = black_box(&x);
        let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(to_f64(v)));
        let s: f64 = x.iter().map(|&v| (to_f64(v) - m).exp()).sum();
        black_box(m + s.ln());
    }));
    print!("| {name:<15} | {base:>9.3} |");
    for &isa in isas {
        let r = rate(time(|| {
            black_box(logsumexp_on(isa, black_box(&x)).unwrap());
        }));
        print!(" {r:>7.3} ({:>5.1}×) |", r / base);
    }
    println!();
}

fn main() {
    let isas = available();
    println!("{} elements per call; Gelem/s (speed-up over std scalar); best of 7\n", N);
    print!("| function        | std       |");
    for isa in &isas {
        print!(" {:<16} |", isa.name());
    }
    println!();
    print!("|-----------------|-----------|");
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
