//! Max and average pooling: odd sizes, exact ties, accumulating backward.

use nst_kernels::PoolShape;
use nst_reference as r;
use nst_tests::{
    as_f32_exact, assert_close, plus, random, ro, rw, with_gpu, with_small_grid_gpu, Gpu,
};

fn pool_case(g: &Gpu, c: u32, h: u32, w: u32, seed: u64) {
    let s = PoolShape { c, h, w };
    let n_in = s.input_len() as usize;
    let n_out = s.output_len() as usize;
    // Distinct, spread values so no window has a near-tie; then force a few exact ties.
    let mut x = as_f32_exact(&random(seed, n_in, -1.0, 1.0));
    for i in (0..n_in.saturating_sub(1)).step_by(5) {
        x[i + 1] = x[i];
    }
    let gy = as_f32_exact(&random(seed + 1, n_out, -1.0, 1.0));
    // The average backward adds onto a gradient that already holds something.
    let prior = as_f32_exact(&random(seed + 2, n_in, -1.0, 1.0));
    let (bx, bgy, bgxa) = (
        g.upload("x", &x),
        g.upload("gy", &gy),
        g.upload("gx", &prior),
    );
    let (by, barg, bgx, bya) = (
        g.zeros("y", n_out),
        g.zeros("argmax", n_out),
        g.zeros("gx", n_in),
        g.zeros("y avg", n_out),
    );
    let (ctx, max, avg) = (&g.ctx, &g.k.max_pool2d, &g.k.avg_pool2d);
    let mf = max
        .forward(ctx, s, ro(&bx), rw(&by), Some(rw(&barg)))
        .unwrap();
    let mb = max.backward(ctx, s, ro(&bgy), Some(ro(&barg)), rw(&bgx), false);
    let af = avg.forward(ctx, s, ro(&bx), rw(&bya), None).unwrap();
    let ab = avg
        .backward(ctx, s, ro(&bgy), None, rw(&bgxa), true)
        .unwrap();
    g.run(&[&mf, &mb.unwrap(), &af, &ab]);
    let (cc, hh, ww) = (c as usize, h as usize, w as usize);
    let tag = format!("pool {c}×{h}×{w}");
    let (y, arg) = r::pool::max_pool2d_forward(&x, cc, hh, ww);
    assert_close(&format!("{tag} max forward"), &g.read(&by), &y, 0.0, 0.0);
    assert_eq!(g.read_u32(&barg), arg, "{tag} max arg-max");
    assert_close(
        &format!("{tag} max backward"),
        &g.read(&bgx),
        &r::pool::max_pool2d_backward(&gy, &arg, cc, hh, ww),
        0.0,
        0.0,
    );
    assert_close(
        &format!("{tag} avg forward"),
        &g.read(&bya),
        &r::pool::avg_pool2d_forward(&x, cc, hh, ww),
        1e-6,
        1e-6,
    );
    assert_close(
        &format!("{tag} avg backward, accumulating"),
        &g.read(&bgxa),
        &plus(&r::pool::avg_pool2d_backward(&gy, cc, hh, ww), &prior),
        1e-6,
        1e-6,
    );
}

#[test]
fn pooling_matches_reference() {
    with_gpu(|g| {
        for (i, &(c, h, w)) in [(1, 2, 2), (1, 3, 3), (3, 7, 9), (5, 2, 17), (6, 64, 65)]
            .iter()
            .enumerate()
        {
            pool_case(g, c, h, w, 40 + i as u64);
        }
    });
    with_small_grid_gpu(|g| pool_case(g, 5, 64, 65, 49));
}

#[test]
fn pooling_rejects_a_1x1_input() {
    with_gpu(|g| {
        let (x, y, a) = (g.zeros("x", 3), g.zeros("y", 1), g.zeros("a", 1));
        let s = PoolShape { c: 3, h: 1, w: 1 };
        let err =
            g.k.max_pool2d
                .forward(&g.ctx, s, ro(&x), rw(&y), Some(rw(&a)))
                .err()
                .unwrap();
        assert!(err.to_string().contains("zero dimension"), "{err}");
    });
}

/// Max pooling needs an arg-max buffer and average pooling takes none.
#[test]
fn pooling_checks_the_arg_max_against_its_kind() {
    with_gpu(|g| {
        let s = PoolShape { c: 1, h: 2, w: 2 };
        let (x, y, a) = (g.zeros("x", 4), g.zeros("y", 1), g.zeros("a", 1));
        let (max, avg) = (&g.k.max_pool2d, &g.k.avg_pool2d);
        let err = max.forward(&g.ctx, s, ro(&x), rw(&y), None).err().unwrap();
        assert!(err.to_string().contains("Max pooling needs"), "{err}");
        let err = avg.backward(&g.ctx, s, ro(&y), Some(ro(&a)), rw(&x), false);
        let err = err.err().unwrap().to_string();
        assert!(err.contains("Avg pooling takes no"), "{err}");
    });
}
