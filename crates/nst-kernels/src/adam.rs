//! Adam, exactly as PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad), updating the
//! image in place on the GPU. See `shaders/adam.wgsl`.

use crate::{entry, expect_len, per_element};
use nst_gpu::{Context, Dispatch, EntryPoint, GpuError, Record, Result, View, ViewMut};

nst_gpu::uniform! {
    struct Uniform {
        n: u32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        /// `lr / bc1`.
        step_size: f32,
        /// `√bc2`.
        sqrt_bc2: f32,
    }
}

nst_gpu::contracts! {
    "adam.wgsl", Uniform;
    /// `adam_step`: `x`, `m` and `v` updated from `grad`.
    STEP = "adam_step": read(1, "grad"), read_write(2, "x"), read_write(3, "m"), read_write(4, "v");
}

crate::shader!(
    /// `shaders/adam.wgsl`: Adam's update.
    SHADER = "adam.wgsl" after [Uniform::WGSL]
    with [STEP]
);

impl Uniform {
    fn at_step(n: u32, p: &AdamParams, step: u32) -> Self {
        let t = step as f64;
        let bc1 = 1.0 - p.beta1.powf(t);
        let bc2 = 1.0 - p.beta2.powf(t);
        Uniform {
            n,
            lr: p.lr as f32,
            beta1: p.beta1 as f32,
            beta2: p.beta2 as f32,
            eps: p.eps as f32,
            step_size: (p.lr / bc1) as f32,
            sqrt_bc2: bc2.sqrt() as f32,
        }
    }
}

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment estimate `m`.
    pub beta1: f64,
    /// Decay of the second-moment estimate `v`.
    pub beta2: f64,
    /// Added to the denominator `√v̂` for stability.
    pub eps: f64,
}

impl AdamParams {
    /// PyTorch's defaults with the given learning rate: betas (0.9, 0.999), eps 1e-8.
    pub fn new(lr: f64) -> Self {
        AdamParams {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// The Adam kernel.
pub struct Adam {
    step: EntryPoint,
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
        let module = SHADER.compile(ctx)?;
        Ok(Adam {
            step: entry(ctx, &module, &STEP)?,
        })
    }

    /// Prepares `x ← adam(x, grad)` with moment buffers `m`, `v` (zero them before step 1).
    pub fn prepare(
        &self, ctx: &Context, params: AdamParams, grad: View<'_>, x: ViewMut<'_>, m: ViewMut<'_>,
        v: ViewMut<'_>,
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
        let dispatch = self.step.launch(
            ctx,
            &Uniform::at_step(n, &params, 1),
            &[grad.into(), x.into(), m.into(), v.into()],
            per_element(x.len),
        )?;
        Ok(AdamStep {
            dispatch,
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
