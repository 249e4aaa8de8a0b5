//! ReLU forward and backward, overwriting and accumulating.

use nst_reference as r;
use nst_tests::{
    as_f32_exact, assert_close, plus, random, random_away_from_zero, ro, rw, with_gpu,
    with_small_grid_gpu, Gpu,
};

fn relu_case(g: &Gpu, n: usize, seed: u64) {
    let x = as_f32_exact(&random_away_from_zero(seed, n));
    let gy = as_f32_exact(&random(seed + 1, n, -1.0, 1.0));
    let [bx, bgy, by, bgx] = g.elementwise(&x, &gy);
    let k = &g.k.relu;
    let f = k.forward(&g.ctx, ro(&bx), rw(&by)).unwrap();
    let b = k.backward(&g.ctx, ro(&by), ro(&bgy), rw(&bgx), false);
    // The same backward added onto a gradient that already holds something.
    let prior = as_f32_exact(&random(seed + 2, n, -1.0, 1.0));
    let bgx_acc = g.upload("gx prior", &prior);
    let b_acc = k.backward(&g.ctx, ro(&by), ro(&bgy), rw(&bgx_acc), true);
    g.run(&[&f, &b.unwrap(), &b_acc.unwrap()]);
    let y = r::relu::relu_forward(&x);
    let want = r::relu::relu_backward(&y, &gy);
    assert_close(
        &format!("relu backward accumulating n={n}"),
        &g.read(&bgx_acc),
        &plus(&want, &prior),
        1e-6,
        1e-6,
    );
    assert_close(&format!("relu forward n={n}"), &g.read(&by), &y, 0.0, 0.0);
    assert_close(
        &format!("relu backward n={n}"),
        &g.read(&bgx),
        &want,
        0.0,
        0.0,
    );
}

#[test]
fn relu_matches_reference() {
    with_gpu(|g| {
        for (i, n) in [1usize, 255, 256, 257, 4 * 7 * 9, 70_001]
            .into_iter()
            .enumerate()
        {
            relu_case(g, n, 20 + i as u64);
        }
    });
    with_small_grid_gpu(|g| relu_case(g, 60_001, 29));
}

#[test]
fn relu_over_conv1_at_512_uses_the_2d_grid() {
    // 64 × 512 × 512 elements = 65,536 workgroups of 256: one more than a dimension holds.
    with_gpu(|g| {
        let n = 64 * 512 * 512;
        let groups = nst_gpu::grid(n as u64, 256, g.ctx.max_workgroups_per_dim).unwrap();
        assert!(groups[1] > 1, "expected a 2-D grid, got {groups:?}");
        relu_case(g, n, 30);
    });
}
