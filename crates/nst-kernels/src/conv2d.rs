//! 3×3 convolution (stride 1, zero padding 1) with bias and optional fused ReLU, and its
//! gradient with respect to the input, as a tiled implicit GEMM. See `shaders/conv2d.wgsl`.

use crate::choice::{ConvChoice, LaunchClass};
use crate::{expect_len, expect_nonzero, Shader};
use const_format::concatcp;
use nst_gpu::{Context, Contract, Dispatch, EntryPoint, GpuError, Groups, Result, View, ViewMut};

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

nst_gpu::uniform! {
    struct Uniform {
        /// Channels in the source chunk (x forward, gy backward).
        c_src: u32,
        /// Channels in the destination chunk.
        c_dst: u32,
        h: u32,
        w: u32,
        /// First channel of the source chunk in its tensor.
        src_off: u32,
        /// First channel of the destination chunk in its tensor.
        dst_off: u32,
        /// Input channels of the whole forward weight (its row stride).
        w_cin: u32,
        /// `FLAG_ACCUMULATE | FLAG_RELU`.
        flags: u32,
    }
}

nst_gpu::contracts! {
    "conv2d.wgsl", Uniform;
    /// `conv2d_forward`: `y` from `x`, `weight` and `bias`.
    FORWARD = "conv2d_forward": read(1, "x"), read(2, "weight"), read(3, "bias"), read_write(4, "y");
    /// `conv2d_backward_input`: `gx` from `gy` and `weight`.
    BACKWARD_INPUT = "conv2d_backward_input": read(1, "gy"), read(2, "weight"), read_write(4, "gx");
    /// `conv2d_forward_direct`: [`FORWARD`] without workgroup memory.
    FORWARD_DIRECT = "conv2d_forward_direct": read(1, "x"), read(2, "weight"), read(3, "bias"), read_write(4, "y");
    /// `conv2d_backward_input_direct`: [`BACKWARD_INPUT`] without workgroup memory.
    BACKWARD_INPUT_DIRECT = "conv2d_backward_input_direct": read(1, "gy"), read(2, "weight"), read_write(4, "gx");
}

nst_gpu::contracts! {
    "conv2d_subgroup.wgsl", Uniform;
    /// `conv2d_forward_subgroup`: [`FORWARD_DIRECT`] sharing weights through subgroups.
    FORWARD_SUBGROUP = "conv2d_forward_subgroup": read(1, "x"), read(2, "weight"), read(3, "bias"), read_write(4, "y");
    /// `conv2d_backward_input_subgroup`: [`BACKWARD_INPUT_DIRECT`] sharing weights through
    /// subgroups.
    BACKWARD_INPUT_SUBGROUP = "conv2d_backward_input_subgroup": read(1, "gy"), read(2, "weight"), read_write(4, "gx");
}

/// What both conv2d files are compiled after: the uniform struct, the GEMM core and the
/// gathers they share.
const COMMON: &str = concatcp!(
    Uniform::WGSL,
    crate::shader_file!("gemm.wgsl"),
    crate::shader_file!("conv2d_common.wgsl")
);

crate::shader!(
    /// `shaders/conv2d.wgsl`, on the implicit GEMM of `gemm.wgsl`: the tiled and direct kernels.
    SHADER = "conv2d.wgsl" after [COMMON]
    with [FORWARD, BACKWARD_INPUT, FORWARD_DIRECT, BACKWARD_INPUT_DIRECT]
);

crate::shader!(
    /// `shaders/conv2d_subgroup.wgsl`: the direct kernel sharing weights through subgroups.
    SUBGROUP_SHADER = "conv2d_subgroup.wgsl" after [COMMON]
    with [FORWARD_SUBGROUP, BACKWARD_INPUT_SUBGROUP]
);

const FLAG_ACCUMULATE: u32 = 1;
const FLAG_RELU: u32 = 2;

