//! L-BFGS steps against the reference, through refused pairs and a full ring.

use nst_kernels::{LbfgsParams, LbfgsRun};
use nst_reference as r;
use nst_tests::{as_f32_exact, assert_close, random, ro, rw, with_gpu};

/// One L-BFGS iteration as a recordable launch.
struct LbfgsIteration<'a>(&'a LbfgsRun, u32);

impl nst_gpu::Record for LbfgsIteration<'_> {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.0.record(pass, self.1);
    }
}

#[test]
fn lbfgs_steps_match_reference_through_negative_curvature_and_a_full_ring() {
    // f = Σ (x⁴/4 − x²) from near 0, where the curvature is negative: the first pairs are
    // refused, later ones kept, and with 3 slots the ring wraps several times. Each step is
    // compared from the same point and gradient, so f32 rounding does not compound.
    with_gpu(|g| {
        let n = 5_000;
        let grad = |x: &[f64]| x.iter().map(|v| v * v * v - 2.0 * v).collect::<Vec<_>>();
        let x0 = as_f32_exact(&random(93, n, -0.3, 0.3));
        let (bx, bg) = (g.upload("x", &x0), g.zeros("g", n));
        let params = LbfgsParams {
            history: 3,
            lr: 1.0,
        };
        let run =
            g.k.lbfgs
                .prepare(&g.ctx, &g.k.vector, params, rw(&bx), ro(&bg))
                .unwrap();
        let mut reference = r::lbfgs::Lbfgs::new(n, 3, 1.0);
        let mut x: Vec<f64> = x0.clone();
        for k in 1..=14 {
            let gk = grad(&x);
            let gf: Vec<f32> = gk.iter().map(|&v| v as f32).collect();
            g.ctx.write(&bg, 0, &gf);
            g.run(&[&LbfgsIteration(&run, k)]);
            let mut want = x.clone();
            reference.step(&mut want, &gk);
            let got = g.read(&bx);
            assert_close(&format!("x after step {k}"), &got, &want, 1e-5, 1e-4);
            x = got.iter().map(|&v| v as f64).collect();
        }
        assert!(reference.rejected() > 0, "no pair was refused");
        let f = |x: &[f64]| x.iter().map(|v| v.powi(4) / 4.0 - v * v).sum::<f64>();
        assert!(f(&x) < f(&x0) - 0.5 * n as f64, "f barely fell: {}", f(&x));
    });
}
