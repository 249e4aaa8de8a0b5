//! 3×3 convolution, stride 1, zero padding 1 (PyTorch's `conv2d`, i.e. a
//! cross-correlation: the kernel is not flipped).
//!
//! Weights are laid out `(c_out, c_in, 3, 3)` row-major, as in PyTorch.

/// Index of weight tap `(co, ci, ky, kx)` in a `(c_out, c_in, 3, 3)` tensor.
fn widx(co: usize, ci: usize, ky: usize, kx: usize, c_in: usize) -> usize {
    ((co * c_in + ci) * 3 + ky) * 3 + kx
}

/// Input coordinate read by kernel tap `k` (0..3) at output coordinate `o`:
/// `o + k − 1`, or `None` where that falls in the zero padding.
fn tap(o: usize, k: usize, size: usize) -> Option<usize> {
    (o + k).checked_sub(1).filter(|&i| i < size)
}

/// Forward: `y[co,y,x] = b[co] + Σ_{ci,ky,kx} w[co,ci,ky,kx] · x[ci, y+ky−1, x+kx−1]`
/// (out-of-range input reads are 0), then `max(0, ·)` if `relu`.
///
/// `x` is `(c_in, h, w)`, `weight` is `(c_out, c_in, 3, 3)`, `bias` is `c_out`;
/// returns `(c_out, h, w)`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    x: &[f64], c_in: usize, h: usize, w: usize, weight: &[f64], bias: &[f64], c_out: usize,
    relu: bool,
) -> Vec<f64> {
    assert_eq!(x.len(), c_in * h * w, "conv2d_forward: x shape");
    assert_eq!(
        weight.len(),
        c_out * c_in * 9,
        "conv2d_forward: weight shape"
    );
    assert_eq!(bias.len(), c_out, "conv2d_forward: bias shape");
    let mut out = vec![0.0; c_out * h * w];
    for co in 0..c_out {
        for oy in 0..h {
            for ox in 0..w {
                let mut acc = bias[co];
                for ci in 0..c_in {
                    for ky in 0..3 {
                        let Some(iy) = tap(oy, ky, h) else { continue };
                        for kx in 0..3 {
                            let Some(ix) = tap(ox, kx, w) else { continue };
                            acc += weight[widx(co, ci, ky, kx, c_in)] * x[(ci * h + iy) * w + ix];
                        }
                    }
                }
                out[(co * h + oy) * w + ox] = if relu { acc.max(0.0) } else { acc };
            }
        }
    }
    out
}

