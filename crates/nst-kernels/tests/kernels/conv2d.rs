//! conv2d, whole and in channel chunks, with every kernel variant autotuning may pick.

use nst_kernels::{
    Conv2d, ConvChoice, ConvClass, ConvKernel, ConvPart, ConvShape, ConvTiles, GpuError,
};
use nst_reference as r;
use nst_tests::{
    as_f32_exact, assert_close, chunk_of, chunks, plus, random, ro, rw, with_gpu,
    with_small_grid_gpu, Gpu,
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

/// Random input, weight, bias and output gradient of a convolution, exact in f32.
struct ConvData {
    x: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
    gy: Vec<f64>,
}

impl ConvData {
    fn new(s: ConvShape, seed: u64) -> Self {
        let plane = (s.h * s.w) as usize;
        let (ci, co) = (s.c_in as usize, s.c_out as usize);
        ConvData {
            x: as_f32_exact(&random(seed, ci * plane, -1.0, 1.0)),
            w: as_f32_exact(&random(seed + 1, co * ci * 9, -0.5, 0.5)),
            b: as_f32_exact(&random(seed + 2, co, -0.5, 0.5)),
            gy: as_f32_exact(&random(seed + 3, co * plane, -1.0, 1.0)),
        }
    }

    fn forward(&self, s: ConvShape, relu: bool) -> Vec<f64> {
        let (ci, co, h, w) = (
            s.c_in as usize,
            s.c_out as usize,
            s.h as usize,
            s.w as usize,
        );
        r::conv2d::conv2d_forward(&self.x, ci, h, w, &self.w, &self.b, co, relu)
    }

    fn backward(&self, s: ConvShape) -> Vec<f64> {
        let (ci, co, h, w) = (
            s.c_in as usize,
            s.c_out as usize,
            s.h as usize,
            s.w as usize,
        );
        r::conv2d::conv2d_backward_input(&self.gy, co, h, w, &self.w, ci)
    }
}

/// Every variant this adapter can run: the tuning candidates, the built-in choice, and direct
/// and subgroup kernels of odd sizes (channel blocks of 3 and 5 that end part-way through a
/// layer's channels, workgroups of 5 and 4 invocations, several subgroups per workgroup, and a
/// block of 4 for subgroups of 4 lanes). Those it cannot run are listed ([`nst_tests::runnable_variants`]).
fn variants(g: &Gpu) -> Vec<Conv2d> {
    let mut kernels = ConvKernel::CANDIDATES.to_vec();
    kernels.extend([
        ConvKernel::default_for(&g.ctx),
        ConvKernel::Direct { dm: 3, wg: 5 },
        ConvKernel::Subgroup { dm: 5, wg: 16 },
        ConvKernel::Subgroup { dm: 3, wg: 4 },
        // Subgroups of 4 lanes (SwiftShader's) take this one too.
        ConvKernel::Subgroup { dm: 4, wg: 64 },
    ]);
    let mut unique: Vec<ConvKernel> = Vec::new();
    for k in kernels {
        if !unique.contains(&k) {
            unique.push(k);
        }
    }
    let check = |k: &ConvKernel| k.check(&g.ctx).map_err(|e| e.to_string());
    nst_tests::runnable_variants(&g.ctx, "conv2d", &unique, check)
        .into_iter()
        .map(|k| Conv2d::with_kernel(&g.ctx, k).unwrap())
        .collect()
}

fn conv_case(g: &Gpu, shape: (u32, u32, u32, u32), seed: u64) {
    for k in variants(g) {
        if fits_z(g, &k, shape.0.max(shape.1)) {
            conv_case_with(g, &k, shape, seed)
        }
    }
}

/// Whether `channels` take few enough channel blocks for the grid's z dimension, which is not
/// folded (65,535 on real adapters, for at most 512 channels; 16 on the small-grid GPU).
fn fits_z(g: &Gpu, k: &Conv2d, channels: u32) -> bool {
    let per = k.choice().default.channels_per_workgroup();
    channels.div_ceil(per) <= g.ctx.max_workgroups_per_dim
}

fn conv_case_with(g: &Gpu, k: &Conv2d, (c_in, c_out, h, w): (u32, u32, u32, u32), seed: u64) {
    let s = ConvShape { c_in, c_out, h, w };
    let plane = (h * w) as usize;
    let d = ConvData::new(s, seed);
    let (bx, bw, bb, bgy) = (
        g.upload("x", &d.x),
        g.upload("w", &d.w),
        g.upload("b", &d.b),
        g.upload("gy", &d.gy),
    );
    let (by, byr, bgx) = (
        g.zeros("y", c_out as usize * plane),
        g.zeros("y relu", c_out as usize * plane),
        g.zeros("gx", c_in as usize * plane),
    );
    let ctx = &g.ctx;
    let fwd = k.forward(ctx, s, ro(&bx), ro(&bw), ro(&bb), rw(&by), false);
    let fwd_relu = k.forward(ctx, s, ro(&bx), ro(&bw), ro(&bb), rw(&byr), true);
    let bwd = k.backward_input(ctx, s, ro(&bgy), ro(&bw), rw(&bgx));
    g.run(&[&fwd.unwrap(), &fwd_relu.unwrap(), &bwd.unwrap()]);
    let tag = format!("conv2d {c_in}→{c_out} {h}×{w} {}", k.choice().default);
    let check = |what: &str, got, want: Vec<f64>| {
        assert_close(&format!("{tag} {what}"), &g.read(got), &want, 1e-5, 1e-5)
    };
    check("forward", &by, d.forward(s, false));
    check("forward+relu", &byr, d.forward(s, true));
    check("backward", &bgx, d.backward(s));
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
        let tm = g.k.conv2d.choice().default.channels_per_workgroup();
        let launch = |c_out: u32| {
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
            g.k.conv2d
                .forward(&g.ctx, s, ro(&x), ro(&w), ro(&b), rw(&y), false)
                .map(drop)
        };
        let err = launch(16 * tm + 1).unwrap_err();
        assert!(matches!(err, GpuError::GridTooLarge { .. }), "{err}");
        launch(16 * tm).unwrap();
    });
}

