//! Losses: mean squared error (content and style terms), total variation and the
//! out-of-range penalty.

/// Forward: `mean((a − b)²) = Σ (aᵢ − bᵢ)² / len`.
pub fn mse_forward(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "mse_forward: shape");
    assert!(!a.is_empty(), "mse_forward: empty input");
    a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / a.len() as f64
}

/// Backward: the gradient wrt `a` of `scale · mse(a, b)`, i.e. `scale · 2(aᵢ − bᵢ) / len`.
pub fn mse_backward(a: &[f64], b: &[f64], scale: f64) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "mse_backward: shape");
    let k = scale * 2.0 / a.len() as f64;
    a.iter().zip(b).map(|(a, b)| k * (a - b)).collect()
}

/// `sign(d)`: −1, 0 or +1, with `sign(0) = 0` (the subgradient PyTorch's `abs` uses).
fn sign(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Numbers of vertical (`c·(h−1)·w`) and horizontal (`c·h·(w−1)`) neighbor pairs.
fn tv_counts(c: usize, h: usize, w: usize) -> (usize, usize) {
    (c * h.saturating_sub(1) * w, c * h * w.saturating_sub(1))
}

/// Forward (anisotropic, L1, mean-normalized total variation):
/// `tv = Σ|x[c,y+1,x] − x[c,y,x]| / (c·(h−1)·w) + Σ|x[c,y,x+1] − x[c,y,x]| / (c·h·(w−1))`;
/// a term whose count is 0 (h = 1 or w = 1) contributes 0.
pub fn tv_forward(x: &[f64], c: usize, h: usize, w: usize) -> f64 {
    assert_eq!(x.len(), c * h * w, "tv_forward: x shape");
    let (nv, nh) = tv_counts(c, h, w);
    let at = |ch: usize, y: usize, xx: usize| x[(ch * h + y) * w + xx];
    let mut sum_v = 0.0;
    let mut sum_h = 0.0;
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                if y + 1 < h {
                    sum_v += (at(ch, y + 1, xx) - at(ch, y, xx)).abs();
                }
                if xx + 1 < w {
                    sum_h += (at(ch, y, xx + 1) - at(ch, y, xx)).abs();
                }
            }
        }
    }
    let term_v = if nv > 0 { sum_v / nv as f64 } else { 0.0 };
    let term_h = if nh > 0 { sum_h / nh as f64 } else { 0.0 };
    term_v + term_h
}

/// Backward: the gradient of `scale · tv`. Each vertical pair with
/// `d = x[c,y+1,x] − x[c,y,x]` adds `scale·sign(d)/(c·(h−1)·w)` to `x[c,y+1,x]`
/// and subtracts it from `x[c,y,x]`; horizontal pairs likewise with
/// `c·h·(w−1)`. `sign(0) = 0`.
pub fn tv_backward(x: &[f64], c: usize, h: usize, w: usize, scale: f64) -> Vec<f64> {
    assert_eq!(x.len(), c * h * w, "tv_backward: x shape");
    let (nv, nh) = tv_counts(c, h, w);
    let kv = if nv > 0 { scale / nv as f64 } else { 0.0 };
    let kh = if nh > 0 { scale / nh as f64 } else { 0.0 };
    let idx = |ch: usize, y: usize, xx: usize| (ch * h + y) * w + xx;
    let mut grad = vec![0.0; x.len()];
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let here = idx(ch, y, xx);
                if y + 1 < h {
                    let below = idx(ch, y + 1, xx);
                    let s = kv * sign(x[below] - x[here]);
                    grad[below] += s;
                    grad[here] -= s;
                }
                if xx + 1 < w {
                    let right = idx(ch, y, xx + 1);
                    let s = kh * sign(x[right] - x[here]);
                    grad[right] += s;
                    grad[here] -= s;
                }
            }
        }
    }
    grad
}

