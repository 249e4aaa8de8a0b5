//! Optical flow between two frames on the GPU: TV-L1 coarse to fine (`shaders/flow.wgsl`,
//! `docs/video.md`), and the reliability of a backward flow given the forward one (Ruder,
//! Dosovitskiy & Brox 2016), which the temporal loss weighs by.

use crate::engine::Engine;
use crate::error::{Field, Result, TransferError};
use crate::image::Image;
use nst_gpu::{Context, Dispatch, View, ViewMut};
use nst_kernels::Tvl1Step;
use serde::{Deserialize, Serialize};

/// TV-L1's parameters. The defaults ([`crate::defaults`]) were chosen by endpoint error per
/// millisecond on the synthetic sequences of `benches/flow/compare.py` (`docs/video.md`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowSettings {
    /// Weight of the data term (grey levels in [0, 255]): higher follows the images more
    /// closely, lower gives smoother flow.
    pub lambda: f64,
    /// Coupling of TV-L1's two sub-problems.
    pub theta: f64,
    /// Time step of the dual update (at most 0.25).
    pub tau: f64,
    /// Linearizations per scale.
    pub warps: u32,
    /// Primal-dual steps per linearization.
    pub iterations: u32,
    /// The coarsest scale's shorter side is at least this many pixels.
    pub min_side: u32,
}

impl Default for FlowSettings {
    fn default() -> Self {
        crate::defaults::FLOW
    }
}

impl FlowSettings {
    /// Checks every parameter, naming the one to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, reason: String| {
            Err(TransferError::invalid(
                Field::Flow,
                format!("{what} {reason}"),
            ))
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.lambda) || !positive(self.theta) {
            return bad("lambda and theta", "must be positive".into());
        }
        if !(positive(self.tau) && self.tau <= 0.25) {
            return bad("tau", format!("must lie in (0, 0.25], got {}", self.tau));
        }
        if self.warps == 0 || self.iterations == 0 || self.min_side == 0 {
            return bad(
                "warps, iterations and min_side",
                "must be at least 1".into(),
            );
        }
        Ok(())
    }

    fn step(&self) -> Tvl1Step {
        Tvl1Step {
            lambda: self.lambda as f32,
            theta: self.theta as f32,
            tau: self.tau as f32,
        }
    }
}

/// A flow field between two frames of `width × height`: two planes, `u` (x) then `v` (y), in
/// pixels. The flow from frame A to frame B at pixel p says where p of A is in B:
/// A(p) ≈ B(p + w(p)).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowField {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// `u` then `v`, row-major.
    pub data: Vec<f32>,
}

impl FlowField {
    /// Writes the flow to a `.safetensors` file as the float32 tensor `flow` of shape
    /// 2 × height × width (u, then v), with `reliability` (height × width) when given,
    /// atomically.
    pub fn write(&self, path: &std::path::Path, reliability: Option<&[f32]>) -> Result<()> {
        let (h, w) = (self.height as usize, self.width as usize);
        let mut tensors = vec![("flow", vec![2, h, w], &self.data[..])];
        tensors.extend(reliability.map(|r| ("reliability", vec![h, w], r)));
        crate::events::write_f32s(path, &tensors)
    }

    /// The mean length of the flow's vectors, in pixels.
    pub fn mean_length(&self) -> f64 {
        let n = self.data.len() / 2;
        let (u, v) = self.data.split_at(n);
        let sum: f64 = u
            .iter()
            .zip(v)
            .map(|(&a, &b)| (a as f64).hypot(b as f64))
            .sum();
        sum / n.max(1) as f64
    }
}

/// The flows between two frames and how far to trust them ([`Engine::flows`]).
#[derive(Clone, Debug)]
pub struct FramePair {
    /// From the first frame to the second.
    pub forward: FlowField,
    /// From the second frame to the first: where each pixel of the second was in the first.
    pub backward: FlowField,
    /// Per pixel of the second frame, 1 where `backward` is reliable, 0 where the two flows
    /// disagree (occlusion) or at a motion boundary.
    pub reliability: Vec<f32>,
}

/// The pyramid's sizes, finest first: halved (rounded down) while the shorter side stays at
/// least `min_side`.
fn pyramid(h: u32, w: u32, min_side: u32) -> Vec<(u32, u32)> {
    let mut levels = vec![(h, w)];
    while let Some(&(lh, lw)) = levels.last() {
        if lh.min(lw) / 2 < min_side {
            break;
        }
        levels.push((lh / 2, lw / 2));
    }
    levels
}

/// The GPU and the flow kernels alone, without the network's weights: what `nst flow` opens.
pub struct Flows {
    ctx: Context,
    k: nst_kernels::Flow,
}

impl Flows {
    /// Opens the GPU ([`Context::new`]) and compiles the flow kernels.
    pub fn open() -> Result<Flows> {
        let ctx = Context::new()?;
        let k = nst_kernels::Flow::new(&ctx)?;
        Ok(Flows { ctx, k })
    }

