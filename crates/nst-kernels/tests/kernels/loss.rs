//! MSE, total variation and the out-of-range penalty, reduced on the GPU, and their backward
//! passes.

use nst_reference as r;
use nst_tests::{
    as_f32_exact, assert_close, plus, random, ro, rw, with_gpu, with_small_grid_gpu, Gpu,
};

fn loss_case(g: &Gpu, c: u32, h: u32, w: u32, seed: u64) {
    let n = (c * h * w) as usize;
    let a = as_f32_exact(&random(seed, n, -1.0, 1.0));
    let b = as_f32_exact(&random(seed + 1, n, -1.0, 1.0));
    let prior = as_f32_exact(&random(seed + 2, n, -1.0, 1.0));
    let (ba, bb) = (g.upload("a", &a), g.upload("b", &b));
    let (bga, bgt) = (g.zeros("ga", n), g.upload("gt", &prior));
    let scalars = g.upload_f32("scalars", &[7.0; 4]);
    let (ctx, s) = (&g.ctx, rw(&scalars));
    let mse = g.k.mse.forward(ctx, ro(&ba), ro(&bb), s, 1).unwrap();
    let mse_b =
        g.k.mse
            .backward(ctx, ro(&ba), ro(&bb), rw(&bga), 0.75, false);
    let tv = g.k.tv.forward(ctx, [c, h, w], ro(&ba), s, 3).unwrap();
    let tv_b =
        g.k.tv
            .backward(ctx, [c, h, w], ro(&ba), rw(&bgt), 1.5, true);
    g.run(&[&mse, &mse_b.unwrap(), &tv, &tv_b.unwrap()]);
    let tag = format!("loss {c}×{h}×{w}");
    let (cc, hh, ww) = (c as usize, h as usize, w as usize);
    let want = [
        7.0,
        r::loss::mse_forward(&a, &b),
        7.0,
        r::loss::tv_forward(&a, cc, hh, ww),
    ];
    let got = g.read(&scalars);
    assert_close(&format!("{tag} mse and tv values"), &got, &want, 1e-6, 1e-5);
    assert_close(
        &format!("{tag} mse backward"),
        &g.read(&bga),
        &r::loss::mse_backward(&a, &b, 0.75),
        1e-7,
        1e-5,
    );
    assert_close(
        &format!("{tag} tv backward"),
        &g.read(&bgt),
        &plus(&r::loss::tv_backward(&a, cc, hh, ww, 1.5), &prior),
        1e-6,
        1e-5,
    );
}

#[test]
fn losses_match_reference() {
    with_gpu(|g| {
        for (i, &(c, h, w)) in [
            (1, 1, 1),
            (3, 1, 9),
            (3, 7, 1),
            (3, 7, 9),
            (5, 33, 47),
            (3, 300, 301),
        ]
        .iter()
        .enumerate()
        {
            loss_case(g, c, h, w, 60 + i as u64);
        }
    });
    with_small_grid_gpu(|g| loss_case(g, 5, 33, 47, 69));
}

