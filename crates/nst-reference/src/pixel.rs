//! The map from an RGB image in `[0, 1]`, shape `(3, h, w)`, to a weight set's
//! input convention: a per-channel affine map with a channel permutation,
//! `out[c] = scale[c] · x[perm[c]] + offset[c]`.
//!
//! The numbers are the caller's (the GPU side's `nst_kernels::PixelTransform`,
//! built from the weights' convention by `nst_vgg::transform_for`). The tests
//! crate checks both conventions against JAX.

/// Forward: `out[c,y,x] = scale[c] · x[perm[c],y,x] + offset[c]`; `x` is `(3, h, w)`.
pub fn forward(
    x: &[f64], (h, w): (usize, usize), perm: [usize; 3], scale: [f64; 3], offset: [f64; 3],
) -> Vec<f64> {
    let n = h * w;
    assert_eq!(x.len(), 3 * n, "pixel::forward: x shape");
    let mut out = Vec::with_capacity(3 * n);
    for c in 0..3 {
        let src = &x[perm[c] * n..(perm[c] + 1) * n];
        out.extend(src.iter().map(|v| scale[c] * v + offset[c]));
    }
    out
}

/// Backward: the gradient with respect to the RGB input of [`forward`] with the same
/// `perm` and `scale`, `dx[p,y,x] = Σ_{c : perm[c] = p} scale[c] · dout[c,y,x]`.
pub fn backward(
    grad_out: &[f64], (h, w): (usize, usize), perm: [usize; 3], scale: [f64; 3],
) -> Vec<f64> {
    let n = h * w;
    assert_eq!(grad_out.len(), 3 * n, "pixel::backward: grad_out shape");
    let mut grad_in = vec![0.0; 3 * n];
    for c in 0..3 {
        let p = perm[c];
        for i in 0..n {
            grad_in[p * n + i] += scale[c] * grad_out[c * n + i];
        }
    }
    grad_in
}

/// `clamp(x, 0, 1)`: the image after an optimizer step (`pixel_clamp`).
pub fn clamp01(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{assert_gradient, TestRng};
    use crate::vector::dot;

    #[test]
    fn backward_matches_finite_differences() {
        let (h, w) = (5, 7);
        let mut rng = TestRng::new(10);
        let x = rng.vec(3 * h * w, 0.0, 1.0);
        let g = rng.vec(3 * h * w, -1.0, 1.0);
        // (perm, scale, offset): BGR, and one reading a channel twice.
        let bgr = ([2, 1, 0], [255.0, 4.0, 0.25], [-100.0, 1.0, 0.5]);
        let custom = ([1, 1, 0], [2.0, -3.0, 0.5], [0.1, 0.2, 0.3]);
        for (perm, scale, offset) in [bgr, custom] {
            let analytic = backward(&g, (h, w), perm, scale);
            assert_gradient(
                |x| dot(&g, &forward(x, (h, w), perm, scale, offset)),
                &x,
                &analytic,
            );
        }
    }
}
