//! How stylized an image is, by a measure that depends on no loss weight (`docs/loss.md`,
//! "The measure"): users compare settings with it, tests assert on it.
//!
//! With G_l = F_l·F_lᵀ / (H_l·W_l) at the image's own size, the content image resized to it,
//! each style image resized so that its longest side is the image's, and max pooling:
//!
//! ```text
//! style distance     D_s(x) = mean over relu1_1 … relu5_1 of ‖G_l(x) − S̄_l‖_F / ‖S̄_l‖_F
//! content distance   D_c(x) = ‖F(x) − F(c)‖_F / ‖F(c)‖_F at relu4_2
//! style gap closed          = 1 − D_s(x) / D_s(c)
//! ```
//!
//! where S̄_l = Σ_k b_k·G_l(s_k) is the blended style target.

use nst_vgg::LayerId;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

/// The layers whose Gram matrices the style distance compares.
pub const STYLE_LAYERS: &[&str] = crate::STYLE_LAYERS;

/// The layer whose activations the content distance compares.
pub const CONTENT_LAYER: &str = "relu4_2";

/// The measure of one image against its content and style images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measure {
    /// D_s(x): the mean relative distance of the image's Gram matrices from the style's
    /// (0: the style's statistics exactly).
    pub style_distance: f64,
    /// D_c(x): the relative distance of the image's relu4_2 activations from the content
    /// image's (0: the photo's content exactly).
    pub content_distance: f64,
    /// D_s(c): the content image's own style distance, where every run starts.
    pub content_style_distance: f64,
}

impl Measure {
    /// 1 − D_s(x)/D_s(c): the share of the photo's style gap the image closes (0: none, as
    /// the photo itself; 1: all of it).
    pub fn style_gap_closed(&self) -> f64 {
        1.0 - self.style_distance / self.content_style_distance
    }

    /// The measure from the images' features: Gram matrices at [`STYLE_LAYERS`] (of the image,
    /// of the content image, and the blended style target) and activations at
    /// [`CONTENT_LAYER`] (of the image and the content image).
    pub fn from_features(
        image_grams: &[Vec<f32>], content_grams: &[Vec<f32>], style_targets: &[Vec<f64>],
        image_content: &[f32], content_content: &[f32],
    ) -> Measure {
        let style_distance = |grams: &[Vec<f32>]| {
            let d: f64 = grams
                .iter()
                .zip(style_targets)
                .map(|(g, t)| relative_distance(g, t))
                .sum();
            d / style_targets.len().max(1) as f64
        };
        let target: Vec<f64> = content_content.iter().map(|&v| v as f64).collect();
        Measure {
            style_distance: style_distance(image_grams),
            content_distance: relative_distance(image_content, &target),
            content_style_distance: style_distance(content_grams),
        }
    }
}

/// How one region of an image compares with the photo and with each style
/// ([`crate::Engine::region_measure`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionMeasure {
    /// The content distance restricted to the region: ‖(F(x) − F(c)) ∘ m‖ / ‖F(c) ∘ m‖ at
    /// [`CONTENT_LAYER`], m the mask carried down to it (how near the photo the region stayed).
    pub content_distance: f64,
    /// Its distance from each style.
    pub styles: Vec<RegionDistance>,
}

/// ‖(x − t) ∘ m‖ / ‖t ∘ m‖ of two `c × n` activations under a mask of `n`: the content
/// distance restricted to a region.
pub fn masked_content_distance(x: &[f32], t: &[f32], m: &[f32]) -> f64 {
    let n = m.len().max(1);
    let at = |i: usize| m[i % n] as f64;
    let xm: Vec<f32> = (x.iter().enumerate())
        .map(|(i, &v)| (v as f64 * at(i)) as f32)
        .collect();
    let tm: Vec<f64> = (t.iter().enumerate())
        .map(|(i, &v)| v as f64 * at(i))
        .collect();
    relative_distance(&xm, &tm)
}

/// How close one region of an image is to one style: the style distance restricted to a mask
/// (`docs/loss.md`, "The measure"), with the guided Gram matrices of the image and of the
/// content image over the region against the style image's plain ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegionDistance {
    /// Which style image (0-based).
    pub style: usize,
    /// The region's style distance from this style.
    pub style_distance: f64,
    /// The content image's over the same region.
    pub content_style_distance: f64,
}

impl RegionDistance {
    /// 1 − D_s(x; m)/D_s(c; m): the share of the region's gap to this style closed.
    pub fn style_gap_closed(&self) -> f64 {
        1.0 - self.style_distance / self.content_style_distance
    }

    /// The distances from activations at [`STYLE_LAYERS`] (`c × n` each, of the image and of
    /// the content image), the mask at each layer (`n` each) and the style's Gram matrices.
    pub fn from_features(
        style: usize, image: &[Vec<f32>], content: &[Vec<f32>], masks: &[Vec<f32>],
        targets: &[&[f32]],
    ) -> RegionDistance {
        let distance = |acts: &[Vec<f32>]| {
            let d: f64 = (acts.iter().zip(masks).zip(targets))
                .map(|((f, m), t)| {
                    let g: Vec<f32> = guided_gram(f, m).iter().map(|&v| v as f32).collect();
                    let t: Vec<f64> = t.iter().map(|&v| v as f64).collect();
                    relative_distance(&g, &t)
                })
                .sum();
            d / targets.len().max(1) as f64
        };
        RegionDistance {
            style,
            style_distance: distance(image),
            content_style_distance: distance(content),
        }
    }
}

