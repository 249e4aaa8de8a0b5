//! 3×3 convolution (stride 1, zero padding 1) with bias and optional fused ReLU, and its
//! gradient with respect to the input, as a tiled implicit GEMM. See `shaders/conv2d.wgsl`.

use crate::{expect_len, expect_nonzero};
use nst_gpu::{
    uniform_layout, Context, Dispatch, EntryPoint, GpuError, Groups, Result, UniformLayout, View,
    ViewMut,
};

/// Shape of a convolution: `c_in` → `c_out` channels over an `h × w` image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Input channels.
    pub c_in: u32,
    /// Output channels.
    pub c_out: u32,
    /// Height (same in and out).
    pub h: u32,
    /// Width (same in and out).
    pub w: u32,
}

impl ConvShape {
    /// Multiply-adds of one forward pass (the backward costs the same).
    pub fn flops(&self) -> f64 {
        2.0 * 9.0 * self.c_in as f64 * self.c_out as f64 * self.h as f64 * self.w as f64
    }
}

/// A range of whole channels: one chunk of a tensor split for the binding-size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channels {
    /// First channel of the chunk in the whole tensor.
    pub offset: u32,
    /// Channels in the chunk.
    pub count: u32,
}

impl Channels {
    /// All `count` channels of a tensor.
    pub fn all(count: u32) -> Self {
        Channels { offset: 0, count }
    }
}

/// One dispatch's share of a convolution over chunked tensors: the source chunk it reads
/// (`x` forward, `gy` backward), the destination chunk it writes, and whether it adds to
/// what earlier parts wrote there. The parts of one destination chunk are recorded in order;
/// the first starts from the bias (forward) or zero (backward), unless the destination
/// already holds a gradient to add to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvPart {
    /// Source channels.
    pub src: Channels,
    /// Destination channels.
    pub dst: Channels,
    /// Add to the destination instead of overwriting it.
    pub accumulate: bool,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    c_src: u32,
    c_dst: u32,
    h: u32,
    w: u32,
    src_off: u32,
    dst_off: u32,
    w_cin: u32,
    flags: u32,
}

const UNIFORM: UniformLayout = uniform_layout!(Uniform {
    c_src,
    c_dst,
    h,
    w,
    src_off,
    dst_off,
    w_cin,
    flags
});

nst_gpu::contracts! {
    "conv2d.wgsl", UNIFORM;
    /// `conv2d_forward`: `y` from `x`, `weight` and `bias`.
    FORWARD = "conv2d_forward": read(1, "x"), read(2, "weight"), read(3, "bias"), read_write(4, "y");
    /// `conv2d_backward_input`: `gx` from `gy` and `weight`.
    BACKWARD_INPUT = "conv2d_backward_input": read(1, "gy"), read(2, "weight"), read_write(4, "gx");
}

const FLAG_ACCUMULATE: u32 = 1;
const FLAG_RELU: u32 = 2;

/// Tile sizes of the implicit GEMM (the shader's override constants): each workgroup computes
/// `tm` destination channels × `tn` pixels, staging `tk` of the K = 9·C_src products at a
/// time; each invocation computes `rm` channels × 4 pixels, so a workgroup has
/// `(tm / rm)·(tn / 4)` invocations. [`ConvTiles::check`] states the constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTiles {
    /// Destination channels per workgroup tile (GEMM M).
    pub tm: u32,
    /// Pixels per workgroup tile (GEMM N).
    pub tn: u32,
    /// Depth of one staging step (GEMM K).
    pub tk: u32,
    /// Destination channels per invocation: 4 or 8.
    pub rm: u32,
}

impl Default for ConvTiles {
    /// Common fp32 SGEMM practice on desktop GPUs, not tuned for any adapter: a 64×64 tile,
    /// 256 invocations of 4×4 outputs, K steps of 16 (8 KiB of workgroup memory).
    fn default() -> Self {
        ConvTiles {
            tm: 64,
            tn: 64,
            tk: 16,
            rm: 4,
        }
    }
}

