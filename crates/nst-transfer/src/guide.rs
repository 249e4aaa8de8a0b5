//! Guidance channels for spatial control (Gatys et al., "Controlling Perceptual Factors in
//! Neural Style Transfer", CVPR 2017): a mask over the output saying where a style applies,
//! carried to each layer of the network the way the network carries positions.
//!
//! The rule: the mask is resized to the image (area-weighted), kept as it is through each
//! convolution and ReLU (they keep positions), and averaged 2×2 at each pooling layer (as
//! 2×2 pooling with stride 2 drops an odd last row or column, so does this). A position at a
//! layer thus carries the mean of the mask over the pixels it pools: the "simple" propagation
//! of Gatys et al., which keeps soft edges soft at every depth.

use crate::error::{Field, Result, TransferError};
use crate::image::Image;
use crate::settings::{Settings, Style};
use nst_vgg::{LayerId, LayerKind};
use serde::{Deserialize, Serialize};

/// How far a mask's aspect ratio may differ from the content's and still be read as covering
/// it (a mask drawn at another size, rounded).
const ASPECT_TOLERANCE: f64 = 0.02;

/// Checks that every style's mask and `settings`' content mask cover a `content` (width,
/// height) image and that each style's region covers its style image (their shapes), and that
/// no style's mask or region is all black: what [`crate::Engine::stylize`] and `score` check
/// first, for callers that check their input before opening the GPU.
pub fn check_masks(styles: &[Style], settings: &Settings, content: (u32, u32)) -> Result<()> {
    if let Some(m) = &settings.content_mask {
        check_shape(m, content, "the content mask", Field::ContentMask)?;
    }
    for (i, s) in styles.iter().enumerate() {
        if let Some(m) = &s.mask {
            check(m, content, &style_mask(i), Field::StyleMask)?;
        }
        if let Some(r) = &s.region {
            let size = (s.image.width, s.image.height);
            check(r, size, &style_region(i), Field::StyleRegion)?;
        }
    }
    Ok(())
}

/// How errors name style image `i`'s mask.
fn style_mask(i: usize) -> String {
    format!("the mask of style image {}", i + 1)
}

/// How errors name style image `i`'s region.
pub(crate) fn style_region(i: usize) -> String {
    format!("the region of style image {}", i + 1)
}

/// Each style's mask resized to `(width, height)`, or `None` where the style has none; after
/// checking each ([`check`]) against a `content` (width, height) image.
pub(crate) fn guides(
    styles: &[Style], content: (u32, u32), (width, height): (u32, u32),
) -> Result<Vec<Option<Mask>>> {
    let mut out = Vec::new();
    for (i, s) in styles.iter().enumerate() {
        out.push(match &s.mask {
            None => None,
            Some(m) => {
                check(m, content, &style_mask(i), Field::StyleMask)?;
                Some(m.resize(width, height))
            }
        });
    }
    Ok(out)
}

/// Checks that `m` (`what`, set by `field`) covers a `content` (width, height) image (its
/// shape, within [`ASPECT_TOLERANCE`]) and is not all black.
pub fn check(m: &Mask, content: (u32, u32), what: &str, field: Field) -> Result<()> {
    check_shape(m, content, what, field)?;
    if m.is_empty() {
        let reason =
            format!("{what} is all black, so it marks nothing: paint white where it applies");
        return Err(TransferError::invalid(field, reason));
    }
    Ok(())
}

/// Checks that `m` (`what`, set by `field`) covers a `content` (width, height) image: its
/// shape, within [`ASPECT_TOLERANCE`].
pub fn check_shape(m: &Mask, content: (u32, u32), what: &str, field: Field) -> Result<()> {
    let aspect = |w: u32, h: u32| w as f64 / h as f64;
    let (a, b) = (aspect(m.width, m.height), aspect(content.0, content.1));
    if (a / b - 1.0).abs() > ASPECT_TOLERANCE {
        let reason = format!(
            "{what} is {}×{}, which does not cover the {}×{} image (the shapes differ): draw \
             the mask over that image, at any size",
            m.width, m.height, content.0, content.1
        );
        return Err(TransferError::invalid(field, reason));
    }
    Ok(())
}

