//! Mean-squared error and total variation, reduced on the GPU, and their backward passes.
//! See `shaders/loss.wgsl`.

use crate::reduce::{Reduce, Reduction};
use crate::{expect_len, expect_nonzero, Entry};
use nst_gpu::{Bind, Context, Dispatch, Result, Slot, View};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    partials: u32,
    accumulate: u32,
    _pad: [u32; 2],
    scale: f32,
    inv_nh: f32,
    inv_nw: f32,
    _pad1: f32,
}

/// `mse(a, b) = mean((a − b)²)`, used for the content loss (feature maps) and the style loss
/// (Gram matrices).
pub struct Mse {
    partial: Entry,
    backward: Entry,
    reduce: Reduce,
}

impl Mse {
    /// The MSE entry points of `module`, the compiled `shaders/loss.wgsl`, finishing with
    /// `reduce`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule, reduce: Reduce) -> Result<Self> {
        use Slot::*;
        Ok(Mse {
            partial: Entry::new(ctx, module, "mse_partial", &[Uniform, Read, Read, Write])?,
            backward: Entry::new(ctx, module, "mse_backward", &[Uniform, Read, Read, Write])?,
            reduce,
        })
    }

    /// `out[index] = mse(a, b)`.
    pub fn forward(
        &self,
        ctx: &Context,
        a: View<'_>,
        b: View<'_>,
        out: View<'_>,
        index: u32,
    ) -> Result<Reduction> {
        self.forward_scaled(ctx, a, b, out, index, 1.0 / a.len as f32, false)
    }

    /// `out[index] (+)= scale · Σ (a − b)²`: with `scale = 1/N` and `accumulate` on every
    /// chunk after the first, the mean over a tensor stored in chunks.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_scaled(
        &self,
        ctx: &Context,
        a: View<'_>,
        b: View<'_>,
        out: View<'_>,
        index: u32,
        scale: f32,
        accumulate: bool,
    ) -> Result<Reduction> {
        expect_len("mse target", &b, a.len)?;
        let n = a.len;
        self.reduce
            .build(ctx, n, out, index, scale, accumulate, |partials, count| {
                let u = ctx.uniform(
                    "mse_partial",
                    &Uniform {
                        n: n as u32,
                        partials: count,
                        ..Default::default()
                    },
                );
                let d = self.partial.dispatch_groups(
                    ctx,
                    &[
                        Bind::Uniform(&u),
                        Bind::Storage("mse input", a),
                        Bind::Storage("mse target", b),
                        Bind::Storage("partial sums", partials),
                    ],
                    [count, 1, 1],
                )?;
                Ok(d.owning(u))
            })
    }

    /// `ga (+)= scale · ∂mse/∂a = scale · 2(a − b)/n`.
    pub fn backward(
        &self,
        ctx: &Context,
        a: View<'_>,
        b: View<'_>,
        ga: View<'_>,
        scale: f32,
        accumulate: bool,
    ) -> Result<Dispatch> {
        expect_len("mse target", &b, a.len)?;
        expect_len("mse gradient", &ga, a.len)?;
        let u = ctx.uniform(
            "mse_backward",
            &Uniform {
                n: a.len as u32,
                scale,
                accumulate: accumulate as u32,
                ..Default::default()
            },
        );
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("mse input", a),
                Bind::Storage("mse target", b),
                Bind::Storage("mse gradient", ga),
            ],
            a.len,
        )?;
        Ok(d.owning(u))
    }
}

/// Total variation of a `c × h × w` image: the mean absolute difference between vertical
/// neighbours plus that between horizontal neighbours.
pub struct TotalVariation {
    partial: Entry,
    backward: Entry,
    reduce: Reduce,
}

fn tv_uniform(c: u32, h: u32, w: u32) -> Uniform {
    let inv = |count: u64| if count == 0 { 0.0 } else { 1.0 / count as f32 };
    Uniform {
        n: c * h * w,
        c,
        h,
        w,
        inv_nh: inv(c as u64 * (h as u64 - 1) * w as u64),
        inv_nw: inv(c as u64 * h as u64 * (w as u64 - 1)),
        ..Default::default()
    }
}

impl TotalVariation {
    /// The TV entry points of `module`, the compiled `shaders/loss.wgsl`, finishing with
    /// `reduce`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule, reduce: Reduce) -> Result<Self> {
        use Slot::*;
        Ok(TotalVariation {
            partial: Entry::new(ctx, module, "tv_partial", &[Uniform, Read, Unused, Write])?,
            backward: Entry::new(ctx, module, "tv_backward", &[Uniform, Read, Unused, Write])?,
            reduce,
        })
    }

    /// `out[index] = tv(x)`, `x` being `c × h × w`.
    pub fn forward(
        &self,
        ctx: &Context,
        c: u32,
        h: u32,
        w: u32,
        x: View<'_>,
        out: View<'_>,
        index: u32,
    ) -> Result<Reduction> {
        expect_nonzero("tv shape", &[c, h, w])?;
        expect_len("tv input", &x, c as u64 * h as u64 * w as u64)?;
        self.reduce
            .build(ctx, x.len, out, index, 1.0, false, |partials, count| {
                let u = ctx.uniform(
                    "tv_partial",
                    &Uniform {
                        partials: count,
                        ..tv_uniform(c, h, w)
                    },
                );
                let d = self.partial.dispatch_groups(
                    ctx,
                    &[
                        Bind::Uniform(&u),
                        Bind::Storage("tv input", x),
                        Bind::None,
                        Bind::Storage("partial sums", partials),
                    ],
                    [count, 1, 1],
                )?;
                Ok(d.owning(u))
            })
    }

    /// `gx (+)= scale · ∂tv/∂x`.
    pub fn backward(
        &self,
        ctx: &Context,
        c: u32,
        h: u32,
        w: u32,
        x: View<'_>,
        gx: View<'_>,
        scale: f32,
        accumulate: bool,
    ) -> Result<Dispatch> {
        expect_nonzero("tv shape", &[c, h, w])?;
        expect_len("tv input", &x, c as u64 * h as u64 * w as u64)?;
        expect_len("tv gradient", &gx, x.len)?;
        let u = ctx.uniform(
            "tv_backward",
            &Uniform {
                scale,
                accumulate: accumulate as u32,
                ..tv_uniform(c, h, w)
            },
        );
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("tv input", x),
                Bind::None,
                Bind::Storage("tv gradient", gx),
            ],
            x.len,
        )?;
        Ok(d.owning(u))
    }
}