    /// The GPU context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// TV-L1 flow from `from` to `to` (frames of one size) on the GPU.
    pub fn flow(&self, from: &Image, to: &Image, settings: &FlowSettings) -> Result<FlowField> {
        pollster::block_on(tvl1(&self.ctx, &self.k, from, to, settings))
    }

    /// [`Engine::warp`].
    pub fn warp(&self, image: &Image, flow: &FlowField) -> Result<Image> {
        warp(&self.ctx, &self.k, image, flow)
    }

    /// The forward and backward flows between `first` and `second`, and the reliability of
    /// the backward one ([`FramePair`]).
    pub fn flows(&self, first: &Image, second: &Image, s: &FlowSettings) -> Result<FramePair> {
        let forward = self.flow(first, second, s)?;
        let backward = self.flow(second, first, s)?;
        let reliability = reliability(&self.ctx, &self.k, &forward, &backward)?;
        Ok(FramePair {
            forward,
            backward,
            reliability,
        })
    }
}

impl Engine {
    /// `image` warped along `flow` (of its size): `out(p) = image(p + flow(p))`, bilinear,
    /// clamped at the border. With the backward flow of two frames, the first frame brought to
    /// the second.
    pub fn warp(&self, image: &Image, flow: &FlowField) -> Result<Image> {
        warp(&self.ctx, &self.k.flow, image, flow)
    }

    /// TV-L1 flow from `from` to `to` (frames of one size) on the GPU.
    pub fn flow(&self, from: &Image, to: &Image, settings: &FlowSettings) -> Result<FlowField> {
        pollster::block_on(tvl1(&self.ctx, &self.k.flow, from, to, settings))
    }

    /// The forward and backward flows between `first` and `second`, and the reliability of
    /// the backward one ([`FramePair`]).
    pub fn flows(&self, first: &Image, second: &Image, s: &FlowSettings) -> Result<FramePair> {
        let forward = self.flow(first, second, s)?;
        let backward = self.flow(second, first, s)?;
        let reliability = reliability(&self.ctx, &self.k.flow, &forward, &backward)?;
        Ok(FramePair {
            forward,
            backward,
            reliability,
        })
    }
}

/// TV-L1 flow from `from` to `to` on `ctx` with the flow kernels `k`: grey pyramids of 2×2
/// means, then from the coarsest scale `warps` linearizations of `iterations` primal-dual
/// steps each, the flow carried up to the next scale.
pub async fn tvl1(
    ctx: &Context, k: &nst_kernels::Flow, from: &Image, to: &Image, settings: &FlowSettings,
) -> Result<FlowField> {
    settings.validate()?;
    check_frames(from, to)?;
    let (h, w) = (from.height, from.width);
    let levels = pyramid(h, w, settings.min_side);
    let n = |(lh, lw): (u32, u32)| lh as u64 * lw as u64;
    let mut keep = Vec::new();
    let mut launches: Vec<Dispatch> = Vec::new();
    // Grey pyramids of both frames.
    let mut grey: Vec<(wgpu::Buffer, wgpu::Buffer)> = Vec::new();
    for (i, &size) in levels.iter().enumerate() {
        let a = ctx.tensor("flow: first frame", n(size))?;
        let b = ctx.tensor("flow: second frame", n(size))?;
        match i {
            0 => {
                for (img, dst) in [(from, &a), (to, &b)] {
                    let rgb = ctx.tensor_from("flow: frame", &img.data)?;
                    let d = k.gray(ctx, size, View::whole(&rgb), ViewMut::whole(dst))?;
                    launches.push(d);
                    keep.push(rgb);
                }
            }
            _ => {
                let (pa, pb) = &grey[i - 1];
                let (ph, pw) = levels[i - 1];
                for (src, dst) in [(pa, &a), (pb, &b)] {
                    let v = (View::whole(src), ViewMut::whole(dst));
                    launches.push(k.downsample(ctx, (1, ph, pw), v.0, v.1)?);
                }
            }
        }
        grey.push((a, b));
    }
    // Coarse to fine.
    let step = settings.step();
    let mut flow: Option<(wgpu::Buffer, (u32, u32))> = None;
    for (i, &size) in levels.iter().enumerate().rev() {
        let (i0, i1) = &grey[i];
        let m = n(size);
        let flows = [ctx.tensor("flow", 2 * m)?, ctx.tensor("flow", 2 * m)?];
        if let Some((coarse, at)) = &flow {
            let v = (View::whole(coarse), ViewMut::whole(&flows[0]));
            launches.push(k.upsample(ctx, *at, size, v.0, v.1)?);
        }
        let image = ctx.tensor("flow: frame and gradient", 3 * m)?;
        let (warped, data) = (
            ctx.tensor("flow: warped", 3 * m)?,
            ctx.tensor("flow: data", 4 * m)?,
        );
        let dual = ctx.tensor("flow: dual", 4 * m)?;
        launches.push(k.with_gradient(ctx, size, View::whole(i1), ViewMut::whole(&image))?);
        let mut at = 0;
        for _ in 0..settings.warps {
            let u = View::whole(&flows[at]);
            let (c, hh, ww) = (3, size.0, size.1);
            launches.push(k.warp(
                ctx,
                (c, hh, ww),
                View::whole(&image),
                u,
                ViewMut::whole(&warped),
            )?);
            let (a, wv) = (View::whole(i0), View::whole(&warped));
            launches.push(k.prepare(ctx, size, a, wv, u, ViewMut::whole(&data))?);
            for _ in 0..settings.iterations {
                let (cur, next) = (&flows[at], &flows[1 - at]);
                let (d, dv) = (View::whole(&dual), View::whole(&data));
                let p = k.primal(
                    ctx,
                    size,
                    step,
                    View::whole(cur),
                    d,
                    dv,
                    ViewMut::whole(next),
                )?;
                launches.push(p);
                launches.push(k.dual(ctx, size, step, View::whole(next), ViewMut::whole(&dual))?);
                at = 1 - at;
            }
        }
        let [f0, f1] = flows;
        let (done, other) = if at == 0 { (f0, f1) } else { (f1, f0) };
        keep.extend([other, image, warped, data, dual]);
        if let Some((coarse, _)) = flow.take() {
            keep.push(coarse);
        }
        flow = Some((done, size));
    }
    // A long run is split into submissions of bounded length.
    for chunk in launches.chunks(512) {
        ctx.submit(|pass| chunk.iter().for_each(|d| nst_gpu::Record::record(d, pass)))?;
    }
    let (done, _) = flow.expect("one level at least");
    let data = ctx.read_async::<f32>(View::whole(&done)).await?;
    drop(keep);
    Ok(FlowField {
        width: w,
        height: h,
        data,
    })
}