/// The out-of-range penalty and its gradient (written, and added to a prior gradient) against
/// the reference, on values from −1 to 2 (a third inside [0, 1]) and on an image inside, whose
/// penalty and gradient are exactly 0.
#[test]
fn out_of_range_matches_reference() {
    with_gpu(|g| {
        for (i, &(n, lo, hi)) in [
            (1, -1.0, 2.0),
            (1000, -1.0, 2.0),
            (300_001, -1.0, 2.0),
            (999, 0.0, 1.0),
        ]
        .iter()
        .enumerate()
        {
            let x = as_f32_exact(&random(80 + i as u64, n, lo, hi));
            let prior = as_f32_exact(&random(90 + i as u64, n, -1.0, 1.0));
            let (bx, bg, bp) = (
                g.upload("x", &x),
                g.zeros("gx", n),
                g.upload("prior", &prior),
            );
            let scalars = g.upload_f32("scalars", &[7.0; 2]);
            let k = &g.k.out_of_range;
            let v = k.forward(&g.ctx, ro(&bx), rw(&scalars), 1).unwrap();
            let b = k.backward(&g.ctx, ro(&bx), rw(&bg), 0.5, false).unwrap();
            let p = k.backward(&g.ctx, ro(&bx), rw(&bp), 2.0, true).unwrap();
            g.run(&[&v, &b, &p]);
            let tag = format!("out of range, {n} values in [{lo}, {hi}]");
            let want = [7.0, r::loss::out_of_range_forward(&x)];
            assert_close(
                &format!("{tag}: value"),
                &g.read(&scalars),
                &want,
                1e-7,
                1e-5,
            );
            let want = r::loss::out_of_range_backward(&x, 0.5);
            assert_close(&format!("{tag}: gradient"), &g.read(&bg), &want, 1e-9, 1e-5);
            let want = plus(&r::loss::out_of_range_backward(&x, 2.0), &prior);
            assert_close(&format!("{tag}: added"), &g.read(&bp), &want, 1e-6, 1e-5);
            if lo == 0.0 {
                assert_eq!(
                    g.read(&scalars)[1],
                    0.0,
                    "{tag}: an image inside costs nothing"
                );
            }
        }
    });
}

/// 8-bit-like values `k/255` with many equal neighbors: flat blocks, a constant channel, and
/// stretches of random levels from a small set (the image is 8-bit and the run starts from it).
fn tied_image(c: usize, h: usize, w: usize, seed: u64) -> Vec<f64> {
    let levels = random(seed, c * h * w, 0.0, 3.0);
    let mut x = vec![0.0; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let i = (ch * h + y) * w + xx;
                let k = match ch {
                    // Constant: every difference is 0.
                    0 => 128.0,
                    // 4×4 flat blocks of random levels.
                    1 => 100.0 + levels[(ch * h + y / 4 * 4) * w + xx / 4 * 4].floor(),
                    // Random among three levels: ties and small steps mixed.
                    _ => 200.0 + levels[i].floor(),
                };
                x[i] = k / 255.0;
            }
        }
    }
    as_f32_exact(&x)
}

#[test]
fn tv_gradient_at_ties_matches_reference() {
    // The reference gives sign(0) = 0, so a pixel all of whose neighbors equal it has
    // gradient 0. A backward using sign(0) = ±1 (or x/|x| guarded otherwise) fails here,
    // where random data with no ties passes.
    with_gpu(|g| {
        for (i, &(c, h, w)) in [(3, 1, 1), (3, 8, 8), (3, 17, 23), (3, 64, 96)]
            .iter()
            .enumerate()
        {
            let x = tied_image(c, h, w, 700 + i as u64);
            let n = x.len();
            let bx = g.upload("x", &x);
            let bg = g.upload("g", &vec![0.25; n]);
            let scalars = g.upload_f32("scalars", &[0.0]);
            let chw = [c as u32, h as u32, w as u32];
            let tv = g.k.tv.forward(&g.ctx, chw, ro(&bx), rw(&scalars), 0);
            let tv_b = g.k.tv.backward(&g.ctx, chw, ro(&bx), rw(&bg), 2.0, false);
            g.run(&[&tv.unwrap(), &tv_b.unwrap()]);
            let tag = format!("tv at ties {c}×{h}×{w}");
            let want = r::loss::tv_backward(&x, c, h, w, 2.0);
            let got = g.read(&bg);
            assert_close(&format!("{tag} backward"), &got, &want, 1e-7, 1e-5);
            // The constant channel's gradient is exactly 0, not merely small.
            let plane = h * w;
            assert!(
                got[..plane].iter().all(|&v| v == 0.0),
                "{tag}: the constant channel has a non-zero gradient"
            );
            assert!(
                want[plane..].iter().filter(|&&v| v == 0.0).count() > plane / 2,
                "{tag}: too few pixels with all neighbors tied to test anything"
            );
            assert_close(
                &format!("{tag} value"),
                &g.read(&scalars),
                &[r::loss::tv_forward(&x, c, h, w)],
                1e-7,
                1e-5,
            );
        }
    });
}
