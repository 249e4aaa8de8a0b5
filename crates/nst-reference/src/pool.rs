//! 2×2 pooling, stride 2, no padding.
//!
//! The output is `floor(h/2) × floor(w/2)`; with an odd size the last row
//! and/or column of the input is dropped (PyTorch's default `ceil_mode=False`).
//! Inside a window the four inputs are scanned in the order
//! `(0,0), (0,1), (1,0), (1,1)`, numbered `dy·2 + dx`.

/// Input index of window element `a = dy·2 + dx` (0..4) of output `(ch, oy, ox)`.
fn window_idx(ch: usize, oy: usize, ox: usize, a: usize, h: usize, w: usize) -> usize {
    (ch * h + 2 * oy + a / 2) * w + 2 * ox + a % 2
}

/// Max-pool forward: `y[c,oy,ox] = max_{dy,dx∈{0,1}} x[c, 2oy+dy, 2ox+dx]`.
///
/// Returns `(out (c, h/2, w/2), argmax)` where `argmax[i] = dy·2 + dx` of the
/// FIRST maximum in scan order (a later element must be strictly greater to
/// win), as in PyTorch.
pub fn max_pool2d_forward(x: &[f64], c: usize, h: usize, w: usize) -> (Vec<f64>, Vec<u32>) {
    assert_eq!(x.len(), c * h * w, "max_pool2d_forward: x shape");
    let (ho, wo) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(c * ho * wo);
    let mut argmax = Vec::with_capacity(c * ho * wo);
    for ch in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut best = x[window_idx(ch, oy, ox, 0, h, w)];
                let mut best_a = 0u32;
                for a in 1..4 {
                    let v = x[window_idx(ch, oy, ox, a, h, w)];
                    if v > best {
                        best = v;
                        best_a = a as u32;
                    }
                }
                out.push(best);
                argmax.push(best_a);
            }
        }
    }
    (out, argmax)
}

/// Max-pool backward: `dx[c, 2oy+dy, 2ox+dx] = dy_out[c,oy,ox]` for the
/// window's arg-max `dy·2 + dx`, and 0 everywhere else (including a dropped
/// last row/column). Returns `(c, h, w)`.
pub fn max_pool2d_backward(
    grad_out: &[f64], argmax: &[u32], c: usize, h: usize, w: usize,
) -> Vec<f64> {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(
        grad_out.len(),
        c * ho * wo,
        "max_pool2d_backward: grad_out shape"
    );
    assert_eq!(
        argmax.len(),
        c * ho * wo,
        "max_pool2d_backward: argmax shape"
    );
    let mut grad_in = vec![0.0; c * h * w];
    for ch in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                let i = (ch * ho + oy) * wo + ox;
                let a = argmax[i] as usize;
                assert!(a < 4, "max_pool2d_backward: argmax[{i}] = {a} out of range");
                // Windows do not overlap, so each input gets at most one contribution.
                grad_in[window_idx(ch, oy, ox, a, h, w)] = grad_out[i];
            }
        }
    }
    grad_in
}

/// Average-pool forward: `y[c,oy,ox] = (Σ_{dy,dx∈{0,1}} x[c, 2oy+dy, 2ox+dx]) / 4`
/// (summed in scan order). Returns `(c, h/2, w/2)`.
pub fn avg_pool2d_forward(x: &[f64], c: usize, h: usize, w: usize) -> Vec<f64> {
    assert_eq!(x.len(), c * h * w, "avg_pool2d_forward: x shape");
    let (ho, wo) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(c * ho * wo);
    for ch in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                let sum: f64 = (0..4).map(|a| x[window_idx(ch, oy, ox, a, h, w)]).sum();
                out.push(sum / 4.0);
            }
        }
    }
    out
}

