//! Layer 2: every GPU kernel against the f64 CPU reference, on tiny (1×1), odd and
//! non-multiple-of-4 shapes, shapes spanning many workgroups, and (through a context capped at
//! 16 workgroups per dimension) the 2-D grid path.

use nst_gpu::View;
use nst_kernels::{
    AdamParams, Channels, Coef, Conv2d, ConvPart, ConvShape, ConvTiles, GpuError, Gram, GramTiles,
    LbfgsParams, LbfgsRun, PixelTransform, PoolShape,
};
use nst_reference as r;
use nst_tests::{
    as_f32_exact, assert_close, random, random_away_from_zero, with_gpu, with_small_grid_gpu, Gpu,
};

/// (c_in, c_out, h, w). With the default 64×64 tiles and K steps of 16 (K = 9·c_src), the
/// later shapes end in partial tiles in M, N and K, forward and backward, over several steps.
const CONV_SHAPES: &[(u32, u32, u32, u32)] = &[
    (1, 1, 1, 1),
    (3, 5, 7, 9),
    (5, 6, 1, 13),
    (7, 3, 13, 1),
    (3, 8, 24, 31),  // 12 pixel tiles
    (3, 64, 17, 19), // M exactly one tile forward; K = 27: a partial second step
    (64, 3, 9, 70),  // 10 pixel tiles, the last partial; K = 576: 36 whole steps
    (130, 65, 5, 7), // M = 65: a second tile of one row; K = 1170 ends in a partial step
    (9, 70, 12, 13), // 2 channel tiles × 3 pixel tiles at once
];

fn conv_case(g: &Gpu, (c_in, c_out, h, w): (u32, u32, u32, u32), seed: u64) {
    conv_case_with(g, &g.k.conv2d, (c_in, c_out, h, w), seed)
}

fn conv_case_with(g: &Gpu, k: &Conv2d, (c_in, c_out, h, w): (u32, u32, u32, u32), seed: u64) {
    let s = ConvShape { c_in, c_out, h, w };
    let plane = (h * w) as usize;
    let x = as_f32_exact(&random(seed, c_in as usize * plane, -1.0, 1.0));
    let wt = as_f32_exact(&random(seed + 1, (c_out * c_in * 9) as usize, -0.5, 0.5));
    let b = as_f32_exact(&random(seed + 2, c_out as usize, -0.5, 0.5));
    let gy = as_f32_exact(&random(seed + 3, c_out as usize * plane, -1.0, 1.0));
    let (bx, bw, bb, bgy) = (
        g.upload("x", &x),
        g.upload("w", &wt),
        g.upload("b", &b),
        g.upload("gy", &gy),
    );
    let (by, byr, bgx) = (
        g.zeros("y", c_out as usize * plane),
        g.zeros("y relu", c_out as usize * plane),
        g.zeros("gx", c_in as usize * plane),
    );
    let fwd = k
        .forward(
            &g.ctx,
            s,
            (&bx).into(),
            (&bw).into(),
            (&bb).into(),
            (&by).into(),
            false,
        )
        .unwrap();
    let fwd_relu = k
        .forward(
            &g.ctx,
            s,
            (&bx).into(),
            (&bw).into(),
            (&bb).into(),
            (&byr).into(),
            true,
        )
        .unwrap();
    let bwd = k
        .backward_input(&g.ctx, s, (&bgy).into(), (&bw).into(), (&bgx).into())
        .unwrap();
    g.run(&[&fwd, &fwd_relu, &bwd]);
    let (ci, co, hh, ww) = (c_in as usize, c_out as usize, h as usize, w as usize);
    let tag = format!("conv2d {c_in}→{c_out} {h}×{w} {:?}", k.tiles());
    assert_close(
        &format!("{tag} forward"),
        &g.read(&by),
        &r::conv2d::conv2d_forward(&x, ci, hh, ww, &wt, &b, co, false),
        1e-5,
        1e-5,
    );
    assert_close(
        &format!("{tag} forward+relu"),
        &g.read(&byr),
        &r::conv2d::conv2d_forward(&x, ci, hh, ww, &wt, &b, co, true),
        1e-5,
        1e-5,
    );
    assert_close(
        &format!("{tag} backward"),
        &g.read(&bgx),
        &r::conv2d::conv2d_backward_input(&gy, co, hh, ww, &wt, ci),
        1e-5,
        1e-5,
    );
}

#[test]
fn conv2d_matches_reference() {
    with_gpu(|g| {
        for (i, &shape) in CONV_SHAPES.iter().enumerate() {
            conv_case(g, shape, 10 + i as u64);
        }
    });
}

#[test]
fn conv2d_matches_reference_on_2d_grid() {
    with_small_grid_gpu(|g| {
        // 12 pixel tiles fit in one row of 16; 1,155 pixels make 19 tiles: a 10×2 grid whose
        // last workgroup lies past the end, with 2 channel tiles along z forward.
        conv_case(g, (3, 8, 24, 31), 99);
        conv_case(g, (3, 70, 33, 35), 98);
    });
}

