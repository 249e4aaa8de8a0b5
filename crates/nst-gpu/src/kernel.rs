//! Binding contracts, pipelines with explicit bind-group layouts, and prepared dispatches.
//!
//! Each entry point's bindings are declared once, as a [`Contract`]: it builds the bind-group
//! layout, checks every launch's binds, and lets the shader test compare it with what the
//! WGSL entry point really uses.

use crate::buffer::{View, ViewMut};
use crate::context::Context;
use crate::error::{GpuError, Result};
use crate::grid::grid;

/// The Rust side of a uniform struct: its size and each field's name and byte offset, for the
/// shader test to compare with the WGSL struct. [`crate::uniform!`] makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformLayout {
    /// `size_of` the Rust struct (the buffer is zero-padded to a multiple of 16 bytes).
    pub size: usize,
    /// `(name, offset)` of each field, in declaration order.
    pub fields: &'static [(&'static str, usize)],
}

/// A type a uniform field may have: how WGSL spells it, and its alignment in a uniform buffer.
pub trait WgslType: bytemuck::Pod {
    /// The WGSL type.
    const NAME: &'static str;
    /// Its WGSL alignment (a multiple of the Rust one).
    const ALIGN: usize;
}

macro_rules! wgsl_types {
    ($($t:ty => $name:literal, $align:literal;)+) => {
        $(impl WgslType for $t {
            const NAME: &'static str = $name;
            const ALIGN: usize = $align;
        })+
    };
}

// Rust has no vector types: a 4-array stands for a `vec4` (a WGSL array in a uniform buffer
// would need a 16-byte stride).
wgsl_types! {
    u32 => "u32", 4;
    i32 => "i32", 4;
    f32 => "f32", 4;
    [u32; 4] => "vec4<u32>", 16;
    [f32; 4] => "vec4<f32>", 16;
}

/// Declares a kernel's uniform struct once: the `#[repr(C)]` Rust struct (bytemuck `Pod`, so
/// the calling crate depends on bytemuck), its [`UniformLayout`] as `Name::LAYOUT`, and its
/// WGSL declaration, of the same name and fields, as `Name::WGSL`, which the kernel prepends
/// to its shader's source. Fields are [`WgslType`]s, each at an offset that is a multiple of
/// its WGSL alignment (checked at compile time), so both languages lay the struct out alike;
/// the buffer is zero-padded to 16 bytes ([`crate::Context::uniform`]), which covers the WGSL
/// struct's rounded-up size.
///
/// ```
/// nst_gpu::uniform! {
///     /// The shape of a launch.
///     struct Uniform {
///         scale: [f32; 4],
///         n: u32,
///         /// Add into the output.
///         accumulate: u32,
///     }
/// }
/// assert_eq!(
///     Uniform::WGSL,
///     "struct Uniform {\n    scale: vec4<f32>,\n    n: u32,\n    accumulate: u32,\n}\n"
/// );
/// assert_eq!(Uniform::LAYOUT.fields, [("scale", 0), ("n", 16), ("accumulate", 20)]);
/// # let _ = Uniform { scale: [0.0; 4], n: 1, accumulate: 0 };
/// ```
///
/// A field WGSL would place elsewhere does not compile:
///
/// ```compile_fail
/// nst_gpu::uniform! {
///     struct Uniform {
///         n: u32,
///         scale: [f32; 4],
///     }
/// }
/// ```
#[macro_export]
macro_rules! uniform {
    ($(#[$attr:meta])* $vis:vis struct $name:ident {
        $($(#[$field_attr:meta])* $field:ident: $ty:ty),+ $(,)?
    }) => {
        $(#[$attr])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$field_attr])* $field: $ty),+
        }

        impl $name {
            /// Size and field offsets, for the shader test.
            #[allow(dead_code)]
            $vis const LAYOUT: $crate::UniformLayout = $crate::UniformLayout {
                size: ::std::mem::size_of::<$name>(),
                fields: &[$((stringify!($field), ::std::mem::offset_of!($name, $field))),+],
            };

            /// The WGSL declaration.
            #[allow(dead_code)]
            $vis const WGSL: &'static str = $crate::const_format::concatcp!(
                "struct ", stringify!($name), " {\n",
                $("    ", stringify!($field), ": ", <$ty as $crate::WgslType>::NAME, ",\n",)+
                "}\n"
            );
        }

        // WGSL places each field at the next multiple of its alignment, as `repr(C)` does with
        // Rust's smaller ones: the two agree when every Rust offset is a multiple of WGSL's.
        const _: () = {
            $(assert!(
                ::std::mem::offset_of!($name, $field) % <$ty as $crate::WgslType>::ALIGN == 0,
                concat!(
                    "uniform field `", stringify!($field),
                    "` is not at a multiple of its WGSL alignment: move it or pad before it"
                ),
            );)+
        };
    };
}

/// How an entry point uses one binding: the WGSL declaration it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<uniform>`: the shape/scalar struct, laid out as the [`UniformLayout`] says.
    Uniform(&'static UniformLayout),
    /// `var<storage, read>`, bound from a [`View`].
    Read,
    /// `var<storage, read_write>`, bound from a [`ViewMut`].
    ReadWrite,
}

/// One binding an entry point uses: `@group(0) @binding(binding)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The binding number.
    pub binding: u32,
    /// What it holds, for error messages.
    pub name: &'static str,
    /// How the entry point uses it.
    pub access: Access,
}