/// How far `v` lies outside [0, 1]: `max(v − 1, 0) − max(−v, 0)`.
fn excess(v: f64) -> f64 {
    (v - 1.0).max(0.0) - (-v).max(0.0)
}

/// Forward: the out-of-range penalty `mean(max(xᵢ − 1, 0)² + max(−xᵢ, 0)²)`.
pub fn out_of_range_forward(x: &[f64]) -> f64 {
    assert!(!x.is_empty(), "out_of_range_forward: empty input");
    x.iter().map(|&v| excess(v) * excess(v)).sum::<f64>() / x.len() as f64
}

/// Backward: the gradient of `scale · out_of_range(x)`, `scale · 2·excess(xᵢ) / len`.
pub fn out_of_range_backward(x: &[f64], scale: f64) -> Vec<f64> {
    let k = scale * 2.0 / x.len() as f64;
    x.iter().map(|&v| k * excess(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{assert_gradient, TestRng};

    #[test]
    fn mse_known_value() {
        assert_eq!(
            mse_forward(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.0, 3.0, 5.0]),
            5.0 / 4.0
        );
        assert_eq!(
            mse_backward(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.0, 3.0, 5.0], 3.0),
            vec![0.0, 3.0, 0.0, -1.5]
        );
    }

    #[test]
    fn mse_backward_matches_finite_differences() {
        let mut rng = TestRng::new(8);
        let a = rng.vec(3 * 5 * 7, -1.0, 1.0);
        let b = rng.vec(a.len(), -1.0, 1.0);
        let scale = 2.5;
        let analytic = mse_backward(&a, &b, scale);
        assert_gradient(|a| scale * mse_forward(a, &b), &a, &analytic);
    }

    #[test]
    fn tv_known_value() {
        // 1 channel, 2×3:
        //   0 1 3
        //   2 2 0
        // vertical |·|: 2, 1, 3 → mean over 3 = 2
        // horizontal |·|: 1, 2, 0, 2 → mean over 4 = 1.25
        let x = [0.0, 1.0, 3.0, 2.0, 2.0, 0.0];
        assert_eq!(tv_forward(&x, 1, 2, 3), 3.25);
        // sign(0) = 0: the (2,2) pair contributes nothing. With scale 12:
        // kv = 4, kh = 3.
        #[rustfmt::skip]
        let want = [
            -4.0 - 3.0, -4.0 + 3.0 - 3.0, 4.0 + 3.0,
            4.0,         4.0 + 3.0,       -4.0 - 3.0,
        ];
        assert_eq!(tv_backward(&x, 1, 2, 3, 12.0), want);
    }

    #[test]
    fn tv_degenerate_sizes() {
        // h = 1: only the horizontal term; w = 1: only the vertical term.
        assert_eq!(tv_forward(&[0.0, 2.0, 1.0], 1, 1, 3), 1.5);
        assert_eq!(tv_forward(&[0.0, 2.0, 1.0], 1, 3, 1), 1.5);
        assert_eq!(tv_forward(&[5.0], 1, 1, 1), 0.0);
        assert_eq!(tv_backward(&[5.0], 1, 1, 1, 1.0), vec![0.0]);
        // Constant image: every difference is 0, so is the gradient.
        assert_eq!(tv_forward(&[0.3; 12], 2, 2, 3), 0.0);
        assert_eq!(tv_backward(&[0.3; 12], 2, 2, 3, 1.0), vec![0.0; 12]);
    }

    #[test]
    fn tv_backward_matches_finite_differences() {
        let (c, h, w) = (3, 5, 7);
        let mut rng = TestRng::new(9);
        // Distinct values 0.01 apart: no difference is near 0.
        let x = rng.distinct(c * h * w, -1.0, 0.01);
        let scale = 1.7;
        let analytic = tv_backward(&x, c, h, w, scale);
        assert_gradient(|x| scale * tv_forward(x, c, h, w), &x, &analytic);
    }
}