#[test]
fn conv2d_with_too_many_channel_tiles_is_a_grid_error() {
    with_small_grid_gpu(|g| {
        // 16 channel tiles along z are the cap here: 1,025 channels need 17.
        let tm = g.k.conv2d.tiles().tm;
        let c_out = 16 * tm + 1;
        let (x, w, b, y) = (
            g.zeros("x", 1),
            g.zeros("w", 9 * c_out as usize),
            g.zeros("b", c_out as usize),
            g.zeros("y", c_out as usize),
        );
        let s = ConvShape {
            c_in: 1,
            c_out,
            h: 1,
            w: 1,
        };
        let err =
            g.k.conv2d
                .forward(
                    &g.ctx,
                    s,
                    (&x).into(),
                    (&w).into(),
                    (&b).into(),
                    (&y).into(),
                    false,
                )
                .err()
                .unwrap();
        assert!(matches!(err, GpuError::GridTooLarge { .. }), "{err}");
        let ok = ConvShape {
            c_out: 16 * tm,
            ..s
        };
        let y = g.zeros("y", ok.c_out as usize);
        let w = g.zeros("w", 9 * ok.c_out as usize);
        let b = g.zeros("b", ok.c_out as usize);
        g.k.conv2d
            .forward(
                &g.ctx,
                ok,
                (&x).into(),
                (&w).into(),
                (&b).into(),
                (&y).into(),
                false,
            )
            .unwrap();
    });
}

