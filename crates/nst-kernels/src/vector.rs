//! The vector ops L-BFGS needs (dot, asum, axpy, scale, copy), all on the GPU: coefficients can come from
//! earlier dot products in a scalar buffer, so the two-loop recursion runs without readback.
//! See `shaders/vector.wgsl`.

use crate::reduce::{Reduce, Reduction};
use crate::{expect_len, Entry};
use nst_gpu::{Bind, Context, Dispatch, GpuError, Result, Slot, View};

/// A coefficient `c · scalars[num] / scalars[den]`; `None` indices stand for 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coef {
    /// Constant factor.
    pub c: f32,
    /// Slot of a numerator in the scalar buffer.
    pub num: Option<u32>,
    /// Slot of a denominator in the scalar buffer.
    pub den: Option<u32>,
}

impl Coef {
    /// A constant.
    pub fn constant(c: f32) -> Self {
        Coef {
            c,
            num: None,
            den: None,
        }
    }
    /// `c · scalars[num] / scalars[den]`.
    pub fn ratio(c: f32, num: Option<u32>, den: Option<u32>) -> Self {
        Coef { c, num, den }
    }
}

const NONE: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    n: u32,
    partials: u32,
    num: u32,
    den: u32,
    c: f32,
    _pad: [f32; 3],
}

impl Uniform {
    fn new(n: u64, partials: u32, coef: Coef) -> Self {
        Uniform {
            n: n as u32,
            partials,
            num: coef.num.unwrap_or(NONE),
            den: coef.den.unwrap_or(NONE),
            c: coef.c,
            _pad: [0.0; 3],
        }
    }
}

/// dot, asum, axpy, scale and copy.
pub struct VectorOps {
    dot: Entry,
    asum: Entry,
    axpy: Entry,
    scale: Entry,
    copy: Entry,
    reduce: Reduce,
}

fn check_slots(coef: &Coef, scalars: &View<'_>) -> Result<()> {
    for i in [coef.num, coef.den].into_iter().flatten() {
        if i as u64 >= scalars.len {
            return Err(GpuError::BadShape(format!(
                "scalar slot {i} is outside a buffer of {} scalars",
                scalars.len
            )));
        }
    }
    Ok(())
}

impl VectorOps {
    /// Compiles `shaders/vector.wgsl`; dot and asum finish with `reduce`.
    pub fn new(ctx: &Context, reduce: Reduce) -> Result<Self> {
        let module = nst_gpu::shader(ctx, "vector.wgsl", crate::VECTOR_WGSL)?;
        use Slot::*;
        Ok(VectorOps {
            dot: Entry::new(
                ctx,
                &module,
                "dot_partial",
                &[Uniform, Read, Unused, Write, Read],
            )?,
            asum: Entry::new(
                ctx,
                &module,
                "asum_partial",
                &[Uniform, Read, Unused, Write, Unused],
            )?,
            axpy: Entry::new(ctx, &module, "axpy", &[Uniform, Read, Write, Write])?,
            scale: Entry::new(ctx, &module, "scale", &[Uniform, Unused, Write, Write])?,
            copy: Entry::new(ctx, &module, "scaled_copy", &[Uniform, Read, Write, Write])?,
            reduce,
        })
    }

    /// `scalars[index] = x · y`.
    pub fn dot(
        &self,
        ctx: &Context,
        x: View<'_>,
        y: View<'_>,
        scalars: View<'_>,
        index: u32,
    ) -> Result<Reduction> {
        expect_len("dot operand", &y, x.len)?;
        self.sum(ctx, &self.dot, x, Some(y), scalars, index)
    }

    /// `scalars[index] = Σ |x|`.
    pub fn asum(
        &self,
        ctx: &Context,
        x: View<'_>,
        scalars: View<'_>,
        index: u32,
    ) -> Result<Reduction> {
        self.sum(ctx, &self.asum, x, None, scalars, index)
    }

    /// A reduction whose first stage is `entry` over `x` (and `y`, binding 4, for the dot).
    fn sum(
        &self,
        ctx: &Context,
        entry: &Entry,
        x: View<'_>,
        y: Option<View<'_>>,
        scalars: View<'_>,
        index: u32,
    ) -> Result<Reduction> {
        self.reduce
            .build(ctx, x.len, scalars, index, 1.0, false, |partials, count| {
                let u = ctx.uniform(entry.name, &Uniform::new(x.len, count, Coef::constant(1.0)));
                let d = entry.dispatch_groups(
                    ctx,
                    &[
                        Bind::Uniform(&u),
                        Bind::Storage("reduced vector", x),
                        Bind::None,
                        Bind::Storage("partial sums", partials),
                        y.map_or(Bind::None, |y| Bind::Storage("dot y", y)),
                    ],
                    [count, 1, 1],
                )?;
                Ok(d.owning(u))
            })
    }

    /// `y ← y + coef · x`.
    pub fn axpy(
        &self,
        ctx: &Context,
        coef: Coef,
        x: View<'_>,
        y: View<'_>,
        scalars: View<'_>,
    ) -> Result<Dispatch> {
        self.elementwise(ctx, &self.axpy, coef, x, y, scalars)
    }

    /// `y ← coef · x`.
    pub fn copy(
        &self,
        ctx: &Context,
        coef: Coef,
        x: View<'_>,
        y: View<'_>,
        scalars: View<'_>,
    ) -> Result<Dispatch> {
        self.elementwise(ctx, &self.copy, coef, x, y, scalars)
    }

    /// A launch of `axpy` or `scaled_copy`, which bind alike.
    fn elementwise(
        &self,
        ctx: &Context,
        entry: &Entry,
        coef: Coef,
        x: View<'_>,
        y: View<'_>,
        scalars: View<'_>,
    ) -> Result<Dispatch> {
        expect_len("vector op y", &y, x.len)?;
        check_slots(&coef, &scalars)?;
        let u = ctx.uniform("vector op", &Uniform::new(x.len, 0, coef));
        let d = entry.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("vector op x", x),
                Bind::Storage("vector op y", y),
                Bind::Storage("scalars", scalars),
            ],
            x.len,
        )?;
        Ok(d.owning(u))
    }

    /// `y ← coef · y`.
    pub fn scale(
        &self,
        ctx: &Context,
        coef: Coef,
        y: View<'_>,
        scalars: View<'_>,
    ) -> Result<Dispatch> {
        check_slots(&coef, &scalars)?;
        let u = ctx.uniform("scale", &Uniform::new(y.len, 0, coef));
        let d = self.scale.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::None,
                Bind::Storage("scale y", y),
                Bind::Storage("scalars", scalars),
            ],
            y.len,
        )?;
        Ok(d.owning(u))
    }
}
