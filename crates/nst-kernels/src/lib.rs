//! Hand-written WGSL kernels for neural style transfer, forward and backward.
//!
//! One module per op family; each op is found by one name in three places:
//! `shaders/<op>.wgsl`, `nst_kernels::<op>` and `nst_reference::<op>`. Every op type owns its
//! pipelines and explicit bind-group layouts, is built once per [`Context`], and prepares
//! [`Dispatch`]es (bind groups and uniforms made once) that callers record into their own
//! compute passes: nothing here submits work by itself.
//!
//! An op module declares its uniform struct ([`nst_gpu::uniform!`]), its entry points'
//! contracts ([`nst_gpu::contracts!`]) and its [`Shader`]s, which [`SHADERS`] lists.

/// `shaders/<file>`'s text (defined before the modules, which use it). The shaders live in the
/// workspace's top-level `shaders/`; `shaders` in this crate is a symlink to it, so that
/// `cargo package` (which follows links) ships them.
macro_rules! shader_file {
    ($f:literal) => {
        include_str!(concat!("../shaders/", $f))
    };
}
pub(crate) use shader_file;

/// `pub const NAME: Shader` for `shaders/<file>`, compiled with the WGSL in `prefix` (the
/// uniform's struct, shared snippets) before the file's text, and the contracts of its entry
/// points.
macro_rules! shader {
    ($(#[$doc:meta])* $name:ident = $file:literal after [$($prefix:expr),+] with [$($c:expr),+ $(,)?]) => {
        $(#[$doc])*
        pub const $name: $crate::Shader = $crate::Shader {
            file: $file,
            source: const_format::concatcp!($($prefix,)+ $crate::shader_file!($file)),
            contracts: &[$(&$c),+],
        };
    };
}
pub(crate) use shader;

pub mod adam;
pub mod candidate_timing;
pub mod choice;
pub mod conv2d;
pub mod flow;
pub mod gram;
pub mod guide;
pub mod lbfgs;
pub mod loss;
pub mod pixel;
pub mod pool;
pub mod reduce;
pub mod relu;
pub mod vector;
pub mod window;

pub use adam::{Adam, AdamParams, AdamStep};
pub use choice::{Choice, ConvChoice, GramChoice, KernelChoice, LaunchClass};
pub use conv2d::{Channels, Conv2d, ConvClass, ConvKernel, ConvPart, ConvShape, ConvTiles};
pub use flow::{Flow, Tvl1Step};
pub use gram::{Gram, GramClass, GramForward, GramTiles};
pub use guide::Guide;
pub use lbfgs::{Lbfgs, LbfgsParams, LbfgsRun};
pub use loss::{Mse, OutOfRange, TotalVariation};
pub use nst_gpu::{Context, Dispatch, GpuError, Record, Result, View, ViewMut};
pub use pixel::{PixelTransform, PixelTransformKernel};
pub use pool::{Pool2d, PoolKind, PoolShape};
pub use reduce::{Reduce, Reduction};
pub use relu::Relu;
pub use vector::{Coef, VectorOps};
pub use window::{Plane, Window, WindowMode, WindowShape};

use nst_gpu::{Contract, EntryPoint, Groups};

/// One shader file as compiled, and the binding contracts of its entry points.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    /// The file under `shaders/`.
    pub file: &'static str,
    /// The source as compiled: the generated uniform struct, then the snippets the file uses
    /// (WGSL has no includes), then the file.
    pub source: &'static str,
    /// Every entry point's contract.
    pub contracts: &'static [&'static Contract],
}

impl Shader {
    /// Compiles the source.
    pub fn compile(&self, ctx: &Context) -> Result<wgpu::ShaderModule> {
        nst_gpu::shader(ctx, self.file, self.source)
    }
}

/// Files prepended to others rather than compiled alone.
pub const SNIPPETS: &[&str] = &["workgroup_sum.wgsl", "gemm.wgsl", "conv2d_common.wgsl"];