/// Other valid tile sizes (8-row register blocks, smaller and taller tiles, K steps of 8) give
/// the same results: the shader holds for any sizes `ConvTiles::check` accepts.
#[test]
fn conv2d_with_other_tiles_matches_reference() {
    with_gpu(|g| {
        for (t, tiles) in [
            ConvTiles {
                tm: 32,
                tn: 32,
                tk: 8,
                rm: 8,
            },
            ConvTiles {
                tm: 128,
                tn: 32,
                tk: 16,
                rm: 8,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let k = Conv2d::with_tiles(&g.ctx, tiles).unwrap();
            for (i, &shape) in [(1, 1, 1, 1), (3, 5, 7, 9), (130, 65, 5, 7), (9, 70, 12, 13)]
                .iter()
                .enumerate()
            {
                conv_case_with(g, &k, shape, 200 + 10 * t as u64 + i as u64);
            }
        }
    });
}

#[test]
fn conv2d_rejects_tiles_the_shader_cannot_run() {
    with_gpu(|g| {
        let d = ConvTiles::default();
        for (tiles, what) in [
            (ConvTiles { rm: 2, ..d }, "rm must be"),
            (ConvTiles { tm: 66, ..d }, "multiple of rm"),
            (ConvTiles { tn: 62, ..d }, "multiple of rm"),
            (ConvTiles { tk: 0, ..d }, "multiple of rm"),
            (
                ConvTiles {
                    tm: 128,
                    tn: 128,
                    ..d
                },
                "invocations",
            ),
            (ConvTiles { tk: 12, ..d }, "divide evenly"),
            (ConvTiles { tm: 8, rm: 8, ..d }, "divide evenly"),
            (ConvTiles { tk: 128, ..d }, "workgroup memory"),
        ] {
            let err = Conv2d::with_tiles(&g.ctx, tiles).err().unwrap();
            assert!(err.to_string().contains(what), "{tiles:?}: {err}");
        }
    });
}

/// A convolution over tensors split into channel chunks, as the graph records it for tensors
/// above the binding limit: every (source chunk, destination chunk) pair is one part.
#[test]
fn conv2d_in_channel_chunks_matches_reference() {
    with_gpu(|g| {
        conv_chunks_case(g, (5, 7, 6, 7), &[2, 3], &[4, 3], 70);
        // Chunks that span tiles: a 65-channel chunk is two channel tiles (the second of one
        // row) forward, K = 9·33 and 9·37 end in partial steps, 99 pixels are two tiles.
        conv_chunks_case(g, (70, 67, 9, 11), &[33, 37], &[65, 2], 80);
    });
}

#[test]
fn conv2d_in_channel_chunks_matches_reference_on_2d_grid() {
    // 1,120 pixels: 18 pixel tiles, folded into a 9×2 grid.
    with_small_grid_gpu(|g| conv_chunks_case(g, (6, 66, 32, 35), &[2, 4], &[1, 65], 90));
}

/// Splits the input channels into chunks of `in_counts` and the output channels into
/// `out_counts`; the forward adds ReLU on each destination chunk's last part, the backward
/// accumulates every part onto a prior gradient.
fn conv_chunks_case(
    g: &Gpu,
    (c_in, c_out, h, w): (u32, u32, u32, u32),
    in_counts: &[u32],
    out_counts: &[u32],
    seed: u64,
) {
    let s = ConvShape { c_in, c_out, h, w };
    let plane = (h * w) as usize;
    let chunks = |counts: &[u32], total: u32| {
        let mut offset = 0;
        let v: Vec<Channels> = counts
            .iter()
            .map(|&count| {
                let c = Channels { offset, count };
                offset += count;
                c
            })
            .collect();
        assert_eq!(offset, total, "chunks must cover the channels");
        v
    };
    let in_chunks = chunks(in_counts, c_in);
    let out_chunks = chunks(out_counts, c_out);
    let x = as_f32_exact(&random(seed, c_in as usize * plane, -1.0, 1.0));
    let wt = as_f32_exact(&random(seed + 1, (c_out * c_in * 9) as usize, -0.5, 0.5));
    let b = as_f32_exact(&random(seed + 2, c_out as usize, -0.5, 0.5));
    let gy = as_f32_exact(&random(seed + 3, c_out as usize * plane, -1.0, 1.0));
    let prior = as_f32_exact(&random(seed + 4, c_in as usize * plane, -1.0, 1.0));
    let chunk = |v: &[f64], c: Channels| {
        v[c.offset as usize * plane..][..c.count as usize * plane].to_vec()
    };
    let (bw, bb) = (g.upload("w", &wt), g.upload("b", &b));
    let bx: Vec<_> = in_chunks
        .iter()
        .map(|&c| g.upload("x", &chunk(&x, c)))
        .collect();
    let bgx: Vec<_> = in_chunks
        .iter()
        .map(|&c| g.upload("gx", &chunk(&prior, c)))
        .collect();
    let bgy: Vec<_> = out_chunks
        .iter()
        .map(|&c| g.upload("gy", &chunk(&gy, c)))
        .collect();
    let by: Vec<_> = out_chunks
        .iter()
        .map(|&c| g.zeros("y", c.count as usize * plane))
        .collect();
    let mut parts = Vec::new();
    for (o, &dst) in out_chunks.iter().enumerate() {
        for (i, &src) in in_chunks.iter().enumerate() {
            let part = ConvPart {
                src,
                dst,
                accumulate: i > 0,
            };
            let relu = i + 1 == in_chunks.len();
            parts.push(
                g.k.conv2d
                    .forward_part(
                        &g.ctx,
                        s,
                        part,
                        (&bx[i]).into(),
                        (&bw).into(),
                        (&bb).into(),
                        (&by[o]).into(),
                        relu,
                    )
                    .unwrap(),
            );
        }
    }
    for (i, &dst) in in_chunks.iter().enumerate() {
        for (o, &src) in out_chunks.iter().enumerate() {
            // Every part accumulates: the gradient already holds the prior value.
            let part = ConvPart {
                src,
                dst,
                accumulate: true,
            };
            parts.push(
                g.k.conv2d
                    .backward_input_part(
                        &g.ctx,
                        s,
                        part,
                        (&bgy[o]).into(),
                        (&bw).into(),
                        (&bgx[i]).into(),
                    )
                    .unwrap(),
            );
        }
    }
    let launches: Vec<&dyn nst_gpu::Record> = parts.iter().map(|d| d as _).collect();
    g.run(&launches);
    let (ci, co, hh, ww) = (c_in as usize, c_out as usize, h as usize, w as usize);
    let y: Vec<f32> = by.iter().flat_map(|b| g.read(b)).collect();
    let gx: Vec<f32> = bgx.iter().flat_map(|b| g.read(b)).collect();
    assert_close(
        &format!("chunked conv2d {c_in}→{c_out} {h}×{w} forward+relu"),
        &y,
        &r::conv2d::conv2d_forward(&x, ci, hh, ww, &wt, &b, co, true),
        1e-5,
        1e-5,
    );
    let want: Vec<f64> = r::conv2d::conv2d_backward_input(&gy, co, hh, ww, &wt, ci)
        .iter()
        .zip(&prior)
        .map(|(a, b)| a + b)
        .collect();
    assert_close(
        &format!("chunked conv2d {c_in}→{c_out} {h}×{w} backward, accumulating"),
        &gx,
        &want,
        1e-5,
        1e-5,
    );
}

fn relu_case(g: &Gpu, n: usize, seed: u64) {
    let x = as_f32_exact(&random_away_from_zero(seed, n));
    let gy = as_f32_exact(&random(seed + 1, n, -1.0, 1.0));
    let (bx, bgy, by, bgx) = (
        g.upload("x", &x),
        g.upload("gy", &gy),
        g.zeros("y", n),
        g.zeros("gx", n),
    );
    let f =
        g.k.relu
            .forward(&g.ctx, (&bx).into(), (&by).into())
            .unwrap();
    let b =
        g.k.relu
            .backward(&g.ctx, (&by).into(), (&bgy).into(), (&bgx).into(), false)
            .unwrap();
    // The same backward added onto a gradient that already holds something.
    let prior = as_f32_exact(&random(seed + 2, n, -1.0, 1.0));
    let bgx_acc = g.upload("gx prior", &prior);
    let b_acc =
        g.k.relu
            .backward(&g.ctx, (&by).into(), (&bgy).into(), (&bgx_acc).into(), true)
            .unwrap();
    g.run(&[&f, &b, &b_acc]);
    let y = r::relu::relu_forward(&x);
    let want_acc: Vec<f64> = r::relu::relu_backward(&y, &gy)
        .iter()
        .zip(&prior)
        .map(|(a, b)| a + b)
        .collect();
    assert_close(
        &format!("relu backward accumulating n={n}"),
        &g.read(&bgx_acc),
        &want_acc,
        1e-6,
        1e-6,
    );
    assert_close(&format!("relu forward n={n}"), &g.read(&by), &y, 0.0, 0.0);
    assert_close(
        &format!("relu backward n={n}"),
        &g.read(&bgx),
        &r::relu::relu_backward(&y, &gy),
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
    let (bx, bgy) = (g.upload("x", &x), g.upload("gy", &gy));
    let (by, barg, bgx, bya, bgxa) = (
        g.zeros("y", n_out),
        g.zeros("argmax", n_out),
        g.zeros("gx", n_in),
        g.zeros("y avg", n_out),
        g.zeros("gx avg", n_in),
    );
    let ctx = &g.ctx;
    let mf =
        g.k.max_pool2d
            .forward(ctx, s, (&bx).into(), (&by).into(), (&barg).into())
            .unwrap();
    let mb =
        g.k.max_pool2d
            .backward(ctx, s, (&bgy).into(), (&barg).into(), (&bgx).into(), false)
            .unwrap();
    let af =
        g.k.avg_pool2d
            .forward(ctx, s, (&bx).into(), (&bya).into())
            .unwrap();
    // The average backward adds onto a gradient that already holds something.
    let prior = as_f32_exact(&random(seed + 2, n_in, -1.0, 1.0));
    g.ctx.write(
        &bgxa,
        0,
        &prior.iter().map(|&v| v as f32).collect::<Vec<_>>(),
    );
    let ab =
        g.k.avg_pool2d
            .backward(ctx, s, (&bgy).into(), (&bgxa).into(), true)
            .unwrap();
    g.run(&[&mf, &mb, &af, &ab]);
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
    let want_avg: Vec<f64> = r::pool::avg_pool2d_backward(&gy, cc, hh, ww)
        .iter()
        .zip(&prior)
        .map(|(a, b)| a + b)
        .collect();
    assert_close(
        &format!("{tag} avg backward, accumulating"),
        &g.read(&bgxa),
        &want_avg,
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
                .forward(&g.ctx, s, (&x).into(), (&y).into(), (&a).into())
                .err()
                .unwrap();
        assert!(err.to_string().contains("zero dimension"), "{err}");
    });
}

/// Runs the forward and the backward (onto a prior gradient when `accumulate`) of a `c × n`
/// map with `k` against the reference; returns the forward's (splits, pixels per slice).
fn gram_case_with(g: &Gpu, k: &Gram, c: u32, n: u32, seed: u64, accumulate: bool) -> (u32, u32) {
    let f = as_f32_exact(&random(seed, (c * n) as usize, -1.0, 1.0));
    let gg = as_f32_exact(&random(seed + 1, (c * c) as usize, -1.0, 1.0));
    let prior = as_f32_exact(&random(seed + 2, (c * n) as usize, -1.0, 1.0));
    let (bf, bgg, bg) = (
        g.upload("f", &f),
        g.upload("gg", &gg),
        g.zeros("g", (c * c) as usize),
    );
    let bgf = g.upload("gf", &prior);
    let fw = k.forward(&g.ctx, c, n, (&bf).into(), (&bg).into()).unwrap();
    let bw = k
        .backward(
            &g.ctx,
            c,
            n,
            (&bf).into(),
            (&bgg).into(),
            (&bgf).into(),
            accumulate,
        )
        .unwrap();
    g.run(&[&fw, &bw]);
    let (cc, nn) = (c as usize, n as usize);
    let tag = format!("gram {c}×{n} {:?}", k.tiles());
    assert_close(
        &format!("{tag} forward"),
        &g.read(&bg),
        &r::gram::gram_forward(&f, cc, nn),
        1e-6,
        1e-5,
    );
    let mut want = r::gram::gram_backward(&f, &gg, cc, nn);
    if accumulate {
        want.iter_mut().zip(&prior).for_each(|(w, p)| *w += p);
    }
    // dF shrinks as 1/n: keep the absolute tolerance below its size.
    assert_close(
        &format!("{tag} backward"),
        &g.read(&bgf),
        &want,
        1e-6f64.min(1e-3 / n as f64),
        1e-5,
    );
    (fw.splits(), fw.k_slice())
}

fn gram_case(g: &Gpu, c: u32, n: u32, seed: u64, accumulate: bool) -> (u32, u32) {
    gram_case_with(g, &g.k.gram, c, n, seed, accumulate)
}

#[test]
fn gram_matches_reference() {
    with_gpu(|g| {
        gram_case(g, 1, 1, 50, false);
        gram_case(g, 5, 63, 51, false);
        gram_case(g, 7, 1000, 52, true);
        gram_case(g, 67, 130, 53, true);
        // With 64×64 tiles: 70 channels are 3 tiles of the upper triangle (one of them a
        // diagonal tile of 6 rows), 130 channels 6 (the last diagonal tile of 2 rows); 4·4
        // register blocks straddle the edges.
        gram_case(g, 70, 333, 54, false);
        gram_case(g, 130, 37, 55, true);
        // n = 1: one partial K step; n = 2: pixel tiles of 2 backward.
        gram_case(g, 70, 1, 56, true);
        gram_case(g, 3, 2, 57, false);
    });
}

/// K = H·W split over several slices, the last one shorter (and ending in a partial K step),
/// summed in the finish pass; with the symmetric tiles of 70 channels too.
#[test]
fn gram_splits_k_with_a_partial_last_slice() {
    with_gpu(|g| {
        for (c, n, seed) in [(8, 1000, 300), (70, 1000, 310)] {
            let (splits, k_slice) = gram_case(g, c, n, seed, true);
            assert!(splits >= 4, "{c}×{n}: {splits} splits");
            assert!(
                n % k_slice != 0 && n % 16 != 0,
                "{c}×{n}: slices of {k_slice}"
            );
        }
    });
}

/// A block of one chunk with itself launches only the tiles reaching the upper triangle (6 of
/// 9 for 130 channels in 64×64 tiles); a block of two chunks launches all of its tiles.
#[test]
fn gram_forward_launches_only_the_upper_triangle_of_a_symmetric_block() {
    with_gpu(|g| {
        let (c, n) = (130u32, 64u32); // chunks start at multiples of 256 bytes
        let (f, gm) = (
            g.zeros("f", (c * n) as usize),
            g.zeros("g", (c * c) as usize),
        );
        let fw =
            g.k.gram
                .forward(&g.ctx, c, n, (&f).into(), (&gm).into())
                .unwrap();
        assert_eq!((fw.splits(), fw.workgroups()), (1, [6, 1, 1]));
        let (a, b) = (
            Channels {
                offset: 0,
                count: 70,
            },
            Channels {
                offset: 70,
                count: 60,
            },
        );
        let fa = View::range(&f, 0, 70 * n as u64);
        let fb = View::range(&f, 70 * n as u64, 60 * n as u64);
        let ab =
            g.k.gram
                .forward_part(&g.ctx, c, n, (a, fa), (b, fb), (&gm).into());
        assert_eq!(ab.unwrap().workgroups(), [2, 1, 1]);
        let aa =
            g.k.gram
                .forward_part(&g.ctx, c, n, (a, fa), (a, fa), (&gm).into());
        assert_eq!(aa.unwrap().workgroups(), [3, 1, 1]);
    });
}

/// A large H·W with few channels, as at relu1_1: hundreds of slices.
#[test]
fn gram_over_a_large_map_matches_reference() {
    with_gpu(|g| {
        let (splits, k_slice) = gram_case(g, 8, 70_000, 320, true);
        assert!(splits > 100, "{splits} splits of {k_slice}");
    });
}

/// On a grid capped at 16 workgroups per dimension: 70 channels in 7 slices are 21 forward
/// workgroups, a 11×2 grid whose last one lies past the end; 1,100 pixels are 18 backward
/// pixel tiles (9×2) × 2 channel tiles.
#[test]
fn gram_matches_reference_on_2d_grid() {
    with_small_grid_gpu(|g| {
        gram_case(g, 9, 600, 59, false);
        assert_eq!(gram_case(g, 70, 1000, 330, false).0, 7);
        gram_case(g, 70, 1100, 331, true);
    });
}

/// Other valid tile sizes, square and not (the symmetric tiles then start at column tile
/// r·tm / tn), give the same results.
#[test]
fn gram_with_other_tiles_matches_reference() {
    with_gpu(|g| {
        for (t, tiles) in [
            GramTiles {
                tm: 32,
                tn: 32,
                tk: 8,
                rm: 8,
            },
            GramTiles {
                tm: 128,
                tn: 32,
                tk: 16,
                rm: 8,
            },
            GramTiles {
                tm: 16,
                tn: 64,
                tk: 16,
                rm: 4,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let k = Gram::with_tiles(&g.ctx, tiles).unwrap();
            for (i, &(c, n)) in [(1, 1), (5, 63), (70, 333), (130, 37)].iter().enumerate() {
                gram_case_with(g, &k, c, n, 400 + 10 * t as u64 + i as u64, i % 2 == 1);
            }
        }
    });
}

#[test]
fn gram_rejects_tiles_the_shader_cannot_run() {
    with_gpu(|g| {
        let d = GramTiles::default();
        for (tiles, what) in [
            (GramTiles { rm: 2, ..d }, "rm must be"),
            (GramTiles { tk: 12, ..d }, "divide evenly"),
        ] {
            let err = Gram::with_tiles(&g.ctx, tiles).err().unwrap();
            let msg = err.to_string();
            assert!(msg.contains("gram tiles") && msg.contains(what), "{msg}");
        }
    });
}

fn loss_case(g: &Gpu, c: u32, h: u32, w: u32, seed: u64) {
    let n = (c * h * w) as usize;
    let a = as_f32_exact(&random(seed, n, -1.0, 1.0));
    let b = as_f32_exact(&random(seed + 1, n, -1.0, 1.0));
    let prior = as_f32_exact(&random(seed + 2, n, -1.0, 1.0));
    let (ba, bb) = (g.upload("a", &a), g.upload("b", &b));
    let (bga, bgt) = (g.zeros("ga", n), g.upload("gt", &prior));
    let scalars = g.upload_f32("scalars", &[7.0; 4]);
    let ctx = &g.ctx;
    let s = View::whole(&scalars);
    let mse =
        g.k.mse
            .forward(ctx, (&ba).into(), (&bb).into(), s, 1)
            .unwrap();
    let mse_b =
        g.k.mse
            .backward(ctx, (&ba).into(), (&bb).into(), (&bga).into(), 0.75, false)
            .unwrap();
    let tv = g.k.tv.forward(ctx, c, h, w, (&ba).into(), s, 3).unwrap();
    let tv_b =
        g.k.tv
            .backward(ctx, c, h, w, (&ba).into(), (&bgt).into(), 1.5, true)
            .unwrap();
    g.run(&[&mse, &mse_b, &tv, &tv_b]);
    let tag = format!("loss {c}×{h}×{w}");
    let (cc, hh, ww) = (c as usize, h as usize, w as usize);
    let got = g.read(&scalars);
    let want = [
        7.0,
        r::loss::mse_forward(&a, &b),
        7.0,
        r::loss::tv_forward(&a, cc, hh, ww),
    ];
    assert_close(&format!("{tag} mse and tv values"), &got, &want, 1e-6, 1e-5);
    assert_close(
        &format!("{tag} mse backward"),
        &g.read(&bga),
        &r::loss::mse_backward(&a, &b, 0.75),
        1e-7,
        1e-5,
    );
    let mut want_tv = r::loss::tv_backward(&a, cc, hh, ww, 1.5);
    want_tv.iter_mut().zip(&prior).for_each(|(w, p)| *w += p);
    assert_close(
        &format!("{tag} tv backward"),
        &g.read(&bgt),
        &want_tv,
        1e-6,
        1e-5,
    );
}

#[test]
fn losses_match_reference() {
    with_gpu(|g| {
        for (i, &(c, h, w)) in [
            (1, 1, 1),
            (3, 1, 9),
            (3, 7, 1),
            (3, 7, 9),
            (5, 33, 47),
            (3, 300, 301),
        ]
        .iter()
        .enumerate()
        {
            loss_case(g, c, h, w, 60 + i as u64);
        }
    });
    with_small_grid_gpu(|g| loss_case(g, 5, 33, 47, 69));
}

fn pixel_case(g: &Gpu, t: PixelTransform, rt: r::pixel::PixelTransform, h: u32, w: u32, seed: u64) {
    let n = (3 * h * w) as usize;
    let x = as_f32_exact(&random(seed, n, 0.0, 1.0));
    let gy = as_f32_exact(&random(seed + 1, n, -1.0, 1.0));
    let (bx, bgy, by, bgx) = (
        g.upload("x", &x),
        g.upload("gy", &gy),
        g.zeros("y", n),
        g.zeros("gx", n),
    );
    let f =
        g.k.pixel
            .forward(&g.ctx, &t, h, w, (&bx).into(), (&by).into())
            .unwrap();
    let b =
        g.k.pixel
            .backward(&g.ctx, &t, h, w, (&bgy).into(), (&bgx).into(), false)
            .unwrap();
    g.run(&[&f, &b]);
    let (hh, ww) = (h as usize, w as usize);
    assert_close(
        &format!("pixel {t:?} forward"),
        &g.read(&by),
        &rt.forward(&x, hh, ww),
        1e-4,
        1e-6,
    );
    assert_close(
        &format!("pixel {t:?} backward"),
        &g.read(&bgx),
        &rt.backward(&gy, hh, ww),
        1e-5,
        1e-6,
    );
}

#[test]
fn pixel_transform_matches_reference() {
    with_gpu(|g| {
        for (i, &(h, w)) in [(1, 1), (5, 6), (40, 37)].iter().enumerate() {
            pixel_case(
                g,
                PixelTransform::CAFFE,
                r::pixel::PixelTransform::CAFFE,
                h,
                w,
                70 + i as u64,
            );
            pixel_case(
                g,
                PixelTransform::TORCHVISION,
                r::pixel::PixelTransform::TORCHVISION,
                h,
                w,
                75 + i as u64,
            );
        }
    });
}

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
                .prepare(
                    &g.ctx,
                    p,
                    (&bg).into(),
                    (&bx).into(),
                    (&bm).into(),
                    (&bv).into(),
                )
                .unwrap();
        let rp = r::adam::AdamParams {
            lr: p.lr,
            beta1: p.beta1,
            beta2: p.beta2,
            eps: p.eps,
        };
        let mut state = r::adam::AdamState::new(n);
        let mut x = x0.clone();
        for t in 1..=6u32 {
            let grad = as_f32_exact(&random(80 + t as u64, n, -1.0, 1.0));
            let gf: Vec<f32> = grad.iter().map(|&v| v as f32).collect();
            g.ctx.write(&bg, 0, &gf);
            step.set_step(&g.ctx, t);
            g.run(&[&step]);
            r::adam::adam_step(&mut x, &grad, &mut state, &rp);
        }
        assert_close("adam after 6 steps", &g.read(&bx), &x, 1e-5, 1e-5);
    });
}

