//! Layer 3: golden values from an independent framework (JAX on the CPU, see
//! tests/fixtures/README.md). The f64 CPU reference and the GPU kernels must both reproduce
//! each op's forward and backward and several Adam steps.

use nst_kernels::{AdamParams, ConvShape, PoolShape};
use nst_reference as r;
use nst_tests::{assert_close, ro, rw, with_gpu, Fixture, Gpu};
use nst_vgg::transform_for;
use nst_weights::InputConvention::{CaffeBgr, TorchvisionRgb};
use std::sync::OnceLock;

fn fixtures() -> &'static Fixture {
    static GOLDEN: OnceLock<Fixture> = OnceLock::new();
    GOLDEN.get_or_init(|| Fixture::load("golden.safetensors"))
}

/// A float32 tensor as f64, with its shape.
fn t(name: &str) -> (Vec<f64>, Vec<usize>) {
    fixtures().f64s(name)
}

fn f(name: &str) -> Vec<f64> {
    t(name).0
}

fn u32s(name: &str) -> Vec<u32> {
    fixtures().u32s(name)
}

fn close64(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let got32: Vec<f32> = got.iter().map(|&v| v as f32).collect();
    assert_close(&format!("reference {what}"), &got32, want, tol, tol);
}

/// The fixture's Adam hyper-parameters.
fn adam_params() -> AdamParams {
    let hp = f("adam.hparams");
    AdamParams {
        lr: hp[0],
        beta1: hp[1],
        beta2: hp[2],
        eps: hp[3],
    }
}

// ---- the CPU reference against JAX ----

#[test]
fn reference_conv2d() {
    let (x, s) = t("conv2d.x");
    let (ci, h, w) = (s[0], s[1], s[2]);
    let co = t("conv2d.b").1[0];
    let (wt, b, gy) = (f("conv2d.w"), f("conv2d.b"), f("conv2d.gy"));
    close64(
        "conv2d.y",
        &r::conv2d::conv2d_forward(&x, ci, h, w, &wt, &b, co, false),
        &f("conv2d.y"),
        1e-6,
    );
    close64(
        "conv2d.y_relu",
        &r::conv2d::conv2d_forward(&x, ci, h, w, &wt, &b, co, true),
        &f("conv2d.y_relu"),
        1e-6,
    );
    close64(
        "conv2d.gx",
        &r::conv2d::conv2d_backward_input(&gy, co, h, w, &wt, ci),
        &f("conv2d.gx"),
        1e-6,
    );
}

#[test]
fn reference_relu_pool_gram() {
    close64(
        "relu.y",
        &r::relu::relu_forward(&f("relu.x")),
        &f("relu.y"),
        0.0,
    );
    close64(
        "relu.gx",
        &r::relu::relu_backward(&f("relu.y"), &f("relu.gy")),
        &f("relu.gx"),
        0.0,
    );

    let (x, s) = t("max_pool.x");
    let (y, arg) = r::pool::max_pool2d_forward(&x, s[0], s[1], s[2]);
    close64("max_pool.y", &y, &f("max_pool.y"), 0.0);
    assert_eq!(arg, u32s("max_pool.argmax"), "max_pool.argmax");
    close64(
        "max_pool.gx",
        &r::pool::max_pool2d_backward(&f("max_pool.gy"), &arg, s[0], s[1], s[2]),
        &f("max_pool.gx"),
        0.0,
    );

    let (x, s) = t("avg_pool.x");
    close64(
        "avg_pool.y",
        &r::pool::avg_pool2d_forward(&x, s[0], s[1], s[2]),
        &f("avg_pool.y"),
        1e-7,
    );
    close64(
        "avg_pool.gx",
        &r::pool::avg_pool2d_backward(&f("avg_pool.gy"), s[0], s[1], s[2]),
        &f("avg_pool.gx"),
        1e-7,
    );

    let (fm, s) = t("gram.f");
    let (c, n) = (s[0], s[1] * s[2]);
    close64(
        "gram.g",
        &r::gram::gram_forward(&fm, c, n),
        &f("gram.g"),
        1e-7,
    );
    close64(
        "gram.gf",
        &r::gram::gram_backward(&fm, &f("gram.gg"), c, n),
        &f("gram.gf"),
        1e-7,
    );
}

