//! MSE and total variation, reduced on the GPU, and their backward passes.

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