#[test]
fn vector_ops_match_reference() {
    with_gpu(|g| {
        let n = 70_001;
        let a = as_f32_exact(&random(90, n, -1.0, 1.0));
        let b = as_f32_exact(&random(91, n, -1.0, 1.0));
        let (ba, bb) = (g.upload("a", &a), g.upload("b", &b));
        let scalars = g.upload_f32("scalars", &[0.0, 0.0, 0.0, 4.0]);
        let s = View::whole(&scalars);
        let v = &g.k.vector;
        let dot_ab = v.dot(&g.ctx, (&ba).into(), (&bb).into(), s, 0).unwrap();
        let dot_aa = v.dot(&g.ctx, (&ba).into(), (&ba).into(), s, 1).unwrap();
        // b ← b + (−0.5 · (a·b) / (a·a)) · a, then b ← (2 · s[3]) · b
        let axpy = v
            .axpy(
                &g.ctx,
                Coef::ratio(-0.5, Some(0), Some(1)),
                (&ba).into(),
                (&bb).into(),
                s,
            )
            .unwrap();
        let scale = v
            .scale(&g.ctx, Coef::ratio(2.0, Some(3), None), (&bb).into(), s)
            .unwrap();
        let dot_after = v.dot(&g.ctx, (&ba).into(), (&bb).into(), s, 2).unwrap();
        g.run(&[&dot_ab, &dot_aa, &axpy, &scale, &dot_after]);
        let (ab, aa) = (r::vector::dot(&a, &b), r::vector::dot(&a, &a));
        let mut want = b.clone();
        r::vector::axpy(-0.5 * ab / aa, &a, &mut want);
        r::vector::scale(8.0, &mut want);
        assert_close("b after axpy and scale", &g.read(&bb), &want, 1e-5, 1e-5);
        let after = r::vector::dot(&a, &want);
        assert_close(
            "dot products",
            &g.read(&scalars),
            &[ab, aa, after, 4.0],
            1e-3,
            1e-5,
        );
    });
}

