//! Mean-squared error, total variation and the out-of-range penalty, reduced on the GPU, and
//! their backward passes.
//! See `shaders/loss.wgsl`.

use crate::reduce::{Reduce, Reduction};
use crate::{entry, expect_len, expect_nonzero, per_element};
use nst_gpu::{Bind, Context, Contract, Dispatch, EntryPoint, Groups, Result, View, ViewMut};

nst_gpu::uniform! {
    #[derive(Default)]
    struct Uniform {
        /// Elements.
        n: u32,
        /// TV only.
        c: u32,
        h: u32,
        w: u32,
        /// Number of workgroups in the partial pass (grid-stride).
        partials: u32,
        accumulate: u32,
        /// Backward: upstream gradient.
        scale: f32,
        /// TV: 1 / (c·(h−1)·w), 0 when h = 1.
        inv_nh: f32,
        /// TV: 1 / (c·h·(w−1)), 0 when w = 1.
        inv_nw: f32,
    }
}

nst_gpu::contracts! {
    "loss.wgsl", Uniform;
    /// `mse_partial`: partial sums of `(a − b)²`.
    MSE_PARTIAL = "mse_partial": read(1, "a"), read(2, "b"), read_write(3, "partial sums");
    /// `mse_backward`: `ga` from `a` and `b`.
    MSE_BACKWARD = "mse_backward": read(1, "a"), read(2, "b"), read_write(3, "ga");
    /// `tv_partial`: partial sums of the total variation of `x`.
    TV_PARTIAL = "tv_partial": read(1, "x"), read_write(3, "partial sums");
    /// `tv_backward`: `gx` from `x`.
    TV_BACKWARD = "tv_backward": read(1, "x"), read_write(3, "gx");
    /// `out_of_range_partial`: partial sums of the squared distance of `x` outside [0, 1].
    OUT_OF_RANGE_PARTIAL = "out_of_range_partial": read(1, "x"), read_write(3, "partial sums");
    /// `out_of_range_backward`: `gx` from `x`.
    OUT_OF_RANGE_BACKWARD = "out_of_range_backward": read(1, "x"), read_write(3, "gx");
}

crate::shader!(
    /// `shaders/loss.wgsl`: the losses, on the workgroup reduction of `workgroup_sum.wgsl`.
    SHADER = "loss.wgsl" after [Uniform::WGSL, crate::shader_file!("workgroup_sum.wgsl")]
    with [
        MSE_PARTIAL,
        MSE_BACKWARD,
        TV_PARTIAL,
        TV_BACKWARD,
        OUT_OF_RANGE_PARTIAL,
        OUT_OF_RANGE_BACKWARD
    ]
);

/// What a loss's two launches share: a first-stage kernel reduced into a scalar slot, and an
/// element-wise backward; `inputs` are bound before the partial sums or the gradient.
#[derive(Clone)]
struct Loss {
    partial: EntryPoint,
    backward: EntryPoint,
    reduce: Reduce,
}

impl Loss {
    fn new(
        ctx: &Context, module: &wgpu::ShaderModule, reduce: Reduce, partial: &'static Contract,
        backward: &'static Contract,
    ) -> Result<Self> {
        Ok(Loss {
            partial: entry(ctx, module, partial)?,
            backward: entry(ctx, module, backward)?,
            reduce,
        })
    }

