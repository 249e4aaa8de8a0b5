//! Central finite differences and a small deterministic test RNG.

/// Central finite differences of a scalar function: returns the numeric gradient, one entry per x element.
///
/// `g[i] = (f(x + h·eᵢ) − f(x − h·eᵢ)) / ((xᵢ + h) − (xᵢ − h))`; the denominator
/// is the step actually taken after rounding, which is `2h` up to one ulp.
pub fn numeric_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    assert!(h > 0.0, "finite-difference step must be positive, got {h}");
    let mut probe = x.to_vec();
    let mut grad = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let plus = x[i] + h;
        let minus = x[i] - h;
        probe[i] = plus;
        let f_plus = f(&probe);
        probe[i] = minus;
        let f_minus = f(&probe);
        probe[i] = x[i];
        grad.push((f_plus - f_minus) / (plus - minus));
    }
    grad
}

/// The step and tolerances of the gradient checks of this crate's tests, `(h, atol, rtol)`.
pub const CHECK: (f64, f64, f64) = (1e-6, 1e-8, 1e-6);

/// Panics with [`check_gradient`]'s message unless `analytic` is `f`'s gradient at `x` within
/// [`CHECK`].
pub fn assert_gradient(f: impl Fn(&[f64]) -> f64, x: &[f64], analytic: &[f64]) {
    let (h, atol, rtol) = CHECK;
    if let Err(e) = check_gradient(f, x, analytic, h, atol, rtol) {
        panic!("{e}");
    }
}

/// Compares analytic vs numeric; returns Err(message naming the worst element index, both values and the error) if any |a-n| > atol + rtol*|n|.
///
/// The numeric gradient is [`numeric_gradient`]`(f, x, h)`. "Worst" is the
/// element with the largest `|a − n| / (atol + rtol·|n|)`; a NaN in either
/// gradient counts as a failure.
pub fn check_gradient(
    f: impl Fn(&[f64]) -> f64, x: &[f64], analytic: &[f64], h: f64, atol: f64, rtol: f64,
) -> Result<(), String> {
    if analytic.len() != x.len() {
        return Err(format!(
            "analytic gradient has {} elements but x has {}",
            analytic.len(),
            x.len()
        ));
    }
    let numeric = numeric_gradient(f, x, h);
    let mut failures = 0usize;
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&a, &n)) in analytic.iter().zip(&numeric).enumerate() {
        let err = (a - n).abs();
        let tol = atol + rtol * n.abs();
        // `err <= tol` is false for NaN, so NaN counts as a failure.
        let within = err <= tol;
        if !within {
            failures += 1;
            let ratio = if err.is_nan() {
                f64::INFINITY
            } else {
                err / tol
            };
            if worst.is_none_or(|(_, r)| ratio > r) {
                worst = Some((i, ratio));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => {
            let (a, n) = (analytic[i], numeric[i]);
            Err(format!(
                "gradient mismatch in {failures} of {} elements; worst at index {i}: \
                 analytic {a:.12e}, numeric {n:.12e}, |a-n| = {:.3e} > tol {:.3e} \
                 (atol {atol:e}, rtol {rtol:e}, h {h:e})",
                x.len(),
                (a - n).abs(),
                atol + rtol * n.abs(),
            ))
        }
    }
}

/// A small deterministic pseudo-random generator for tests (SplitMix64), so this crate stays dependency-free.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// Creates a generator; the same seed always yields the same sequence.
    pub fn new(seed: u64) -> Self {
        TestRng(seed)
    }

    /// Next 64 raw bits (SplitMix64: `state += 0x9E3779B97F4A7C15`, then the finalizer mix).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`: `lo + (hi − lo)·u` with `u = (bits >> 11)·2⁻⁵³`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        lo + (hi - lo) * u
    }

    /// `n` independent draws of [`TestRng::uniform`]`(lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Uniform integer in `0..n` (`n > 0`; modulo bias is irrelevant for tests).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "TestRng::below(0)");
        (self.next_u64() % n as u64) as usize
    }

    /// `n` distinct, well-separated values in random order: a shuffle of
    /// `lo + k·spacing` for `k in 0..n` (Fisher–Yates). Useful to keep
    /// max-pool arg-maxes and |·| kinks stable under finite-difference probes.
    pub fn distinct(&mut self, n: usize, lo: f64, spacing: f64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n).map(|k| lo + k as f64 * spacing).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_gradient_of_polynomial() {
        // f = x0² + 3 x0 x1 + x1³ ; ∇f = (2 x0 + 3 x1, 3 x0 + 3 x1²)
        let f = |x: &[f64]| x[0] * x[0] + 3.0 * x[0] * x[1] + x[1].powi(3);
        let x = [0.7, -1.3];
        let g = numeric_gradient(f, &x, 1e-6);
        let want = [2.0 * 0.7 + 3.0 * -1.3, 3.0 * 0.7 + 3.0 * 1.69];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-8, "{a} vs {b}");
        }
        assert!(check_gradient(f, &x, &want, 1e-6, 1e-8, 1e-6).is_ok());
    }

    #[test]
    fn check_gradient_reports_worst_index() {
        let f = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>();
        let x = [1.0, 2.0, 3.0];
        let mut analytic = vec![2.0, 4.0, 6.0];
        assert!(check_gradient(f, &x, &analytic, 1e-6, 1e-8, 1e-6).is_ok());
        analytic[1] = 4.1;
        analytic[2] = 7.0;
        let err = check_gradient(f, &x, &analytic, 1e-6, 1e-8, 1e-6).unwrap_err();
        assert!(err.contains("index 2"), "{err}");
        assert!(err.contains("2 of 3"), "{err}");
        analytic[0] = f64::NAN;
        let err = check_gradient(f, &x, &analytic, 1e-6, 1e-8, 1e-6).unwrap_err();
        assert!(err.contains("index 0"), "{err}");
        assert!(check_gradient(f, &x, &[1.0], 1e-6, 1e-8, 1e-6).is_err());
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let a = TestRng::new(42).vec(1000, -2.0, 3.0);
        let b = TestRng::new(42).vec(1000, -2.0, 3.0);
        assert_eq!(a, b);
        assert_ne!(a, TestRng::new(43).vec(1000, -2.0, 3.0));
        assert!(a.iter().all(|&v| (-2.0..3.0).contains(&v)));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!((mean - 0.5).abs() < 0.2, "mean {mean}");
        // First SplitMix64 output for seed 0 (reference value).
        assert_eq!(TestRng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn distinct_is_a_permutation() {
        let mut v = TestRng::new(7).distinct(50, -1.0, 0.1);
        v.sort_by(f64::total_cmp);
        for (k, x) in v.iter().enumerate() {
            assert_eq!(*x, -1.0 + k as f64 * 0.1);
        }
    }
}