/// Average-pool backward: `dx[c, 2oy+dy, 2ox+dx] = dy_out[c,oy,ox] / 4` for
/// each of the window's 4 inputs; a dropped last row/column gets 0. Returns `(c, h, w)`.
pub fn avg_pool2d_backward(grad_out: &[f64], c: usize, h: usize, w: usize) -> Vec<f64> {
    let (ho, wo) = (h / 2, w / 2);
    assert_eq!(
        grad_out.len(),
        c * ho * wo,
        "avg_pool2d_backward: grad_out shape"
    );
    let mut grad_in = vec![0.0; c * h * w];
    for ch in 0..c {
        for oy in 0..ho {
            for ox in 0..wo {
                let g = grad_out[(ch * ho + oy) * wo + ox] / 4.0;
                for a in 0..4 {
                    grad_in[window_idx(ch, oy, ox, a, h, w)] = g;
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
    use crate::vector::dot;

    #[test]
    fn max_pool_tie_goes_to_first_maximum() {
        // One 2×2 window per case, scan order (0,0),(0,1),(1,0),(1,1).
        let cases: [([f64; 4], u32); 6] = [
            ([1.0, 1.0, 1.0, 1.0], 0),
            ([1.0, 3.0, 3.0, 2.0], 1),
            ([0.0, 0.0, 5.0, 5.0], 2),
            ([0.0, 1.0, 2.0, 3.0], 3),
            ([-4.0, -2.0, -3.0, -2.0], 1), // all negative: no implicit 0 floor
            ([-0.0, 0.0, 0.0, 0.0], 0),    // -0 == +0 is a tie
        ];
        for (x, want) in cases {
            let (y, a) = max_pool2d_forward(&x, 1, 2, 2);
            assert_eq!(a, vec![want], "{x:?}");
            assert_eq!(y, vec![x[want as usize]], "{x:?}");
        }
    }

    #[test]
    fn odd_sizes_floor() {
        // 1 channel, 3×5: output 1×2; last row and column are dropped.
        #[rustfmt::skip]
        let x = [
            1.0, 2.0, 3.0, 9.0, 100.0,
            4.0, 0.0, 5.0, 6.0, 100.0,
            100.0, 100.0, 100.0, 100.0, 100.0,
        ];
        let (y, a) = max_pool2d_forward(&x, 1, 3, 5);
        assert_eq!(y, vec![4.0, 9.0]);
        assert_eq!(a, vec![2, 1]);
        assert_eq!(avg_pool2d_forward(&x, 1, 3, 5), vec![7.0 / 4.0, 23.0 / 4.0]);
        let g = max_pool2d_backward(&[10.0, 20.0], &a, 1, 3, 5);
        #[rustfmt::skip]
        assert_eq!(g, vec![
            0.0, 0.0, 0.0, 20.0, 0.0,
            10.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ]);
        let g = avg_pool2d_backward(&[4.0, 8.0], 1, 3, 5);
        #[rustfmt::skip]
        assert_eq!(g, vec![
            1.0, 1.0, 2.0, 2.0, 0.0,
            1.0, 1.0, 2.0, 2.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ]);
        // A single row or column gives an empty output.
        assert!(max_pool2d_forward(&[1.0; 7], 1, 1, 7).0.is_empty());
        assert!(avg_pool2d_forward(&[1.0; 7], 1, 7, 1).is_empty());
        assert_eq!(avg_pool2d_backward(&[], 1, 7, 1), vec![0.0; 7]);
    }

    #[test]
    fn max_pool_backward_matches_finite_differences() {
        let (c, h, w) = (3, 5, 7);
        let mut rng = TestRng::new(4);
        // Distinct values 0.1 apart: an h = 1e-6 probe cannot flip an arg-max.
        let x = rng.distinct(c * h * w, -5.0, 0.1);
        let g = rng.vec(c * (h / 2) * (w / 2), -1.0, 1.0);
        let (_, argmax) = max_pool2d_forward(&x, c, h, w);
        let analytic = max_pool2d_backward(&g, &argmax, c, h, w);
        let loss = |x: &[f64]| dot(&g, &max_pool2d_forward(x, c, h, w).0);
        assert_gradient(loss, &x, &analytic);
    }

    #[test]
    fn avg_pool_backward_matches_finite_differences() {
        let (c, h, w) = (3, 5, 7);
        let mut rng = TestRng::new(5);
        let x = rng.vec(c * h * w, -1.0, 1.0);
        let g = rng.vec(c * (h / 2) * (w / 2), -1.0, 1.0);
        let analytic = avg_pool2d_backward(&g, c, h, w);
        let loss = |x: &[f64]| dot(&g, &avg_pool2d_forward(x, c, h, w));
        assert_gradient(loss, &x, &analytic);
    }
}
