//! `cargo bench`: every kernel at the shapes VGG-19 really uses at a 512×512 input, timed by
//! GPU timestamps where the adapter has them (wall-clock around a blocking wait otherwise).
//! Each kernel's output is checked against the f64 CPU reference before it is timed.
//!
//! Throughput: for compute-bound kernels criterion's "elem/s" counts FLOPs (so Gelem/s reads
//! as GFLOP/s); for memory-bound kernels it reports bytes moved per second.
//!
//! After criterion's report, a summary gives each compute-bound kernel's GFLOP/s over all the
//! launches criterion timed and, when `NST_PEAK_GFLOPS` gives the adapter's fp32 peak (wgpu
//! cannot query it; an H100 SXM's is about 67,000), the fraction of that peak.
//!
//! On a software adapter (Mesa's lavapipe) the image side is 64 instead of 512 so the run
//! finishes in minutes: `NST_BENCH_SIZE=N` overrides the side either way. Those timings say
//! nothing about a GPU.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nst_gpu::{Context, GpuTimer, Record, ViewMut};
use nst_kernels::{AdamParams, ConvShape, Kernels, PoolShape};
use nst_reference as r;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::time::{Duration, Instant};

struct Bench {
    ctx: Context,
    k: Kernels,
    timer: Option<GpuTimer>,
    side: u32,
    /// Per compute-bound kernel: its name, FLOPs per launch, and the launches and time timed.
    totals: RefCell<Vec<(String, f64, u64, Duration)>>,
}

