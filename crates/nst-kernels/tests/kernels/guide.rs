//! Guidance (features weighted per position), overwriting and accumulating, and a guided Gram
//! matrix with its gradient composed of the guidance and Gram kernels as the engine composes
//! them, against the reference's guided Gram.

use nst_reference as r;
use nst_tests::{
    as_f32_exact, assert_close, plus, random, ro, rw, with_gpu, with_small_grid_gpu, Gpu,
};

fn guide_case(g: &Gpu, c: usize, n: usize, seed: u64) {
    let f = as_f32_exact(&random(seed, c * n, -1.0, 1.0));
    let mut m = as_f32_exact(&random(seed + 1, n, 0.0, 1.0));
    // Hard zeros and ones among the soft values.
    for (i, v) in m.iter_mut().enumerate() {
        match i % 5 {
            0 => *v = 0.0,
            1 => *v = 1.0,
            _ => {}
        }
    }
    let prior = as_f32_exact(&random(seed + 2, c * n, -1.0, 1.0));
    let (bf, bm) = (g.upload("f", &f), g.upload("m", &m));
    let (out, acc) = (g.upload("out", &vec![7.0; c * n]), g.upload("acc", &prior));
    let k = &g.k.guide;
    let a = k.apply(&g.ctx, ro(&bf), ro(&bm), rw(&out), false).unwrap();
    let b = k.apply(&g.ctx, ro(&bf), ro(&bm), rw(&acc), true).unwrap();
    g.run(&[&a, &b]);
    let want = r::guide::guide_apply(&f, &m);
    let name = format!("guide c={c} n={n}");
    // One float32 product each: rounded once.
    assert_close(&name, &g.read(&out), &want, 0.0, 1e-7);
    assert_close(
        &format!("{name} accumulating"),
        &g.read(&acc),
        &plus(&want, &prior),
        1e-6,
        1e-6,
    );
}

#[test]
fn guide_matches_reference() {
    with_gpu(|g| {
        for (i, (c, n)) in [(1, 1), (3, 7), (64, 255), (5, 257), (2, 70_001)]
            .into_iter()
            .enumerate()
        {
            guide_case(g, c, n, 40 + 3 * i as u64);
        }
    });
    with_small_grid_gpu(|g| guide_case(g, 3, 20_001, 49));
}

/// G = Gram(F ∘ m)·n / Σm² (the Gram kernel divides by n), and ∂/∂F = (Gram backward of
/// F ∘ m)·n / Σm², weighted by m again.
#[test]
fn a_guided_gram_composed_of_the_kernels_matches_reference() {
    with_gpu(|g| {
        let (c, n) = (6, 45);
        let f = as_f32_exact(&random(61, c * n, -1.0, 1.0));
        let mut m = as_f32_exact(&random(62, n, 0.0, 1.0));
        m[..9].iter_mut().for_each(|v| *v = 0.0);
        let dg = as_f32_exact(&random(63, c * c, -1.0, 1.0));
        let (bf, bm, bdg) = (g.upload("f", &f), g.upload("m", &m), g.upload("dG", &dg));
        let ba = g.upload("f∘m", &vec![0.0; c * n]);
        let bda = g.upload("d(f∘m)", &vec![0.0; c * n]);
        let bdf = g.upload("dF", &vec![0.0; c * n]);
        let bg = g.upload("G", &vec![0.0; c * c]);
        let ctx = &g.ctx;
        let k = &g.k;
        let apply = k
            .guide
            .apply(ctx, ro(&bf), ro(&bm), rw(&ba), false)
            .unwrap();
        let gram = k
            .gram
            .forward(ctx, c as u32, n as u32, ro(&ba), rw(&bg))
            .unwrap();
        let back = k
            .gram
            .backward(ctx, c as u32, n as u32, ro(&ba), ro(&bdg), rw(&bda), false)
            .unwrap();
        let unguide = k
            .guide
            .apply(ctx, ro(&bda), ro(&bm), rw(&bdf), false)
            .unwrap();
        g.run(&[&apply, &gram, &back, &unguide]);
        let scale = n as f64 / r::guide::energy(&m);
        let scaled = |v: Vec<f32>| -> Vec<f32> {
            v.into_iter().map(|x| (x as f64 * scale) as f32).collect()
        };
        assert_close(
            "guided gram",
            &scaled(g.read(&bg)),
            &r::guide::guided_gram_forward(&f, &m, c),
            1e-5,
            1e-5,
        );
        assert_close(
            "guided gram backward",
            &scaled(g.read(&bdf)),
            &r::guide::guided_gram_backward(&f, &m, &dg, c),
            1e-5,
            1e-5,
        );
    });
}
