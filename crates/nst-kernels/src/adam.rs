//! Adam, exactly as PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad), updating the
//! image in place on the GPU. See `shaders/adam.wgsl`.

use crate::{expect_len, Entry};
use nst_gpu::{Bind, Context, Dispatch, GpuError, Record, Result, Slot, View};

/// Adam's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    /// Step size.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
}

impl AdamParams {
    /// `lr` with PyTorch's defaults β = (0.9, 0.999), ε = 1e-8.
    pub fn new(lr: f64) -> Self {
        AdamParams {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    _pad: [u32; 3],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    sqrt_bc2: f32,
    _pad1: [f32; 2],
}

impl Uniform {
    fn at_step(n: u32, p: &AdamParams, step: u32) -> Self {
        let t = step as f64;
        let bc1 = 1.0 - p.beta1.powf(t);
        let bc2 = 1.0 - p.beta2.powf(t);
        Uniform {
            n,
            _pad: [0; 3],
            lr: p.lr as f32,
            beta1: p.beta1 as f32,
            beta2: p.beta2 as f32,
            eps: p.eps as f32,
            step_size: (p.lr / bc1) as f32,
            sqrt_bc2: bc2.sqrt() as f32,
            _pad1: [0.0; 2],
        }
    }
}

/// The Adam kernel.
pub struct Adam {
    step: Entry,
}

/// A prepared Adam update of one parameter vector; [`AdamStep::set_step`] before each submit.
pub struct AdamStep {
    dispatch: Dispatch,
    params: AdamParams,
    n: u32,
}

impl Adam {
    /// Compiles `shaders/adam.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = nst_gpu::shader(ctx, "adam.wgsl", crate::ADAM_WGSL)?;
        use Slot::*;
        Ok(Adam {
            step: Entry::new(
                ctx,
                &module,
                "adam_step",
                &[Uniform, Read, Write, Write, Write],
            )?,
        })
    }

    /// Prepares `x ← adam(x, grad)` with moment buffers `m`, `v` (zero them before step 1).
    pub fn prepare(
        &self,
        ctx: &Context,
        params: AdamParams,
        grad: View<'_>,
        x: View<'_>,
        m: View<'_>,
        v: View<'_>,
    ) -> Result<AdamStep> {
        for (name, value) in [
            ("lr", params.lr),
            ("beta1", params.beta1),
            ("beta2", params.beta2),
            ("eps", params.eps),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(GpuError::BadShape(format!(
                    "Adam {name} must be finite and ≥ 0, got {value}"
                )));
            }
        }
        if params.beta1 >= 1.0 || params.beta2 >= 1.0 {
            return Err(GpuError::BadShape("Adam betas must lie in [0, 1)".into()));
        }
        expect_len("adam gradient", &grad, x.len)?;
        expect_len("adam first moment", &m, x.len)?;
        expect_len("adam second moment", &v, x.len)?;
        let n = x.len as u32;
        let u = ctx.uniform("adam_step", &Uniform::at_step(n, &params, 1));
        let dispatch = self.step.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("adam gradient", grad),
                Bind::Storage("adam parameters", x),
                Bind::Storage("adam first moment", m),
                Bind::Storage("adam second moment", v),
            ],
            x.len,
        )?;
        Ok(AdamStep {
            dispatch: dispatch.owning(u),
            params,
            n,
        })
    }
}

impl AdamStep {
    /// Sets the step number t (1-based) used for the bias corrections of the next recorded
    /// update; a queued write, applied at the next submit.
    pub fn set_step(&self, ctx: &Context, step: u32) {
        let u = Uniform::at_step(self.n, &self.params, step.max(1));
        ctx.queue
            .write_buffer(&self.dispatch.uniforms[0], 0, bytemuck::bytes_of(&u));
    }
}

impl Record for AdamStep {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.dispatch.record(pass);
    }
}
