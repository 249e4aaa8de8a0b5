//! Pipelines with explicit bind-group layouts, and prepared dispatches.

use crate::buffer::View;
use crate::context::Context;
use crate::error::Result;
use crate::grid::grid;

/// How a kernel uses one binding slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// `var<uniform>`: the shape/scalar struct.
    Uniform,
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    Write,
    /// Declared in the shader file but not used by this entry point: left out of the layout.
    Unused,
}

/// An explicit bind-group layout: binding `i` is `slots[i]`. Explicit, because automatic
/// layouts drop bindings an entry point does not use and break files with several entry points.
pub fn layout(ctx: &Context, label: &str, slots: &[Slot]) -> wgpu::BindGroupLayout {
    let entries: Vec<_> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let ty = match s {
                Slot::Uniform => wgpu::BufferBindingType::Uniform,
                Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                Slot::Write => wgpu::BufferBindingType::Storage { read_only: false },
                Slot::Unused => return None,
            };
            Some(wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
        })
        .collect();
    ctx.device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        })
}

/// A WGSL module compiled from source (one file per op family).
pub fn shader(ctx: &Context, label: &str, source: &str) -> Result<wgpu::ShaderModule> {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    let checks = wgpu::ShaderRuntimeChecks {
        bounds_checks: BOUNDS_CHECKS,
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    // SAFETY: without bounds checks an out-of-range index is undefined behaviour on the GPU.
    // Every kernel indexes only inside the shapes its Rust wrapper validated against the bound
    // views' lengths before building the dispatch, and the tests, which run with the checks
    // on, compare every kernel against the CPU reference at edge shapes. Loop bounding and
    // integer-division guards stay on.
    ctx.scoped(|| Ok(unsafe { ctx.device.create_shader_module_trusted(desc, checks) }))
}

/// Whether wgpu adds bounds checks to the shaders: in debug builds (which the tests use), not in
/// release builds, where they cost time in every inner loop.
pub const BOUNDS_CHECKS: bool = cfg!(debug_assertions);

/// A compute pipeline for `entry` in `module`, with one explicit bind-group layout and
/// override constants.
pub fn pipeline(
    ctx: &Context,
    module: &wgpu::ShaderModule,
    entry: &str,
    layout: &wgpu::BindGroupLayout,
    constants: &[(&str, f64)],
) -> Result<wgpu::ComputePipeline> {
    ctx.scoped(|| {
        let pl = ctx
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(entry),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
        Ok(ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pl),
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            }))
    })
}

/// One bound resource of a dispatch.
pub enum Bind<'a> {
    /// A uniform buffer.
    Uniform(&'a wgpu::Buffer),
    /// A storage view, named for error messages.
    Storage(&'a str, View<'a>),
    /// Nothing: the slot is [`Slot::Unused`] for this entry point.
    None,
}

/// A kernel launch prepared once (bind group, uniforms, workgroup counts) and recorded into
/// any number of compute passes: no allocation happens when it is recorded.
pub struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    /// Uniform buffers this launch owns (kept alive, and writable for per-step scalars).
    pub uniforms: Vec<wgpu::Buffer>,
}

impl Dispatch {
    /// Binds `binds` (binding i = binds[i]) and sizes the grid for `invocations` threads in
    /// groups of `workgroup_size`.
    pub fn new(
        ctx: &Context,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        layout: &wgpu::BindGroupLayout,
        binds: &[Bind<'_>],
        invocations: u64,
        workgroup_size: u32,
    ) -> Result<Self> {
        let workgroups = grid(invocations, workgroup_size, ctx.max_workgroups_per_dim)?;
        Self::with_workgroups(ctx, label, pipeline, layout, binds, workgroups)
    }

    /// Like [`Dispatch::new`], with explicit workgroup counts.
    pub fn with_workgroups(
        ctx: &Context,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        layout: &wgpu::BindGroupLayout,
        binds: &[Bind<'_>],
        workgroups: [u32; 3],
    ) -> Result<Self> {
        let mut entries = Vec::with_capacity(binds.len());
        for (i, b) in binds.iter().enumerate() {
            let resource = match b {
                Bind::Uniform(buf) => buf.as_entire_binding(),
                Bind::Storage(name, view) => view.binding(ctx, name)?,
                Bind::None => continue,
            };
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            });
        }
        let bind_group = ctx.scoped(|| {
            Ok(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout,
                entries: &entries,
            }))
        })?;
        Ok(Dispatch {
            pipeline: pipeline.clone(),
            bind_group,
            workgroups,
            uniforms: Vec::new(),
        })
    }

    /// Keeps `buffer` alive with this dispatch.
    pub fn owning(mut self, buffer: wgpu::Buffer) -> Self {
        self.uniforms.push(buffer);
        self
    }

    /// Records the launch into `pass`.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }

    /// Workgroup counts of the launch.
    pub fn workgroups(&self) -> [u32; 3] {
        self.workgroups
    }
}

/// Anything that records kernel launches into a compute pass.
pub trait Record {
    /// Records the launches, in order.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>);
}

impl Record for Dispatch {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        Dispatch::record(self, pass)
    }
}

impl<T: Record> Record for [T] {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for r in self {
            r.record(pass);
        }
    }
}

/// Records `dispatches` in order into one compute pass, submits, and (optionally) waits.
/// Convenience for tests and one-off work; the engine records its own passes.
pub fn run(ctx: &Context, dispatches: &[&dyn Record]) -> Result<()> {
    ctx.scoped(|| {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("nst run"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("nst run"),
                timestamp_writes: None,
            });
            for d in dispatches {
                d.record(&mut pass);
            }
        }
        ctx.queue.submit([enc.finish()]);
        Ok(())
    })?;
    ctx.wait()
}
