//! The pixel transform from RGB in [0, 1] to a weight set's input convention, and its
//! backward. See `shaders/pixel.wgsl`.

use crate::{expect_len, expect_nonzero, Entry};
use nst_gpu::{Bind, Context, Dispatch, Result, Slot, View};

/// `out[c] = scale[c] · x[perm[c]] + offset[c]` for the three channels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelTransform {
    /// Which RGB channel feeds output channel c.
    pub perm: [u32; 3],
    /// Multiplier per output channel.
    pub scale: [f32; 3],
    /// Offset per output channel.
    pub offset: [f32; 3],
}

impl PixelTransform {
    /// The original (Caffe) VGG: BGR, 0–255, minus the mean pixel (103.939, 116.779, 123.68).
    pub const CAFFE: PixelTransform = PixelTransform {
        perm: [2, 1, 0],
        scale: [255.0; 3],
        offset: [-103.939, -116.779, -123.68],
    };

    /// torchvision's VGG: RGB, normalised by ImageNet mean (0.485, 0.456, 0.406) and std
    /// (0.229, 0.224, 0.225).
    pub const TORCHVISION: PixelTransform = PixelTransform {
        perm: [0, 1, 2],
        scale: [1.0 / 0.229, 1.0 / 0.224, 1.0 / 0.225],
        offset: [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
    };
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Uniform {
    perm: [u32; 4],
    inv_perm: [u32; 4],
    scale: [f32; 4],
    offset: [f32; 4],
    plane: u32,
    accumulate: u32,
    _pad: [u32; 2],
}

/// The pixel transform kernels.
pub struct PixelTransformKernel {
    forward: Entry,
    backward: Entry,
    clamp: Entry,
}

impl PixelTransformKernel {
    /// Compiles `shaders/pixel.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = nst_gpu::shader(ctx, "pixel.wgsl", crate::PIXEL_WGSL)?;
        use Slot::*;
        Ok(PixelTransformKernel {
            forward: Entry::new(ctx, &module, "pixel_forward", &[Uniform, Read, Write])?,
            backward: Entry::new(ctx, &module, "pixel_backward", &[Uniform, Read, Write])?,
            clamp: Entry::new(ctx, &module, "pixel_clamp", &[Uniform, Unused, Write])?,
        })
    }

    fn uniform(
        ctx: &Context,
        label: &str,
        t: &PixelTransform,
        plane: u32,
        accumulate: bool,
    ) -> Result<wgpu::Buffer> {
        let mut inv_perm = [3u32; 4];
        for (c, &k) in t.perm.iter().enumerate() {
            if k > 2 || inv_perm[k as usize] != 3 {
                return Err(nst_gpu::GpuError::BadShape(format!(
                    "pixel transform channel order {:?} is not a permutation of 0, 1, 2",
                    t.perm
                )));
            }
            inv_perm[k as usize] = c as u32;
        }
        let pad = |a: [f32; 3]| [a[0], a[1], a[2], 0.0];
        Ok(ctx.uniform(
            label,
            &Uniform {
                perm: [t.perm[0], t.perm[1], t.perm[2], 0],
                inv_perm,
                scale: pad(t.scale),
                offset: pad(t.offset),
                plane,
                accumulate: accumulate as u32,
                _pad: [0; 2],
            },
        ))
    }

    /// `y` (3 × h × w, the network's convention) from `x` (RGB in [0, 1]).
    pub fn forward(
        &self,
        ctx: &Context,
        t: &PixelTransform,
        h: u32,
        w: u32,
        x: View<'_>,
        y: View<'_>,
    ) -> Result<Dispatch> {
        expect_nonzero("image", &[h, w])?;
        let n = 3 * h as u64 * w as u64;
        expect_len("RGB image", &x, n)?;
        expect_len("network input", &y, n)?;
        let u = Self::uniform(ctx, "pixel_forward", t, h * w, false)?;
        let d = self.forward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("RGB image", x),
                Bind::Storage("network input", y),
            ],
            n,
        )?;
        Ok(d.owning(u))
    }

    /// `gx (+)=` gradient with respect to the RGB pixels from `gy`, the network input's.
    pub fn backward(
        &self,
        ctx: &Context,
        t: &PixelTransform,
        h: u32,
        w: u32,
        gy: View<'_>,
        gx: View<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        expect_nonzero("image", &[h, w])?;
        let n = 3 * h as u64 * w as u64;
        expect_len("network input gradient", &gy, n)?;
        expect_len("RGB image gradient", &gx, n)?;
        let u = Self::uniform(ctx, "pixel_backward", t, h * w, accumulate)?;
        let d = self.backward.dispatch(
            ctx,
            &[
                Bind::Uniform(&u),
                Bind::Storage("network input gradient", gy),
                Bind::Storage("RGB image gradient", gx),
            ],
            n,
        )?;
        Ok(d.owning(u))
    }

    /// `x ← clamp(x, 0, 1)` in place over an RGB image (3 × h × w): after each optimizer
    /// step, so the image stays a picture (as crowsonkb/style-transfer does).
    pub fn clamp(&self, ctx: &Context, h: u32, w: u32, x: View<'_>) -> Result<Dispatch> {
        expect_nonzero("image", &[h, w])?;
        let n = 3 * h as u64 * w as u64;
        expect_len("RGB image", &x, n)?;
        let u = Self::uniform(ctx, "pixel_clamp", &PixelTransform::CAFFE, h * w, false)?;
        let d = self.clamp.dispatch(
            ctx,
            &[Bind::Uniform(&u), Bind::None, Bind::Storage("RGB image", x)],
            n,
        )?;
        Ok(d.owning(u))
    }
}