/// Backward wrt the input (no ReLU; compose with [`crate::relu::relu_backward`] first):
/// `dx[ci,iy,ix] = Σ_{co,ky,kx} w[co,ci,ky,kx] · dy[co, iy−ky+1, ix−kx+1]`
/// (out-of-range `dy` reads are 0), i.e. `d(Σ dy · conv(x)) / dx`.
///
/// `grad_out` is `(c_out, h, w)`, `weight` is `(c_out, c_in, 3, 3)`; returns `(c_in, h, w)`.
pub fn conv2d_backward_input(
    grad_out: &[f64], c_out: usize, h: usize, w: usize, weight: &[f64], c_in: usize,
) -> Vec<f64> {
    assert_eq!(
        grad_out.len(),
        c_out * h * w,
        "conv2d_backward_input: grad_out shape"
    );
    assert_eq!(
        weight.len(),
        c_out * c_in * 9,
        "conv2d_backward_input: weight shape"
    );
    // Scatter form: the exact transpose of the forward's gather.
    let mut grad_in = vec![0.0; c_in * h * w];
    for co in 0..c_out {
        for oy in 0..h {
            for ox in 0..w {
                let g = grad_out[(co * h + oy) * w + ox];
                for ci in 0..c_in {
                    for ky in 0..3 {
                        let Some(iy) = tap(oy, ky, h) else { continue };
                        for kx in 0..3 {
                            let Some(ix) = tap(ox, kx, w) else { continue };
                            grad_in[(ci * h + iy) * w + ix] +=
                                weight[widx(co, ci, ky, kx, c_in)] * g;
                        }
                    }
                }
            }
        }
    }
    grad_in
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{assert_gradient, TestRng};
    use crate::relu::relu_backward;
    use crate::vector::dot;

    #[test]
    fn one_pixel_only_center_tap_counts() {
        let weight: Vec<f64> = (1..=9).map(f64::from).collect(); // center tap = 5
        let y = conv2d_forward(&[2.0], 1, 1, 1, &weight, &[0.5], 1, false);
        assert_eq!(y, vec![2.0 * 5.0 + 0.5]);
        // Two input channels, two outputs: sum of center taps per output.
        let mut weight = vec![0.0; 2 * 2 * 9];
        weight[widx(0, 0, 1, 1, 2)] = 1.0;
        weight[widx(0, 1, 1, 1, 2)] = 10.0;
        weight[widx(1, 0, 1, 1, 2)] = -3.0;
        weight[widx(1, 0, 0, 0, 2)] = 100.0; // off-center: reads padding only
        let y = conv2d_forward(&[1.0, 2.0], 2, 1, 1, &weight, &[0.0, 1.0], 2, false);
        assert_eq!(y, vec![21.0, -2.0]);
        let y = conv2d_forward(&[1.0, 2.0], 2, 1, 1, &weight, &[0.0, 1.0], 2, true);
        assert_eq!(y, vec![21.0, 0.0]);
    }

    #[test]
    fn box_filter_counts_padding_as_zero() {
        // All-ones 3×3 kernel on an all-ones 3×4 image: each output counts its in-range neighbors.
        let y = conv2d_forward(&[1.0; 12], 1, 3, 4, &[1.0; 9], &[0.0], 1, false);
        #[rustfmt::skip]
        let want = [
            4.0, 6.0, 6.0, 4.0,
            6.0, 9.0, 9.0, 6.0,
            4.0, 6.0, 6.0, 4.0,
        ];
        assert_eq!(y, want);
    }

    #[test]
    fn cross_correlation_orientation() {
        // Tap (ky=0, kx=2) reads x[y−1, x+1]: the kernel is not flipped.
        let (h, w) = (3, 4);
        let x: Vec<f64> = (0..h * w).map(|i| i as f64 + 1.0).collect();
        let mut weight = [0.0; 9];
        weight[2] = 1.0;
        let y = conv2d_forward(&x, 1, h, w, &weight, &[0.0], 1, false);
        for oy in 0..h {
            for ox in 0..w {
                let want = if oy >= 1 && ox + 1 < w {
                    x[(oy - 1) * w + ox + 1]
                } else {
                    0.0
                };
                assert_eq!(y[oy * w + ox], want, "at ({oy},{ox})");
            }
        }
    }

    #[test]
    fn backward_input_matches_finite_differences() {
        let (c_in, c_out, h, w) = (3, 5, 5, 7);
        let mut rng = TestRng::new(1);
        let x = rng.vec(c_in * h * w, -1.0, 1.0);
        let weight = rng.vec(c_out * c_in * 9, -1.0, 1.0);
        let bias = rng.vec(c_out, -0.5, 0.5);
        let g = rng.vec(c_out * h * w, -1.0, 1.0);
        let loss = |x: &[f64]| {
            dot(
                &g,
                &conv2d_forward(x, c_in, h, w, &weight, &bias, c_out, false),
            )
        };
        let analytic = conv2d_backward_input(&g, c_out, h, w, &weight, c_in);
        assert_gradient(loss, &x, &analytic);
    }

    #[test]
    fn backward_through_fused_relu_matches_finite_differences() {
        let (c_in, c_out, h, w) = (3, 5, 5, 7);
        let mut rng = TestRng::new(2);
        let x = rng.vec(c_in * h * w, -1.0, 1.0);
        let weight = rng.vec(c_out * c_in * 9, -1.0, 1.0);
        let bias = rng.vec(c_out, -0.5, 0.5);
        let g = rng.vec(c_out * h * w, -1.0, 1.0);
        // Keep pre-activations away from the ReLU kink: a probe of size h moves
        // each by at most h·max|w| ≤ 1e-6.
        let pre = conv2d_forward(&x, c_in, h, w, &weight, &bias, c_out, false);
        let margin = pre.iter().fold(f64::INFINITY, |m, v| m.min(v.abs()));
        assert!(
            margin > 1e-4,
            "seed puts a pre-activation at the kink: {margin}"
        );
        assert!(pre.iter().any(|&v| v < 0.0) && pre.iter().any(|&v| v > 0.0));
        let y = conv2d_forward(&x, c_in, h, w, &weight, &bias, c_out, true);
        let loss = |x: &[f64]| {
            dot(
                &g,
                &conv2d_forward(x, c_in, h, w, &weight, &bias, c_out, true),
            )
        };
        let analytic = conv2d_backward_input(&relu_backward(&y, &g), c_out, h, w, &weight, c_in);
        assert_gradient(loss, &x, &analytic);
    }
}
