//! The pixel transform of each input convention, its backward, and the clamp.

use nst_reference as r;
use nst_tests::{as_f32_exact, assert_close, random, ro, rw, with_gpu, Gpu};
use nst_weights::InputConvention;

fn pixel_case(g: &Gpu, convention: InputConvention, h: u32, w: u32, seed: u64) {
    let t = nst_vgg::transform_for(convention);
    let n = (3 * h * w) as usize;
    let x = as_f32_exact(&random(seed, n, 0.0, 1.0));
    let gy = as_f32_exact(&random(seed + 1, n, -1.0, 1.0));
    let [bx, bgy, by, bgx] = g.elementwise(&x, &gy);
    let f =
        g.k.pixel
            .forward(&g.ctx, &t, h, w, ro(&bx), rw(&by))
            .unwrap();
    let b =
        g.k.pixel
            .backward(&g.ctx, &t, h, w, ro(&bgy), rw(&bgx), false);
    g.run(&[&f, &b.unwrap()]);
    let (hh, ww) = (h as usize, w as usize);
    assert_close(
        &format!("pixel {convention} forward"),
        &g.read(&by),
        &forward(convention, &x, (hh, ww)),
        1e-4,
        1e-6,
    );
    assert_close(
        &format!("pixel {convention} backward"),
        &g.read(&bgx),
        &r::pixel::backward(&gy, (hh, ww), t.perm, t.scale),
        1e-5,
        1e-6,
    );
}

#[test]
fn pixel_transform_matches_reference() {
    with_gpu(|g| {
        for (i, &(h, w)) in [(1, 1), (5, 6), (40, 37)].iter().enumerate() {
            pixel_case(g, InputConvention::CaffeBgr, h, w, 70 + i as u64);
            pixel_case(g, InputConvention::TorchvisionRgb, h, w, 75 + i as u64);
        }
    });
}

#[test]
fn pixel_clamp_matches_reference() {
    with_gpu(|g| {
        let (h, w) = (5u32, 7u32);
        let x = as_f32_exact(&random(90, (3 * h * w) as usize, -0.5, 1.5));
        let bx = g.upload("x", &x);
        let d = g.k.pixel.clamp(&g.ctx, h, w, rw(&bx)).unwrap();
        g.run(&[&d]);
        assert_close(
            "pixel clamp",
            &g.read(&bx),
            &r::pixel::clamp01(&x),
            0.0,
            0.0,
        );
    });
}

// ---- the conventions' transforms on the CPU (no GPU needed) ----

/// The reference transform with `convention`'s numbers.
fn forward(convention: InputConvention, x: &[f64], hw: (usize, usize)) -> Vec<f64> {
    let t = nst_vgg::transform_for(convention);
    r::pixel::forward(x, hw, t.perm, t.scale, t.offset)
}

fn assert_near(got: &[f64], want: &[f64]) {
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn caffe_maps_a_red_pixel_to_bgr_minus_the_mean() {
    let y = forward(InputConvention::CaffeBgr, &[1.0, 0.0, 0.0], (1, 1));
    assert_near(&y, &[-103.939, -116.779, 255.0 - 123.68]); // B, G, R
}

#[test]
fn caffe_keeps_planes_apart() {
    // 1×2 image: pixel 0 pure blue, pixel 1 pure green.
    let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0]; // R plane, G plane, B plane
    let y = forward(InputConvention::CaffeBgr, &x, (1, 2));
    let want = [
        255.0 - 103.939,
        -103.939,
        -116.779,
        255.0 - 116.779,
        -123.68,
        -123.68,
    ];
    assert_near(&y, &want);
}

#[test]
fn torchvision_normalizes_by_mean_and_std() {
    let (mean, std) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
    let y = forward(InputConvention::TorchvisionRgb, &mean, (1, 1));
    assert!(y.iter().all(|v| v.abs() < 1e-15), "{y:?}");
    let x: Vec<f64> = (0..3).map(|c| mean[c] + std[c]).collect();
    let y = forward(InputConvention::TorchvisionRgb, &x, (1, 1));
    assert_near(&y, &[1.0; 3]);
}

#[test]
fn conventions_backward_matches_finite_differences() {
    let (h, w) = (5, 7);
    let x = random(10, 3 * h * w, 0.0, 1.0);
    let g = random(11, 3 * h * w, -1.0, 1.0);
    for convention in [InputConvention::CaffeBgr, InputConvention::TorchvisionRgb] {
        let t = nst_vgg::transform_for(convention);
        r::finite_diff::check_gradient(
            |x| r::vector::dot(&g, &forward(convention, x, (h, w))),
            &x,
            &r::pixel::backward(&g, (h, w), t.perm, t.scale),
            1e-6,
            1e-8,
            1e-6,
        )
        .unwrap();
    }
}