/// A single-channel mask in [0, 1], row-major: 1 where a style applies, 0 where it does not,
/// values between for soft edges.
///
/// Written as `{"width": w, "height": h, "values": [...]}` (row-major); read the same way,
/// values clamped to [0, 1], an error when their count is not `width × height`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MaskWritten", into = "MaskWritten")]
pub struct Mask {
    width: u32,
    height: u32,
    data: Vec<f32>,
}

/// [`Mask`] as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskWritten {
    width: u32,
    height: u32,
    values: Vec<f32>,
}

impl From<Mask> for MaskWritten {
    fn from(m: Mask) -> MaskWritten {
        MaskWritten {
            width: m.width,
            height: m.height,
            values: m.data,
        }
    }
}

impl TryFrom<MaskWritten> for Mask {
    type Error = String;

    fn try_from(w: MaskWritten) -> std::result::Result<Mask, String> {
        let n = w.values.len();
        Mask::new(w.width, w.height, w.values).ok_or_else(|| {
            format!(
                "a mask of {}×{} needs {} values, not {n}",
                w.width,
                w.height,
                w.width as u64 * w.height as u64
            )
        })
    }
}

impl Mask {
    /// A mask of `width × height` values, each clamped to [0, 1]; `None` when the sizes do
    /// not match the data or are zero.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Option<Mask> {
        let n = width as usize * height as usize;
        (n > 0 && data.len() == n).then(|| Mask {
            width,
            height,
            data: data.into_iter().map(|v| v.clamp(0.0, 1.0)).collect(),
        })
    }

    /// The luminance of an image (white 1, black 0): how a mask painted or drawn in any
    /// colour is read.
    pub fn from_image(img: &Image) -> Mask {
        Mask::new(img.width(), img.height(), crate::color::luminance(img))
            .expect("an image has pixels")
    }

    /// A mask from an image file as loaded: its luminance where opaque, and, where the file is
    /// transparent, its luminance over black. So a mask painted in white on a transparent
    /// background marks only the paint (a plain load composites over white, which would mark
    /// everything).
    pub fn from_loaded(loaded: &crate::image::Loaded) -> Mask {
        let mut m = Mask::from_image(&loaded.image);
        if let Some(alpha) = &loaded.alpha {
            // Over white the luminance is l·a + (1 − a); over black, l·a.
            for (v, &a) in m.data.iter_mut().zip(alpha) {
                *v = (*v - (1.0 - a)).clamp(0.0, 1.0);
            }
        }
        m
    }

    /// The width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Whether no value is above 0: a mask under which nothing applies.
    pub fn is_empty(&self) -> bool {
        self.data.iter().all(|&v| v <= 0.0)
    }

    /// The mask at `width × height`, each value the area-weighted mean of the values it
    /// covers (so a hard edge becomes a soft one only where a new pixel straddles it).
    pub fn resize(&self, width: u32, height: u32) -> Mask {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let (sw, sh) = (self.width as f64, self.height as f64);
        let (fx, fy) = (sw / width as f64, sh / height as f64);
        // Each output pixel covers [x·fx, (x+1)·fx) of the source; weights by overlap.
        let spans = |n: u32, f: f64, src: u32| -> Vec<Vec<(usize, f64)>> {
            (0..n)
                .map(|i| {
                    let (a, b) = (i as f64 * f, (i + 1) as f64 * f);
                    let first = a.floor() as u32;
                    let last = (b.ceil() as u32).min(src);
                    (first..last)
                        .map(|s| {
                            let w = (b.min(s as f64 + 1.0) - a.max(s as f64)).max(0.0);
                            (s as usize, w)
                        })
                        .filter(|&(_, w)| w > 0.0)
                        .collect()
                })
                .collect()
        };
        let (xs, ys) = (spans(width, fx, self.width), spans(height, fy, self.height));
        let mut data = Vec::with_capacity(width as usize * height as usize);
        for y in &ys {
            for x in &xs {
                let (mut sum, mut total) = (0.0f64, 0.0f64);
                for &(sy, wy) in y {
                    for &(sx, wx) in x {
                        sum += wy * wx * self.data[sy * self.width as usize + sx] as f64;
                        total += wy * wx;
                    }
                }
                data.push((sum / total) as f32);
            }
        }
        Mask {
            width,
            height,
            data,
        }
    }

    /// The guidance at the output of layer `l` for this mask at the image's size: averaged
    /// 2×2 at each pooling layer up to `l`, row-major at the layer's height × width.
    pub fn at_layer(&self, l: LayerId) -> Vec<f32> {
        at_layer(self.width, self.height, self.data.clone(), l)
    }
}

