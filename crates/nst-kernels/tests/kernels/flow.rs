//! The optical-flow kernels (TV-L1 and its reliability) against the f64 reference, each on an
//! odd-sized plane and one spanning several workgroups; a few TV-L1 iterations composed of the
//! primal and dual kernels as the engine composes them.

use nst_kernels::Tvl1Step;
use nst_reference::flow as r;
use nst_tests::{as_f32_exact, assert_close, random, ro, rw, with_gpu, with_small_grid_gpu, Gpu};

const STEP: Tvl1Step = Tvl1Step {
    lambda: 0.15,
    theta: 0.3,
    tau: 0.25,
};

fn params() -> r::Tvl1 {
    r::Tvl1 {
        lambda: STEP.lambda as f64,
        theta: STEP.theta as f64,
        tau: STEP.tau as f64,
        warps: 1,
        iterations: 1,
        min_side: 1,
    }
}

/// The data term of a random plane pair: consistent gradients and |∇|², ρ₀ spread across
/// TV-L1's three thresholding cases.
fn data(seed: u64, n: usize) -> Vec<f64> {
    let g = as_f32_exact(&random(seed, 2 * n, -20.0, 20.0));
    let rho = as_f32_exact(&random(seed + 1, n, -40.0, 40.0));
    let g2: Vec<f64> = (0..n).map(|q| g[q] * g[q] + g[n + q] * g[n + q]).collect();
    [&g[..], &as_f32_exact(&g2), &rho].concat()
}

fn case(g: &Gpu, h: usize, w: usize, seed: u64) {
    let (ctx, k, n) = (&g.ctx, &g.k.flow, h * w);
    let size = (h as u32, w as u32);
    let name = |op: &str| format!("{op} {h}×{w}");
    let rgb = as_f32_exact(&random(seed, 3 * n, 0.0, 1.0));
    let img = as_f32_exact(&random(seed + 1, 3 * n, 0.0, 255.0));
    let flow = as_f32_exact(&random(seed + 2, 2 * n, -4.0, 4.0));
    let dual = as_f32_exact(&random(seed + 3, 4 * n, -1.0, 1.0));
    let prep = data(seed + 4, n);
    // A smooth motion and its opposite, which disagrees in a patch (occluded there).
    let jitter = random(seed + 5, 2 * n, -0.05, 0.05);
    let forward = as_f32_exact(
        &(0..2 * n)
            .map(|i| if i < n { 1.5 } else { -0.5 } + jitter[i])
            .collect::<Vec<_>>(),
    );
    let backward = as_f32_exact(
        &(0..2 * n)
            .map(|i| {
                let q = i % n;
                let patch = (q / w) < h / 3 && (q % w) < w / 3;
                if patch {
                    3.0
                } else {
                    -forward[i]
                }
            })
            .collect::<Vec<_>>(),
    );
    let b = |label: &str, v: &[f64]| g.upload(label, v);
    let (b_fwd, b_bwd) = (b("forward", &forward), b("backward", &backward));
    let (b_rgb, b_img, b_flow, b_dual, b_prep) = (
        b("rgb", &rgb),
        b("img", &img),
        b("flow", &flow),
        b("dual", &dual),
        b("prep", &prep),
    );
    let out = |len: usize| g.upload("out", &vec![7.0; len]);
    let (grey, half, grad, warped, prepared, next, dual_out, up, weights) = (
        out(n),
        out(3 * (h / 2) * (w / 2)),
        out(3 * n),
        out(3 * n),
        out(4 * n),
        out(2 * n),
        b("dual out", &dual),
        out(2 * (2 * h) * (2 * w + 1)),
        out(n),
    );
    let (hh, ww) = (h as u32, w as u32);
    let fine = (2 * hh, 2 * ww + 1);
    let mut launches = vec![
        k.gray(ctx, size, ro(&b_rgb), rw(&grey)).unwrap(),
        k.with_gradient(
            ctx,
            size,
            nst_gpu::View::range(&b_img, 0, n as u64),
            rw(&grad),
        )
        .unwrap(),
        k.warp(ctx, (3, hh, ww), ro(&b_img), ro(&b_flow), rw(&warped))
            .unwrap(),
        k.prepare(
            ctx,
            size,
            nst_gpu::View::range(&b_img, 0, n as u64),
            ro(&b_img),
            ro(&b_flow),
            rw(&prepared),
        )
        .unwrap(),
        k.primal(
            ctx,
            size,
            STEP,
            ro(&b_flow),
            ro(&b_dual),
            ro(&b_prep),
            rw(&next),
        )
        .unwrap(),
        k.dual(ctx, size, STEP, ro(&b_flow), rw(&dual_out)).unwrap(),
        k.upsample(ctx, size, fine, ro(&b_flow), rw(&up)).unwrap(),
        k.reliability(ctx, size, ro(&b_fwd), ro(&b_bwd), rw(&weights))
            .unwrap(),
    ];
    if h >= 2 && w >= 2 {
        launches.push(
            k.downsample(ctx, (3, hh, ww), ro(&b_img), rw(&half))
                .unwrap(),
        );
    }
    let all: Vec<&dyn nst_gpu::Record> = launches.iter().map(|l| l as _).collect();
    g.run(&all);
    let t = params();
    assert_close(&name("gray"), &g.read(&grey), &r::gray(&rgb), 1e-4, 1e-6);
    if h >= 2 && w >= 2 {
        let want = r::downsample(&img, 3, h, w);
        assert_close(&name("downsample"), &g.read(&half), &want, 1e-4, 1e-6);
    }
    let want = r::with_gradient(&img[..n], h, w);
    assert_close(&name("with_gradient"), &g.read(&grad), &want, 1e-4, 1e-6);
    let want = r::warp(&img, 3, h, w, &flow);
    assert_close(&name("warp"), &g.read(&warped), &want, 1e-3, 1e-5);
    let want = r::prepare(&img[..n], &img, &flow);
    assert_close(&name("prepare"), &g.read(&prepared), &want, 1e-2, 1e-5);
    let want = r::primal(&flow, &dual, &prep, h, w, &t);
    assert_close(&name("primal"), &g.read(&next), &want, 1e-4, 1e-5);
    let want = r::dual(&flow, &dual, h, w, &t);
    assert_close(&name("dual"), &g.read(&dual_out), &want, 1e-5, 1e-5);
    let want = r::upsample_flow(&flow, (h, w), (2 * h, 2 * w + 1));
    assert_close(&name("upsample"), &g.read(&up), &want, 1e-4, 1e-5);
    // The reliability: a 0/1 decision on float sums; where the f64 reference is within
    // rounding of a threshold the two may differ, so count the differences.
    let got = g.read(&weights);
    let want = r::reliability(&backward, &forward, h, w);
    let differ = (got.iter().zip(&want))
        .filter(|(a, b)| (**a as f64 - **b).abs() > 0.5)
        .count();
    assert!(
        differ <= n / 500,
        "{}: {differ} of {n} differ",
        name("reliability")
    );
    if n >= 100 {
        assert!(want.contains(&0.0) && want.contains(&1.0), "{want:?}");
    }
}