/// Tile sizes of the implicit GEMM (the shader's override constants): each workgroup computes
/// `tm` destination channels × `tn` pixels, staging `tk` of the K = 9·C_src products at a
/// time; each invocation computes `rm` channels × 4 pixels, so a workgroup has
/// `(tm / rm)·(tn / 4)` invocations. [`ConvTiles::check`] states the constraints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// One implementation of the convolution and its sizes: what autotuning chooses among.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvKernel {
    /// The implicit GEMM staged through workgroup memory (`gemm.wgsl`), with its tiles.
    Tiled(ConvTiles),
    /// The direct GEMM without workgroup memory or barriers (`conv2d_*_direct`): each
    /// invocation computes `dm` destination channels × 4 pixels of a row, reading both
    /// operands through the cache; `wg` invocations per workgroup.
    Direct {
        /// Destination channels per invocation, 1 to 8.
        dm: u32,
        /// Invocations per workgroup.
        wg: u32,
    },
    /// [`ConvKernel::Direct`], each lane of a subgroup reading one channel's weights and
    /// the others taking them by shuffles: needs subgroup operations and `dm` ≤ the subgroup
    /// size.
    Subgroup {
        /// Destination channels per invocation, 1 to 8.
        dm: u32,
        /// Invocations per workgroup.
        wg: u32,
    },
}

impl Default for ConvKernel {
    fn default() -> Self {
        ConvKernel::Tiled(ConvTiles::default())
    }
}

impl ConvKernel {
    /// Checks the constraints the shader relies on, and the context's limits.
    pub fn check(&self, ctx: &Context) -> Result<()> {
        match *self {
            ConvKernel::Tiled(t) => t.check(ctx),
            ConvKernel::Direct { dm, wg } | ConvKernel::Subgroup { dm, wg } => {
                let (min_sg, max_sg) =
                    (ctx.summary.subgroup_min_size, ctx.summary.subgroup_max_size);
                // Lanes 0..dm of every subgroup must be active at the shuffles: the workgroup
                // is one subgroup of at least dm lanes, or whole subgroups.
                let lanes_ok = dm <= min_sg && ((wg <= min_sg && dm <= wg) || wg % max_sg == 0);
                if matches!(self, ConvKernel::Subgroup { .. }) && !(ctx.subgroups && lanes_ok) {
                    return Err(GpuError::BadShape(match ctx.subgroups {
                        true => format!(
                            "conv2d subgroup kernel dm = {dm}, wg = {wg}: needs dm ≤ {min_sg} \
                             (the fewest lanes of a subgroup here) and wg either between dm \
                             and {min_sg} or a multiple of {max_sg} (the most lanes)"
                        ),
                        false => "conv2d subgroup kernel: this adapter has no subgroup \
                                  operations"
                            .into(),
                    }));
                }
                let max = ctx
                    .limits
                    .max_compute_invocations_per_workgroup
                    .min(ctx.limits.max_compute_workgroup_size_x);
                if !(1..=8).contains(&dm) || wg == 0 || wg > max {
                    return Err(GpuError::BadShape(format!(
                        "conv2d direct kernel dm = {dm}, wg = {wg}: dm must lie in 1..=8 and wg \
                         in 1..={max}"
                    )));
                }
                Ok(())
            }
        }
    }

    /// The override constants its entry points are compiled with.
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        match *self {
            ConvKernel::Tiled(t) => t.constants().to_vec(),
            ConvKernel::Direct { dm, wg } => vec![("DM", dm as f64), ("DWG", wg as f64)],
            ConvKernel::Subgroup { dm, wg } => vec![("DM", dm as f64), ("DWG", wg as f64)],
        }
    }

    /// The shader it is compiled from, and its forward and backward entry points.
    pub fn entry_points(&self) -> (&'static Shader, [&'static Contract; 2]) {
        match self {
            ConvKernel::Tiled(_) => (&SHADER, [&FORWARD, &BACKWARD_INPUT]),
            ConvKernel::Direct { .. } => (&SHADER, [&FORWARD_DIRECT, &BACKWARD_INPUT_DIRECT]),
            ConvKernel::Subgroup { .. } => (
                &SUBGROUP_SHADER,
                [&FORWARD_SUBGROUP, &BACKWARD_INPUT_SUBGROUP],
            ),
        }
    }

    /// Destination channels per workgroup (a launch over more than 65,535 times as many is a
    /// grid error).
    pub fn channels_per_workgroup(&self) -> u32 {
        self.footprint().0
    }

    /// Destination channels per workgroup, and pixel blocks per workgroup with the pixels in a
    /// block, as (channels, blocks, pixels per block).
    fn footprint(&self) -> (u32, u32, u32) {
        match *self {
            ConvKernel::Tiled(t) => (t.tm, 1, t.tn),
            ConvKernel::Direct { dm, wg } | ConvKernel::Subgroup { dm, wg } => (dm, wg, 4),
        }
    }
}