    /// `out[index] (+)= scale · Σ` over `n` elements of the partial kernel's terms.
    fn forward(
        &self, ctx: &Context, u: Uniform, inputs: &[View<'_>], n: u64, out: ViewMut<'_>,
        index: u32, scale: f32, accumulate: bool,
    ) -> Result<Reduction> {
        self.reduce
            .build(ctx, n, out, index, scale, accumulate, |partials, count| {
                let u = Uniform {
                    partials: count,
                    ..u
                };
                let binds: Vec<Bind<'_>> = inputs
                    .iter()
                    .map(|&v| v.into())
                    .chain([partials.into()])
                    .collect();
                self.partial
                    .launch(ctx, &u, &binds, Groups::Exact([count, 1, 1]))
            })
    }

    /// The gradient `g` of `n` elements, one thread each.
    fn backward(
        &self, ctx: &Context, u: Uniform, inputs: &[View<'_>], g: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let binds: Vec<Bind<'_>> = inputs.iter().map(|&v| v.into()).chain([g.into()]).collect();
        self.backward.launch(ctx, &u, &binds, per_element(g.len))
    }
}

/// `mse(a, b) = mean((a − b)²)`, used for the content loss (feature maps) and the style loss
/// (Gram matrices).
pub struct Mse(Loss);

impl Mse {
    /// The MSE entry points of `module`, the compiled `shaders/loss.wgsl`, finishing with
    /// `reduce`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule, reduce: Reduce) -> Result<Self> {
        Loss::new(ctx, module, reduce, &MSE_PARTIAL, &MSE_BACKWARD).map(Mse)
    }

    /// `out[index] = mse(a, b)`.
    pub fn forward(
        &self, ctx: &Context, a: View<'_>, b: View<'_>, out: ViewMut<'_>, index: u32,
    ) -> Result<Reduction> {
        self.forward_scaled(ctx, (a, b), out, index, 1.0 / a.len as f32, false)
    }

    /// `out[index] (+)= scale · Σ (a − b)²` over one chunk `(a, b)` of a pair of tensors: with
    /// `scale = 1/N` and `accumulate` on every chunk after the first, the mean over tensors
    /// stored in chunks.
    pub fn forward_scaled(
        &self, ctx: &Context, (a, b): (View<'_>, View<'_>), out: ViewMut<'_>, index: u32,
        scale: f32, accumulate: bool,
    ) -> Result<Reduction> {
        expect_len("mse target", &b, a.len)?;
        let u = Uniform {
            n: a.len as u32,
            ..Default::default()
        };
        self.0
            .forward(ctx, u, &[a, b], a.len, out, index, scale, accumulate)
    }

    /// `ga (+)= scale · ∂mse/∂a = scale · 2(a − b)/n`.
    pub fn backward(
        &self, ctx: &Context, a: View<'_>, b: View<'_>, ga: ViewMut<'_>, scale: f32,
        accumulate: bool,
    ) -> Result<Dispatch> {
        expect_len("mse target", &b, a.len)?;
        expect_len("mse gradient", &ga, a.len)?;
        let u = Uniform {
            n: a.len as u32,
            scale,
            accumulate: accumulate as u32,
            ..Default::default()
        };
        self.0.backward(ctx, u, &[a, b], ga)
    }
}

/// Total variation of a `c × h × w` image: the mean absolute difference between vertical
/// neighbors plus that between horizontal neighbors.
pub struct TotalVariation(Loss);

/// The uniform of a `c × h × w` image, after checking `x` against it.
fn tv_uniform([c, h, w]: [u32; 3], x: &View<'_>) -> Result<Uniform> {
    expect_nonzero("tv shape", &[c, h, w])?;
    expect_len("tv input", x, c as u64 * h as u64 * w as u64)?;
    let inv = |count: u64| if count == 0 { 0.0 } else { 1.0 / count as f32 };
    Ok(Uniform {
        n: c * h * w,
        c,
        h,
        w,
        inv_nh: inv(c as u64 * (h as u64 - 1) * w as u64),
        inv_nw: inv(c as u64 * h as u64 * (w as u64 - 1)),
        ..Default::default()
    })
}

impl TotalVariation {
    /// The TV entry points of `module`, the compiled `shaders/loss.wgsl`, finishing with
    /// `reduce`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule, reduce: Reduce) -> Result<Self> {
        Loss::new(ctx, module, reduce, &TV_PARTIAL, &TV_BACKWARD).map(TotalVariation)
    }

    /// `out[index] = tv(x)`, `x` being `c × h × w` (`chw`).
    pub fn forward(
        &self, ctx: &Context, chw: [u32; 3], x: View<'_>, out: ViewMut<'_>, index: u32,
    ) -> Result<Reduction> {
        let u = tv_uniform(chw, &x)?;
        self.0.forward(ctx, u, &[x], x.len, out, index, 1.0, false)
    }

    /// `gx (+)= scale · ∂tv/∂x`, `x` being `c × h × w` (`chw`).
    pub fn backward(
        &self, ctx: &Context, chw: [u32; 3], x: View<'_>, gx: ViewMut<'_>, scale: f32,
        accumulate: bool,
    ) -> Result<Dispatch> {
        let u = tv_uniform(chw, &x)?;
        expect_len("tv gradient", &gx, x.len)?;
        let u = Uniform {
            scale,
            accumulate: accumulate as u32,
            ..u
        };
        self.0.backward(ctx, u, &[x], gx)
    }
}

/// The out-of-range penalty `mean(max(x − 1, 0)² + max(−x, 0)²)`: 0 for an image inside
/// [0, 1]. L-BFGS steps are not bounded, and the result is clamped when saved; this term keeps
/// the pixels near [0, 1] while the image is optimized, so clamping takes away little of the
/// style (`docs/loss.md`, "How many iterations").
pub struct OutOfRange(Loss);

impl OutOfRange {
    /// The out-of-range entry points of `module`, the compiled `shaders/loss.wgsl`, finishing
    /// with `reduce`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule, reduce: Reduce) -> Result<Self> {
        Loss::new(
            ctx,
            module,
            reduce,
            &OUT_OF_RANGE_PARTIAL,
            &OUT_OF_RANGE_BACKWARD,
        )
        .map(OutOfRange)
    }

    /// `out[index] = out_of_range(x)`.
    pub fn forward(
        &self, ctx: &Context, x: View<'_>, out: ViewMut<'_>, index: u32,
    ) -> Result<Reduction> {
        expect_nonzero("out-of-range input", &[x.len as u32])?;
        let u = Uniform {
            n: x.len as u32,
            ..Default::default()
        };
        self.0
            .forward(ctx, u, &[x], x.len, out, index, 1.0 / x.len as f32, false)
    }

    /// `gx (+)= scale · ∂out_of_range/∂x`.
    pub fn backward(
        &self, ctx: &Context, x: View<'_>, gx: ViewMut<'_>, scale: f32, accumulate: bool,
    ) -> Result<Dispatch> {
        expect_len("out-of-range gradient", &gx, x.len)?;
        let u = Uniform {
            n: x.len as u32,
            scale,
            accumulate: accumulate as u32,
            ..Default::default()
        };
        self.0.backward(ctx, u, &[x], gx)
    }
}
