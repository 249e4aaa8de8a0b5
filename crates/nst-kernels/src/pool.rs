//! 2×2, stride-2 max and average pooling with PyTorch's semantics (odd sizes floor; the max
//! pool's gradient goes to the first maximum). See `shaders/pool.wgsl`.

use crate::{expect_len, expect_nonzero, Entry};
use nst_gpu::{Bind, Context, Dispatch, Result, Slot, View};

/// Shape of a pooling input: `c × h × w`; the output is `c × ⌊h/2⌋ × ⌊w/2⌋`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Channels.
    pub c: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
}

impl PoolShape {
    /// Elements of the input.
    pub fn input_len(&self) -> u64 {
        self.c as u64 * self.h as u64 * self.w as u64
    }
    /// Elements of the output.
    pub fn output_len(&self) -> u64 {
        self.c as u64 * (self.h / 2) as u64 * (self.w / 2) as u64
    }
    fn check(&self) -> Result<()> {
        expect_nonzero("pool output shape", &[self.c, self.h / 2, self.w / 2])
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    c: u32,
    h: u32,
    w: u32,
    accumulate: u32,
}

fn uniform(ctx: &Context, label: &str, s: PoolShape, accumulate: bool) -> wgpu::Buffer {
    ctx.uniform(
        label,
        &Uniform {
            c: s.c,
            h: s.h,
            w: s.w,
            accumulate: accumulate as u32,
        },
    )
}

/// Max pooling kernels.
pub struct MaxPool2d {
    forward: Entry,
    backward: Entry,
}

impl MaxPool2d {
    /// The max entry points of `module`, the compiled `shaders/pool.wgsl`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule) -> Result<Self> {
        use Slot::*;
        Ok(MaxPool2d {
            forward: Entry::new(
                ctx,
                module,
                "max_pool2d_forward",
                &[Uniform, Read, Write, Write],
            )?,
            backward: Entry::new(
                ctx,
                module,
                "max_pool2d_backward",
                &[Uniform, Read, Write, Write],
            )?,
        })
    }

    /// `y` = window maxima; `argmax` (u32, same length as `y`) = position `dy·2+dx` of each.
    pub fn forward(
        &self,
        ctx: &Context,
        s: PoolShape,
        x: View<'_>,
        y: View<'_>,
        argmax: View<'_>,
    ) -> Result<Dispatch> {
        s.check()?;
        expect_len("max pool input", &x, s.input_len())?;
        expect_len("max pool output", &y, s.output_len())?;
        expect_len("max pool arg-max", &argmax, s.output_len())?;
        let u = uniform(ctx, "max_pool2d_forward", s, false);
        let d = self.forward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("max pool input", x),
                Bind::Storage("max pool output", y),
                Bind::Storage("max pool arg-max", argmax),
            ],
            s.output_len(),
        )?;
        Ok(d.owning(u))
    }

    /// `gx`: each window's `gy` at its arg-max, zero elsewhere; added into `gx` when
    /// `accumulate`.
    pub fn backward(
        &self,
        ctx: &Context,
        s: PoolShape,
        gy: View<'_>,
        argmax: View<'_>,
        gx: View<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        s.check()?;
        expect_len("max pool output gradient", &gy, s.output_len())?;
        expect_len("max pool arg-max", &argmax, s.output_len())?;
        expect_len("max pool input gradient", &gx, s.input_len())?;
        let u = uniform(ctx, "max_pool2d_backward", s, accumulate);
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("max pool output gradient", gy),
                Bind::Storage("max pool input gradient", gx),
                Bind::Storage("max pool arg-max", argmax),
            ],
            s.input_len(),
        )?;
        Ok(d.owning(u))
    }
}

/// Average pooling kernels.
pub struct AvgPool2d {
    forward: Entry,
    backward: Entry,
}

impl AvgPool2d {
    /// The average entry points of `module`, the compiled `shaders/pool.wgsl`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule) -> Result<Self> {
        use Slot::*;
        Ok(AvgPool2d {
            forward: Entry::new(ctx, module, "avg_pool2d_forward", &[Uniform, Read, Write])?,
            backward: Entry::new(ctx, module, "avg_pool2d_backward", &[Uniform, Read, Write])?,
        })
    }

    /// `y` = window means.
    pub fn forward(
        &self,
        ctx: &Context,
        s: PoolShape,
        x: View<'_>,
        y: View<'_>,
    ) -> Result<Dispatch> {
        s.check()?;
        expect_len("avg pool input", &x, s.input_len())?;
        expect_len("avg pool output", &y, s.output_len())?;
        let u = uniform(ctx, "avg_pool2d_forward", s, false);
        let d = self.forward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("avg pool input", x),
                Bind::Storage("avg pool output", y),
            ],
            s.output_len(),
        )?;
        Ok(d.owning(u))
    }

    /// `gx` = `gy / 4` spread over each window, zero in a dropped last row/column; added
    /// into `gx` when `accumulate`.
    pub fn backward(
        &self,
        ctx: &Context,
        s: PoolShape,
        gy: View<'_>,
        gx: View<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        s.check()?;
        expect_len("avg pool output gradient", &gy, s.output_len())?;
        expect_len("avg pool input gradient", &gx, s.input_len())?;
        let u = uniform(ctx, "avg_pool2d_backward", s, accumulate);
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("avg pool output gradient", gy),
                Bind::Storage("avg pool input gradient", gx),
            ],
            s.input_len(),
        )?;
        Ok(d.owning(u))
    }
}
