//! The map from an RGB image in `[0, 1]`, shape `(3, h, w)`, to a weight set's
//! input convention.
//!
//! The conventions' numbers are the weights' (`nst_weights::InputConvention`,
//! turned into a transform by `nst_vgg::transform_for`); the GPU kernels use
//! this type too. The tests crate checks both conventions against JAX.

/// A per-channel affine map with a channel permutation:
/// `out[c] = scale[c] · x[perm[c]] + offset[c]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelTransform {
    /// Output channel `c` reads input (RGB) channel `perm[c]`.
    pub perm: [usize; 3],
    /// Multiplier of output channel `c`.
    pub scale: [f64; 3],
    /// Added to output channel `c` after scaling.
    pub offset: [f64; 3],
}

impl PixelTransform {
    /// Forward: `out[c,y,x] = scale[c] · x[perm[c],y,x] + offset[c]`; `x` is `(3, h, w)`.
    pub fn forward(&self, x: &[f64], h: usize, w: usize) -> Vec<f64> {
        let n = h * w;
        assert_eq!(x.len(), 3 * n, "PixelTransform::forward: x shape");
        let mut out = Vec::with_capacity(3 * n);
        for c in 0..3 {
            let src = &x[self.perm[c] * n..(self.perm[c] + 1) * n];
            out.extend(src.iter().map(|v| self.scale[c] * v + self.offset[c]));
        }
        out
    }

    /// Backward: the gradient wrt the RGB input,
    /// `dx[p,y,x] = Σ_{c : perm[c] = p} scale[c] · dout[c,y,x]`.
    pub fn backward(&self, grad_out: &[f64], h: usize, w: usize) -> Vec<f64> {
        let n = h * w;
        assert_eq!(
            grad_out.len(),
            3 * n,
            "PixelTransform::backward: grad_out shape"
        );
        let mut grad_in = vec![0.0; 3 * n];
        for c in 0..3 {
            let p = self.perm[c];
            for i in 0..n {
                grad_in[p * n + i] += self.scale[c] * grad_out[c * n + i];
            }
        }
        grad_in
    }
}

/// `clamp(x, 0, 1)`: the image after an optimizer step (`pixel_clamp`).
pub fn clamp01(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{check_gradient, TestRng};
    use crate::vector::dot;

    #[test]
    fn backward_matches_finite_differences() {
        let (h, w) = (5, 7);
        let mut rng = TestRng::new(10);
        let x = rng.vec(3 * h * w, 0.0, 1.0);
        let g = rng.vec(3 * h * w, -1.0, 1.0);
        let custom = PixelTransform {
            perm: [1, 1, 0],
            scale: [2.0, -3.0, 0.5],
            offset: [0.1, 0.2, 0.3],
        };
        let bgr = PixelTransform {
            perm: [2, 1, 0],
            scale: [255.0, 4.0, 0.25],
            offset: [-100.0, 1.0, 0.5],
        };
        for t in [bgr, custom] {
            let analytic = t.backward(&g, h, w);
            check_gradient(
                |x| dot(&g, &t.forward(x, h, w)),
                &x,
                &analytic,
                1e-6,
                1e-8,
                1e-6,
            )
            .unwrap();
        }
    }
}