/// Other valid tile sizes (8-row register blocks, smaller and taller tiles, K steps of 8) give
/// the same results: the shader holds for any sizes `ConvTiles::check` accepts.
#[test]
fn conv2d_with_other_tiles_matches_reference() {
    with_gpu(|g| {
        for (t, (tm, tn, tk, rm)) in [(32, 32, 8, 8), (128, 32, 16, 8)].into_iter().enumerate() {
            let k = Conv2d::with_tiles(&g.ctx, ConvTiles { tm, tn, tk, rm }).unwrap();
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
fn conv2d_rejects_direct_and_subgroup_kernels_the_shader_cannot_run() {
    with_gpu(|g| {
        for (kernel, what) in [
            (ConvKernel::Direct { dm: 0, wg: 64 }, "dm must lie in 1..=8"),
            (ConvKernel::Direct { dm: 9, wg: 64 }, "dm must lie in 1..=8"),
            (ConvKernel::Direct { dm: 8, wg: 0 }, "wg"),
            (ConvKernel::Direct { dm: 8, wg: 1024 }, "wg"),
            (ConvKernel::Subgroup { dm: 200, wg: 64 }, "subgroup"),
            (ConvKernel::Subgroup { dm: 2, wg: 1 }, "subgroup"),
        ] {
            let err = Conv2d::with_kernel(&g.ctx, kernel).err().unwrap();
            assert!(err.to_string().contains(what), "{kernel}: {err}");
        }
        // The cache's spelling reads back, and anything else is refused with the forms.
        for k in ConvKernel::candidates(&g.ctx) {
            assert_eq!(k.to_string().parse::<ConvKernel>(), Ok(k));
        }
        for bad in ["tiled:64x64", "warp:8x8", "direct:8", "direct:ax8", ""] {
            let err = bad.parse::<ConvKernel>().unwrap_err();
            assert!(err.contains("subgroup:8x8"), "{bad}: {err}");
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
        // Besides each variant alone, a tuned choice that gives each part another kernel by
        // its chunks' channels (the nearest tuned class for the rest), as a cache may.
        let class = |backward, c_src, c_dst| ConvClass {
            backward,
            c_src,
            c_dst,
            pixels_log2: 7,
        };
        let tiled = ConvKernel::Tiled(ConvTiles::default());
        let mut tuned = vec![
            (class(false, 33, 65), ConvKernel::Direct { dm: 3, wg: 5 }),
            (class(true, 65, 37), ConvKernel::Direct { dm: 8, wg: 64 }),
            (class(true, 2, 33), tiled),
        ];
        let subgroup = ConvKernel::Subgroup { dm: 5, wg: 16 };
        if subgroup.check(&g.ctx).is_ok() {
            tuned.push((class(false, 37, 2), subgroup));
        }
        let mixed = ConvChoice {
            default: tiled,
            tuned,
        };
        let mut all = variants(g);
        all.push(Conv2d::with_choice(&g.ctx, mixed).unwrap());
        for k in all {
            conv_chunks_case(g, &k, (5, 7, 6, 7), &[2, 3], &[4, 3], 70);
            // Chunks that span tiles: a 65-channel chunk is two channel tiles (the second of
            // one row) forward, K = 9·33 and 9·37 end in partial steps, 99 pixels are two
            // tiles.
            conv_chunks_case(g, &k, (70, 67, 9, 11), &[33, 37], &[65, 2], 80);
        }
    });
}

#[test]
fn conv2d_in_channel_chunks_matches_reference_on_2d_grid() {
    // 1,120 pixels: 18 pixel tiles, folded into a 9×2 grid.
    with_small_grid_gpu(|g| {
        for k in variants(g).iter().filter(|k| fits_z(g, k, 65)) {
            conv_chunks_case(g, k, (6, 66, 32, 35), &[2, 4], &[1, 65], 90);
        }
    });
}

/// Splits the input channels into chunks of `in_counts` and the output channels into
/// `out_counts`; the forward adds ReLU on each destination chunk's last part, the backward
/// accumulates every part onto a prior gradient.
fn conv_chunks_case(
    g: &Gpu, k: &Conv2d, (c_in, c_out, h, w): (u32, u32, u32, u32), in_counts: &[u32],
    out_counts: &[u32], seed: u64,
) {
    let s = ConvShape { c_in, c_out, h, w };
    let plane = (h * w) as usize;
    let (in_chunks, out_chunks) = (chunks(in_counts), chunks(out_counts));
    assert_eq!(
        in_counts.iter().sum::<u32>(),
        c_in,
        "chunks must cover the channels"
    );
    assert_eq!(
        out_counts.iter().sum::<u32>(),
        c_out,
        "chunks must cover the channels"
    );
    let d = ConvData::new(s, seed);
    let prior = as_f32_exact(&random(seed + 4, c_in as usize * plane, -1.0, 1.0));
    let (bw, bb) = (g.upload("w", &d.w), g.upload("b", &d.b));
    let upload = |label, v: &[f64], chs: &[nst_kernels::Channels]| -> Vec<_> {
        chs.iter()
            .map(|&c| g.upload(label, &chunk_of(v, c, plane)))
            .collect()
    };
    let (bx, bgx, bgy) = (
        upload("x", &d.x, &in_chunks),
        upload("gx", &prior, &in_chunks),
        upload("gy", &d.gy, &out_chunks),
    );
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
            let (x, y) = (ro(&bx[i]), rw(&by[o]));
            parts.push(k.forward_part(&g.ctx, s, part, x, ro(&bw), ro(&bb), y, relu));
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
            let (gy, gx) = (ro(&bgy[o]), rw(&bgx[i]));
            parts.push(k.backward_input_part(&g.ctx, s, part, gy, ro(&bw), gx));
        }
    }
    let parts: Vec<_> = parts.into_iter().map(|p| p.unwrap()).collect();
    let launches: Vec<&dyn nst_gpu::Record> = parts.iter().map(|d| d as _).collect();
    g.run(&launches);
    let y: Vec<f32> = by.iter().flat_map(|b| g.read(b)).collect();
    let gx: Vec<f32> = bgx.iter().flat_map(|b| g.read(b)).collect();
    let tag = format!(
        "chunked conv2d {c_in}→{c_out} {h}×{w} {}",
        k.choice().default
    );
    assert_close(
        &format!("{tag} forward+relu"),
        &y,
        &d.forward(s, true),
        1e-5,
        1e-5,
    );
    assert_close(
        &format!("{tag} backward, accumulating"),
        &gx,
        &plus(&d.backward(s), &prior),
        1e-5,
        1e-5,
    );
}