#[test]
fn flow_kernels_match_reference() {
    with_gpu(|g| {
        for (i, (h, w)) in [(1, 1), (5, 7), (13, 17), (97, 131)]
            .into_iter()
            .enumerate()
        {
            case(g, h, w, 300 + 10 * i as u64);
        }
    });
    with_small_grid_gpu(|g| case(g, 67, 75, 390));
}

/// Twenty TV-L1 steps, primal then dual in place, as the engine runs them, from u = 0, p = 0:
/// the flow stays within float rounding of the reference's.
#[test]
fn tvl1_iterations_match_reference() {
    with_gpu(|g| {
        let (h, w, n) = (23, 29, 23 * 29);
        let (ctx, k) = (&g.ctx, &g.k.flow);
        let prep = data(500, n);
        let (b_prep, u0, u1, p) = (
            g.upload("prep", &prep),
            g.upload("u0", &vec![0.0; 2 * n]),
            g.upload("u1", &vec![0.0; 2 * n]),
            g.upload("p", &vec![0.0; 4 * n]),
        );
        let size = (h as u32, w as u32);
        let mut launches = Vec::new();
        for i in 0..20 {
            let (from, to) = if i % 2 == 0 { (&u0, &u1) } else { (&u1, &u0) };
            launches.push(
                k.primal(ctx, size, STEP, ro(from), ro(&p), ro(&b_prep), rw(to))
                    .unwrap(),
            );
            launches.push(k.dual(ctx, size, STEP, ro(to), rw(&p)).unwrap());
        }
        let all: Vec<&dyn nst_gpu::Record> = launches.iter().map(|l| l as _).collect();
        g.run(&all);
        let t = params();
        let (mut u, mut pr) = (vec![0.0; 2 * n], vec![0.0; 4 * n]);
        for _ in 0..20 {
            u = r::primal(&u, &pr, &prep, h, w, &t);
            pr = r::dual(&u, &pr, h, w, &t);
        }
        assert_close("20 TV-L1 steps", &g.read(&u0), &u, 1e-3, 1e-4);
    });
}
