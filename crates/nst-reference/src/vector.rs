//! The vector operations L-BFGS needs.

/// `Σ aᵢ·bᵢ`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: shape");
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// `Σ |aᵢ|`.
pub fn asum(a: &[f64]) -> f64 {
    a.iter().map(|v| v.abs()).sum()
}

/// `y = a·x` elementwise.
pub fn copy(a: f64, x: &[f64], y: &mut [f64]) {
    assert_eq!(x.len(), y.len(), "copy: shape");
    for (y, x) in y.iter_mut().zip(x) {
        *y = a * x;
    }
}

/// `y += a·x` elementwise.
pub fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    assert_eq!(x.len(), y.len(), "axpy: shape");
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `x *= a` elementwise.
pub fn scale(a: f64, x: &mut [f64]) {
    for v in x {
        *v *= a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_axpy_scale() {
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, -5.0, 6.0]), 12.0);
        assert_eq!(dot(&[], &[]), 0.0);
        let mut y = [1.0, 1.0, 1.0];
        axpy(2.0, &[1.0, -2.0, 0.5], &mut y);
        assert_eq!(y, [3.0, -3.0, 2.0]);
        scale(-0.5, &mut y);
        assert_eq!(y, [-1.5, 1.5, -1.0]);
        assert_eq!(asum(&y), 4.0);
        copy(2.0, &[1.0, -1.0, 0.0], &mut y);
        assert_eq!(y, [2.0, -2.0, 0.0]);
    }
}
