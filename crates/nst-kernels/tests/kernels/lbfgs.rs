//! L-BFGS steps against the reference, through refused pairs and a full ring.

use nst_kernels::{LbfgsParams, LbfgsRun};
use nst_reference as r;
use nst_tests::{as_f32_exact, assert_close, random, ro, rw, with_gpu, Gpu};

/// One L-BFGS iteration as a recordable launch.
struct LbfgsIteration<'a>(&'a LbfgsRun, u32);

impl nst_gpu::Record for LbfgsIteration<'_> {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.0.record(pass, self.1);
    }
}

/// L-BFGS over `x`, whose gradient the test writes into `grad`.
fn prepared(g: &Gpu, x: &wgpu::Buffer, grad: &wgpu::Buffer, history: u32, lr: f64) -> LbfgsRun {
    let params = LbfgsParams { history, lr };
    (g.k.lbfgs)
        .prepare(&g.ctx, &g.k.vector, params, rw(x), ro(grad))
        .unwrap()
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
        let run = prepared(g, &bx, &bg, 3, 1.0);
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
            let run = prepared(g, &bx, &bg, history, lr);
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

/// Shrinking L-BFGS's last step to τ of itself, as a recordable launch.
struct Shrink<'a>(&'a LbfgsRun, u32);

impl nst_gpu::Record for Shrink<'_> {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.0.record_shrink_step(pass, self.1);
    }
}

/// Taking L-BFGS's last step back, as a recordable launch.
struct Undo<'a>(&'a LbfgsRun);

impl nst_gpu::Record for Undo<'_> {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.0.record_undo_step(pass);
    }
}

#[test]
fn lbfgs_shrinks_and_takes_back_steps_as_the_reference_does() {
    // Rosenbrock's valley in 1000 independent pairs, f = Σ 100(b − a²)² + (1 − a)², from the
    // far side of the valley: steps without a line search overshoot, so a step that raises f
    // is shrunk (to τ = 0.3 of itself here) until f falls, as nst-transfer's safeguard does.
    // The GPU's slope gᵀs, shrunk steps, the pairs made of them and the final step taken back
    // are held to the f64 reference.
    with_gpu(|g| {
        let n = 2000;
        let f = |x: &[f64]| {
            (x.chunks(2))
                .map(|p| 100.0 * (p[1] - p[0] * p[0]).powi(2) + (1.0 - p[0]).powi(2))
                .sum::<f64>()
        };
        let grad = |x: &[f64]| {
            (x.chunks(2))
                .flat_map(|p| {
                    let r = p[1] - p[0] * p[0];
                    [-400.0 * p[0] * r - 2.0 * (1.0 - p[0]), 200.0 * r]
                })
                .collect::<Vec<_>>()
        };
        let a = random(17, n / 2, -1.5, -0.9);
        let b = random(18, n / 2, 0.5, 1.5);
        let x0: Vec<f64> = as_f32_exact(
            &a.iter()
                .zip(&b)
                .flat_map(|(a, b)| [*a, *b])
                .collect::<Vec<_>>(),
        );
        let (bx, bg) = (g.upload("x", &x0), g.zeros("g", n));
        let run = prepared(g, &bx, &bg, 5, 1.0);
        let mut reference = r::lbfgs::Lbfgs::new(n, 5, 1.0);
        let to_f32 = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<_>>();
        let (mut x, mut gk) = (x0.clone(), grad(&x0));
        let mut f_now = f(&x);
        let f_start = f_now;
        let mut want = x.clone();
        let mut from = x.clone();
        let mut k = 1;
        g.ctx.write(&bg, 0, &to_f32(&gk));
        g.run(&[&LbfgsIteration(&run, k)]);
        reference.step(&mut want, &gk);
        let (mut shrinks, mut in_a_row, mut most_in_a_row) = (0, 0, 0);
        for eval in 2..=40 {
            let got = g.read(&bx);
            // float32 steps differ from the f64 ones by up to about 1e-5 of the step (as in
            // lbfgs_steps_match_torch), and the steps here may be large.
            let step = want
                .iter()
                .zip(&from)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            let atol = 1e-5 + 1e-4 * step;
            assert_close(&format!("x at evaluation {eval}"), &got, &want, atol, 1e-4);
            from = got.iter().map(|&v| v as f64).collect();
            let tried: Vec<f64> = got.iter().map(|&v| v as f64).collect();
            let f_tried = f(&tried);
            if f_tried.is_finite() && f_tried <= f_now {
                (x, f_now, gk) = (tried.clone(), f_tried, grad(&tried));
                in_a_row = 0;
                k += 1;
                g.ctx.write(&bg, 0, &to_f32(&gk));
                g.run(&[&LbfgsIteration(&run, k)]);
                want = tried;
                reference.step(&mut want, &gk);
            } else {
                if in_a_row == 0 {
                    // The slope the step recorded, of the step as first taken.
                    let slope = pollster::block_on(run.slope(&g.ctx)).unwrap();
                    let want_slope = reference.slope(&gk);
                    assert!(
                        (slope as f64 - want_slope).abs() <= 1e-4 * want_slope.abs(),
                        "slope at evaluation {eval}: {slope} against {want_slope}"
                    );
                    assert!(want_slope < 0.0, "the step is downhill");
                }
                (shrinks, in_a_row) = (shrinks + 1, in_a_row + 1);
                most_in_a_row = most_in_a_row.max(in_a_row);
                run.set_shrink(&g.ctx, 0.3);
                g.run(&[&Shrink(&run, k)]);
                want = tried;
                reference.shrink_step(0.3, &mut want);
            }
        }
        assert!(
            shrinks >= 5 && most_in_a_row >= 3,
            "shrinks: {shrinks}, {most_in_a_row} in a row"
        );
        // Taking the last step back returns to the last point accepted.
        g.run(&[&Undo(&run)]);
        reference.undo_step(&mut want);
        assert_close("x after the undo", &g.read(&bx), &want, 1e-5, 1e-4);
        assert_close("the last point accepted", &g.read(&bx), &x, 1e-5, 1e-4);
        assert!(
            f_now < 0.5 * f_start,
            "f fell from {f_start} to {f_now} only"
        );
    });
}