#[test]
fn reference_losses_pixel_adam_dot() {
    let (a, b) = (f("mse.a"), f("mse.b"));
    close64(
        "mse.loss",
        &[r::loss::mse_forward(&a, &b)],
        &f("mse.loss"),
        1e-7,
    );
    close64(
        "mse.ga",
        &r::loss::mse_backward(&a, &b, 1.0),
        &f("mse.ga"),
        1e-7,
    );
    let (x, s) = t("tv.x");
    close64(
        "tv.loss",
        &[r::loss::tv_forward(&x, s[0], s[1], s[2])],
        &f("tv.loss"),
        1e-7,
    );
    close64(
        "tv.gx",
        &r::loss::tv_backward(&x, s[0], s[1], s[2], 1.0),
        &f("tv.gx"),
        1e-7,
    );
    let x = f("out_of_range.x");
    close64(
        "out_of_range.loss",
        &[r::loss::out_of_range_forward(&x)],
        &f("out_of_range.loss"),
        1e-7,
    );
    close64(
        "out_of_range.gx",
        &r::loss::out_of_range_backward(&x, 1.0),
        &f("out_of_range.gx"),
        1e-7,
    );

    for (name, convention) in [
        ("pixel_caffe", CaffeBgr),
        ("pixel_torchvision", TorchvisionRgb),
    ] {
        let tr = transform_for(convention);
        let (x, s) = t(&format!("{name}.x"));
        close64(
            &format!("{name}.y"),
            &r::pixel::forward(&x, (s[1], s[2]), tr.perm, tr.scale, tr.offset),
            &f(&format!("{name}.y")),
            1e-5,
        );
        close64(
            &format!("{name}.gx"),
            &r::pixel::backward(&f(&format!("{name}.gy")), (s[1], s[2]), tr.perm, tr.scale),
            &f(&format!("{name}.gx")),
            1e-5,
        );
    }

    let p = adam_params();
    let mut x = f("adam.x0");
    let (grads, want) = (f("adam.g"), f("adam.x"));
    let n = x.len();
    let mut state = r::adam::AdamState::new(n);
    for step in 0..grads.len() / n {
        let hyper = [p.lr, p.beta1, p.beta2, p.eps];
        r::adam::adam_step(&mut x, &grads[step * n..(step + 1) * n], &mut state, hyper);
        close64(
            &format!("adam step {}", step + 1),
            &x,
            &want[step * n..(step + 1) * n],
            1e-6,
        );
    }

    close64(
        "dot.out",
        &[r::vector::dot(&f("dot.a"), &f("dot.b"))],
        &f("dot.out"),
        1e-6,
    );
}

// ---- the GPU kernels against JAX ----

fn buf(g: &Gpu, name: &str) -> wgpu::Buffer {
    g.upload(name, &f(name))
}

/// Asserts that buffer `b` holds fixture tensor `name`.
fn expect(g: &Gpu, b: &wgpu::Buffer, name: &str, atol: f64, rtol: f64) {
    assert_close(&format!("gpu {name}"), &g.read(b), &f(name), atol, rtol);
}

