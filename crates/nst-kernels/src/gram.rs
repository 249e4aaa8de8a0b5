//! Gram matrix `G = F·Fᵀ / N` of a `C × N` feature map, and its backward
//! `dF = (dG + dGᵀ)·F / N`. See `shaders/gram.wgsl`.

use crate::{expect_len, expect_nonzero, Entry};
use nst_gpu::{Bind, Context, Dispatch, Result, Slot, View};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    c: u32,
    n: u32,
    accumulate: u32,
    _pad: u32,
    inv_n: f32,
    _pad1: [f32; 3],
}

/// The Gram kernels.
pub struct Gram {
    forward: Entry,
    backward: Entry,
}

impl Gram {
    /// Compiles `shaders/gram.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = nst_gpu::shader(ctx, "gram.wgsl", crate::GRAM_WGSL)?;
        use Slot::*;
        Ok(Gram {
            forward: Entry::new(
                ctx,
                &module,
                "gram_forward",
                &[Uniform, Read, Write, Unused],
            )?,
            backward: Entry::new(ctx, &module, "gram_backward", &[Uniform, Read, Write, Read])?,
        })
    }

    fn uniform(ctx: &Context, label: &str, c: u32, n: u32, accumulate: bool) -> wgpu::Buffer {
        ctx.uniform(
            label,
            &Uniform {
                c,
                n,
                accumulate: accumulate as u32,
                _pad: 0,
                inv_n: 1.0 / n as f32,
                _pad1: [0.0; 3],
            },
        )
    }

    /// `g` (c × c) = Gram matrix of `f` (c × n).
    pub fn forward(
        &self,
        ctx: &Context,
        c: u32,
        n: u32,
        f: View<'_>,
        g: View<'_>,
    ) -> Result<Dispatch> {
        expect_nonzero("gram shape", &[c, n])?;
        expect_len("gram features", &f, c as u64 * n as u64)?;
        expect_len("gram matrix", &g, c as u64 * c as u64)?;
        let u = Self::uniform(ctx, "gram_forward", c, n, false);
        let d = self.forward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("gram features", f),
                Bind::Storage("gram matrix", g),
                Bind::None,
            ],
            c as u64 * c as u64,
        )?;
        Ok(d.owning(u))
    }

    /// `gf` (c × n) = gradient through the Gram matrix of `gg` (c × c); adds into `gf` when
    /// `accumulate`.
    pub fn backward(
        &self,
        ctx: &Context,
        c: u32,
        n: u32,
        f: View<'_>,
        gg: View<'_>,
        gf: View<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        expect_nonzero("gram shape", &[c, n])?;
        expect_len("gram features", &f, c as u64 * n as u64)?;
        expect_len("gram matrix gradient", &gg, c as u64 * c as u64)?;
        expect_len("gram features gradient", &gf, c as u64 * n as u64)?;
        let u = Self::uniform(ctx, "gram_backward", c, n, accumulate);
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("gram features", f),
                Bind::Storage("gram features gradient", gf),
                Bind::Storage("gram matrix gradient", gg),
            ],
            c as u64 * n as u64,
        )?;
        Ok(d.owning(u))
    }
}
