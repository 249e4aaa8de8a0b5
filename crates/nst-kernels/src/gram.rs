//! Gram matrix `G = F·Fᵀ / N` of a `C × N` feature map, and its backward
//! `dF = (dG + dGᵀ)·F / N`, whole or over channel chunks. See `shaders/gram.wgsl`.

use crate::conv2d::Channels;
use crate::{expect_len, expect_nonzero, Entry};
use nst_gpu::{Bind, Context, Dispatch, GpuError, Result, Slot, View};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    c: u32,
    n: u32,
    ca: u32,
    cb: u32,
    a_off: u32,
    b_off: u32,
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
                &[Uniform, Read, Write, Unused, Read],
            )?,
            backward: Entry::new(
                ctx,
                &module,
                "gram_backward",
                &[Uniform, Unused, Write, Read, Read],
            )?,
        })
    }

    fn uniform(
        ctx: &Context,
        label: &str,
        c: u32,
        n: u32,
        a: Channels,
        b: Channels,
        accumulate: bool,
    ) -> Result<wgpu::Buffer> {
        expect_nonzero("gram shape", &[c, n, a.count, b.count])?;
        for ch in [a, b] {
            if ch.offset as u64 + ch.count as u64 > c as u64 {
                return Err(GpuError::BadShape(format!(
                    "gram chunk: channels {}..{} lie outside {c} channels",
                    ch.offset,
                    ch.offset + ch.count
                )));
            }
        }
        Ok(ctx.uniform(
            label,
            &Uniform {
                c,
                n,
                ca: a.count,
                cb: b.count,
                a_off: a.offset,
                b_off: b.offset,
                accumulate: accumulate as u32,
                _pad: 0,
                inv_n: 1.0 / n as f32,
                _pad1: [0.0; 3],
            },
        ))
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
        let all = Channels::all(c);
        self.forward_part(ctx, c, n, (all, f), (all, f), g)
    }

    /// One block of a chunked Gram matrix: `g[a rows, b columns] = fa·fbᵀ / n`, where `fa`
    /// and `fb` are chunks `a` and `b` (channel ranges) of a `c × n` feature map and `g` is
    /// the whole `c × c` matrix.
    pub fn forward_part(
        &self,
        ctx: &Context,
        c: u32,
        n: u32,
        (a, fa): (Channels, View<'_>),
        (b, fb): (Channels, View<'_>),
        g: View<'_>,
    ) -> Result<Dispatch> {
        let u = Self::uniform(ctx, "gram_forward", c, n, a, b, false)?;
        expect_len("gram features", &fa, a.count as u64 * n as u64)?;
        expect_len("gram features", &fb, b.count as u64 * n as u64)?;
        expect_len("gram matrix", &g, c as u64 * c as u64)?;
        let d = self.forward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("gram features", fa),
                Bind::Storage("gram matrix", g),
                Bind::None,
                Bind::Storage("gram features", fb),
            ],
            a.count as u64 * b.count as u64,
        )?;
        Ok(d.owning(u))
    }

    /// `gf` (c × n) = gradient through the Gram matrix of `gg` (c × c); adds into `gf` when
    /// `accumulate`.
    #[allow(clippy::too_many_arguments)]
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
        let all = Channels::all(c);
        self.backward_part(ctx, c, n, (all, gf), (all, f), gg, accumulate)
    }

    /// One part of a chunked Gram backward: chunk `b`'s contribution to the gradient of
    /// chunk `a`, `gfa (+)= Σ_j (gg[a_i, b_j] + gg[b_j, a_i]) · fb[j] / n`. Record the parts of
    /// one `a` in order, the first with `accumulate` false unless `gfa` already holds a
    /// gradient.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_part(
        &self,
        ctx: &Context,
        c: u32,
        n: u32,
        (a, gfa): (Channels, View<'_>),
        (b, fb): (Channels, View<'_>),
        gg: View<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        let u = Self::uniform(ctx, "gram_backward", c, n, a, b, accumulate)?;
        expect_len("gram features gradient", &gfa, a.count as u64 * n as u64)?;
        expect_len("gram features", &fb, b.count as u64 * n as u64)?;
        expect_len("gram matrix gradient", &gg, c as u64 * c as u64)?;
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::None,
                Bind::Storage("gram features gradient", gfa),
                Bind::Storage("gram matrix gradient", gg),
                Bind::Storage("gram features", fb),
            ],
            a.count as u64 * n as u64,
        )?;
        Ok(d.owning(u))
    }
}
