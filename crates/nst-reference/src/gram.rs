//! Normalized Gram matrix of a feature map.
//!
//! `F` is the feature map viewed as a `c × n` matrix (`n = h·w`, row-major,
//! which is exactly the C×H×W layout); `G = F·Fᵀ / n`.

/// Forward: `G[i,j] = Σ_k F[i,k]·F[j,k] / n`. Returns `c × c` (exactly symmetric).
pub fn gram_forward(f: &[f64], c: usize, n: usize) -> Vec<f64> {
    assert_eq!(f.len(), c * n, "gram_forward: f shape");
    let mut g = vec![0.0; c * c];
    for i in 0..c {
        let fi = &f[i * n..(i + 1) * n];
        for j in i..c {
            let fj = &f[j * n..(j + 1) * n];
            let v = fi.iter().zip(fj).map(|(a, b)| a * b).sum::<f64>() / n as f64;
            g[i * c + j] = v;
            g[j * c + i] = v;
        }
    }
    g
}

/// Backward: `dF = (dG + dGᵀ)·F / n`, i.e. `dF[i,k] = Σ_j (dG[i,j] + dG[j,i])·F[j,k] / n`.
/// `grad_g` is `c × c` (need not be symmetric); returns `c × n`.
pub fn gram_backward(f: &[f64], grad_g: &[f64], c: usize, n: usize) -> Vec<f64> {
    assert_eq!(f.len(), c * n, "gram_backward: f shape");
    assert_eq!(grad_g.len(), c * c, "gram_backward: grad_g shape");
    let mut df = vec![0.0; c * n];
    for i in 0..c {
        for j in 0..c {
            let s = (grad_g[i * c + j] + grad_g[j * c + i]) / n as f64;
            for k in 0..n {
                df[i * n + k] += s * f[j * n + k];
            }
        }
    }
    df
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{assert_gradient, TestRng};
    use crate::vector::dot;

    #[test]
    fn known_example() {
        // F = [[1, 2], [3, 4]]: F·Fᵀ = [[5, 11], [11, 25]], n = 2.
        assert_eq!(
            gram_forward(&[1.0, 2.0, 3.0, 4.0], 2, 2),
            vec![2.5, 5.5, 5.5, 12.5]
        );
        // One channel: mean of squares.
        assert_eq!(gram_forward(&[1.0, -2.0, 3.0], 1, 3), vec![14.0 / 3.0]);
    }

    #[test]
    fn symmetric() {
        let (c, n) = (5, 35);
        let f = TestRng::new(6).vec(c * n, -1.0, 1.0);
        let g = gram_forward(&f, c, n);
        for i in 0..c {
            assert!(g[i * c + i] >= 0.0);
            for j in 0..c {
                assert_eq!(g[i * c + j], g[j * c + i]);
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (c, n) = (5, 5 * 7);
        let mut rng = TestRng::new(7);
        let f = rng.vec(c * n, -1.0, 1.0);
        let dg = rng.vec(c * c, -1.0, 1.0); // deliberately not symmetric
        let analytic = gram_backward(&f, &dg, c, n);
        let loss = |f: &[f64]| dot(&dg, &gram_forward(f, c, n));
        assert_gradient(loss, &f, &analytic);
    }
}
