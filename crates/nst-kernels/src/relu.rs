//! ReLU forward and backward. See `shaders/relu.wgsl`.

use crate::{expect_len, Entry};
use nst_gpu::{Bind, Context, Dispatch, Result, Slot, View};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    accumulate: u32,
    _pad: [u32; 2],
}

/// The ReLU kernels.
pub struct Relu {
    forward: Entry,
    backward: Entry,
}

impl Relu {
    /// Compiles `shaders/relu.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = nst_gpu::shader(ctx, "relu.wgsl", crate::RELU_WGSL)?;
        use Slot::*;
        Ok(Relu {
            forward: Entry::new(ctx, &module, "relu_forward", &[Uniform, Read, Write])?,
            backward: Entry::new(ctx, &module, "relu_backward", &[Uniform, Read, Write, Read])?,
        })
    }

    /// `y = max(x, 0)`.
    pub fn forward(&self, ctx: &Context, x: View<'_>, y: View<'_>) -> Result<Dispatch> {
        expect_len("relu output", &y, x.len)?;
        let u = ctx.uniform(
            "relu_forward",
            &Uniform {
                n: x.len as u32,
                accumulate: 0,
                _pad: [0; 2],
            },
        );
        let d = self.forward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("relu input", x),
                Bind::Storage("relu output", y),
            ],
            x.len,
        )?;
        Ok(d.owning(u))
    }

    /// `gx = gy · [y > 0]`, where `y` is the forward output (or input: same sign); adds into
    /// `gx` when `accumulate`.
    pub fn backward(
        &self,
        ctx: &Context,
        y: View<'_>,
        gy: View<'_>,
        gx: View<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        expect_len("relu output gradient", &gy, y.len)?;
        expect_len("relu input gradient", &gx, y.len)?;
        let u = ctx.uniform(
            "relu_backward",
            &Uniform {
                n: y.len as u32,
                accumulate: accumulate as u32,
                _pad: [0; 2],
            },
        );
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("relu output", y),
                Bind::Storage("relu input gradient", gx),
                Bind::Storage("relu output gradient", gy),
            ],
            y.len,
        )?;
        Ok(d.owning(u))
    }
}