impl std::fmt::Display for ConvKernel {
    /// `tiled:TMxTNxTKxRM`, `direct:DMxWG` or `subgroup:DMxWG`: the form the tuning cache
    /// stores, which [`str::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConvKernel::Tiled(t) => write!(f, "tiled:{}x{}x{}x{}", t.tm, t.tn, t.tk, t.rm),
            ConvKernel::Direct { dm, wg } => write!(f, "direct:{dm}x{wg}"),
            ConvKernel::Subgroup { dm, wg } => write!(f, "subgroup:{dm}x{wg}"),
        }
    }
}

impl std::str::FromStr for ConvKernel {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!("`{s}` is not a conv2d kernel (tiled:64x64x16x4, direct:8x64, subgroup:8x8)")
        };
        let (kind, sizes) = s.split_once(':').ok_or_else(bad)?;
        let n: Vec<u32> = sizes
            .split('x')
            .map(|v| v.parse().map_err(|_| bad()))
            .collect::<std::result::Result<_, _>>()?;
        Ok(match (kind, n.as_slice()) {
            ("tiled", &[tm, tn, tk, rm]) => ConvKernel::Tiled(ConvTiles { tm, tn, tk, rm }),
            ("direct", &[dm, wg]) => ConvKernel::Direct { dm, wg },
            ("subgroup", &[dm, wg]) => ConvKernel::Subgroup { dm, wg },
            _ => return Err(bad()),
        })
    }
}

impl ConvKernel {
    /// The built-in choice when nothing was tuned: the direct kernel sharing weights through
    /// subgroups on software adapters that have subgroups (measured 4× faster than the tiled
    /// one on Mesa's lavapipe, `docs/BENCHMARKS.md`), else the tiled one with its default tiles.
    pub fn default_for(ctx: &Context) -> ConvKernel {
        let subgroup = ConvKernel::Subgroup { dm: 8, wg: 8 };
        match ctx.is_software() && subgroup.check(ctx).is_ok() {
            true => subgroup,
            false => ConvKernel::default(),
        }
    }

    /// Every kernel autotuning may time: a few tile shapes of the tiled GEMM, the direct
    /// kernel, and the subgroup one. [`ConvKernel::candidates`] keeps those an adapter accepts.
    pub const CANDIDATES: &'static [ConvKernel] = &[
        ConvKernel::tiled(64, 64, 16, 4),
        ConvKernel::tiled(32, 32, 8, 8),
        ConvKernel::tiled(128, 32, 16, 8),
        ConvKernel::tiled(64, 128, 8, 8),
        ConvKernel::Direct { dm: 8, wg: 64 },
        ConvKernel::Subgroup { dm: 8, wg: 8 },
        ConvKernel::Subgroup { dm: 8, wg: 64 },
    ];

    const fn tiled(tm: u32, tn: u32, tk: u32, rm: u32) -> ConvKernel {
        ConvKernel::Tiled(ConvTiles { tm, tn, tk, rm })
    }

    /// The kernels autotuning times on this adapter: the [`ConvKernel::CANDIDATES`]
    /// [`ConvKernel::check`] accepts (the subgroup ones only where the adapter has subgroups).
    pub fn candidates(ctx: &Context) -> Vec<ConvKernel> {
        Self::CANDIDATES
            .iter()
            .copied()
            .filter(|k| k.check(ctx).is_ok())
            .collect()
    }
}