impl Slot {
    /// A `var<uniform>` at `binding`.
    pub const fn uniform(binding: u32, layout: &'static UniformLayout) -> Self {
        Slot {
            binding,
            name: "uniform",
            access: Access::Uniform(layout),
        }
    }

    /// A `var<storage, read>` at `binding`.
    pub const fn read(binding: u32, name: &'static str) -> Self {
        Slot {
            binding,
            name,
            access: Access::Read,
        }
    }

    /// A `var<storage, read_write>` at `binding`.
    pub const fn read_write(binding: u32, name: &'static str) -> Self {
        Slot {
            binding,
            name,
            access: Access::ReadWrite,
        }
    }
}

/// The binding contract of one WGSL entry point: every binding (of group 0) it uses, in
/// increasing binding order, which is also the order of the binds of each launch and of the
/// views its Rust method takes. Bindings the file declares but the entry point does not use
/// are left out of its layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contract {
    /// The shader file, as named in `nst_kernels::SHADERS`.
    pub shader: &'static str,
    /// The entry point.
    pub entry: &'static str,
    /// The bindings it uses.
    pub slots: &'static [Slot],
}

/// Declares the [`Contract`]s of a shader file's entry points as `pub const`s, each with the
/// uniform struct `$uniform` (declared with [`crate::uniform!`]) at binding 0 and then its storage
/// slots:
///
/// ```
/// # nst_gpu::uniform! { struct Uniform { n: u32 } }
/// nst_gpu::contracts! {
///     "relu.wgsl", Uniform;
///     /// `relu_forward`: `y` from `x`.
///     FORWARD = "relu_forward": read(1, "x"), read_write(3, "y");
/// }
/// assert_eq!(FORWARD.slots.len(), 3);
/// ```
#[macro_export]
macro_rules! contracts {
    ($shader:literal, $uniform:ty;
     $($(#[$doc:meta])* $name:ident = $entry:literal: $($access:ident($binding:literal, $slot:literal)),+;)+) => {
        $(
            $(#[$doc])*
            pub const $name: $crate::Contract = $crate::Contract {
                shader: $shader,
                entry: $entry,
                slots: &[
                    $crate::Slot::uniform(0, &<$uniform>::LAYOUT),
                    $($crate::Slot::$access($binding, $slot)),+
                ],
            };
        )+
    };
}

/// The explicit bind-group layout of `contract`. Explicit, because automatic layouts drop
/// bindings an entry point does not use and break files with several entry points.
pub fn layout(ctx: &Context, contract: &Contract) -> wgpu::BindGroupLayout {
    let entries: Vec<_> = contract
        .slots
        .iter()
        .map(|s| {
            let ty = match s.access {
                Access::Uniform(_) => wgpu::BufferBindingType::Uniform,
                Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
            };
            wgpu::BindGroupLayoutEntry {
                binding: s.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }
        })
        .collect();
    ctx.device
        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(contract.entry),
            entries: &entries,
        })
}

/// A WGSL module compiled from source (one file per op family).
pub fn shader(ctx: &Context, label: &str, source: &str) -> Result<wgpu::ShaderModule> {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    // SAFETY: without bounds checks an out-of-range index is undefined behavior on the GPU.
    // Every kernel indexes only inside the shapes its Rust wrapper validated against the bound
    // views' lengths before building the dispatch, and the tests, which run with the checks
    // on, compare every kernel against the CPU reference at edge shapes. Integer-division
    // guards stay on.
    ctx.scoped(|| {
        Ok(unsafe {
            ctx.device
                .create_shader_module_trusted(desc, RUNTIME_CHECKS)
        })
    })
}

/// Whether wgpu adds bounds checks to the shaders: in debug builds (which the tests use), not in
/// release builds, where they cost time in every inner loop.
pub const BOUNDS_CHECKS: bool = cfg!(debug_assertions);

/// The checks wgpu adds to every shader [`shader`] compiles (the translation test gives naga's
/// back ends the same).
pub const RUNTIME_CHECKS: wgpu::ShaderRuntimeChecks = wgpu::ShaderRuntimeChecks {
    bounds_checks: BOUNDS_CHECKS,
    // Every loop in these shaders runs to a bound read from the uniform shape or a constant,
    // so none can run forever; the counter wgpu adds to each loop cost 17% of the
    // convolutions' time on Mesa's lavapipe (docs/BENCHMARKS.md).
    force_loop_bounding: false,
    ..wgpu::ShaderRuntimeChecks::checked()
};

/// Whether [`pipeline`] asks wgpu to zero workgroup memory before each dispatch (the
/// translation test gives naga's back ends the same).
pub const ZERO_INITIALIZE_WORKGROUP_MEMORY: bool = false;

/// A compute pipeline for `entry` in `module`, with one explicit bind-group layout and
/// override constants.
pub fn pipeline(
    ctx: &Context, module: &wgpu::ShaderModule, entry: &str, layout: &wgpu::BindGroupLayout,
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
                    zero_initialize_workgroup_memory: ZERO_INITIALIZE_WORKGROUP_MEMORY,
                },
                cache: None,
            }))
    })
}

