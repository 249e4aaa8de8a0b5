//! 3×3 convolution (stride 1, zero padding 1) with bias and optional fused ReLU, and its
//! gradient with respect to the input. See `shaders/conv2d.wgsl`.

use crate::{expect_len, expect_nonzero, Entry};
use nst_gpu::{Bind, Context, Dispatch, Result, Slot, View};

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

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    c_in: u32,
    c_out: u32,
    h: u32,
    w: u32,
    relu: u32,
    _pad: [u32; 3],
}

/// The conv2d kernels.
pub struct Conv2d {
    forward: Entry,
    backward: Entry,
}

impl Conv2d {
    /// Compiles `shaders/conv2d.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = nst_gpu::shader(ctx, "conv2d.wgsl", crate::CONV2D_WGSL)?;
        use Slot::*;
        Ok(Conv2d {
            forward: Entry::new(
                ctx,
                &module,
                "conv2d_forward",
                &[Uniform, Read, Read, Read, Write],
            )?,
            backward: Entry::new(
                ctx,
                &module,
                "conv2d_backward_input",
                &[Uniform, Read, Read, Unused, Write],
            )?,
        })
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
        y: View<'_>,
        relu: bool,
    ) -> Result<Dispatch> {
        check(s, &x, &weight, &y)?;
        expect_len("conv2d bias", &bias, s.c_out as u64)?;
        let u = ctx.uniform(
            "conv2d_forward",
            &Uniform {
                c_in: s.c_in,
                c_out: s.c_out,
                h: s.h,
                w: s.w,
                relu: relu as u32,
                _pad: [0; 3],
            },
        );
        let n = s.c_out as u64 * s.h as u64 * s.w as u64;
        let d = self.forward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("conv2d input", x),
                Bind::Storage("conv2d weight", weight),
                Bind::Storage("conv2d bias", bias),
                Bind::Storage("conv2d output", y),
            ],
            n,
        )?;
        Ok(d.owning(u))
    }

    /// `gx = ∂(Σ gy·conv(x))/∂x`: the input gradient (no ReLU; apply its backward first).
    /// `gy`: (c_out, h, w); `gx`: (c_in, h, w).
    pub fn backward_input(
        &self,
        ctx: &Context,
        s: ConvShape,
        gy: View<'_>,
        weight: View<'_>,
        gx: View<'_>,
    ) -> Result<Dispatch> {
        check(s, &gx, &weight, &gy)?;
        // The backward is the forward gather with the roles of the channels swapped.
        let u = ctx.uniform(
            "conv2d_backward_input",
            &Uniform {
                c_in: s.c_out,
                c_out: s.c_in,
                h: s.h,
                w: s.w,
                relu: 0,
                _pad: [0; 3],
            },
        );
        let n = s.c_in as u64 * s.h as u64 * s.w as u64;
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("conv2d output gradient", gy),
                Bind::Storage("conv2d weight", weight),
                Bind::None,
                Bind::Storage("conv2d input gradient", gx),
            ],
            n,
        )?;
        Ok(d.owning(u))
    }
}

fn check(s: ConvShape, x: &View<'_>, weight: &View<'_>, y: &View<'_>) -> Result<()> {
    expect_nonzero("conv2d shape", &[s.c_in, s.c_out, s.h, s.w])?;
    let plane = s.h as u64 * s.w as u64;
    expect_len("conv2d input", x, s.c_in as u64 * plane)?;
    expect_len("conv2d weight", weight, s.c_out as u64 * s.c_in as u64 * 9)?;
    expect_len("conv2d output", y, s.c_out as u64 * plane)
}
