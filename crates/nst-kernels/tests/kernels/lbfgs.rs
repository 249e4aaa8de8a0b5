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

/// The steps of torch's L-BFGS without a line search (`tests/fixtures/lbfgs_torch.py`: a
/// port of `torch.optim.LBFGS.step` run on problems whose gradients JAX computes), taken by
/// the GPU from torch's points and gradients: a convex case whose 3-pair history drops its
/// oldest pair 9 times, and a non-convex one whose first pairs torch drops for lack of
/// curvature. The f64 reference is held to the same steps, much tighter.
#[test]
fn lbfgs_steps_match_torch() {
    let f = nst_tests::Fixture::load("lbfgs_torch.safetensors");
    with_gpu(|g| {
        for case in ["convex_ring", "nonconvex"] {
            let (xs, shape) = f.f64s(&format!("{case}.x"));
            let (grads, _) = f.f64s(&format!("{case}.g"));
            let (steps, _) = f.f64s(&format!("{case}.step"));
            let kept = f.u32s(&format!("{case}.kept"));
            let params = f.u32s(&format!("{case}.params"));
            let (k_max, n) = (shape[0] - 1, shape[1]);
            let history = params[0];
            let lr = params[1] as f64;
            let row = |v: &[f64], k: usize| v[k * n..(k + 1) * n].to_vec();
            let (bx, bg) = (g.upload("x", &row(&xs, 0)), g.zeros("g", n));
            let params = LbfgsParams { history, lr };
            let run =
                g.k.lbfgs
                    .prepare(&g.ctx, &g.k.vector, params, rw(&bx), ro(&bg))
                    .unwrap();
            let mut reference = r::lbfgs::Lbfgs::new(n, history as usize, lr);
            for k in 1..=k_max {
                let (x, gk, want) = (row(&xs, k - 1), row(&grads, k - 1), row(&steps, k - 1));
                // From torch's point, so each step is compared on its own.
                g.ctx
                    .write(&bx, 0, &x.iter().map(|&v| v as f32).collect::<Vec<_>>());
                g.ctx
                    .write(&bg, 0, &gk.iter().map(|&v| v as f32).collect::<Vec<_>>());
                g.run(&[&LbfgsIteration(&run, k as u32)]);
                let got: Vec<f32> = g
                    .read(&bx)
                    .iter()
                    .zip(&x)
                    .map(|(&after, &before)| (after as f64 - before) as f32)
                    .collect();
                let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let tag = format!("{case}: step {k} (pair kept: {})", kept[k - 1]);
                // float32 rounding measured up to 3.7e-5 of the largest component (convex step 12,
                // near convergence), under 1e-6 elsewhere.
                assert_close(&format!("{tag}, GPU"), &got, &want, 1e-4 * largest, 1e-4);
                let mut after = x.clone();
                reference.step(&mut after, &gk);
                let ref_step: Vec<f32> =
                    after.iter().zip(&x).map(|(a, b)| (a - b) as f32).collect();
                assert_close(
                    &format!("{tag}, reference"),
                    &ref_step,
                    &want,
                    1e-6 * largest,
                    1e-5,
                );
            }
            let dropped = kept[1..].iter().filter(|&&k| k == 0).count() as u64;
            assert_eq!(reference.rejected(), dropped, "{case}: pairs dropped");
        }
    });
}