/// One bound resource of a launch, in the order of its entry point's [`Contract`].
#[derive(Clone, Copy, Debug)]
pub enum Bind<'a> {
    /// A uniform buffer.
    Uniform(&'a wgpu::Buffer),
    /// A storage range the kernel reads.
    Read(View<'a>),
    /// A storage range the kernel writes.
    Write(ViewMut<'a>),
}

impl<'a> Bind<'a> {
    /// The storage range bound, or `None` for a uniform buffer.
    pub fn view(&self) -> Option<View<'a>> {
        match *self {
            Bind::Uniform(_) => None,
            Bind::Read(v) => Some(v),
            Bind::Write(v) => Some(v.read()),
        }
    }
}

impl<'a> From<View<'a>> for Bind<'a> {
    fn from(v: View<'a>) -> Self {
        Bind::Read(v)
    }
}

impl<'a> From<ViewMut<'a>> for Bind<'a> {
    fn from(v: ViewMut<'a>) -> Self {
        Bind::Write(v)
    }
}

/// One entry point built for a context: its contract, explicit layout and pipeline (cheap to
/// clone: wgpu handles).
#[derive(Clone, Debug)]
pub struct EntryPoint {
    contract: &'static Contract,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl EntryPoint {
    /// `contract`'s entry point in `module` (its compiled shader), with override constants.
    pub fn new(
        ctx: &Context, module: &wgpu::ShaderModule, contract: &'static Contract,
        constants: &[(&str, f64)],
    ) -> Result<Self> {
        let layout = layout(ctx, contract);
        let pipeline = pipeline(ctx, module, contract.entry, &layout, constants)?;
        Ok(EntryPoint {
            contract,
            layout,
            pipeline,
        })
    }