impl Serialize for RegionDistance {
    /// The style (1-based, as people count), both distances and the gap closed.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RegionDistance", 4)?;
        st.serialize_field("style", &(self.style + 1))?;
        st.serialize_field("style_distance", &self.style_distance)?;
        st.serialize_field("style_gap_closed", &self.style_gap_closed())?;
        st.serialize_field("content_style_distance", &self.content_style_distance)?;
        st.end()
    }
}

/// The guided Gram matrix (F ∘ m)(F ∘ m)ᵀ / Σ m² of `f` (`c × n`, `n = m.len()`), in f64;
/// zero where the mask is empty.
pub fn guided_gram(f: &[f32], m: &[f32]) -> Vec<f64> {
    let n = m.len();
    let c = f.len() / n.max(1);
    let energy: f64 = m.iter().map(|&v| v as f64 * v as f64).sum();
    let mut g = vec![0.0f64; c * c];
    if energy == 0.0 {
        return g;
    }
    let a: Vec<f64> = (f.iter().enumerate())
        .map(|(i, &v)| v as f64 * m[i % n] as f64)
        .collect();
    for i in 0..c {
        let ai = &a[i * n..(i + 1) * n];
        for j in i..c {
            let aj = &a[j * n..(j + 1) * n];
            let v = ai.iter().zip(aj).map(|(x, y)| x * y).sum::<f64>() / energy;
            g[i * c + j] = v;
            g[j * c + i] = v;
        }
    }
    g
}

/// ‖x − t‖ / ‖t‖ in f64 (0 when both are 0).
fn relative_distance(x: &[f32], t: &[f64]) -> f64 {
    let (mut d, mut n) = (0.0f64, 0.0f64);
    for (&a, &b) in x.iter().zip(t) {
        d += (a as f64 - b) * (a as f64 - b);
        n += b * b;
    }
    if n == 0.0 {
        return if d == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (d / n).sqrt()
}

impl std::fmt::Display for Measure {
    /// One line for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "style gap closed {:.1} % (style distance {:.3}, the photo's {:.3}); content \
             distance {:.3}",
            100.0 * self.style_gap_closed(),
            self.style_distance,
            self.content_style_distance,
            self.content_distance
        )
    }
}

impl Serialize for Measure {
    /// The three distances and the style gap closed.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Measure", 4)?;
        st.serialize_field("style_distance", &self.style_distance)?;
        st.serialize_field("content_distance", &self.content_distance)?;
        st.serialize_field("style_gap_closed", &self.style_gap_closed())?;
        st.serialize_field("content_style_distance", &self.content_style_distance)?;
        st.end()
    }
}

/// The measure's taps, in network order.
pub fn taps() -> Vec<LayerId> {
    let mut t: Vec<LayerId> = style_layers();
    t.push(content_layer());
    t.sort();
    t
}

/// [`STYLE_LAYERS`] as ids.
pub fn style_layers() -> Vec<LayerId> {
    STYLE_LAYERS
        .iter()
        .map(|n| LayerId::parse(n).expect("a layer of the table"))
        .collect()
}

/// [`CONTENT_LAYER`] as an id.
pub fn content_layer() -> LayerId {
    LayerId::parse(CONTENT_LAYER).expect("a layer of the table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guided_gram_is_the_references() {
        let (c, n) = (3, 10);
        let f: Vec<f32> = (0..c * n)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let m: Vec<f32> = (0..n).map(|i| [0.0, 0.25, 1.0][i % 3]).collect();
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let want = nst_reference::guide::guided_gram_forward(&f64s(&f), &f64s(&m), c);
        for (g, w) in guided_gram(&f, &m).iter().zip(&want) {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
        }
        assert!(guided_gram(&f, &[0.0; 10]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn distances_are_relative_and_the_gap_is_shared() {
        // Image grams halfway between the content's (0) and the target (2): D_s(x) = 0.5,
        // D_s(c) = 1, so half the gap is closed.
        let target = vec![vec![2.0f64; 4]; 5];
        let image = vec![vec![1.0f32; 4]; 5];
        let content = vec![vec![0.0f32; 4]; 5];
        let m = Measure::from_features(&image, &content, &target, &[3.0, 4.0], &[0.0, 5.0]);
        assert!((m.style_distance - 0.5).abs() < 1e-12);
        assert!((m.content_style_distance - 1.0).abs() < 1e-12);
        assert!((m.style_gap_closed() - 0.5).abs() < 1e-12);
        // ‖(3, −1)‖ / ‖(0, 5)‖ = √10 / 5.
        assert!((m.content_distance - 10f64.sqrt() / 5.0).abs() < 1e-12);
    }

    #[test]
    fn the_taps_are_the_style_layers_and_relu4_2_in_order() {
        let names: Vec<String> = taps().iter().map(|t| t.to_string()).collect();
        assert_eq!(
            names,
            ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
        );
    }
}