/// How much the content counts at each position of layer `l` under the content mask `map`
/// (at the image's size): each pixel's [`crate::defaults::mask_balance`] of its strength,
/// carried down like a mask ([`at_layer`]).
pub(crate) fn content_weights_at(map: &Mask, l: LayerId) -> Vec<f32> {
    let balance = |&s: &f32| crate::defaults::mask_balance(s as f64) as f32;
    at_layer(
        map.width,
        map.height,
        map.data.iter().map(balance).collect(),
        l,
    )
}

/// A map over the image (`width × height`, row-major) at the output of layer `l`: averaged
/// 2×2 at each pooling layer up to `l`, an odd last row or column dropped.
pub(crate) fn at_layer(width: u32, height: u32, mut data: Vec<f32>, l: LayerId) -> Vec<f32> {
    let (mut w, mut h) = (width as usize, height as usize);
    let pools = LayerId::all().take_while(|&id| id <= l);
    for _ in pools.filter(|id| id.layer().kind == LayerKind::Pool) {
        let (w2, h2) = (w / 2, h / 2);
        let mut next = Vec::with_capacity(w2 * h2);
        for y in 0..h2 {
            for x in 0..w2 {
                let at = |dy: usize, dx: usize| data[(2 * y + dy) * w + 2 * x + dx];
                next.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0);
            }
        }
        (w, h, data) = (w2, h2, next);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(w: u32, h: u32, data: &[f32]) -> Mask {
        Mask::new(w, h, data.to_vec()).unwrap()
    }

    #[test]
    fn values_are_clamped_and_sizes_checked() {
        assert_eq!(mask(2, 1, &[-1.0, 2.0]).data(), [0.0, 1.0]);
        assert!(Mask::new(2, 2, vec![0.0; 3]).is_none());
        assert!(Mask::new(0, 2, vec![]).is_none());
        assert!(mask(1, 2, &[0.0, 0.0]).is_empty());
    }

    #[test]
    fn a_transparent_area_of_a_mask_file_marks_nothing() {
        // White paint on a transparent background, one pixel half transparent, one grey and
        // opaque.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mask.png");
        let px = [
            [255, 255, 255, 255],
            [255, 255, 255, 0],
            [255, 255, 255, 128],
            [128, 128, 128, 255],
        ];
        let img = ::image::RgbaImage::from_fn(4, 1, |x, _| ::image::Rgba(px[x as usize]));
        img.save(&path).unwrap();
        let loaded = crate::image::load(&path).unwrap();
        let m = Mask::from_loaded(&loaded);
        let want = [1.0, 0.0, 128.0 / 255.0, 128.0 / 255.0];
        for (got, want) in m.data().iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{:?}", m.data());
        }
        // The load kept the file's opacity.
        assert!(loaded.alpha.is_some());
    }

    #[test]
    fn resizing_averages_by_area() {
        // Halving: each output pixel is the mean of 2×2.
        let m = mask(4, 2, &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(m.resize(2, 1).data(), [0.5, 0.25]);
        // 3 → 2: the middle source pixel is split between both.
        let m = mask(3, 1, &[1.0, 0.0, 1.0]);
        let r = m.resize(2, 1);
        assert!((r.data()[0] - 2.0 / 3.0).abs() < 1e-6, "{:?}", r.data());
        // Enlarging a hard edge by a whole factor keeps it hard.
        let m = mask(2, 1, &[1.0, 0.0]);
        assert_eq!(m.resize(4, 1).data(), [1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn layers_pool_the_mask_as_the_network_pools_positions() {
        let l = |n: &str| LayerId::parse(n).unwrap();
        // 5×4: relu1_1 keeps it; relu2_1 (after pool1) is 2×2 of 2×2 means, the odd column
        // dropped.
        let data: Vec<f32> = (0..20).map(|i| (i % 5) as f32 / 4.0).collect();
        let m = mask(5, 4, &data);
        assert_eq!(m.at_layer(l("relu1_1")), data);
        assert_eq!(m.at_layer(l("relu2_1")), [0.125, 0.625, 0.125, 0.625]);
        // relu3_1 (after pool2): 1×1.
        assert_eq!(m.at_layer(l("relu3_1")), [0.375]);
    }
}
