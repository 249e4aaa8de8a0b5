//! PyTorch's Adam exactly (`torch.optim.Adam` without weight decay, amsgrad or
//! maximize), one step at a time.

/// Adam's per-element moment estimates and the step count.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    /// First-moment (mean) estimate, one per parameter.
    pub m: Vec<f64>,
    /// Second-moment (uncentered variance) estimate, one per parameter.
    pub v: Vec<f64>,
    /// Number of steps taken so far (0 before the first).
    pub step: u32,
}

impl AdamState {
    /// Zeroed moments for `len` parameters, step 0.
    pub fn new(len: usize) -> Self {
        AdamState {
            m: vec![0.0; len],
            v: vec![0.0; len],
            step: 0,
        }
    }
}

/// One Adam step, in place, with learning rate `lr`, moment decays `beta1` (β₁) and `beta2`
/// (β₂) and `eps` (the hyper-parameters are the caller's: `nst_kernels::AdamParams` holds
/// PyTorch's defaults):
/// `step += 1; m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²; bc1 = 1−β₁^step; bc2 = 1−β₂^step;`
/// `x −= (lr/bc1) · m / (√v/√bc2 + eps)`.
pub fn adam_step(
    x: &mut [f64], grad: &[f64], state: &mut AdamState, [lr, beta1, beta2, eps]: [f64; 4],
) {
    assert_eq!(grad.len(), x.len(), "adam_step: grad shape");
    assert_eq!(state.m.len(), x.len(), "adam_step: state.m shape");
    assert_eq!(state.v.len(), x.len(), "adam_step: state.v shape");
    state.step += 1;
    let t = f64::from(state.step);
    let bc1 = 1.0 - beta1.powf(t);
    let bc2_sqrt = (1.0 - beta2.powf(t)).sqrt();
    let step_size = lr / bc1;
    for i in 0..x.len() {
        let g = grad[i];
        state.m[i] = beta1 * state.m[i] + (1.0 - beta1) * g;
        state.v[i] = beta2 * state.v[i] + (1.0 - beta2) * g * g;
        let denom = state.v[i].sqrt() / bc2_sqrt + eps;
        x[i] -= step_size * state.m[i] / denom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{assert_gradient, TestRng};
    use crate::loss::{mse_backward, mse_forward};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn first_step_moves_by_lr_times_sign() {
        let lr = 0.01;
        let p = [lr, 0.9, 0.999, 1e-8];
        let x0 = [1.0, -2.0, 0.5, 3.0, 0.0];
        let g = [0.3, -7.0, 1e-3, -1e3, 0.0];
        let mut x = x0;
        let mut s = AdamState::new(x.len());
        adam_step(&mut x, &g, &mut s, p);
        assert_eq!(s.step, 1);
        for i in 0..x.len() {
            // m̂ = g, v̂ = g², so the move is lr·g/(|g| + eps).
            let want = x0[i] - lr * g[i] / (g[i].abs() + 1e-8);
            assert!(close(x[i], want, 1e-15), "{i}: {} vs {want}", x[i]);
            let sign = if g[i] > 0.0 {
                1.0
            } else if g[i] < 0.0 {
                -1.0
            } else {
                0.0
            };
            assert!(close(x0[i] - x[i], lr * sign, 1e-7), "{i}");
        }
    }

    #[test]
    fn known_two_step_trajectory() {
        let lr = 0.1;
        let p = [lr, 0.9, 0.999, 1e-8];
        // Constant gradient: bias correction makes every step exactly lr/(1+eps).
        let mut x = [0.0];
        let mut s = AdamState::new(1);
        adam_step(&mut x, &[1.0], &mut s, p);
        adam_step(&mut x, &[1.0], &mut s, p);
        assert!(close(x[0], -2.0 * lr / (1.0 + 1e-8), 1e-14), "{}", x[0]);
        assert!(
            close(s.m[0], 0.19, 1e-15) && close(s.v[0], 0.001999, 1e-15),
            "{s:?}"
        );
        // Gradient 1 then −1: m = −0.01, m̂ = −0.01/0.19 = −1/19, v̂ = 1.
        let mut x = [0.0];
        let mut s = AdamState::new(1);
        adam_step(&mut x, &[1.0], &mut s, p);
        adam_step(&mut x, &[-1.0], &mut s, p);
        let want = -lr / (1.0 + 1e-8) + (lr / 19.0) / (1.0 + 1e-8);
        assert!(close(x[0], want, 1e-14), "{} vs {want}", x[0]);
    }

    #[test]
    fn custom_hyper_parameters_are_used() {
        let p = [0.5, 0.5, 0.75, 0.25];
        let mut x = [0.0];
        let mut s = AdamState::new(1);
        adam_step(&mut x, &[2.0], &mut s, p);
        // m = 1, v = 1, bc1 = 0.5, bc2 = 0.25: x = −(0.5/0.5)·1/(1/0.5 + 0.25).
        assert!(close(x[0], -1.0 / 2.25, 1e-15), "{}", x[0]);
    }

    #[test]
    fn minimizes_mse_with_checked_gradient() {
        // Adam driven by mse_backward (itself checked against finite
        // differences here) converges to the target.
        let mut rng = TestRng::new(11);
        let target = rng.vec(20, -1.0, 1.0);
        let mut x = rng.vec(20, -1.0, 1.0);
        let grad = mse_backward(&x, &target, 1.0);
        assert_gradient(|x| mse_forward(x, &target), &x, &grad);
        let start = mse_forward(&x, &target);
        let p = [0.02, 0.9, 0.999, 1e-8];
        let mut s = AdamState::new(x.len());
        for _ in 0..500 {
            let g = mse_backward(&x, &target, 1.0);
            adam_step(&mut x, &g, &mut s, p);
        }
        let end = mse_forward(&x, &target);
        assert!(end < 1e-4 * start, "{start} -> {end}");
    }
}
