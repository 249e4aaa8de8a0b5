//! Timing candidate kernels, as cuDNN's benchmark mode: for one class of launch, time each
//! candidate on the adapter in use and rank them, for autotuning to choose by. Which classes a
//! run needs, and where the winners are kept, is the caller's business (nst-transfer's
//! `tuning`).

use crate::conv2d::{ConvClass, ConvKernel, ConvPart, ConvShape};
use crate::gram::{GramClass, GramTiles};
use crate::{Channels, Conv2d, Gram};
use nst_gpu::{Context, GpuTimer, Record, Result};
use web_time::Instant;

/// Timed launches of each candidate after one untimed one; the fastest counts (the least
/// disturbed by anything else running on the adapter or, for a software one, the CPU).
const RUNS: u32 = 3;

/// A candidate slower than this many times the best so far is not run again.
const GIVE_UP: f64 = 3.0;

/// Milliseconds of one launch of `work`: the fastest of `RUNS` after a warm-up, by GPU
/// timestamps where the adapter has them, else wall-clock around a blocking wait. Stops early
/// once a run is over `give_up` ms. Awaits the GPU without blocking, so that a browser can
/// tune too.
pub async fn time(ctx: &Context, work: &dyn Record, give_up: f64) -> Result<f64> {
    let timer = GpuTimer::new(ctx, 1);
    ctx.submit(|pass| work.record(pass))?;
    ctx.wait_async().await?;
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        let start = Instant::now();
        ctx.submit_timed(timer.as_ref(), |pass| work.record(pass))?;
        ctx.wait_async().await?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        let ms = match &timer {
            Some(t) => t.read_ms_async(ctx, 1).await?[0],
            None => wall,
        };
        best = best.min(ms);
        if ms > give_up {
            break;
        }
    }
    Ok(best)
}

/// The candidates the adapter can run, compiled once for any number of [`conv`] calls.
pub fn conv_candidates(ctx: &Context, kernels: &[ConvKernel]) -> Result<Vec<Conv2d>> {
    kernels
        .iter()
        .filter(|k| k.check(ctx).is_ok())
        .map(|&k| Conv2d::with_kernel(ctx, k))
        .collect()
}

/// The candidates the adapter can run, compiled once for any number of [`gram`] calls.
pub fn gram_candidates(ctx: &Context, tiles: &[GramTiles]) -> Result<Vec<Gram>> {
    tiles
        .iter()
        .filter(|t| t.check(ctx).is_ok())
        .map(|&t| Gram::with_tiles(ctx, t))
        .collect()
}

/// Each candidate's time on one launch of `class`, over `h × w` pixels, fastest first (each
/// candidate compiled with one kernel, [`conv_candidates`]).
pub async fn conv(
    ctx: &Context, class: ConvClass, (h, w): (u32, u32), candidates: &[Conv2d],
) -> Result<Vec<(ConvKernel, f64)>> {
    // The class's channels as a whole layer: forward c_src → c_dst, backward the reverse.
    let (c_in, c_out) = match class.backward {
        false => (class.c_src, class.c_dst),
        true => (class.c_dst, class.c_src),
    };
    let s = ConvShape { c_in, c_out, h, w };
    let plane = h as u64 * w as u64;
    let x = ctx.tensor("timing x", c_in as u64 * plane)?;
    let weight = ctx.tensor("timing weight", c_in as u64 * c_out as u64 * 9)?;
    let bias = ctx.tensor("timing bias", c_out as u64)?;
    let y = ctx.tensor("timing y", c_out as u64 * plane)?;
    let mut out: Vec<(ConvKernel, f64)> = Vec::new();
    for k in candidates {
        let kernel = k.choice().default;
        let launch = match class.backward {
            false => k.forward(
                ctx,
                s,
                (&x).into(),
                (&weight).into(),
                (&bias).into(),
                (&y).into(),
                true,
            )?,
            true => k.backward_input(ctx, s, (&y).into(), (&weight).into(), (&x).into())?,
        };
        let best = out.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
        out.push((kernel, time(ctx, &launch, GIVE_UP * best).await?));
    }
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(out)
}

/// The class of a convolution over whole tensors.
pub fn conv_class(s: ConvShape, backward: bool) -> ConvClass {
    let (src, dst) = match backward {
        false => (s.c_in, s.c_out),
        true => (s.c_out, s.c_in),
    };
    let part = ConvPart {
        src: Channels::all(src),
        dst: Channels::all(dst),
        accumulate: false,
    };
    ConvClass::of(s, part, backward)
}

/// Each candidate's time on the Gram forward (split-K products and their sum) or backward of
/// a `c × n` map, fastest first (each candidate compiled with one tiling,
/// [`gram_candidates`]).
pub async fn gram(
    ctx: &Context, backward: bool, (c, n): (u32, u32), candidates: &[Gram],
) -> Result<Vec<(GramTiles, f64)>> {
    let f = ctx.tensor("timing f", c as u64 * n as u64)?;
    let g = ctx.tensor("timing g", c as u64 * c as u64)?;
    let gf = ctx.tensor("timing gf", c as u64 * n as u64)?;
    let mut out: Vec<(GramTiles, f64)> = Vec::new();
    for k in candidates {
        let tiles = k.choice().default;
        // The backward does not split K: one timing per shader.
        if backward && out.iter().any(|(t, _)| t.same_shader(&tiles)) {
            continue;
        }
        let best = out.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
        let ms = match backward {
            false => {
                let launch = k.forward(ctx, c, n, (&f).into(), (&g).into())?;
                time(ctx, &launch, GIVE_UP * best).await?
            }
            true => {
                let launch =
                    k.backward(ctx, c, n, (&f).into(), (&g).into(), (&gf).into(), false)?;
                time(ctx, &launch, GIVE_UP * best).await?
            }
        };
        out.push((tiles, ms));
    }
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(out)
}

/// The class of a Gram launch over a whole `c × n` map.
pub fn gram_class(backward: bool, c: u32, n: u32) -> GramClass {
    GramClass {
        backward,
        c,
        pixels_log2: crate::log2_ceil(n as u64),
    }
}
