//! Guided Gram matrices (Gatys et al., "Controlling Perceptual Factors in Neural Style
//! Transfer", 2017): the Gram matrix of the features weighted per position by a guidance
//! channel `m`, normalized by the guidance's energy.
//!
//! `F` is `c × n` (row-major, the C×H×W layout), `m` has `n` entries:
//! `G = (F ∘ m)(F ∘ m)ᵀ / Σ_q m_q²`. With `m = 1` it is [`crate::gram::gram_forward`].

use crate::gram::{gram_backward, gram_forward};

/// `F ∘ m`: every channel of `f` (`c × n`) times `m` position by position.
pub fn guide_apply(f: &[f64], m: &[f64]) -> Vec<f64> {
    let n = m.len();
    assert!(n > 0 && f.len().is_multiple_of(n), "guide_apply: shape");
    f.iter().enumerate().map(|(i, v)| v * m[i % n]).collect()
}

/// `Σ_q m_q²`, the guided Gram's normalizer.
pub fn energy(m: &[f64]) -> f64 {
    m.iter().map(|v| v * v).sum()
}

/// Forward: `G = (F ∘ m)(F ∘ m)ᵀ / Σ m²`, `c × c`. An empty guidance (all zero) gives a
/// zero matrix: the region is absent at this layer.
pub fn guided_gram_forward(f: &[f64], m: &[f64], c: usize) -> Vec<f64> {
    let n = m.len();
    let e = energy(m);
    if e == 0.0 {
        return vec![0.0; c * c];
    }
    // gram_forward divides by n; the guided Gram by Σ m².
    gram_forward(&guide_apply(f, m), c, n)
        .into_iter()
        .map(|v| v * n as f64 / e)
        .collect()
}

/// Backward: `dF = ((dG + dGᵀ)(F ∘ m) / Σ m²) ∘ m`. `grad_g` is `c × c`; returns `c × n`.
pub fn guided_gram_backward(f: &[f64], m: &[f64], grad_g: &[f64], c: usize) -> Vec<f64> {
    let n = m.len();
    let e = energy(m);
    if e == 0.0 {
        return vec![0.0; c * n];
    }
    let da = gram_backward(&guide_apply(f, m), grad_g, c, n);
    guide_apply(&da, m)
        .into_iter()
        .map(|v| v * n as f64 / e)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_diff::{assert_gradient, TestRng};
    use crate::vector::dot;

    #[test]
    fn known_example() {
        // F = [[1, 2], [3, 4]], m = [1, 0]: only the first position, Σ m² = 1.
        let g = guided_gram_forward(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.0], 2);
        assert_eq!(g, vec![1.0, 3.0, 3.0, 9.0]);
        // m = [2, 2]: the plain Gram (the guidance's scale cancels).
        let g = guided_gram_forward(&[1.0, 2.0, 3.0, 4.0], &[2.0, 2.0], 2);
        assert_eq!(g, gram_forward(&[1.0, 2.0, 3.0, 4.0], 2, 2));
        // Empty: zero.
        assert_eq!(guided_gram_forward(&[1.0, 2.0], &[0.0, 0.0], 1), vec![0.0]);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (c, n) = (4, 15);
        let mut rng = TestRng::new(23);
        let f = rng.vec(c * n, -1.0, 1.0);
        // Soft, with hard zeros.
        let mut m = rng.vec(n, 0.0, 1.0);
        m[2] = 0.0;
        m[7] = 0.0;
        let w = rng.vec(c * c, -1.0, 1.0);
        let loss = |f: &[f64]| dot(&guided_gram_forward(f, &m, c), &w);
        assert_gradient(loss, &f, &guided_gram_backward(&f, &m, &w, c));
    }
}