#[test]
fn gpu_conv2d_relu_pool_gram() {
    with_gpu(|g| {
        let ctx = &g.ctx;
        let s = t("conv2d.x").1;
        let co = t("conv2d.b").1[0] as u32;
        let shape = ConvShape {
            c_in: s[0] as u32,
            c_out: co,
            h: s[1] as u32,
            w: s[2] as u32,
        };
        let (x, w, b, gy) = (
            buf(g, "conv2d.x"),
            buf(g, "conv2d.w"),
            buf(g, "conv2d.b"),
            buf(g, "conv2d.gy"),
        );
        let plane = s[1] * s[2];
        let (y, yr, gx) = (
            g.zeros("y", co as usize * plane),
            g.zeros("yr", co as usize * plane),
            g.zeros("gx", s[0] * plane),
        );
        let k = &g.k.conv2d;
        let d1 = k
            .forward(ctx, shape, ro(&x), ro(&w), ro(&b), rw(&y), false)
            .unwrap();
        let d2 = k
            .forward(ctx, shape, ro(&x), ro(&w), ro(&b), rw(&yr), true)
            .unwrap();
        let d3 = k
            .backward_input(ctx, shape, ro(&gy), ro(&w), rw(&gx))
            .unwrap();

        let (rx, rgy) = (buf(g, "relu.x"), buf(g, "relu.gy"));
        let rn = f("relu.x").len();
        let (ry, rgx) = (g.zeros("relu y", rn), g.zeros("relu gx", rn));
        let d4 = g.k.relu.forward(ctx, ro(&rx), rw(&ry)).unwrap();
        let d5 =
            g.k.relu
                .backward(ctx, ro(&ry), ro(&rgy), rw(&rgx), false)
                .unwrap();

        let ps = t("max_pool.x").1;
        let pshape = PoolShape {
            c: ps[0] as u32,
            h: ps[1] as u32,
            w: ps[2] as u32,
        };
        let (n_in, n_out) = (pshape.input_len() as usize, pshape.output_len() as usize);
        let (px, pgy) = (buf(g, "max_pool.x"), buf(g, "max_pool.gy"));
        let (py, parg, pgx) = (
            g.zeros("py", n_out),
            g.zeros("parg", n_out),
            g.zeros("pgx", n_in),
        );
        let max = &g.k.max_pool2d;
        let d6 = max
            .forward(ctx, pshape, ro(&px), rw(&py), Some(rw(&parg)))
            .unwrap();
        let d7 = max
            .backward(ctx, pshape, ro(&pgy), Some(ro(&parg)), rw(&pgx), false)
            .unwrap();
        let (ax, agy) = (buf(g, "avg_pool.x"), buf(g, "avg_pool.gy"));
        let (ay, agx) = (g.zeros("ay", n_out), g.zeros("agx", n_in));
        let d8 =
            g.k.avg_pool2d
                .forward(ctx, pshape, ro(&ax), rw(&ay), None)
                .unwrap();
        let d9 =
            g.k.avg_pool2d
                .backward(ctx, pshape, ro(&agy), None, rw(&agx), false)
                .unwrap();

        let gs = t("gram.f").1;
        let (gc, gn) = (gs[0] as u32, (gs[1] * gs[2]) as u32);
        let (gf, ggg) = (buf(g, "gram.f"), buf(g, "gram.gg"));
        let (gg, ggf) = (
            g.zeros("gram g", (gc * gc) as usize),
            g.zeros("gram gf", (gc * gn) as usize),
        );
        let d10 = g.k.gram.forward(ctx, gc, gn, ro(&gf), rw(&gg)).unwrap();
        let d11 =
            g.k.gram
                .backward(ctx, gc, gn, ro(&gf), ro(&ggg), rw(&ggf), false)
                .unwrap();

        g.run(&[&d1, &d2, &d3, &d4, &d5, &d6, &d7, &d8, &d9, &d10, &d11]);
        expect(g, &y, "conv2d.y", 1e-5, 1e-5);
        expect(g, &yr, "conv2d.y_relu", 1e-5, 1e-5);
        expect(g, &gx, "conv2d.gx", 1e-5, 1e-5);
        expect(g, &ry, "relu.y", 0.0, 0.0);
        expect(g, &rgx, "relu.gx", 0.0, 0.0);
        expect(g, &py, "max_pool.y", 0.0, 0.0);
        assert_eq!(
            g.read_u32(&parg),
            u32s("max_pool.argmax"),
            "gpu max_pool.argmax"
        );
        expect(g, &pgx, "max_pool.gx", 0.0, 0.0);
        expect(g, &ay, "avg_pool.y", 1e-6, 1e-6);
        expect(g, &agx, "avg_pool.gx", 1e-7, 1e-6);
        expect(g, &gg, "gram.g", 1e-6, 1e-5);
        expect(g, &ggf, "gram.gf", 1e-6, 1e-5);
    });
}