    /// The binding contract.
    pub fn contract(&self) -> &'static Contract {
        self.contract
    }

    /// A launch: `uniform` goes to the contract's first slot (binding 0, the shape/scalar
    /// struct) in a buffer the launch owns, and `binds` to the others, one each, in order: a
    /// [`Bind::Read`] for a read slot and a [`Bind::Write`] for a read-write one.
    pub fn launch<U: bytemuck::Pod>(
        &self, ctx: &Context, uniform: &U, binds: &[Bind<'_>], groups: Groups,
    ) -> Result<Dispatch> {
        let workgroups = match groups {
            Groups::Cover {
                invocations,
                workgroup_size,
            } => grid(invocations, workgroup_size, ctx.max_workgroups_per_dim)?,
            Groups::Exact(counts) => counts,
        };
        let buffer = ctx.uniform(self.contract.entry, uniform);
        let bind_group = {
            let all: Vec<Bind<'_>> = std::iter::once(Bind::Uniform(&buffer))
                .chain(binds.iter().copied())
                .collect();
            self.bind_group(ctx, &all)?
        };
        Ok(Dispatch {
            entry: self.contract.entry,
            pipeline: self.pipeline.clone(),
            bind_group,
            workgroups,
            uniforms: vec![buffer],
        })
    }

    /// The bind group of `binds`, checked against the contract.
    fn bind_group(&self, ctx: &Context, binds: &[Bind<'_>]) -> Result<wgpu::BindGroup> {
        let c = self.contract;
        if binds.len() != c.slots.len() {
            return Err(GpuError::Contract(format!(
                "{} has {} bindings, the launch gives {}",
                c.entry,
                c.slots.len(),
                binds.len()
            )));
        }
        let mut entries = Vec::with_capacity(binds.len());
        for (slot, bind) in c.slots.iter().zip(binds) {
            let what = format!("{} of {}", slot.name, c.entry);
            let resource = match (slot.access, bind) {
                (Access::Uniform(_), Bind::Uniform(buf)) => buf.as_entire_binding(),
                (Access::Read, Bind::Read(view)) => view.binding(ctx, &what)?,
                (Access::ReadWrite, Bind::Write(view)) => view.binding(ctx, &what)?,
                (access, bind) => {
                    return Err(GpuError::Contract(format!(
                        "binding {} (`{what}`) is {access:?}, the launch gives {bind:?}",
                        slot.binding
                    )))
                }
            };
            entries.push(wgpu::BindGroupEntry {
                binding: slot.binding,
                resource,
            });
        }
        ctx.scoped(|| {
            Ok(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(c.entry),
                layout: &self.layout,
                entries: &entries,
            }))
        })
    }
}

/// How many workgroups a launch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Groups {
    /// Enough workgroups of `workgroup_size` for `invocations` threads, on the 2-D grid of
    /// [`grid`] (one thread per element written).
    Cover {
        /// Threads needed.
        invocations: u64,
        /// Threads per workgroup (the shader's `@workgroup_size`).
        workgroup_size: u32,
    },
    /// These workgroup counts.
    Exact([u32; 3]),
}

/// A kernel launch prepared once (bind group, uniforms, workgroup counts) and recorded into
/// any number of compute passes: no allocation happens when it is recorded.
pub struct Dispatch {
    entry: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    /// Uniform buffers this launch owns (kept alive, and writable for per-step scalars).
    pub uniforms: Vec<wgpu::Buffer>,
}

impl Dispatch {
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
        crate::timer::mark(pass, self.entry);
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

impl<T: Record + ?Sized> Record for Box<T> {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        (**self).record(pass)
    }
}

impl<T: Record> Record for [T] {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for r in self {
            r.record(pass);
        }
    }
}
