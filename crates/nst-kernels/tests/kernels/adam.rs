//! Adam over several steps, against the reference.

use nst_kernels::AdamParams;
use nst_reference as r;
use nst_tests::{as_f32_exact, assert_close, random, ro, rw, with_gpu};

#[test]
fn adam_matches_reference_over_several_steps() {
    with_gpu(|g| {
        let n = 1001;
        let p = AdamParams::new(0.05);
        let x0 = as_f32_exact(&random(80, n, -1.0, 1.0));
        let (bx, bm, bv, bg) = (
            g.upload("x", &x0),
            g.zeros("m", n),
            g.zeros("v", n),
            g.zeros("g", n),
        );
        let step =
            g.k.adam
                .prepare(&g.ctx, p, ro(&bg), rw(&bx), rw(&bm), rw(&bv))
                .unwrap();
        let mut state = r::adam::AdamState::new(n);
        let mut x = x0.clone();
        for t in 1..=6u32 {
            let grad = as_f32_exact(&random(80 + t as u64, n, -1.0, 1.0));
            let gf: Vec<f32> = grad.iter().map(|&v| v as f32).collect();
            g.ctx.write(&bg, 0, &gf);
            step.set_step(&g.ctx, t);
            g.run(&[&step]);
            r::adam::adam_step(&mut x, &grad, &mut state, [p.lr, p.beta1, p.beta2, p.eps]);
        }
        assert_close("adam after 6 steps", &g.read(&bx), &x, 1e-5, 1e-5);
    });
}
