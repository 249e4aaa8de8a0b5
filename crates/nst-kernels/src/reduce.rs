//! GPU reductions in two stages: a first-stage kernel (a loss or a dot product) writes one
//! partial sum per workgroup with a grid-stride loop over at most [`MAX_PARTIALS`] workgroups;
//! `reduce_finish` (`shaders/reduce.wgsl`) adds them in a fixed order and stores
//! `scale · Σ` into one slot of a scalar buffer.

use nst_gpu::{Context, Dispatch, EntryPoint, Groups, Record, Result, View, ViewMut};

/// Most workgroups a first-stage pass uses; the finishing workgroup sums this many values.
pub const MAX_PARTIALS: u32 = 256;

/// Workgroups of a first-stage pass over `n` elements.
pub fn partial_count(n: u64) -> u32 {
    n.div_ceil(256).clamp(1, MAX_PARTIALS as u64) as u32
}

nst_gpu::uniform! {
    struct Uniform {
        /// Number of partial sums.
        count: u32,
        /// Slot in `scalars`.
        out_index: u32,
        /// 1: scalars[out_index] += result.
        accumulate: u32,
        scale: f32,
    }
}

nst_gpu::contracts! {
    "reduce.wgsl", Uniform;
    /// `reduce_finish`: `scalars[index] (+)= scale · Σ partials`.
    FINISH = "reduce_finish": read(1, "partial sums"), read_write(2, "scalars");
}

crate::shader!(
    /// `shaders/reduce.wgsl`: the last pass of a reduction, on `workgroup_sum.wgsl`.
    SHADER = "reduce.wgsl" after [Uniform::WGSL, crate::shader_file!("workgroup_sum.wgsl")]
    with [FINISH]
);

/// The finishing kernel (cheap to clone: the op types that reduce share one).
#[derive(Clone)]
pub struct Reduce {
    finish: EntryPoint,
}

/// A prepared reduction: the first stage, the finish, and the partial-sum buffer they share.
pub struct Reduction {
    partial: Dispatch,
    finish: Dispatch,
    _partials: wgpu::Buffer,
}

impl Reduction {
    /// Bytes of storage one reduction creates: its partial sums.
    pub const BYTES: u64 = nst_gpu::tensor_bytes(MAX_PARTIALS as u64);
}

impl Record for Reduction {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.partial.record(pass);
        self.finish.record(pass);
    }
}

impl Reduce {
    /// Compiles `shaders/reduce.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        Ok(Reduce {
            finish: EntryPoint::new(ctx, &module, &FINISH, &[])?,
        })
    }

    /// Builds a reduction over `n` elements: `first_stage(partials, count)` prepares the
    /// first-stage dispatch writing `count` partial sums into `partials`; the result,
    /// `scale · Σ`, goes to `out[index]` (added to it when `accumulate`).
    pub(crate) fn build(
        &self, ctx: &Context, n: u64, out: ViewMut<'_>, index: u32, scale: f32, accumulate: bool,
        first_stage: impl FnOnce(ViewMut<'_>, u32) -> Result<Dispatch>,
    ) -> Result<Reduction> {
        if index as u64 >= out.len {
            return Err(nst_gpu::GpuError::BadShape(format!(
                "scalar slot {index} is outside a buffer of {} scalars",
                out.len
            )));
        }
        let count = partial_count(n);
        let partials = ctx.tensor("partial sums", MAX_PARTIALS as u64)?;
        let partial = first_stage(ViewMut::range(&partials, 0, count as u64), count)?;
        let u = Uniform {
            count,
            out_index: index,
            accumulate: accumulate as u32,
            scale,
        };
        let finish = self.finish.launch(
            ctx,
            &u,
            &[View::range(&partials, 0, count as u64).into(), out.into()],
            Groups::Exact([1, 1, 1]),
        )?;
        Ok(Reduction {
            partial,
            finish,
            _partials: partials,
        })
    }
}