impl ConvTiles {
    /// Invocations per workgroup: `(tm / rm)·(tn / 4)`.
    pub fn workgroup_size(&self) -> u64 {
        (self.tm / self.rm.max(1)) as u64 * (self.tn / 4) as u64
    }

    /// Checks the constraints the shader relies on, and the context's limits.
    pub fn check(&self, ctx: &Context) -> Result<()> {
        let ConvTiles { tm, tn, tk, rm } = *self;
        match crate::tile_problem(ctx, tm, tn, tk, rm) {
            None => Ok(()),
            Some(problem) => Err(GpuError::BadShape(format!(
                "conv2d tiles {self:?}: {problem}"
            ))),
        }
    }

    fn constants(&self) -> [(&'static str, f64); 4] {
        [
            ("TM", self.tm as f64),
            ("TN", self.tn as f64),
            ("TK", self.tk as f64),
            ("RM", self.rm as f64),
        ]
    }
}

/// The conv2d kernels.
pub struct Conv2d {
    forward: EntryPoint,
    backward: EntryPoint,
    tiles: ConvTiles,
}

impl Conv2d {
    /// Compiles `shaders/conv2d.wgsl` with the default tiles.
    pub fn new(ctx: &Context) -> Result<Self> {
        Self::with_tiles(ctx, ConvTiles::default())
    }

    /// Compiles `shaders/conv2d.wgsl` with the given tiles (for tuning per adapter).
    pub fn with_tiles(ctx: &Context, tiles: ConvTiles) -> Result<Self> {
        tiles.check(ctx)?;
        let module = nst_gpu::shader(ctx, "conv2d.wgsl", crate::CONV2D_WGSL)?;
        let constants = tiles.constants();
        Ok(Conv2d {
            forward: EntryPoint::new(ctx, &module, &FORWARD, &constants)?,
            backward: EntryPoint::new(ctx, &module, &BACKWARD_INPUT, &constants)?,
            tiles,
        })
    }

    /// The tile sizes the kernels were compiled with.
    pub fn tiles(&self) -> ConvTiles {
        self.tiles
    }

    /// Workgroup counts for one part: pixel tiles along x (folded into y past the
    /// per-dimension limit), destination-channel tiles along z.
    fn groups(&self, ctx: &Context, s: ConvShape, part: ConvPart) -> Result<[u32; 3]> {
        let pixel_tiles = (s.h as u64 * s.w as u64).div_ceil(self.tiles.tn as u64);
        let [x, y, _] = nst_gpu::grid(pixel_tiles, 1, ctx.max_workgroups_per_dim)?;
        let channel_tiles = part.dst.count.div_ceil(self.tiles.tm);
        if channel_tiles > ctx.max_workgroups_per_dim {
            return Err(GpuError::GridTooLarge {
                groups: channel_tiles as u64,
                max: ctx.max_workgroups_per_dim as u64,
            });
        }
        Ok([x, y, channel_tiles])
    }

    /// `y = conv(x, weight) + bias`, then `max(·, 0)` when `relu`.
    /// `x`: (c_in, h, w); `weight`: (c_out, c_in, 3, 3); `bias`: c_out; `y`: (c_out, h, w).
    pub fn forward(
        &self,
        ctx: &Context,
        s: ConvShape,
        x: View<'_>,
        weight: View<'_>,
        bias: View<'_>,
        y: ViewMut<'_>,
        relu: bool,
    ) -> Result<Dispatch> {
        let part = ConvPart {
            src: Channels::all(s.c_in),
            dst: Channels::all(s.c_out),
            accumulate: false,
        };
        self.forward_part(ctx, s, part, x, weight, bias, y, relu)
    }

