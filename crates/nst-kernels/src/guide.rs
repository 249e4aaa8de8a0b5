//! Guidance: features weighted per position by a guidance channel, for the guided Gram
//! matrices of Gatys et al., "Controlling Perceptual Factors in Neural Style Transfer" (2017).
//! See `shaders/guide.wgsl`.
//!
//! `(F ∘ m)[c, q] = F[c, q] · m[q]` is linear in F, so its backward is the same op on the
//! gradient: `∂L/∂F = ∂L/∂(F ∘ m) ∘ m`.

use crate::{entry, expect_len, expect_nonzero, per_element};
use nst_gpu::{Context, Dispatch, EntryPoint, Result, View, ViewMut};

nst_gpu::uniform! {
    struct Uniform {
        /// Elements: channels × plane.
        n: u32,
        /// Positions per channel (H·W).
        plane: u32,
        /// Add into dst.
        accumulate: u32,
    }
}

nst_gpu::contracts! {
    "guide.wgsl", Uniform;
    /// `guide_apply`: `dst` (+)= `src` ∘ `guide`.
    APPLY = "guide_apply": read(1, "src"), read(2, "guide"), read_write(3, "dst");
}

crate::shader!(
    /// `shaders/guide.wgsl`: features weighted per position.
    SHADER = "guide.wgsl" after [Uniform::WGSL]
    with [APPLY]
);

/// The guidance kernel.
pub struct Guide {
    apply: EntryPoint,
}

impl Guide {
    /// Compiles `shaders/guide.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        Ok(Guide {
            apply: entry(ctx, &module, &APPLY)?,
        })
    }

    /// `dst[c, q] = src[c, q] · guide[q]` over the channels of `src` (each `guide.len`
    /// positions); adds into `dst` when `accumulate`. Forward (F ∘ m) and backward
    /// (∂/∂(F ∘ m) ∘ m) alike.
    pub fn apply(
        &self, ctx: &Context, src: View<'_>, guide: View<'_>, dst: ViewMut<'_>, accumulate: bool,
    ) -> Result<Dispatch> {
        expect_nonzero("guidance", &[guide.len as u32])?;
        expect_len("guided features", &dst, src.len)?;
        if !src.len.is_multiple_of(guide.len) {
            return Err(nst_gpu::GpuError::BadShape(format!(
                "features of {} elements are not whole channels of {} positions",
                src.len, guide.len
            )));
        }
        let u = Uniform {
            n: src.len as u32,
            plane: guide.len as u32,
            accumulate: accumulate as u32,
        };
        self.apply.launch(
            ctx,
            &u,
            &[src.into(), guide.into(), dst.into()],
            per_element(src.len),
        )
    }
}