/// Declares every op in one place: the [`Kernels`] field, its type and how it is built, and the
/// shaders it brings to [`SHADERS`] (a shader shared by several ops is listed with the first).
/// The statements before the ops build what several share, from `ctx` and `choice`.
macro_rules! kernels {
    (
        with ($ctx:ident, $choice:ident) { $($shared:tt)* }
        $($(#[$doc:meta])* $field:ident: $ty:ty = $make:expr, shaders [$($shader:expr),*];)+
    ) => {
        /// Every kernel, compiled once for a context.
        pub struct Kernels {
            $($(#[$doc])* pub $field: $ty,)+
        }

        impl Kernels {
            /// Compiles every shader and builds every pipeline, with `choice`'s variants.
            pub fn with_choice($ctx: &Context, $choice: &KernelChoice) -> Result<Self> {
                $($shared)*
                Ok(Kernels {
                    $($field: $make?,)+
                })
            }
        }

        /// Every shader. The shader test validates each source with naga and holds each
        /// contract to its entry point.
        pub const SHADERS: &[&Shader] = &[$($(&$shader,)*)+];
    };
}

kernels! {
    with (ctx, choice) {
        // Files with several op types, and the reduction three of them share, are built once.
        let pool = pool::SHADER.compile(ctx)?;
        let loss = loss::SHADER.compile(ctx)?;
        let reduce = Reduce::new(ctx)?;
    }
    /// 3×3 convolution.
    conv2d: Conv2d = Conv2d::with_choice(ctx, choice.conv.clone()),
        shaders [conv2d::SHADER, conv2d::SUBGROUP_SHADER];
    /// ReLU.
    relu: Relu = Relu::new(ctx), shaders [relu::SHADER];
    /// 2×2 max pooling.
    max_pool2d: Pool2d = Pool2d::new(ctx, &pool, PoolKind::Max), shaders [pool::SHADER];
    /// 2×2 average pooling.
    avg_pool2d: Pool2d = Pool2d::new(ctx, &pool, PoolKind::Avg), shaders [];
    /// Gram matrix.
    gram: Gram = Gram::with_choice(ctx, choice.gram.clone()), shaders [gram::SHADER];
    /// Features weighted per position (guided Gram matrices).
    guide: Guide = Guide::new(ctx), shaders [guide::SHADER];
    /// Optical flow (TV-L1) and its reliability.
    flow: Flow = Flow::new(ctx), shaders [flow::SHADER];
    /// Mean-squared error.
    mse: Mse = Mse::new(ctx, &loss, reduce.clone()), shaders [loss::SHADER, reduce::SHADER];
    /// Total variation.
    tv: TotalVariation = TotalVariation::new(ctx, &loss, reduce.clone()), shaders [];
    /// How far the image lies outside [0, 1].
    out_of_range: OutOfRange = OutOfRange::new(ctx, &loss, reduce.clone()), shaders [];
    /// RGB → network input convention.
    pixel: PixelTransformKernel = PixelTransformKernel::new(ctx), shaders [pixel::SHADER];
    /// Adam update.
    adam: Adam = Adam::new(ctx), shaders [adam::SHADER];
    /// L-BFGS's scalar steps.
    lbfgs: Lbfgs = Lbfgs::new(ctx), shaders [lbfgs::SHADER];
    /// dot, asum, axpy, scale, copy.
    vector: VectorOps = VectorOps::new(ctx, reduce), shaders [vector::SHADER];
    /// Region copies for tiled evaluation.
    window: Window = Window::new(ctx), shaders [window::SHADER];
}

impl Kernels {
    /// Compiles every shader and builds every pipeline, with the built-in choice of variants.
    pub fn new(ctx: &Context) -> Result<Self> {
        Self::with_choice(ctx, &KernelChoice::builtin(ctx))
    }
}

/// Threads per workgroup of the element-wise entry points (the `WG` override constant).
pub const WORKGROUP_SIZE: u32 = 256;

/// The override constants of every entry point of a file with the `WG` override constant (the
/// element-wise ones; the files without override constants get none).
pub const ELEMENT_WISE_CONSTANTS: &[(&str, f64)] = &[("WG", WORKGROUP_SIZE as f64)];

/// An entry point of a file with the `WG` override constant (the element-wise ones).
pub(crate) fn entry(
    ctx: &Context, module: &wgpu::ShaderModule, contract: &'static Contract,
) -> Result<EntryPoint> {
    EntryPoint::new(ctx, module, contract, ELEMENT_WISE_CONSTANTS)
}

/// One thread per element of `n`, in workgroups of [`WORKGROUP_SIZE`].
pub(crate) fn per_element(n: u64) -> Groups {
    Groups::Cover {
        invocations: n,
        workgroup_size: WORKGROUP_SIZE,
    }
}

/// What is wrong with GEMM tile sizes (`ConvTiles`, `GramTiles`: a `tm × tn` tile per
/// workgroup, K staged `tk` at a time, `rm × 4` outputs per invocation) for the shaders' staging
/// and the context's limits, or `None`.
pub(crate) fn tile_problem(ctx: &Context, tm: u32, tn: u32, tk: u32, rm: u32) -> Option<String> {
    let (tm, tn, tk, rm) = (tm as u64, tn as u64, tk as u64, rm as u64);
    let wg = (tm / rm.max(1)) * (tn / 4);
    let storage = 4 * tk * (tm + tn);
    let limits = &ctx.limits;
    let max_wg = limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x) as u64;
    let even = [(wg, tk), (tm * tk, wg), (wg, tn), (tk * tn, wg)];
    Some(if !(rm == 4 || rm == 8) {
        "rm must be 4 or 8 (A is read as vec4s; the accumulators hold 8 rows)".to_string()
    } else if tm == 0 || tn == 0 || tk == 0 || !tm.is_multiple_of(rm) || !tn.is_multiple_of(4) {
        "tm must be a multiple of rm and tn a multiple of 4, all nonzero".to_string()
    } else if wg > max_wg {
        format!("(tm / rm)·(tn / 4) = {wg} invocations, over the limit of {max_wg}")
    } else if !even.iter().all(|&(a, b)| a.is_multiple_of(b)) {
        format!(
            "staging must divide evenly among the {wg} invocations: \
             wg % tk, tm·tk % wg, wg % tn and tk·tn % wg must be 0"
        )
    } else if storage > limits.max_compute_workgroup_storage_size as u64 {
        format!(
            "4·tk·(tm + tn) = {storage} bytes of workgroup memory, over the limit of {}",
            limits.max_compute_workgroup_storage_size
        )
    } else {
        return None;
    })
}

/// ⌈log₂ n⌉ (0 for n ≤ 1).
pub(crate) fn log2_ceil(n: u64) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}

/// Checks that `view` holds exactly `len` elements.
pub(crate) fn expect_len(what: &str, view: &View<'_>, len: u64) -> Result<()> {
    if view.len != len {
        return Err(GpuError::BadShape(format!(
            "`{what}` has {} elements, the shape needs {len}",
            view.len
        )));
    }
    Ok(())
}

/// Checks that a shape has no zero dimension.
pub(crate) fn expect_nonzero(what: &str, dims: &[u32]) -> Result<()> {
    if dims.contains(&0) {
        return Err(GpuError::BadShape(format!(
            "{what} has a zero dimension: {dims:?}"
        )));
    }
    Ok(())
}
