//! Rectified linear unit.

/// Forward: `y = max(0, x)` elementwise.
pub fn relu_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

/// Backward: `dx = dy` where `y > 0`, else `0` (so the gradient at the kink
/// `x = 0` is 0, as in PyTorch). `y` is the forward output, or equally the
/// forward input (same sign).
pub fn relu_backward(y: &[f64], grad_out: &[f64]) -> Vec<f64> {
    assert_eq!(y.len(), grad_out.len(), "relu_backward: shape");
    y.iter()
        .zip(grad_out)
        .map(|(&y, &g)| if y > 0.0 { g } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{assert_gradient, TestRng};
    use crate::vector::dot;

    #[test]
    fn forward_semantics() {
        assert_eq!(
            relu_forward(&[-2.0, -0.0, 0.0, 0.5, 3.0]),
            vec![0.0, 0.0, 0.0, 0.5, 3.0]
        );
    }

    #[test]
    fn backward_semantics() {
        let g = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            relu_backward(&[-1.0, 0.0, 0.5, 2.0], &g),
            vec![0.0, 0.0, 3.0, 4.0]
        );
        // Input and output give the same mask.
        let x = [-1.0, 0.0, 0.5, 2.0];
        assert_eq!(relu_backward(&x, &g), relu_backward(&relu_forward(&x), &g));
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = TestRng::new(3);
        // |x| in [0.1, 1]: far from the kink.
        let x: Vec<f64> = (0..3 * 5 * 7)
            .map(|_| {
                let m = rng.uniform(0.1, 1.0);
                if rng.uniform(0.0, 1.0) < 0.5 {
                    -m
                } else {
                    m
                }
            })
            .collect();
        let g = rng.vec(x.len(), -1.0, 1.0);
        let analytic = relu_backward(&relu_forward(&x), &g);
        assert_gradient(|x| dot(&g, &relu_forward(x)), &x, &analytic);
    }
}
