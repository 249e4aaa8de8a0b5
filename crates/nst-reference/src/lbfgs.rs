//! L-BFGS without a line search, as `torch.optim.LBFGS` (and Lua torch's `optim.lbfgs`, which
//! jcjohnson/neural-style uses) steps when called once per iteration, with one difference
//! that keeps the GPU version free of readbacks: the history is a ring of `history` slots
//! filled in order, and a pair that fails the curvature condition (sᵀy ≤ 1e-10) takes its
//! slot as a zero pair, which the two-loop recursion ignores, instead of being dropped.
//! Until such a pair the two agree step for step.
//!
//! Step k (1-based), with g the gradient at x:
//! - k = 1: d = −g, t = lr · min(1, 1/‖g‖₁) (a cautious first step, before any curvature is
//!   known);
//! - k > 1: the pair s = t·d (the last step), y = g − g_prev enters the ring; if sᵀy > 1e-10,
//!   γ = sᵀy / yᵀy; d = −H·g by the two-loop recursion with H₀ = γ·I; t = lr;
//! - x ← x + t·d.

use crate::vector::{asum, axpy, copy, dot, scale};

/// Pairs with sᵀy at or below this are not curvature information (the torch threshold).
pub const CURVATURE_EPS: f64 = 1e-10;

/// The optimizer's state.
#[derive(Clone, Debug)]
pub struct Lbfgs {
    /// Step size after the first iteration.
    pub lr: f64,
    s: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    /// sᵀy of each slot (1 for an empty or rejected slot).
    ys: Vec<f64>,
    gamma: f64,
    g_prev: Vec<f64>,
    k: u64,
    rejected: u64,
}

impl Lbfgs {
    /// An optimizer of `n` parameters keeping `history` pairs.
    pub fn new(n: usize, history: usize, lr: f64) -> Self {
        assert!(history > 0, "lbfgs: history must be at least 1");
        Lbfgs {
            lr,
            s: vec![vec![0.0; n]; history],
            y: vec![vec![0.0; n]; history],
            ys: vec![1.0; history],
            gamma: 1.0,
            g_prev: vec![0.0; n],
            k: 0,
            rejected: 0,
        }
    }

    /// How many pairs failed the curvature condition so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// One iteration: `g` is the gradient at `x`; `x` takes the step.
    pub fn step(&mut self, x: &mut [f64], g: &[f64]) {
        let m = self.s.len();
        let n = x.len();
        assert_eq!(g.len(), n, "lbfgs: shape");
        self.k += 1;
        let k = self.k as usize;
        let t = if k == 1 {
            let l1 = asum(g);
            self.lr * if l1 > 0.0 { (1.0 / l1).min(1.0) } else { 1.0 }
        } else {
            // The pair of the last step; its s is already in slot j.
            let j = (k - 2) % m;
            copy(1.0, g, &mut self.y[j]);
            axpy(-1.0, &self.g_prev, &mut self.y[j]);
            let ys = dot(&self.y[j], &self.s[j]);
            if ys > CURVATURE_EPS {
                self.ys[j] = ys;
                self.gamma = ys / dot(&self.y[j], &self.y[j]);
            } else {
                self.ys[j] = 1.0;
                scale(0.0, &mut self.s[j]);
                scale(0.0, &mut self.y[j]);
                self.rejected += 1;
            }
            self.lr
        };
        self.g_prev.copy_from_slice(g);
        // Two-loop recursion over the pairs present, newest first.
        let pairs = (k - 1).min(m);
        let order: Vec<usize> = (0..pairs).map(|i| (k + 2 * m - 2 - i) % m).collect();
        let mut d = vec![0.0; n];
        copy(-1.0, g, &mut d);
        let mut alpha = vec![0.0; m];
        for &i in &order {
            alpha[i] = dot(&self.s[i], &d) / self.ys[i];
            axpy(-alpha[i], &self.y[i], &mut d);
        }
        scale(self.gamma, &mut d);
        for &i in order.iter().rev() {
            let beta = dot(&self.y[i], &d) / self.ys[i];
            axpy(alpha[i] - beta, &self.s[i], &mut d);
        }
        // The step, kept as the next pair's s.
        let next = (k - 1) % m;
        copy(t, &d, &mut self.s[next]);
        axpy(1.0, &self.s[next], x);
    }

    /// The slope gᵀs of the last step s, from where the gradient `g` was.
    pub fn slope(&self, g: &[f64]) -> f64 {
        dot(g, &self.s[self.last_slot()])
    }

    /// Shrinks the last step to `tau` of itself (x ← x + (τ − 1)·s, s ← τ·s), for a step whose
    /// loss was higher: the next [`Lbfgs::step`] makes its pair of what remains of the step.
    pub fn shrink_step(&mut self, tau: f64, x: &mut [f64]) {
        let last = self.last_slot();
        let s = &mut self.s[last];
        axpy(tau - 1.0, s, x);
        scale(tau, s);
    }

    /// Takes back the last step (x ← x − s), to end at the point it was taken from.
    pub fn undo_step(&mut self, x: &mut [f64]) {
        axpy(-1.0, &self.s[self.last_slot()], x);
    }

    /// The slot holding the last step.
    fn last_slot(&self) -> usize {
        assert!(self.k > 0, "lbfgs: no step taken yet");
        (self.k as usize - 1) % self.s.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f(x) = ½ Σ aᵢ xᵢ², a badly conditioned quadratic.
    fn quadratic(x: &[f64]) -> (f64, Vec<f64>) {
        let a = |i: usize| 1.0 + 30.0 * i as f64;
        let f = x.iter().enumerate().map(|(i, v)| 0.5 * a(i) * v * v).sum();
        (f, x.iter().enumerate().map(|(i, v)| a(i) * v).collect())
    }

    #[test]
    fn converges_on_a_badly_conditioned_quadratic() {
        let mut x = vec![1.0, -2.0, 0.5, 3.0, -1.0];
        let mut opt = Lbfgs::new(x.len(), 3, 1.0);
        let f0 = quadratic(&x).0;
        for i in 0..40 {
            let (_, g) = quadratic(&x);
            opt.step(&mut x, &g);
            if i == 10 {
                // Positive curvature everywhere: no pair is refused until the steps vanish.
                assert_eq!(opt.rejected(), 0);
            }
        }
        let f = quadratic(&x).0;
        assert!(f < 1e-10 * f0, "f went from {f0} to {f}");
    }

    #[test]
    fn first_step_is_cautious_and_negative_curvature_is_skipped() {
        // f = Σ (x⁴/4 − x²): negative curvature near 0.
        let grad = |x: &[f64]| x.iter().map(|v| v * v * v - 2.0 * v).collect::<Vec<_>>();
        let mut x = vec![0.1, -0.05];
        let mut opt = Lbfgs::new(2, 2, 1.0);
        let g = grad(&x);
        opt.step(&mut x, &g);
        let l1: f64 = g.iter().map(|v| v.abs()).sum();
        // ‖g‖₁ < 1, so the first step is the full −g.
        assert!(l1 < 1.0);
        assert!((x[0] - (0.1 - g[0])).abs() < 1e-15);
        for _ in 0..30 {
            let g = grad(&x);
            opt.step(&mut x, &g);
        }
        assert!(
            opt.rejected() > 0,
            "the test should cross negative curvature"
        );
        // Minima at ±√2.
        for v in &x {
            assert!((v.abs() - 2f64.sqrt()).abs() < 1e-6, "{x:?}");
        }
    }
}
