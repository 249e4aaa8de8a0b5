//! The map from an RGB image in `[0, 1]`, shape `(3, h, w)`, to a weight set's
//! input convention.

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
    /// Original (Caffe) VGG: BGR order, 0–255 range, minus the mean pixel
    /// (B, G, R) = (103.939, 116.779, 123.68): `out = 255·x[[2,1,0]] − mean`.
    pub const CAFFE: PixelTransform = PixelTransform {
        perm: [2, 1, 0],
        scale: [255.0; 3],
        offset: [-103.939, -116.779, -123.68],
    };

    /// torchvision: RGB order, `(x − mean) / std` with mean (0.485, 0.456, 0.406)
    /// and std (0.229, 0.224, 0.225): `scale = 1/std`, `offset = −mean/std`.
    pub const TORCHVISION: PixelTransform = PixelTransform {
        perm: [0, 1, 2],
        scale: [1.0 / 0.229, 1.0 / 0.224, 1.0 / 0.225],
        offset: [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
    };

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

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    #[test]
    fn caffe_red_pixel() {
        let y = PixelTransform::CAFFE.forward(&[1.0, 0.0, 0.0], 1, 1);
        let want = [-103.939, -116.779, 255.0 - 123.68]; // B, G, R
        for (a, b) in y.iter().zip(want) {
            assert!(close(*a, b), "{y:?}");
        }
    }

    #[test]
    fn caffe_keeps_planes_apart() {
        // 1×2 image: pixel 0 pure blue, pixel 1 pure green.
        let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]; // R plane, G plane, B plane
        let y = PixelTransform::CAFFE.forward(&x, 1, 2);
        let want = [
            255.0 - 103.939,
            -103.939,
            -116.779,
            255.0 - 116.779,
            -123.68,
            -123.68,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!(close(*a, b), "{y:?}");
        }
    }

    #[test]
    fn torchvision_normalizes() {
        let t = PixelTransform::TORCHVISION;
        let mean = [0.485, 0.456, 0.406];
        let std = [0.229, 0.224, 0.225];
        let y = t.forward(&mean, 1, 1);
        assert!(y.iter().all(|v| v.abs() < 1e-15), "{y:?}");
        let x: Vec<f64> = (0..3).map(|c| mean[c] + std[c]).collect();
        let y = t.forward(&x, 1, 1);
        assert!(y.iter().all(|v| close(*v, 1.0)), "{y:?}");
    }

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
        for t in [PixelTransform::CAFFE, PixelTransform::TORCHVISION, custom] {
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