#[test]
fn asum_and_copy_match_reference() {
    with_gpu(|g| {
        let n = 70_001;
        let a = as_f32_exact(&random(92, n, -1.0, 1.0));
        let ba = g.upload("a", &a);
        let bb = g.zeros("b", n);
        let scalars = g.upload_f32("scalars", &[0.0, -3.0]);
        let s = View::whole(&scalars);
        let v = &g.k.vector;
        let asum = v.asum(&g.ctx, (&ba).into(), s, 0).unwrap();
        let copy = v
            .copy(
                &g.ctx,
                Coef::ratio(0.5, Some(1), None),
                (&ba).into(),
                (&bb).into(),
                s,
            )
            .unwrap();
        g.run(&[&asum, &copy]);
        let mut want = vec![0.0; n];
        r::vector::copy(-1.5, &a, &mut want);
        assert_close("b = -1.5 a", &g.read(&bb), &want, 1e-7, 1e-6);
        assert_close(
            "asum",
            &g.read(&scalars)[..1],
            &[r::vector::asum(&a)],
            1e-3,
            1e-5,
        );
    });
}

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
                .prepare(&g.ctx, &g.k.vector, params, (&bx).into(), (&bg).into())
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

#[test]
fn shape_mismatches_are_errors_not_panics() {
    with_gpu(|g| {
        let (x, w, b, y) = (
            g.zeros("x", 10),
            g.zeros("w", 9),
            g.zeros("b", 1),
            g.zeros("y", 11),
        );
        let s = ConvShape {
            c_in: 1,
            c_out: 1,
            h: 2,
            w: 5,
        };
        let err =
            g.k.conv2d
                .forward(
                    &g.ctx,
                    s,
                    (&x).into(),
                    (&w).into(),
                    (&b).into(),
                    (&y).into(),
                    false,
                )
                .err()
                .unwrap();
        assert!(err.to_string().contains("conv2d output"), "{err}");
        let scalars = g.zeros("s", 2);
        let err =
            g.k.mse
                .forward(&g.ctx, (&x).into(), (&x).into(), View::whole(&scalars), 5)
                .err()
                .unwrap();
        assert!(err.to_string().contains("scalar slot 5"), "{err}");
    });
}

