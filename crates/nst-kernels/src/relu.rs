//! ReLU forward and backward. See `shaders/relu.wgsl`.

use crate::{entry, expect_len, per_element};
use nst_gpu::{Context, Dispatch, EntryPoint, Result, View, ViewMut};

nst_gpu::uniform! {
    struct Uniform {
        n: u32,
        /// Backward: add into gx (a tapped layer's gradient already holds its losses').
        accumulate: u32,
    }
}

nst_gpu::contracts! {
    "relu.wgsl", Uniform;
    /// `relu_forward`: `y` from `x`.
    FORWARD = "relu_forward": read(1, "x"), read_write(3, "y");
    /// `relu_backward`: `gx` from `y` and `gy`.
    BACKWARD = "relu_backward": read(1, "y"), read(2, "gy"), read_write(3, "gx");
}

crate::shader!(
    /// `shaders/relu.wgsl`: ReLU.
    SHADER = "relu.wgsl" after [Uniform::WGSL]
    with [FORWARD, BACKWARD]
);

/// The ReLU kernels.
pub struct Relu {
    forward: EntryPoint,
    backward: EntryPoint,
}

impl Relu {
    /// Compiles `shaders/relu.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        Ok(Relu {
            forward: entry(ctx, &module, &FORWARD)?,
            backward: entry(ctx, &module, &BACKWARD)?,
        })
    }

    /// `y = max(x, 0)`.
    pub fn forward(&self, ctx: &Context, x: View<'_>, y: ViewMut<'_>) -> Result<Dispatch> {
        expect_len("relu output", &y, x.len)?;
        let u = Uniform {
            n: x.len as u32,
            accumulate: 0,
        };
        self.forward
            .launch(ctx, &u, &[x.into(), y.into()], per_element(x.len))
    }

    /// `gx = gy · [y > 0]`, where `y` is the forward output (or input: same sign); adds into
    /// `gx` when `accumulate`.
    pub fn backward(
        &self, ctx: &Context, y: View<'_>, gy: View<'_>, gx: ViewMut<'_>, accumulate: bool,
    ) -> Result<Dispatch> {
        expect_len("relu output gradient", &gy, y.len)?;
        expect_len("relu input gradient", &gx, y.len)?;
        let u = Uniform {
            n: y.len as u32,
            accumulate: accumulate as u32,
        };
        self.backward.launch(
            ctx,
            &u,
            &[y.into(), gy.into(), gx.into()],
            per_element(y.len),
        )
    }
}
