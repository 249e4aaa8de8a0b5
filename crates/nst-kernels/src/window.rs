//! Region copies between `[c, h, w]` tensors, for tiled evaluation: a tile's window cut out
//! of the full image, a tapped activation kept only at a tile's own positions, a tile's
//! gradient added back into the full one. See `shaders/window.wgsl`.

use crate::{entry, expect_len, expect_nonzero, per_element};
use nst_gpu::{Context, Dispatch, EntryPoint, GpuError, Result, View, ViewMut};

/// One side of a window copy: a tensor chunk of `c × h × w` and where the region lies in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    /// Channels the chunk holds.
    pub c: u32,
    /// Height.
    pub h: u32,
    /// Width.
    pub w: u32,
    /// First channel of the region.
    pub c0: u32,
    /// Row of the region's first element.
    pub y: u32,
    /// Column of the region's first element.
    pub x: u32,
}

impl Plane {
    /// The whole of a `c × h × w` chunk, from its origin.
    pub fn whole(c: u32, h: u32, w: u32) -> Plane {
        Plane {
            c,
            h,
            w,
            c0: 0,
            y: 0,
            x: 0,
        }
    }

    /// The same chunk with the region at channel `c0`, row `y`, column `x`.
    pub fn at(self, c0: u32, y: u32, x: u32) -> Plane {
        Plane { c0, y, x, ..self }
    }

    fn len(&self) -> u64 {
        self.c as u64 * self.h as u64 * self.w as u64
    }
}

/// A region of `channels × h × w` elements, copied from `src` to `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowShape {
    /// The source chunk.
    pub src: Plane,
    /// The destination chunk.
    pub dst: Plane,
    /// Channels in the region.
    pub channels: u32,
    /// Rows in the region.
    pub h: u32,
    /// Columns in the region.
    pub w: u32,
}

/// What happens to the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowMode {
    /// The region is overwritten; the rest is kept.
    Copy,
    /// The region is overwritten and the rest of its channels' planes set to zero.
    CopyZeroRest,
    /// The region is added onto; the rest is kept.
    Add,
}

nst_gpu::uniform! {
    struct Uniform {
        /// Channels copied.
        channels: u32,
        /// First of them in the source.
        src_c0: u32,
        src_h: u32,
        src_w: u32,
        /// The region's origin in the source.
        src_y: u32,
        src_x: u32,
        /// First of them in the destination.
        dst_c0: u32,
        dst_h: u32,
        dst_w: u32,
        /// The region's origin in the destination.
        dst_y: u32,
        dst_x: u32,
        /// The region's size.
        rh: u32,
        rw: u32,
        /// 0 copy (the rest kept), 1 copy (the rest of the plane zeroed), 2 add.
        mode: u32,
        /// The domain: rh × rw, or dst_h × dst_w for mode 1.
        dom_h: u32,
        dom_w: u32,
    }
}

nst_gpu::contracts! {
    "window.wgsl", Uniform;
    /// `window`: a region of `dst` from `src`.
    WINDOW = "window": read(1, "src"), read_write(2, "dst");
}

crate::shader!(
    /// `shaders/window.wgsl`: region copies.
    SHADER = "window.wgsl" after [Uniform::WGSL]
    with [WINDOW]
);

/// The window kernel.
pub struct Window {
    window: EntryPoint,
}

impl Window {
    /// Compiles `shaders/window.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        Ok(Window {
            window: entry(ctx, &module, &WINDOW)?,
        })
    }

    /// Copies (or adds) the region `s` of `src` into `dst`, as `mode` says.
    pub fn copy(
        &self, ctx: &Context, s: WindowShape, mode: WindowMode, src: View<'_>, dst: ViewMut<'_>,
    ) -> Result<Dispatch> {
        expect_nonzero("window region", &[s.channels, s.h, s.w])?;
        expect_len("window source", &src, s.src.len())?;
        expect_len("window destination", &dst, s.dst.len())?;
        for (side, p) in [("source", s.src), ("destination", s.dst)] {
            let fits = |o: u32, n: u32, of: u32| o as u64 + n as u64 <= of as u64;
            if !(fits(p.c0, s.channels, p.c) && fits(p.y, s.h, p.h) && fits(p.x, s.w, p.w)) {
                return Err(GpuError::BadShape(format!(
                    "window {side}: a {}×{}×{} region at channel {}, row {}, column {} lies \
                     outside {}×{}×{}",
                    s.channels, s.h, s.w, p.c0, p.y, p.x, p.c, p.h, p.w
                )));
            }
        }
        let (dom_h, dom_w) = match mode {
            WindowMode::CopyZeroRest => (s.dst.h, s.dst.w),
            _ => (s.h, s.w),
        };
        let u = Uniform {
            channels: s.channels,
            src_c0: s.src.c0,
            src_h: s.src.h,
            src_w: s.src.w,
            src_y: s.src.y,
            src_x: s.src.x,
            dst_c0: s.dst.c0,
            dst_h: s.dst.h,
            dst_w: s.dst.w,
            dst_y: s.dst.y,
            dst_x: s.dst.x,
            rh: s.h,
            rw: s.w,
            mode: match mode {
                WindowMode::Copy => 0,
                WindowMode::CopyZeroRest => 1,
                WindowMode::Add => 2,
            },
            dom_h,
            dom_w,
        };
        let n = s.channels as u64 * dom_h as u64 * dom_w as u64;
        self.window
            .launch(ctx, &u, &[src.into(), dst.into()], per_element(n))
    }
}