#[test]
fn gpu_losses_pixel_dot() {
    with_gpu(|g| {
        let ctx = &g.ctx;
        let scalars = g.zeros("scalars", 4);
        let sv = rw(&scalars);
        let (a, b) = (buf(g, "mse.a"), buf(g, "mse.b"));
        let ga = g.zeros("ga", f("mse.a").len());
        let d1 = g.k.mse.forward(ctx, ro(&a), ro(&b), sv, 0).unwrap();
        let d2 = g.k.mse.backward(ctx, ro(&a), ro(&b), rw(&ga), 1.0, false);
        let s = t("tv.x").1;
        let (c, h, w) = (s[0] as u32, s[1] as u32, s[2] as u32);
        let x = buf(g, "tv.x");
        let gx = g.zeros("tv gx", f("tv.x").len());
        let d3 = g.k.tv.forward(ctx, [c, h, w], ro(&x), sv, 1).unwrap();
        let d4 = g.k.tv.backward(ctx, [c, h, w], ro(&x), rw(&gx), 1.0, false);
        let (da, db) = (buf(g, "dot.a"), buf(g, "dot.b"));
        let d5 = g.k.vector.dot(ctx, ro(&da), ro(&db), sv, 2).unwrap();
        let r = buf(g, "out_of_range.x");
        let gr = g.zeros("out_of_range gx", f("out_of_range.x").len());
        let d6 = g.k.out_of_range.forward(ctx, ro(&r), sv, 3).unwrap();
        let d7 = g.k.out_of_range.backward(ctx, ro(&r), rw(&gr), 1.0, false);
        g.run(&[&d1, &d2.unwrap(), &d3, &d4.unwrap(), &d5, &d6, &d7.unwrap()]);
        let want = [
            f("mse.loss")[0],
            f("tv.loss")[0],
            f("dot.out")[0],
            f("out_of_range.loss")[0],
        ];
        assert_close(
            "gpu mse.loss, tv.loss, dot.out, out_of_range.loss",
            &g.read(&scalars),
            &want,
            1e-5,
            1e-5,
        );
        expect(g, &ga, "mse.ga", 1e-7, 1e-5);
        expect(g, &gx, "tv.gx", 1e-6, 1e-5);
        expect(g, &gr, "out_of_range.gx", 1e-7, 1e-5);

        for (name, convention) in [
            ("pixel_caffe", CaffeBgr),
            ("pixel_torchvision", TorchvisionRgb),
        ] {
            let tr = transform_for(convention);
            let s = t(&format!("{name}.x")).1;
            let (h, w) = (s[1] as u32, s[2] as u32);
            let (x, gy) = (buf(g, &format!("{name}.x")), buf(g, &format!("{name}.gy")));
            let (y, gx) = (
                g.zeros("y", 3 * s[1] * s[2]),
                g.zeros("gx", 3 * s[1] * s[2]),
            );
            let d1 = g.k.pixel.forward(ctx, &tr, h, w, ro(&x), rw(&y)).unwrap();
            let d2 = g.k.pixel.backward(ctx, &tr, h, w, ro(&gy), rw(&gx), false);
            g.run(&[&d1, &d2.unwrap()]);
            expect(g, &y, &format!("{name}.y"), 1e-4, 1e-6);
            expect(g, &gx, &format!("{name}.gx"), 1e-5, 1e-6);
        }
    });
}

#[test]
fn gpu_adam_steps() {
    with_gpu(|g| {
        let p = adam_params();
        let x = buf(g, "adam.x0");
        let n = f("adam.x0").len();
        let (m, v, grad) = (g.zeros("m", n), g.zeros("v", n), g.zeros("g", n));
        let step =
            g.k.adam
                .prepare(&g.ctx, p, ro(&grad), rw(&x), rw(&m), rw(&v))
                .unwrap();
        let (grads, want) = (f("adam.g"), f("adam.x"));
        for t in 0..grads.len() / n {
            let gt: Vec<f32> = grads[t * n..(t + 1) * n]
                .iter()
                .map(|&v| v as f32)
                .collect();
            g.ctx.write(&grad, 0, &gt);
            step.set_step(&g.ctx, t as u32 + 1);
            g.run(&[&step]);
            assert_close(
                &format!("gpu adam step {}", t + 1),
                &g.read(&x),
                &want[t * n..(t + 1) * n],
                1e-6,
                1e-5,
            );
        }
    });
}
