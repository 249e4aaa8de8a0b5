//! Color preservation helpers (Gatys et al. 2016, "Preserving Color in Neural Artistic Style
//! Transfer"): luminance-only transfer through YIQ, and linear color matching of the style
//! image to the content image. All work on the CPU, on planar [`Image`]s.

use crate::image::Image;

type Mat3 = [[f64; 3]; 3];

/// NTSC YIQ, the space Gatys et al. 2016 use for luminance-only transfer. jcjohnson/neural-style's
/// `original_colors` uses YUV instead; both share this Y row and both chroma pairs vanish exactly
/// on gray, so "Y from one image, chroma from another" gives the same RGB in either space.
const RGB_TO_YIQ: Mat3 = [
    [0.299, 0.587, 0.114],
    [0.595716, -0.274453, -0.321263],
    [0.211456, -0.522591, 0.311135],
];

/// The exact inverse of [`RGB_TO_YIQ`], computed at compile time so the round trip is as exact
/// as `f64` allows (the rounded textbook inverse is only good to about 1e-4).
const YIQ_TO_RGB: Mat3 = invert(RGB_TO_YIQ);

/// Added to the covariance diagonals so flat (single-color) images still have an invertible
/// covariance; small next to the variance of any real photograph (~1e-2).
const COVARIANCE_EPSILON: f64 = 1e-5;

/// The inverse of a 3×3 matrix by cofactors; `m` must be invertible.
const fn invert(m: Mat3) -> Mat3 {
    let c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    let c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    let c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    let c10 = m[0][2] * m[2][1] - m[0][1] * m[2][2];
    let c11 = m[0][0] * m[2][2] - m[0][2] * m[2][0];
    let c12 = m[0][1] * m[2][0] - m[0][0] * m[2][1];
    let c20 = m[0][1] * m[1][2] - m[0][2] * m[1][1];
    let c21 = m[0][2] * m[1][0] - m[0][0] * m[1][2];
    let c22 = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
    // The inverse is the transposed cofactor matrix over the determinant.
    [
        [c00 / det, c10 / det, c20 / det],
        [c01 / det, c11 / det, c21 / det],
        [c02 / det, c12 / det, c22 / det],
    ]
}

/// Applies a 3×3 matrix to every pixel (planes in, planes out), without clamping.
fn transform(img: &Image, m: &Mat3) -> Image {
    let n = img.pixel_count();
    let mut data = vec![0.0f32; 3 * n];
    for i in 0..n {
        let x = [
            f64::from(img.data[i]),
            f64::from(img.data[n + i]),
            f64::from(img.data[2 * n + i]),
        ];
        for (c, row) in m.iter().enumerate() {
            data[c * n + i] = (row[0] * x[0] + row[1] * x[1] + row[2] * x[2]) as f32;
        }
    }
    Image::from_parts(img.width, img.height, data)
}

/// Converts RGB to NTSC YIQ: the planes become Y, I, Q. I and Q are signed, so the result is
/// not in [0, 1].
pub fn rgb_to_yiq(img: &Image) -> Image {
    transform(img, &RGB_TO_YIQ)
}

/// Converts NTSC YIQ planes back to RGB with the exact inverse of [`rgb_to_yiq`], unclamped.
pub fn yiq_to_rgb(img: &Image) -> Image {
    transform(img, &YIQ_TO_RGB)
}

/// The luminance (YIQ's Y) of every pixel, row-major.
pub fn luminance(img: &Image) -> Vec<f32> {
    let n = img.pixel_count();
    let [wr, wg, wb] = RGB_TO_YIQ[0];
    (0..n)
        .map(|i| {
            (wr * f64::from(img.data[i])
                + wg * f64::from(img.data[n + i])
                + wb * f64::from(img.data[2 * n + i])) as f32
        })
        .collect()
}

/// RGB with the luminance `y` and the chroma (YIQ's I and Q) of `chroma_from`, clamped to
/// [0, 1]: the last step of luminance-only transfer. `y` must have one value per pixel.
pub fn with_luminance(chroma_from: &Image, y: &[f32]) -> Image {
    assert_eq!(
        y.len(),
        chroma_from.pixel_count(),
        "the luminance must have one value per pixel of the chroma image"
    );
    let mut yiq = rgb_to_yiq(chroma_from);
    yiq.data[..y.len()].copy_from_slice(y);
    let mut rgb = yiq_to_rgb(&yiq);
    for v in &mut rgb.data {
        *v = v.clamp(0.0, 1.0);
    }
    rgb
}