    /// One part of a chunked forward: `y` (the `part.dst` chunk) `= bias + conv(x)` over the
    /// `part.src` chunk `x`, or `+= conv(x)` when `part.accumulate`; then `max(·, 0)` when
    /// `relu` (pass it only with the last part of a destination chunk). `s` is the whole
    /// layer's shape and `weight`/`bias` are the whole layer's.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_part(
        &self,
        ctx: &Context,
        s: ConvShape,
        part: ConvPart,
        x: View<'_>,
        weight: View<'_>,
        bias: View<'_>,
        y: ViewMut<'_>,
        relu: bool,
    ) -> Result<Dispatch> {
        check(s, part, false, &x, &weight, &y)?;
        expect_len("conv2d bias", &bias, s.c_out as u64)?;
        let flags = relu as u32 * FLAG_RELU + part.accumulate as u32 * FLAG_ACCUMULATE;
        let groups = self.groups(ctx, s, part)?;
        self.forward.launch(
            ctx,
            &uniform(s, part, flags),
            &[x.into(), weight.into(), bias.into(), y.into()],
            Groups::Exact(groups),
        )
    }

    /// `gx = ∂(Σ gy·conv(x))/∂x`: the input gradient (no ReLU; apply its backward first).
    /// `gy`: (c_out, h, w); `gx`: (c_in, h, w).
    pub fn backward_input(
        &self,
        ctx: &Context,
        s: ConvShape,
        gy: View<'_>,
        weight: View<'_>,
        gx: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let part = ConvPart {
            src: Channels::all(s.c_out),
            dst: Channels::all(s.c_in),
            accumulate: false,
        };
        self.backward_input_part(ctx, s, part, gy, weight, gx)
    }

    /// One part of a chunked input gradient: `gx` (the `part.dst` chunk of the input
    /// channels) `=` or `+=` (with `part.accumulate`) the contribution of the `part.src`
    /// chunk `gy` of the output gradient.
    pub fn backward_input_part(
        &self,
        ctx: &Context,
        s: ConvShape,
        part: ConvPart,
        gy: View<'_>,
        weight: View<'_>,
        gx: ViewMut<'_>,
    ) -> Result<Dispatch> {
        check(s, part, true, &gy, &weight, &gx)?;
        let flags = part.accumulate as u32 * FLAG_ACCUMULATE;
        let groups = self.groups(ctx, s, part)?;
        self.backward.launch(
            ctx,
            &uniform(s, part, flags),
            &[gy.into(), weight.into(), gx.into()],
            Groups::Exact(groups),
        )
    }
}

fn uniform(s: ConvShape, part: ConvPart, flags: u32) -> Uniform {
    Uniform {
        c_src: part.src.count,
        c_dst: part.dst.count,
        h: s.h,
        w: s.w,
        src_off: part.src.offset,
        dst_off: part.dst.offset,
        w_cin: s.c_in,
        flags,
    }
}

/// Checks a part against the whole shape: the source and destination are the forward's input
/// and output, or the backward's output and input gradients.
fn check(
    s: ConvShape,
    part: ConvPart,
    backward: bool,
    src: &View<'_>,
    weight: &View<'_>,
    dst: &View<'_>,
) -> Result<()> {
    expect_nonzero("conv2d shape", &[s.c_in, s.c_out, s.h, s.w])?;
    let (names, totals) = if backward {
        (
            ["conv2d output gradient", "conv2d input gradient"],
            [s.c_out, s.c_in],
        )
    } else {
        (["conv2d input", "conv2d output"], [s.c_in, s.c_out])
    };
    let plane = s.h as u64 * s.w as u64;
    for ((name, ch), total) in names.iter().zip([part.src, part.dst]).zip(totals) {
        if ch.count == 0 || ch.offset as u64 + ch.count as u64 > total as u64 {
            return Err(GpuError::BadShape(format!(
                "`{name}` chunk: channels {}..{} are empty or lie outside {total} channels",
                ch.offset,
                ch.offset + ch.count
            )));
        }
    }
    expect_len(names[0], src, part.src.count as u64 * plane)?;
    expect_len("conv2d weight", weight, s.c_out as u64 * s.c_in as u64 * 9)?;
    expect_len(names[1], dst, part.dst.count as u64 * plane)
}