/// [`Engine::warp`] on `ctx` with the flow kernels `k`.
pub fn warp(
    ctx: &Context, k: &nst_kernels::Flow, image: &Image, flow: &FlowField,
) -> Result<Image> {
    if (image.width, image.height) != (flow.width, flow.height) {
        let reason = format!(
            "a {}×{} image cannot be warped by a {}×{} flow",
            image.width, image.height, flow.width, flow.height
        );
        return Err(TransferError::invalid(Field::Flow, reason));
    }
    let (h, w) = (image.height, image.width);
    let src = ctx.tensor_from("warp: image", &image.data)?;
    let f = ctx.tensor_from("warp: flow", &flow.data)?;
    let out = ctx.tensor("warp: warped", image.data.len() as u64)?;
    let d = k.warp(
        ctx,
        (3, h, w),
        View::whole(&src),
        View::whole(&f),
        ViewMut::whole(&out),
    )?;
    ctx.submit(|pass| nst_gpu::Record::record(&d, pass))?;
    Ok(Image::from_parts(w, h, ctx.read::<f32>(View::whole(&out))?))
}

/// Ruder et al.'s reliability of `backward` given `forward` (flows of one size): 1 where
/// they agree and away from motion boundaries, 0 elsewhere.
pub fn reliability(
    ctx: &Context, k: &nst_kernels::Flow, forward: &FlowField, backward: &FlowField,
) -> Result<Vec<f32>> {
    let size = (backward.height, backward.width);
    if (forward.height, forward.width) != size {
        return Err(TransferError::invalid(
            Field::Flow,
            "the forward and backward flows differ in size".to_string(),
        ));
    }
    let f = ctx.tensor_from("forward flow", &forward.data)?;
    let b = ctx.tensor_from("backward flow", &backward.data)?;
    let out = ctx.tensor("reliability", size.0 as u64 * size.1 as u64)?;
    let d = k.reliability(
        ctx,
        size,
        View::whole(&f),
        View::whole(&b),
        ViewMut::whole(&out),
    )?;
    ctx.submit(|pass| nst_gpu::Record::record(&d, pass))?;
    Ok(ctx.read::<f32>(View::whole(&out))?)
}

/// Two frames of one size, as flow needs them.
fn check_frames(a: &Image, b: &Image) -> Result<()> {
    if (a.width, a.height) != (b.width, b.height) {
        let reason = format!(
            "frames of {}×{} and {}×{}: the frames of a flow must have one size",
            a.width, a.height, b.width, b.height
        );
        return Err(TransferError::invalid(Field::Content, reason));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pyramid_halves_to_the_least_side() {
        assert_eq!(pyramid(40, 48, 8), [(40, 48), (20, 24), (10, 12)]);
        assert_eq!(pyramid(7, 100, 8), [(7, 100)]);
    }
}