/// What a convolution launch is tuned by: its direction, the channels it reads and writes (of
/// its chunks) and ⌈log₂⌉ of its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvClass {
    /// The input gradient rather than the forward.
    pub backward: bool,
    /// Source channels (of the chunk).
    pub c_src: u32,
    /// Destination channels (of the chunk).
    pub c_dst: u32,
    /// ⌈log₂(H·W)⌉.
    pub pixels_log2: u32,
}

impl ConvClass {
    /// The class of one part of a layer.
    pub fn of(s: ConvShape, part: ConvPart, backward: bool) -> Self {
        ConvClass {
            backward,
            c_src: part.src.count,
            c_dst: part.dst.count,
            pixels_log2: crate::log2_ceil(s.h as u64 * s.w as u64),
        }
    }
}

impl LaunchClass for ConvClass {
    fn backward(&self) -> bool {
        self.backward
    }

    /// The sum of the log₂ ratios of the channels and the difference of the pixels' log₂.
    fn distance(&self, other: &ConvClass) -> f64 {
        let l = |a: u32, b: u32| (a.max(1) as f64 / b.max(1) as f64).log2().abs();
        l(self.c_src, other.c_src)
            + l(self.c_dst, other.c_dst)
            + (self.pixels_log2 as f64 - other.pixels_log2 as f64).abs()
    }
}

/// One kernel's two entry points.
struct Compiled {
    kernel: ConvKernel,
    forward: EntryPoint,
    backward: EntryPoint,
}

/// The conv2d kernels: each kernel a [`ConvChoice`] may pick, compiled once.
pub struct Conv2d {
    compiled: Vec<Compiled>,
    choice: ConvChoice,
}

impl Conv2d {
    /// Compiles the built-in choice for this adapter ([`ConvKernel::default_for`]).
    pub fn new(ctx: &Context) -> Result<Self> {
        Self::with_choice(ctx, ConvChoice::all(ConvKernel::default_for(ctx)))
    }

    /// The tiled kernel with the given tiles for every launch.
    pub fn with_tiles(ctx: &Context, tiles: ConvTiles) -> Result<Self> {
        Self::with_kernel(ctx, ConvKernel::Tiled(tiles))
    }

    /// `kernel` for every launch.
    pub fn with_kernel(ctx: &Context, kernel: ConvKernel) -> Result<Self> {
        Self::with_choice(ctx, ConvChoice::all(kernel))
    }

    /// Compiles every kernel `choice` may pick.
    pub fn with_choice(ctx: &Context, choice: ConvChoice) -> Result<Self> {
        let compiled = choice
            .variants()
            .into_iter()
            .map(|kernel| compile(ctx, kernel))
            .collect::<Result<_>>()?;
        Ok(Conv2d { compiled, choice })
    }

    /// Which kernel each class of launch uses.
    pub fn choice(&self) -> &ConvChoice {
        &self.choice
    }

    /// The compiled kernel for a launch.
    fn pick(&self, class: &ConvClass) -> &Compiled {
        let kernel = self.choice.pick(class);
        self.compiled
            .iter()
            .find(|c| c.kernel == kernel)
            .expect("every kernel the choice picks is compiled")
    }

