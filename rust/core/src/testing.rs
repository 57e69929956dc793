//! Helpers shared by the unit tests.

/// Deterministic pseudo-random values in [−1, 1) (xorshift64 from `seed`).
pub(crate) fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// `f()` with one thread, then with two (and the default pool again after): for the tests that
/// a result does not depend on the thread count.
pub(crate) fn with_1_and_2_threads<R>(f: impl Fn() -> R) -> (R, R) {
    crate::parallel::set_num_threads(1).unwrap();
    let one = f();
    crate::parallel::set_num_threads(2).unwrap();
    let two = f();
    crate::parallel::set_num_threads(0).unwrap();
    (one, two)
}

/// The central difference of `f` at `x` along coordinate `i`, step 1e-6.
pub(crate) fn central_difference(f: impl Fn(&[f64]) -> f64, x: &[f64], i: usize) -> f64 {
    let h = 1e-6;
    let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
    xp[i] += h;
    xm[i] -= h;
    (f(&xp) - f(&xm)) / (2.0 * h)
}
