//! The vector ops L-BFGS needs (dot, asum, axpy, scale, copy), all on the GPU: coefficients can come from
//! earlier dot products in a scalar buffer, so the two-loop recursion runs without readback.
//! See `shaders/vector.wgsl`.

use crate::reduce::{Reduce, Reduction};
use crate::{entry, expect_len, per_element};
use nst_gpu::{Bind, Context, Dispatch, EntryPoint, GpuError, Groups, Result, View, ViewMut};

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

nst_gpu::uniform! {
    struct Uniform {
        n: u32,
        partials: u32,
        num: u32,
        den: u32,
        c: f32,
    }
}

nst_gpu::contracts! {
    "vector.wgsl", Uniform;
    /// `dot_partial`: partial sums of `x · y`.
    DOT_PARTIAL = "dot_partial": read(1, "x"), read(2, "y"), read_write(5, "partial sums");
    /// `asum_partial`: partial sums of `|x|`.
    ASUM_PARTIAL = "asum_partial": read(1, "x"), read_write(5, "partial sums");
    /// `axpy`: `y += coef · x`.
    AXPY = "axpy": read(1, "x"), read_write(3, "y"), read(4, "scalars");
    /// `scale`: `y *= coef`.
    SCALE = "scale": read_write(3, "y"), read(4, "scalars");
    /// `scaled_copy`: `y = coef · x`.
    SCALED_COPY = "scaled_copy": read(1, "x"), read_write(3, "y"), read(4, "scalars");
}

crate::shader!(
    /// `shaders/vector.wgsl`: the vector operations, on the workgroup reduction of `workgroup_sum.wgsl`.
    SHADER = "vector.wgsl" after [Uniform::WGSL, crate::shader_file!("workgroup_sum.wgsl")]
    with [DOT_PARTIAL, ASUM_PARTIAL, AXPY, SCALE, SCALED_COPY]
);

impl Uniform {
    fn new(n: u64, partials: u32, coef: Coef) -> Self {
        Uniform {
            n: n as u32,
            partials,
            num: coef.num.unwrap_or(NONE),
            den: coef.den.unwrap_or(NONE),
            c: coef.c,
        }
    }
}

/// dot, asum, axpy, scale and copy.
pub struct VectorOps {
    dot: EntryPoint,
    asum: EntryPoint,
    axpy: EntryPoint,
    scale: EntryPoint,
    copy: EntryPoint,
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
        let module = SHADER.compile(ctx)?;
        Ok(VectorOps {
            dot: entry(ctx, &module, &DOT_PARTIAL)?,
            asum: entry(ctx, &module, &ASUM_PARTIAL)?,
            axpy: entry(ctx, &module, &AXPY)?,
            scale: entry(ctx, &module, &SCALE)?,
            copy: entry(ctx, &module, &SCALED_COPY)?,
            reduce,
        })
    }

    /// `scalars[index] = x · y`.
    pub fn dot(
        &self, ctx: &Context, x: View<'_>, y: View<'_>, scalars: ViewMut<'_>, index: u32,
    ) -> Result<Reduction> {
        expect_len("dot operand", &y, x.len)?;
        self.sum(ctx, &self.dot, &[x, y], scalars, index)
    }

    /// `scalars[index] = Σ |x|`.
    pub fn asum(
        &self, ctx: &Context, x: View<'_>, scalars: ViewMut<'_>, index: u32,
    ) -> Result<Reduction> {
        self.sum(ctx, &self.asum, &[x], scalars, index)
    }

    /// A reduction whose first stage is `entry` over `inputs` (`x`, and `y` for the dot).
    fn sum(
        &self, ctx: &Context, entry: &EntryPoint, inputs: &[View<'_>], scalars: ViewMut<'_>,
        index: u32,
    ) -> Result<Reduction> {
        let n = inputs[0].len;
        self.reduce
            .build(ctx, n, scalars, index, 1.0, false, |partials, count| {
                let binds: Vec<Bind<'_>> = inputs
                    .iter()
                    .map(|&v| v.into())
                    .chain([partials.into()])
                    .collect();
                let u = Uniform::new(n, count, Coef::constant(1.0));
                entry.launch(ctx, &u, &binds, Groups::Exact([count, 1, 1]))
            })
    }

    /// `y ← y + coef · x`.
    pub fn axpy(
        &self, ctx: &Context, coef: Coef, x: View<'_>, y: ViewMut<'_>, scalars: View<'_>,
    ) -> Result<Dispatch> {
        self.elementwise(ctx, &self.axpy, coef, Some(x), y, scalars)
    }

    /// `y ← coef · x`.
    pub fn copy(
        &self, ctx: &Context, coef: Coef, x: View<'_>, y: ViewMut<'_>, scalars: View<'_>,
    ) -> Result<Dispatch> {
        self.elementwise(ctx, &self.copy, coef, Some(x), y, scalars)
    }

    /// `y ← coef · y`.
    pub fn scale(
        &self, ctx: &Context, coef: Coef, y: ViewMut<'_>, scalars: View<'_>,
    ) -> Result<Dispatch> {
        self.elementwise(ctx, &self.scale, coef, None, y, scalars)
    }

    /// A launch of `axpy`, `scaled_copy` or (without `x`) `scale`, which bind alike.
    fn elementwise(
        &self, ctx: &Context, entry: &EntryPoint, coef: Coef, x: Option<View<'_>>, y: ViewMut<'_>,
        scalars: View<'_>,
    ) -> Result<Dispatch> {
        if let Some(x) = x {
            expect_len("vector op y", &y, x.len)?;
        }
        check_slots(&coef, &scalars)?;
        let binds: Vec<Bind<'_>> = x
            .map(Bind::from)
            .into_iter()
            .chain([y.into(), scalars.into()])
            .collect();
        let u = Uniform::new(y.len, 0, coef);
        entry.launch(ctx, &u, &binds, per_element(y.len))
    }
}
