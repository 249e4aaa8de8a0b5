//! 2×2, stride-2 max and average pooling with PyTorch's semantics (odd sizes floor; the max
//! pool's gradient goes to the first maximum). See `shaders/pool.wgsl`.

use crate::{entry, expect_len, expect_nonzero, per_element};
use nst_gpu::{Bind, Context, Dispatch, EntryPoint, GpuError, Result, View, ViewMut};

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
}

nst_gpu::uniform! {
    struct Uniform {
        c: u32,
        /// Input height.
        h: u32,
        /// Input width.
        w: u32,
        /// Backward: add into gx.
        accumulate: u32,
    }
}

nst_gpu::contracts! {
    "pool.wgsl", Uniform;
    /// `max_pool2d_forward`: `y` and `argmax` from `x`.
    MAX_FORWARD = "max_pool2d_forward": read(1, "x"), read_write(3, "y"), read_write(4, "argmax");
    /// `max_pool2d_backward`: `gx` from `gy` and `argmax`.
    MAX_BACKWARD = "max_pool2d_backward": read(1, "gy"), read(2, "argmax"), read_write(3, "gx");
    /// `avg_pool2d_forward`: `y` from `x`.
    AVG_FORWARD = "avg_pool2d_forward": read(1, "x"), read_write(3, "y");
    /// `avg_pool2d_backward`: `gx` from `gy`.
    AVG_BACKWARD = "avg_pool2d_backward": read(1, "gy"), read_write(3, "gx");
}

crate::shader!(
    /// `shaders/pool.wgsl`: max and average pooling.
    SHADER = "pool.wgsl" after [Uniform::WGSL]
    with [MAX_FORWARD, MAX_BACKWARD, AVG_FORWARD, AVG_BACKWARD]
);

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Window maxima; the forward records each window's arg-max for the backward.
    Max,
    /// Window means.
    Avg,
}

/// The pooling kernels of one kind: its forward and backward entry points.
pub struct Pool2d {
    kind: PoolKind,
    forward: EntryPoint,
    backward: EntryPoint,
}

/// A pooling input (or its gradient) or output (or its gradient, or the arg-max).
#[derive(Clone, Copy)]
enum Side {
    In,
    Out,
}

impl Pool2d {
    /// The `kind` entry points of `module`, the compiled `shaders/pool.wgsl`.
    pub fn new(ctx: &Context, module: &wgpu::ShaderModule, kind: PoolKind) -> Result<Self> {
        let (forward, backward) = match kind {
            PoolKind::Max => (&MAX_FORWARD, &MAX_BACKWARD),
            PoolKind::Avg => (&AVG_FORWARD, &AVG_BACKWARD),
        };
        Ok(Pool2d {
            kind,
            forward: entry(ctx, module, forward)?,
            backward: entry(ctx, module, backward)?,
        })
    }

    /// Which pooling these kernels do.
    pub fn kind(&self) -> PoolKind {
        self.kind
    }

    /// `y` = window maxima or means. Max pooling also writes `argmax` (u32, same length as
    /// `y`): the position `dy·2+dx` of each window's first maximum; average pooling takes
    /// none.
    pub fn forward(
        &self, ctx: &Context, s: PoolShape, x: View<'_>, y: ViewMut<'_>,
        argmax: Option<ViewMut<'_>>,
    ) -> Result<Dispatch> {
        let mut views = vec![("pool input", x.into(), Side::In)];
        views.push(("pool output", y.into(), Side::Out));
        views.extend(
            self.arg_max(argmax)?
                .map(|a| ("pool arg-max", a, Side::Out)),
        );
        self.launch(ctx, s, None, &views)
    }

    /// `gx`: max pooling sends each window's `gy` to its `argmax`, zero elsewhere; average
    /// pooling spreads `gy / 4` over the window; a dropped last row/column gets zero. Added
    /// into `gx` when `accumulate`.
    pub fn backward(
        &self, ctx: &Context, s: PoolShape, gy: View<'_>, argmax: Option<View<'_>>,
        gx: ViewMut<'_>, accumulate: bool,
    ) -> Result<Dispatch> {
        let mut views = vec![("pool output gradient", gy.into(), Side::Out)];
        views.extend(
            self.arg_max(argmax)?
                .map(|a| ("pool arg-max", a, Side::Out)),
        );
        views.push(("pool input gradient", gx.into(), Side::In));
        self.launch(ctx, s, Some(accumulate), &views)
    }

    /// The arg-max bind: required by max pooling, refused by average pooling.
    fn arg_max<'a>(&self, argmax: Option<impl Into<Bind<'a>>>) -> Result<Option<Bind<'a>>> {
        match (self.kind, argmax) {
            (PoolKind::Max, Some(a)) => Ok(Some(a.into())),
            (PoolKind::Avg, None) => Ok(None),
            (kind, a) => Err(GpuError::BadShape(format!(
                "{kind:?} pooling {} an arg-max buffer",
                if a.is_some() { "takes no" } else { "needs" }
            ))),
        }
    }

    /// The forward launch (one thread per output), or with `Some(accumulate)` the backward
    /// (one per input element), over `views`: each named for errors and checked against the
    /// size of its side.
    fn launch(
        &self, ctx: &Context, s: PoolShape, backward: Option<bool>,
        views: &[(&str, Bind<'_>, Side)],
    ) -> Result<Dispatch> {
        expect_nonzero("pool output shape", &[s.c, s.h / 2, s.w / 2])?;
        for &(what, bind, side) in views {
            let len = match side {
                Side::In => s.input_len(),
                Side::Out => s.output_len(),
            };
            expect_len(what, &bind.view().expect("pool binds are storage"), len)?;
        }
        let binds: Vec<Bind<'_>> = views.iter().map(|v| v.1).collect();
        let (entry, threads) = match backward {
            None => (&self.forward, s.output_len()),
            Some(_) => (&self.backward, s.input_len()),
        };
        let u = Uniform {
            c: s.c,
            h: s.h,
            w: s.w,
            accumulate: backward.unwrap_or(false) as u32,
        };
        entry.launch(ctx, &u, &binds, per_element(threads))
    }
}