fn random(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

impl Bench {
    fn new() -> Self {
        let ctx = Context::new().unwrap_or_else(|e| panic!("{e}"));
        let k = Kernels::new(&ctx).unwrap_or_else(|e| panic!("{e}"));
        let default_side = if ctx.is_software() { 64 } else { 512 };
        let side = std::env::var("NST_BENCH_SIZE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_side);
        let timer = GpuTimer::new(&ctx, 1);
        println!(
            "adapter: {} ({}, {}), driver {}; timing: {}; image {side}×{side}{}",
            ctx.summary.name,
            ctx.summary.backend,
            ctx.summary.device_type,
            ctx.summary.driver,
            if timer.is_some() {
                "GPU timestamps"
            } else {
                "wall clock"
            },
            if ctx.is_software() && side != 512 {
                " (quick mode: software adapter)"
            } else {
                ""
            }
        );
        Bench {
            ctx,
            k,
            timer,
            side,
            totals: RefCell::new(Vec::new()),
        }
    }

    /// [`Bench::time`], adding the launches to `name`'s totals for the summary.
    fn time_flops(&self, name: &str, flops: f64, work: &dyn Record, iters: u64) -> Duration {
        let t = self.time(work, iters);
        let mut totals = self.totals.borrow_mut();
        match totals.iter_mut().find(|e| e.0 == name) {
            Some(e) => {
                e.2 += iters;
                e.3 += t;
            }
            None => totals.push((name.to_string(), flops, iters, t)),
        }
        t
    }

    /// Prints GFLOP/s per kernel and, given `NST_PEAK_GFLOPS`, the fraction of the peak.
    fn summary(&self) {
        let peak: Option<f64> = std::env::var("NST_PEAK_GFLOPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|p: &f64| *p > 0.0);
        println!(
            "\nsummary: GFLOP/s over every launch timed (side {})",
            self.side
        );
        match peak {
            Some(p) => println!("fractions of NST_PEAK_GFLOPS = {p}"),
            None => println!("set NST_PEAK_GFLOPS to the adapter's fp32 peak for fractions"),
        }
        for (name, flops, iters, t) in self.totals.borrow().iter() {
            let gflops = flops * *iters as f64 / t.as_secs_f64() / 1e9;
            let frac = peak.map_or(String::new(), |p| format!("  {:5.1}%", 100.0 * gflops / p));
            println!("  {name:<32} {gflops:>10.1} GFLOP/s{frac}");
        }
    }

    fn upload(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.ctx
            .tensor_from(label, data)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn zeros(&self, label: &str, n: usize) -> wgpu::Buffer {
        self.ctx
            .tensor(label, n as u64)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn read(&self, b: &wgpu::Buffer) -> Vec<f32> {
        self.ctx.read(b).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Time of `iters` back-to-back launches of `work` in one pass.
    fn time(&self, work: &dyn Record, iters: u64) -> Duration {
        let ctx = &self.ctx;
        let start = Instant::now();
        ctx.submit_timed(self.timer.as_ref(), |pass| {
            for _ in 0..iters {
                work.record(pass);
            }
        })
        .and_then(|()| ctx.wait())
        .unwrap_or_else(|e| panic!("{e}"));
        let wall = start.elapsed();
        match &self.timer {
            Some(t) => Duration::from_secs_f64(t.read_ms(ctx, 1).unwrap()[0] / 1e3),
            None => wall,
        }
    }

    fn run_once(&self, work: &dyn Record) {
        (self.ctx.submit(|pass| work.record(pass)))
            .and_then(|()| self.ctx.wait())
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Fails the bench when `got[i]` is off `want` by more than a relative 1e-3 (f32 sums).
fn check(what: &str, i: usize, got: f32, want: f64) {
    let tol = 1e-4 + 1e-3 * want.abs();
    assert!(
        (got as f64 - want).abs() <= tol,
        "{what}: element {i} is {got}, reference {want}; not timing a wrong kernel"
    );
}

/// Conv layers from conv1_1 to conv5_1 (and conv4_2, the content layer) at a `side`² input.
fn conv_layers(side: u32) -> Vec<(&'static str, ConvShape)> {
    let s = |c_in, c_out, div: u32| ConvShape {
        c_in,
        c_out,
        h: (side / div).max(1),
        w: (side / div).max(1),
    };
    vec![
        ("conv1_1", s(3, 64, 1)),
        ("conv1_2", s(64, 64, 1)),
        ("conv2_1", s(64, 128, 2)),
        ("conv3_1", s(128, 256, 4)),
        ("conv4_1", s(256, 512, 8)),
        ("conv4_2", s(512, 512, 8)),
        ("conv5_1", s(512, 512, 16)),
    ]
}

fn bench_conv(c: &mut Criterion, b: &Bench) {
    let mut group = c.benchmark_group("conv2d");
    configure(&mut group, b);
    for (name, s) in conv_layers(b.side) {
        let plane = (s.h * s.w) as usize;
        let (ci, co) = (s.c_in as usize, s.c_out as usize);
        let x = random(1, ci * plane, 0.0, 1.0);
        let w = random(2, co * ci * 9, -0.1, 0.1);
        let bias = random(3, co, -0.1, 0.1);
        let (bx, bw, bb) = (b.upload("x", &x), b.upload("w", &w), b.upload("b", &bias));
        let (by, bgx) = (b.zeros("y", co * plane), b.zeros("gx", ci * plane));
        let fwd =
            b.k.conv2d
                .forward(
                    &b.ctx,
                    s,
                    (&bx).into(),
                    (&bw).into(),
                    (&bb).into(),
                    (&by).into(),
                    true,
                )
                .unwrap();
        // The backward reads y as its output gradient: any values do for timing.
        let bwd =
            b.k.conv2d
                .backward_input(&b.ctx, s, (&by).into(), (&bw).into(), (&bgx).into())
                .unwrap();
        b.run_once(&fwd);
        b.run_once(&bwd);
        // Check sampled outputs against the f64 reference (a full CPU conv at 512² is slow).
        let (y, gx) = (b.read(&by), b.read(&bgx));
        let (h, wd) = (s.h as usize, s.w as usize);
        let tap = |src: &[f32],
                   c_src: usize,
                   oc: usize,
                   p: usize,
                   weight: &dyn Fn(usize, usize, usize, usize) -> f64| {
            let (py, px) = ((p / wd) as i64, (p % wd) as i64);
            let mut acc = 0.0;
            for i in 0..c_src {
                for ky in 0..3i64 {
                    for kx in 0..3i64 {
                        let (sy, sx) = (py + ky - 1, px + kx - 1);
                        if sy >= 0 && sy < h as i64 && sx >= 0 && sx < wd as i64 {
                            acc += weight(oc, i, ky as usize, kx as usize)
                                * src[i * plane + sy as usize * wd + sx as usize] as f64;
                        }
                    }
                }
            }
            acc
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..32 {
            let (o, p) = (rng.random_range(0..co), rng.random_range(0..plane));
            let want = (bias[o] as f64
                + tap(&x, ci, o, p, &|o, i, ky, kx| {
                    w[((o * ci + i) * 3 + ky) * 3 + kx] as f64
                }))
            .max(0.0);
            check(
                &format!("{name} forward"),
                o * plane + p,
                y[o * plane + p],
                want,
            );
            let i = rng.random_range(0..ci);
            let want = tap(&y, co, i, p, &|i, o, ky, kx| {
                w[((o * ci + i) * 3 + 2 - ky) * 3 + 2 - kx] as f64
            });
            check(
                &format!("{name} backward"),
                i * plane + p,
                gx[i * plane + p],
                want,
            );
        }
        group.throughput(Throughput::Elements(s.flops() as u64));
        let (ff, fb) = (
            format!("conv2d forward_relu {name}"),
            format!("conv2d backward_input {name}"),
        );
        group.bench_function(BenchmarkId::new("forward_relu", name), |bn| {
            bn.iter_custom(|n| b.time_flops(&ff, s.flops(), &fwd, n))
        });
        group.bench_function(BenchmarkId::new("backward_input", name), |bn| {
            bn.iter_custom(|n| b.time_flops(&fb, s.flops(), &bwd, n))
        });
    }
    group.finish();
}

fn bench_gram(c: &mut Criterion, b: &Bench) {
    let mut group = c.benchmark_group("gram");
    configure(&mut group, b);
    for (name, ch, div) in [
        ("relu1_1", 64u32, 1u32),
        ("relu2_1", 128, 2),
        ("relu3_1", 256, 4),
        ("relu4_1", 512, 8),
        ("relu5_1", 512, 16),
    ] {
        let side = (b.side / div).max(1);
        let n = side * side;
        let f = random(4, (ch * n) as usize, 0.0, 1.0);
        let gg = random(5, (ch * ch) as usize, -1.0, 1.0);
        let (bf, bgg) = (b.upload("f", &f), b.upload("gg", &gg));
        let (bg, bgf) = (
            b.zeros("g", (ch * ch) as usize),
            b.zeros("gf", (ch * n) as usize),
        );
        let fwd =
            b.k.gram
                .forward(&b.ctx, ch, n, (&bf).into(), (&bg).into())
                .unwrap();
        let bwd =
            b.k.gram
                .backward(
                    &b.ctx,
                    ch,
                    n,
                    (&bf).into(),
                    (&bgg).into(),
                    (&bgf).into(),
                    false,
                )
                .unwrap();
        b.run_once(&fwd);
        b.run_once(&bwd);
        let (g, gf) = (b.read(&bg), b.read(&bgf));
        let (cc, nn) = (ch as usize, n as usize);
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for _ in 0..16 {
            let (i, j) = (rng.random_range(0..cc), rng.random_range(0..cc));
            let want: f64 = (0..nn)
                .map(|k| f[i * nn + k] as f64 * f[j * nn + k] as f64)
                .sum::<f64>()
                / nn as f64;
            check(
                &format!("gram {name} forward"),
                i * cc + j,
                g[i * cc + j],
                want,
            );
            let k = rng.random_range(0..nn);
            let want: f64 = (0..cc)
                .map(|j| (gg[i * cc + j] + gg[j * cc + i]) as f64 * f[j * nn + k] as f64)
                .sum::<f64>()
                / nn as f64;
            check(
                &format!("gram {name} backward"),
                i * nn + k,
                gf[i * nn + k],
                want,
            );
        }
        // The full product's FLOPs, although the symmetric forward computes about half.
        let flops = 2.0 * (ch as f64).powi(2) * n as f64;
        group.throughput(Throughput::Elements(flops as u64));
        let (ff, fb) = (
            format!("gram forward {name}"),
            format!("gram backward {name}"),
        );
        group.bench_function(BenchmarkId::new("forward", name), |bn| {
            bn.iter_custom(|k| b.time_flops(&ff, flops, &fwd, k))
        });
        group.bench_function(BenchmarkId::new("backward", name), |bn| {
            bn.iter_custom(|k| b.time_flops(&fb, flops, &bwd, k))
        });
    }
    group.finish();
}

/// The memory-bound kernels at conv1's size (64 channels) or the image's (3 channels).
fn bench_elementwise(c: &mut Criterion, b: &Bench) {
    let mut group = c.benchmark_group("elementwise");
    configure(&mut group, b);
    let side = b.side;
    let n1 = (64 * side * side) as usize;
    let x = random(6, n1, -1.0, 1.0);
    let x2 = random(7, n1, -1.0, 1.0);
    let (bx, bx2, by, bg) = (
        b.upload("x", &x),
        b.upload("x2", &x2),
        b.zeros("y", n1),
        b.zeros("g", n1),
    );
    let scalars = b.zeros("scalars", 1);
    let pool = PoolShape {
        c: 64,
        h: side,
        w: side,
    };
    let (bp, barg) = (
        b.zeros("pooled", pool.output_len() as usize),
        b.zeros("argmax", pool.output_len() as usize),
    );
    let ctx = &b.ctx;
    let relu_f = b.k.relu.forward(ctx, (&bx).into(), (&by).into()).unwrap();
    let relu_b =
        b.k.relu
            .backward(ctx, (&bx).into(), (&bx2).into(), (&bg).into(), false)
            .unwrap();
    let pool_f =
        b.k.max_pool2d
            .forward(ctx, pool, (&bx).into(), (&bp).into(), Some((&barg).into()))
            .unwrap();
    let pool_b =
        b.k.max_pool2d
            .backward(
                ctx,
                pool,
                (&bp).into(),
                Some((&barg).into()),
                (&bg).into(),
                false,
            )
            .unwrap();
    let mse_f =
        b.k.mse
            .forward(
                ctx,
                (&bx).into(),
                (&bx2).into(),
                ViewMut::whole(&scalars),
                0,
            )
            .unwrap();
    let mse_b =
        b.k.mse
            .backward(ctx, (&bx).into(), (&bx2).into(), (&bg).into(), 1.0, false)
            .unwrap();

    b.run_once(&relu_f);
    let y = b.read(&by);
    for i in (0..n1).step_by(997) {
        check("relu forward", i, y[i], (x[i] as f64).max(0.0));
    }
    b.run_once(&pool_f);
    let (yp, _) = r::pool::max_pool2d_forward(
        &x[..(side * side) as usize]
            .iter()
            .map(|&v| v as f64)
            .collect::<Vec<_>>(),
        1,
        side as usize,
        side as usize,
    );
    let got = b.read(&bp);
    for (i, &w) in yp.iter().enumerate() {
        check("max pool forward (channel 0)", i, got[i], w);
    }
    b.run_once(&mse_f);
    let want: f64 = x
        .iter()
        .zip(&x2)
        .map(|(&a, &c)| (a as f64 - c as f64).powi(2))
        .sum::<f64>()
        / n1 as f64;
    check("mse forward", 0, b.read(&scalars)[0], want);

    let bytes = |reads: usize, writes: usize| Throughput::Bytes(((reads + writes) * n1 * 4) as u64);
    group.throughput(bytes(1, 1));
    group.bench_function("relu_forward/conv1", |bn| {
        bn.iter_custom(|k| b.time(&relu_f, k))
    });
    group.throughput(bytes(2, 1));
    group.bench_function("relu_backward/conv1", |bn| {
        bn.iter_custom(|k| b.time(&relu_b, k))
    });
    group.throughput(Throughput::Bytes(
        (n1 * 4 + pool.output_len() as usize * 8) as u64,
    ));
    group.bench_function("max_pool_forward/conv1", |bn| {
        bn.iter_custom(|k| b.time(&pool_f, k))
    });
    group.bench_function("max_pool_backward/conv1", |bn| {
        bn.iter_custom(|k| b.time(&pool_b, k))
    });
    group.throughput(bytes(2, 0));
    group.bench_function("mse_forward/conv1", |bn| {
        bn.iter_custom(|k| b.time(&mse_f, k))
    });
    group.throughput(bytes(2, 1));
    group.bench_function("mse_backward/conv1", |bn| {
        bn.iter_custom(|k| b.time(&mse_b, k))
    });

    // Image-sized kernels: pixel transform, TV, Adam.
    let n3 = (3 * side * side) as usize;
    let img = random(9, n3, 0.0, 1.0);
    let (bi, bt, bm, bv) = (
        b.upload("img", &img),
        b.zeros("t", n3),
        b.zeros("m", n3),
        b.zeros("v", n3),
    );
    let pix =
        b.k.pixel
            .forward(
                ctx,
                &nst_vgg::transform_for(nst_weights::InputConvention::CaffeBgr),
                side,
                side,
                (&bi).into(),
                (&bt).into(),
            )
            .unwrap();
    let tv_b =
        b.k.tv
            .backward(ctx, [3, side, side], (&bi).into(), (&bt).into(), 1.0, false)
            .unwrap();
    let adam =
        b.k.adam
            .prepare(
                ctx,
                AdamParams::new(0.02),
                (&bt).into(),
                (&bi).into(),
                (&bm).into(),
                (&bv).into(),
            )
            .unwrap();
    let n3b = |k: usize| Throughput::Bytes((k * n3 * 4) as u64);
    group.throughput(n3b(2));
    group.bench_function("pixel_forward/image", |bn| {
        bn.iter_custom(|k| b.time(&pix, k))
    });
    group.throughput(n3b(2));
    group.bench_function("tv_backward/image", |bn| {
        bn.iter_custom(|k| b.time(&tv_b, k))
    });
    group.throughput(n3b(7));
    group.bench_function("adam_step/image", |bn| bn.iter_custom(|k| b.time(&adam, k)));
    group.finish();
}

fn configure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, b: &Bench,
) {
    if b.ctx.is_software() {
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(2));
    }
}

fn all(c: &mut Criterion) {
    let b = Bench::new();
    bench_conv(c, &b);
    bench_gram(c, &b);
    bench_elementwise(c, &b);
    b.summary();
}

criterion_group!(benches, all);
criterion_main!(benches);
