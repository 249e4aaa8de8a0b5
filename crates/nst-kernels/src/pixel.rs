//! The pixel transform from RGB in [0, 1] to a weight set's input convention, and its
//! backward. See `shaders/pixel.wgsl`.
//!
//! The transform is [`PixelTransform`]: plain numbers that the caller builds from the weights'
//! input convention (`nst_vgg::transform_for`), so the convention is written down once, in
//! `nst_weights`.

use crate::{entry, expect_len, expect_nonzero, per_element};
use nst_gpu::{Context, Dispatch, EntryPoint, GpuError, Result, View, ViewMut};

nst_gpu::uniform! {
    struct Uniform {
        perm: [u32; 4],
        inv_perm: [u32; 4],
        scale: [f32; 4],
        offset: [f32; 4],
        /// H·W.
        plane: u32,
        /// Backward: add into gx.
        accumulate: u32,
    }
}

nst_gpu::contracts! {
    "pixel.wgsl", Uniform;
    /// `pixel_forward`: the network input `y` from the RGB image `x`.
    FORWARD = "pixel_forward": read(1, "x"), read_write(2, "y");
    /// `pixel_backward`: the RGB gradient `gx` from the network input's `gy`.
    BACKWARD = "pixel_backward": read(1, "gy"), read_write(2, "gx");
    /// `pixel_clamp`: `x` clamped to [0, 1] in place.
    CLAMP = "pixel_clamp": read_write(2, "x");
}

crate::shader!(
    /// `shaders/pixel.wgsl`: the pixel transform and the clamp.
    SHADER = "pixel.wgsl" after [Uniform::WGSL]
    with [FORWARD, BACKWARD, CLAMP]
);

impl Uniform {
    /// `t` for images of `plane` pixels, after checking that its channel order is a
    /// permutation.
    fn new(t: &PixelTransform, plane: u32, accumulate: bool) -> Result<Self> {
        let mut inv_perm = [3u32; 4];
        for (c, &k) in t.perm.iter().enumerate() {
            if k > 2 || inv_perm[k] != 3 {
                return Err(GpuError::BadShape(format!(
                    "pixel transform channel order {:?} is not a permutation of 0, 1, 2",
                    t.perm
                )));
            }
            inv_perm[k] = c as u32;
        }
        let pad = |a: [f64; 3]| [a[0] as f32, a[1] as f32, a[2] as f32, 0.0];
        Ok(Uniform {
            perm: [t.perm[0] as u32, t.perm[1] as u32, t.perm[2] as u32, 0],
            inv_perm,
            scale: pad(t.scale),
            offset: pad(t.offset),
            plane,
            accumulate: accumulate as u32,
        })
    }
}

/// A per-channel affine map with a channel permutation:
/// `out[c] = scale[c] · x[perm[c]] + offset[c]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelTransform {
    /// Output channel `c` reads input (RGB) channel `perm[c]`.
    pub perm: [usize; 3],
    /// Multiplier of output channel `c`.
    pub scale: [f64; 3],
    /// Added to output channel `c` after scaling.
    pub offset: [f64; 3],
}

/// Elements of a `3 × h × w` image, after checking that it has some.
fn image_len(h: u32, w: u32) -> Result<u64> {
    expect_nonzero("image", &[h, w])?;
    Ok(3 * h as u64 * w as u64)
}

/// The pixel transform kernels.
pub struct PixelTransformKernel {
    forward: EntryPoint,
    backward: EntryPoint,
    clamp: EntryPoint,
}

impl PixelTransformKernel {
    /// Compiles `shaders/pixel.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        Ok(PixelTransformKernel {
            forward: entry(ctx, &module, &FORWARD)?,
            backward: entry(ctx, &module, &BACKWARD)?,
            clamp: entry(ctx, &module, &CLAMP)?,
        })
    }

    /// `y` (3 × h × w, the network's convention) from `x` (RGB in [0, 1]).
    pub fn forward(
        &self, ctx: &Context, t: &PixelTransform, h: u32, w: u32, x: View<'_>, y: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = image_len(h, w)?;
        expect_len("RGB image", &x, n)?;
        expect_len("network input", &y, n)?;
        let u = Uniform::new(t, h * w, false)?;
        self.forward
            .launch(ctx, &u, &[x.into(), y.into()], per_element(n))
    }

    /// `gx (+)=` gradient with respect to the RGB pixels from `gy`, the network input's.
    pub fn backward(
        &self, ctx: &Context, t: &PixelTransform, h: u32, w: u32, gy: View<'_>, gx: ViewMut<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        let n = image_len(h, w)?;
        expect_len("network input gradient", &gy, n)?;
        expect_len("RGB image gradient", &gx, n)?;
        let u = Uniform::new(t, h * w, accumulate)?;
        self.backward
            .launch(ctx, &u, &[gy.into(), gx.into()], per_element(n))
    }

    /// `x ← clamp(x, 0, 1)` in place over an RGB image (3 × h × w): after each optimizer
    /// step, so the image stays a picture (as crowsonkb/style-transfer does).
    pub fn clamp(&self, ctx: &Context, h: u32, w: u32, x: ViewMut<'_>) -> Result<Dispatch> {
        let n = image_len(h, w)?;
        expect_len("RGB image", &x, n)?;
        // Only the plane size matters to the clamp.
        let u = Uniform {
            plane: h * w,
            ..bytemuck::Zeroable::zeroed()
        };
        self.clamp.launch(ctx, &u, &[x.into()], per_element(n))
    }
}
