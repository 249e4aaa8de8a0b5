//! Image files in and out: decoding (with EXIF orientation, alpha, gray-scale and bit-depth
//! handling), high-quality resizing, and safe encoding that never leaves a half-written file.
//!
//! In memory an image is planar RGB `f32` in [0, 1], the layout the GPU pipeline uploads.

use std::fmt;

// `::image` is the external crate; this module shares its name.
use ::image::imageops::FilterType;
use ::image::{ImageBuffer, Rgb};

use encode::to_u8;

mod decode;
mod encode;
mod error;

pub use decode::{decode, load, Loaded};
pub(crate) use encode::write_atomic;
pub use encode::{check_output_path, encode_png, same_file, save};
pub use error::ImageError;

/// The largest image accepted, in pixels (2^28, e.g. 16384 × 16384): beyond this the `f32`
/// planes alone take 3 GiB, far more than any style transfer run can use.
pub const MAX_PIXELS: u64 = 1 << 28;

/// An RGB image in memory: planar `f32` samples in [0, 1], channel-major.
/// Built only by [`Image::new`] (or by loading a file), so its size always matches its data.
#[derive(Clone, PartialEq)]
pub struct Image {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) data: Vec<f32>,
}

impl Image {
    /// Wraps planar RGB samples: the R plane, then G, then B, each row-major, so `data` must
    /// hold `3 × width × height` values. Refuses an empty image, one larger than
    /// [`MAX_PIXELS`], and data of another length.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self, ImageError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels == 0 || pixels > MAX_PIXELS || data.len() as u64 != 3 * pixels {
            return Err(ImageError::BadData {
                width,
                height,
                len: data.len(),
            });
        }
        Ok(Self::from_parts(width, height, data))
    }

    /// [`Image::new`] for sizes this crate computed itself.
    pub(crate) fn from_parts(width: u32, height: u32, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), 3 * width as usize * height as usize);
        Self {
            width,
            height,
            data,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The `3 × height × width` samples in [0, 1]: the R plane, then G, then B.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The samples, without copying.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The number of pixels, `width × height`.
    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Interleaves the planes into RGBRGB… order, the layout the `image` crate uses.
    fn to_interleaved(&self) -> Vec<f32> {
        let n = self.pixel_count();
        let (r, rest) = self.data.split_at(n);
        let (g, b) = rest.split_at(n);
        let mut out = Vec::with_capacity(3 * n);
        for ((&r, &g), &b) in r.iter().zip(g).zip(b) {
            out.extend_from_slice(&[r, g, b]);
        }
        out
    }

    /// 8-bit RGBA, opaque, as a PNG file stores it and a browser's `ImageData` takes it.
    pub fn to_rgba8(&self) -> Vec<u8> {
        self.to_interleaved()
            .chunks_exact(3)
            .flat_map(|p| [to_u8(p[0]), to_u8(p[1]), to_u8(p[2]), 255])
            .collect()
    }

    /// Splits RGBRGB… samples into planes.
    fn from_interleaved(width: u32, height: u32, rgb: &[f32]) -> Self {
        let n = width as usize * height as usize;
        let mut data = vec![0.0; 3 * n];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            data[i] = px[0];
            data[n + i] = px[1];
            data[2 * n + i] = px[2];
        }
        Self::from_parts(width, height, data)
    }
}

// Hand-written so that an accidental `{:?}` does not print millions of samples.
impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// Resamples to `width × height` with a Catmull-Rom filter (sharp, with less ringing than
/// Lanczos when multi-scale runs upscale repeatedly); the result is clamped to [0, 1].
/// The same size returns a copy; a zero size is taken as 1.
pub fn resize(img: &Image, width: u32, height: u32) -> Image {
    let (width, height) = (width.max(1), height.max(1));
    if (width, height) == (img.width, img.height) {
        return img.clone();
    }
    let buffer =
        ImageBuffer::<Rgb<f32>, Vec<f32>>::from_raw(img.width, img.height, img.to_interleaved())
            .expect("an Image holds 3 × width × height samples");
    let resized = ::image::imageops::resize(&buffer, width, height, FilterType::CatmullRom);
    // `imageops` clamps float output to [0, 1] itself; clamping again costs little and keeps
    // the invariant independent of that detail.
    let samples: Vec<f32> = resized
        .into_raw()
        .iter()
        .map(|v| v.clamp(0.0, 1.0))
        .collect();
    Image::from_interleaved(width, height, &samples)
}

/// The size that fits `width × height` into a `longest`-pixel longest side, keeping the
/// aspect ratio (rounded, each side at least 1).
pub fn fit_longest(width: u32, height: u32, longest: u32) -> (u32, u32) {
    let (w, h, longest) = (width.max(1), height.max(1), longest.max(1));
    let scaled = |short: u32, long: u32| {
        ((f64::from(short) * f64::from(longest) / f64::from(long)).round() as u32).max(1)
    };
    if w >= h {
        (longest, scaled(h, w))
    } else {
        (scaled(w, h), longest)
    }
}

#[cfg(test)]
mod tests;