    /// Workgroup counts for one part: pixel tiles along x (folded into y past the
    /// per-dimension limit), destination-channel tiles along z.
    fn groups(kernel: ConvKernel, ctx: &Context, s: ConvShape, part: ConvPart) -> Result<[u32; 3]> {
        let (channels, blocks, per_block) = kernel.footprint();
        let pixel_blocks = match kernel {
            ConvKernel::Tiled(_) => (s.h as u64 * s.w as u64).div_ceil(per_block as u64),
            _ => s.h as u64 * s.w.div_ceil(per_block) as u64,
        };
        let pixel_tiles = pixel_blocks.div_ceil(blocks as u64);
        let [x, y, _] = nst_gpu::grid(pixel_tiles, 1, ctx.max_workgroups_per_dim)?;
        let channel_tiles = part.dst.count.div_ceil(channels);
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
        &self, ctx: &Context, s: ConvShape, x: View<'_>, weight: View<'_>, bias: View<'_>,
        y: ViewMut<'_>, relu: bool,
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
        &self, ctx: &Context, s: ConvShape, part: ConvPart, x: View<'_>, weight: View<'_>,
        bias: View<'_>, y: ViewMut<'_>, relu: bool,
    ) -> Result<Dispatch> {
        check(s, part, false, &x, &weight, &y)?;
        expect_len("conv2d bias", &bias, s.c_out as u64)?;
        let flags = relu as u32 * FLAG_RELU + part.accumulate as u32 * FLAG_ACCUMULATE;
        let k = self.pick(&ConvClass::of(s, part, false));
        let groups = Self::groups(k.kernel, ctx, s, part)?;
        k.forward.launch(
            ctx,
            &uniform(s, part, flags),
            &[x.into(), weight.into(), bias.into(), y.into()],
            Groups::Exact(groups),
        )
    }

    /// `gx = ∂(Σ gy·conv(x))/∂x`: the input gradient (no ReLU; apply its backward first).
    /// `gy`: (c_out, h, w); `gx`: (c_in, h, w).
    pub fn backward_input(
        &self, ctx: &Context, s: ConvShape, gy: View<'_>, weight: View<'_>, gx: ViewMut<'_>,
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
        &self, ctx: &Context, s: ConvShape, part: ConvPart, gy: View<'_>, weight: View<'_>,
        gx: ViewMut<'_>,
    ) -> Result<Dispatch> {
        check(s, part, true, &gy, &weight, &gx)?;
        let flags = part.accumulate as u32 * FLAG_ACCUMULATE;
        let k = self.pick(&ConvClass::of(s, part, true));
        let groups = Self::groups(k.kernel, ctx, s, part)?;
        k.backward.launch(
            ctx,
            &uniform(s, part, flags),
            &[gy.into(), weight.into(), gx.into()],
            Groups::Exact(groups),
        )
    }
}

/// Compiles `kernel`'s two entry points.
fn compile(ctx: &Context, kernel: ConvKernel) -> Result<Compiled> {
    kernel.check(ctx)?;
    let (shader, [f, b]) = kernel.entry_points();
    let module = shader.compile(ctx)?;
    let constants = kernel.constants();
    Ok(Compiled {
        kernel,
        forward: EntryPoint::new(ctx, &module, f, &constants)?,
        backward: EntryPoint::new(ctx, &module, b, &constants)?,
    })
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
    s: ConvShape, part: ConvPart, backward: bool, src: &View<'_>, weight: &View<'_>, dst: &View<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_takes_the_nearest_tuned_class_of_its_direction() {
        let class = |backward, c_src, c_dst, pixels_log2| ConvClass {
            backward,
            c_src,
            c_dst,
            pixels_log2,
        };
        let tiled = ConvKernel::default();
        let (direct, subgroup) = (
            ConvKernel::Direct { dm: 8, wg: 64 },
            ConvKernel::Subgroup { dm: 8, wg: 8 },
        );
        let mut choice = ConvChoice::all(tiled);
        assert_eq!(choice.pick(&class(false, 64, 64, 12)), tiled);
        choice.tuned = vec![
            (class(false, 64, 64, 12), direct),
            (class(false, 512, 512, 6), subgroup),
        ];
        // The same class, a near one at another size, and a deep one.
        assert_eq!(choice.pick(&class(false, 64, 64, 12)), direct);
        assert_eq!(choice.pick(&class(false, 64, 128, 16)), direct);
        assert_eq!(choice.pick(&class(false, 256, 512, 8)), subgroup);
        // No backward class was tuned: the default.
        assert_eq!(choice.pick(&class(true, 64, 64, 12)), tiled);
        assert_eq!(choice.variants(), [tiled, direct, subgroup]);
    }
}