/// The mean color and the color covariance (population) of an image's pixels, in `f64`.
fn color_stats(img: &Image) -> ([f64; 3], Mat3) {
    let n = img.pixel_count();
    let plane = |c: usize| &img.data[c * n..(c + 1) * n];
    let mut mean = [0.0; 3];
    for (c, m) in mean.iter_mut().enumerate() {
        *m = plane(c).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    }
    // Only the upper triangle is accumulated; the matrix is symmetric.
    let mut upper = [[0.0; 3]; 3];
    for i in 0..n {
        let d = [
            f64::from(img.data[i]) - mean[0],
            f64::from(img.data[n + i]) - mean[1],
            f64::from(img.data[2 * n + i]) - mean[2],
        ];
        for (a, row) in upper.iter_mut().enumerate() {
            for (b, x) in row.iter_mut().enumerate().skip(a) {
                *x += d[a] * d[b];
            }
        }
    }
    let cov =
        std::array::from_fn(|a| std::array::from_fn(|b| upper[a.min(b)][a.max(b)] / n as f64));
    (mean, cov)
}

/// Eigenvalues and eigenvectors (the columns of the second result) of a symmetric 3×3 matrix,
/// by cyclic Jacobi rotations: simple, and accurate to rounding for such a small matrix.
fn symmetric_eigen(m: &Mat3) -> ([f64; 3], Mat3) {
    let mut a = *m;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let scale: f64 = a.iter().flatten().map(|x| x * x).sum();
    // Converges quadratically; a handful of sweeps suffice, 50 is a safety net.
    for _ in 0..50 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        if off <= f64::EPSILON * f64::EPSILON * scale {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            // The rotation that zeroes a[p][q] (Numerical Recipes' stable form).
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            for row in &mut a {
                let (kp, kq) = (row[p], row[q]);
                row[p] = c * kp - s * kq;
                row[q] = s * kp + c * kq;
            }
            let (row_p, row_q) = (a[p], a[q]);
            a[p] = std::array::from_fn(|k| c * row_p[k] - s * row_q[k]);
            a[q] = std::array::from_fn(|k| s * row_p[k] + c * row_q[k]);
            for row in &mut v {
                let (kp, kq) = (row[p], row[q]);
                row[p] = c * kp - s * kq;
                row[q] = s * kp + c * kq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// `f` applied to a symmetric matrix through its eigenvalues: V · diag(f(λ)) · Vᵀ.
fn symmetric_function(m: &Mat3, f: impl Fn(f64) -> f64) -> Mat3 {
    let (values, v) = symmetric_eigen(m);
    // Rounding can push a zero eigenvalue slightly negative; the epsilon keeps it positive.
    let fv = values.map(|l| f(l.max(COVARIANCE_EPSILON * 1e-3)));
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = (0..3).map(|k| v[i][k] * fv[k] * v[j][k]).sum();
        }
    }
    out
}

fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn with_epsilon(mut m: Mat3) -> Mat3 {
    for (i, row) in m.iter_mut().enumerate() {
        row[i] += COVARIANCE_EPSILON;
    }
    m
}

/// Recolors `source` so its colors' mean and covariance equal `target`'s (the linear method
/// of Gatys et al. 2016): x' = A (x − μₛ) + μₜ with A = Σₜ^½ Σₛ^-½, clamped to [0, 1].
/// Used to give the style image the content's palette before transfer. The images may differ
/// in size; an image without pixels leaves `source` unchanged.
pub fn match_color(source: &Image, target: &Image) -> Image {
    if source.pixel_count() == 0 || target.pixel_count() == 0 {
        return source.clone();
    }
    let (mu_s, cov_s) = color_stats(source);
    let (mu_t, cov_t) = color_stats(target);
    let a = mat_mul(
        &symmetric_function(&with_epsilon(cov_t), f64::sqrt),
        &symmetric_function(&with_epsilon(cov_s), |l| 1.0 / l.sqrt()),
    );
    // Folding the means into an offset makes the per-pixel work a single affine map.
    let offset: [f64; 3] =
        std::array::from_fn(|r| mu_t[r] - (0..3).map(|k| a[r][k] * mu_s[k]).sum::<f64>());
    let n = source.pixel_count();
    let mut data = vec![0.0f32; 3 * n];
    for i in 0..n {
        let x = [
            f64::from(source.data[i]),
            f64::from(source.data[n + i]),
            f64::from(source.data[2 * n + i]),
        ];
        for (r, row) in a.iter().enumerate() {
            let y = row[0] * x[0] + row[1] * x[1] + row[2] * x[2] + offset[r];
            data[r * n + i] = y.clamp(0.0, 1.0) as f32;
        }
    }
    Image::from_parts(source.width, source.height, data)
}

/// Mean and (population) standard deviation, in `f64`.
fn mean_std(values: &[f32]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

/// The style image as a gray image for luminance-only transfer (Gatys et al. 2016): its
/// luminance, shifted and scaled so its mean and standard deviation match the content's
/// luminance, in all three channels, clamped to [0, 1]. The transfer then runs on gray
/// images and [`with_luminance`] puts the content's chroma back.
pub fn luminance_only_style(style: &Image, content: &Image) -> Image {
    let y_style = luminance(style);
    let (mean_s, std_s) = mean_std(&y_style);
    let (mean_c, std_c) = mean_std(&luminance(content));
    // A flat style has no contrast to scale; it becomes the content's mean gray.
    let gain = if std_s > 1e-8 { std_c / std_s } else { 0.0 };
    let gray: Vec<f32> = y_style
        .iter()
        .map(|&y| ((f64::from(y) - mean_s) * gain + mean_c).clamp(0.0, 1.0) as f32)
        .collect();
    let mut data = Vec::with_capacity(3 * gray.len());
    for _ in 0..3 {
        data.extend_from_slice(&gray);
    }
    Image::from_parts(style.width, style.height, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic pseudo-random generator (no test-only crates needed).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    fn random_image(width: u32, height: u32, seed: u64) -> Image {
        let mut rng = Lcg(seed);
        let data = (0..3 * width * height).map(|_| rng.next()).collect();
        Image::from_parts(width, height, data)
    }

    /// Pixels drawn from a correlated, narrow color distribution well inside [0, 1].
    fn tinted_image(width: u32, height: u32, seed: u64) -> Image {
        let mut rng = Lcg(seed);
        let n = (width * height) as usize;
        let mut data = vec![0.0; 3 * n];
        for i in 0..n {
            let (u, v, w) = (rng.next() - 0.5, rng.next() - 0.5, rng.next() - 0.5);
            data[i] = 0.6 + 0.2 * u + 0.05 * v;
            data[n + i] = 0.4 + 0.1 * u - 0.1 * w;
            data[2 * n + i] = 0.3 + 0.05 * v + 0.08 * w;
        }
        Image::from_parts(width, height, data)
    }

    fn identity_error(m: &Mat3) -> f64 {
        let mut err: f64 = 0.0;
        for (i, row) in m.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                err = err.max((x - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
        err
    }

    #[test]
    fn yiq_inverse_is_exact() {
        assert!(identity_error(&mat_mul(&RGB_TO_YIQ, &YIQ_TO_RGB)) < 1e-12);
        assert!(identity_error(&mat_mul(&YIQ_TO_RGB, &RGB_TO_YIQ)) < 1e-12);
    }

    #[test]
    fn yiq_round_trip() {
        let img = random_image(9, 7, 1);
        let back = yiq_to_rgb(&rgb_to_yiq(&img));
        for (a, b) in img.data.iter().zip(&back.data) {
            assert!((a - b).abs() < 1e-6);
        }
        // Gray has no chroma, and white has Y = 1.
        let white = Image::from_parts(1, 1, vec![1.0; 3]);
        let yiq = rgb_to_yiq(&white);
        assert!((yiq.data[0] - 1.0).abs() < 1e-6);
        assert!(yiq.data[1].abs() < 1e-6 && yiq.data[2].abs() < 1e-6);
    }

    #[test]
    fn luminance_is_the_y_plane() {
        let img = random_image(5, 4, 2);
        let y = luminance(&img);
        let yiq = rgb_to_yiq(&img);
        assert_eq!(y.len(), 20);
        for (a, b) in y.iter().zip(&yiq.data[..20]) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn with_luminance_keeps_chroma_and_takes_y() {
        // Mid-range colors so clamping does not interfere.
        let chroma = tinted_image(6, 5, 3);
        let other = tinted_image(6, 5, 4);
        let y_other = luminance(&other);
        let out = with_luminance(&chroma, &y_other);
        let (yiq_out, yiq_chroma) = (rgb_to_yiq(&out), rgb_to_yiq(&chroma));
        let n = out.pixel_count();
        for (a, b) in yiq_out.data[..n].iter().zip(&y_other) {
            assert!((a - b).abs() < 1e-5);
        }
        for (a, b) in yiq_out.data[n..].iter().zip(&yiq_chroma.data[n..]) {
            assert!((a - b).abs() < 1e-5);
        }
        // Its own luminance gives the image back.
        let same = with_luminance(&chroma, &luminance(&chroma));
        for (a, b) in same.data.iter().zip(&chroma.data) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn with_luminance_clamps() {
        let img = Image::from_parts(1, 1, vec![1.0, 0.0, 0.0]);
        let out = with_luminance(&img, &[1.0]);
        assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn eigen_decomposition_reconstructs() {
        let m = [
            [0.04, 0.01, -0.005],
            [0.01, 0.02, 0.003],
            [-0.005, 0.003, 0.01],
        ];
        let root = symmetric_function(&m, f64::sqrt);
        let squared = mat_mul(&root, &root);
        for i in 0..3 {
            for j in 0..3 {
                assert!((squared[i][j] - m[i][j]).abs() < 1e-12);
            }
        }
        let inv_root = symmetric_function(&m, |l| 1.0 / l.sqrt());
        assert!(
            identity_error(&mat_mul(
                &mat_mul(&root, &inv_root),
                &mat_mul(&root, &inv_root)
            )) < 1e-9
        );
        // Already diagonal: nothing to rotate.
        let (values, _) = symmetric_eigen(&[[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]);
        assert_eq!(values, [3.0, 2.0, 1.0]);
    }

    #[test]
    fn match_color_matches_mean_and_covariance() {
        // Different sizes on purpose.
        let source = random_image(40, 30, 5);
        let target = tinted_image(25, 20, 6);
        let out = match_color(&source, &target);
        assert_eq!((out.width, out.height), (40, 30));
        // The target is narrow, so nothing should have needed clamping.
        assert!(out.data.iter().all(|v| *v > 0.0 && *v < 1.0));
        let (mu_o, cov_o) = color_stats(&out);
        let (mu_t, cov_t) = color_stats(&target);
        for c in 0..3 {
            assert!((mu_o[c] - mu_t[c]).abs() < 1e-3, "{mu_o:?} vs {mu_t:?}");
            for d in 0..3 {
                assert!(
                    (cov_o[c][d] - cov_t[c][d]).abs() < 1e-3,
                    "{cov_o:?} vs {cov_t:?}"
                );
            }
        }
    }

    #[test]
    fn match_color_handles_flat_images() {
        let flat = Image::from_parts(4, 4, vec![0.5; 48]);
        let target = tinted_image(8, 8, 7);
        let out = match_color(&flat, &target);
        assert!(out
            .data
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        let (mu_o, _) = color_stats(&out);
        let (mu_t, _) = color_stats(&target);
        for c in 0..3 {
            assert!((mu_o[c] - mu_t[c]).abs() < 1e-3);
        }
        let to_flat = match_color(&target, &flat);
        for v in &to_flat.data {
            assert!((v - 0.5).abs() < 1e-2);
        }
        let empty = Image::from_parts(0, 0, Vec::new());
        assert_eq!(match_color(&empty, &target), empty);
        assert_eq!(match_color(&target, &empty), target);
    }

    #[test]
    fn luminance_only_style_matches_content_statistics() {
        let style = random_image(30, 20, 8);
        let content = tinted_image(16, 16, 9);
        let gray = luminance_only_style(&style, &content);
        assert_eq!((gray.width, gray.height), (30, 20));
        let n = gray.pixel_count();
        assert_eq!(gray.data[..n], gray.data[n..2 * n]);
        assert_eq!(gray.data[..n], gray.data[2 * n..]);
        let (mean_g, std_g) = mean_std(&gray.data[..n]);
        let (mean_c, std_c) = mean_std(&luminance(&content));
        assert!((mean_g - mean_c).abs() < 1e-4, "{mean_g} vs {mean_c}");
        assert!((std_g - std_c).abs() < 1e-4, "{std_g} vs {std_c}");
        // A gray image's luminance is its gray value (Y's weights sum to 1).
        let y = luminance(&gray);
        for (a, b) in y.iter().zip(&gray.data[..n]) {
            assert!((a - b).abs() < 1e-6);
        }
        // A flat style becomes the content's mean gray.
        let flat = luminance_only_style(&Image::from_parts(2, 2, vec![0.9; 12]), &content);
        for v in &flat.data {
            assert!((f64::from(*v) - mean_c).abs() < 1e-6);
        }
    }
}