#[test]
fn a_binding_over_the_limit_is_a_clear_error() {
    with_gpu(|g| {
        let limit = g.ctx.max_binding_bytes;
        // A view one element larger than the limit (the buffer itself is never bound).
        let big = g.zeros("small", 4);
        let view = View::range(&big, 0, limit / 4 + 1);
        let err = g.k.relu.forward(&g.ctx, view, view).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("max_storage_buffer_binding_size") && msg.contains("smaller image"),
            "{msg}"
        );
    });
}

/// The Gram matrix and its backward over a feature map split into channel chunks: one launch
/// per pair of chunks, as the engine records it for tensors above the binding limit.
#[test]
fn gram_in_channel_chunks_matches_reference() {
    with_gpu(|g| {
        gram_chunks_case(g, 30, &[3, 4], 80, false);
        // 70 + 64 channels: the diagonal blocks symmetric (3 tiles and 1), the off-diagonal
        // ones general (2×1 and 1×2 tiles); 600 pixels in 4 slices, the last shorter; the
        // backward adds onto a prior gradient.
        gram_chunks_case(g, 600, &[70, 64], 82, true);
        // Three chunks, one of a single channel.
        gram_chunks_case(g, 45, &[5, 1, 6], 84, true);
    });
}

/// Splits `counts.iter().sum()` channels of `n` pixels into chunks of `counts`; records every
/// (a, b) pair forward, then backward with each chunk's first part overwriting (or, with
/// `accumulate`, adding to a prior gradient).
fn gram_chunks_case(g: &Gpu, n: u32, counts: &[u32], seed: u64, accumulate: bool) {
    let c: u32 = counts.iter().sum();
    let chunks: Vec<Channels> = counts
        .iter()
        .scan(0, |off, &count| {
            let ch = Channels {
                offset: *off,
                count,
            };
            *off += count;
            Some(ch)
        })
        .collect();
    let f = as_f32_exact(&random(seed, (c * n) as usize, -1.0, 1.0));
    let gg = as_f32_exact(&random(seed + 1, (c * c) as usize, -1.0, 1.0));
    let prior = as_f32_exact(&random(seed + 2, (c * n) as usize, -1.0, 1.0));
    let part =
        |v: &[f64], ch: Channels| v[(ch.offset * n) as usize..][..(ch.count * n) as usize].to_vec();
    let bf: Vec<_> = chunks
        .iter()
        .map(|&ch| g.upload("f", &part(&f, ch)))
        .collect();
    let bgf: Vec<_> = chunks
        .iter()
        .map(|&ch| g.upload("gf", &part(&prior, ch)))
        .collect();
    let (bgg, bg) = (g.upload("gg", &gg), g.zeros("g", (c * c) as usize));
    let mut launches: Vec<Box<dyn nst_gpu::Record>> = Vec::new();
    for (i, &a) in chunks.iter().enumerate() {
        for (j, &b) in chunks.iter().enumerate() {
            launches.push(Box::new(
                g.k.gram
                    .forward_part(
                        &g.ctx,
                        c,
                        n,
                        (a, (&bf[i]).into()),
                        (b, (&bf[j]).into()),
                        (&bg).into(),
                    )
                    .unwrap(),
            ));
        }
    }
    for (i, &a) in chunks.iter().enumerate() {
        for (j, &b) in chunks.iter().enumerate() {
            launches.push(Box::new(
                g.k.gram
                    .backward_part(
                        &g.ctx,
                        c,
                        n,
                        (a, (&bgf[i]).into()),
                        (b, (&bf[j]).into()),
                        (&bgg).into(),
                        j > 0 || accumulate,
                    )
                    .unwrap(),
            ));
        }
    }
    let refs: Vec<&dyn nst_gpu::Record> = launches.iter().map(|d| d.as_ref()).collect();
    g.run(&refs);
    let tag = format!("gram {counts:?}×{n} in chunks");
    assert_close(
        &format!("{tag} forward"),
        &g.read(&bg),
        &r::gram::gram_forward(&f, c as usize, n as usize),
        1e-6,
        1e-5,
    );
    let gf: Vec<f32> = bgf.iter().flat_map(|b| g.read(b)).collect();
    let mut want = r::gram::gram_backward(&f, &gg, c as usize, n as usize);
    if accumulate {
        want.iter_mut().zip(&prior).for_each(|(w, p)| *w += p);
    }
    assert_close(&format!("{tag} backward"), &gf, &want, 1e-6, 1e-5);
}

#[test]
fn pixel_clamp_matches_reference() {
    with_gpu(|g| {
        let (h, w) = (5u32, 7u32);
        let x = as_f32_exact(&random(90, (3 * h * w) as usize, -0.5, 1.5));
        let bx = g.upload("x", &x);
        let d = g.k.pixel.clamp(&g.ctx, h, w, (&bx).into()).unwrap();
        g.run(&[&d]);
        assert_close(
            "pixel clamp",
            &g.read(&bx),
            &r::pixel::clamp01(&x),
            0.0,
            0.0,
        );
    });
}
