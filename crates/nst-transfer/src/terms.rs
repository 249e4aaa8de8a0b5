//! What the loss is made of: its terms, their weights, and their values.
//!
//! For an image x in RGB [0, 1], content image c and style images s_k with blend weights b_k
//! (summing to 1):
//!
//! ```text
//! content_l   = mean over elements of (F_l(x) − F_l(c))²
//! G_l(y)      = F_l(y)·F_l(y)ᵀ / (H_l·W_l)
//! style_l,k   = mean over the C×C entries of (G_l(x) − G_l(s_k))²
//! tv          = mean |x[h+1] − x[h]| + mean |x[w+1] − x[w]|
//! out_of_range = mean(max(x − 1, 0)² + max(−x, 0)²)
//! total       = content_weight·Σ_l a_l·content_l + style_weight·Σ_k b_k Σ_l c_l·style_l,k
//!               + tv_weight·tv + out_of_range_weight·out_of_range
//! ```
//!
//! A layer weight is either given ([`Weight::Raw`]) or scale-free ([`Weight::Normalized`]):
//! a_l = w / mean(F_l(c)²) and c_l = w / mean(S̄_l²), with S̄_l = Σ_k b_k·G_l(s_k) the blended
//! target. The normalized terms are then the squared relative distances
//! ‖F_l(x) − F_l(c)‖² / ‖F_l(c)‖² and ‖G_l(x) − S̄_l‖² / ‖S̄_l‖² (plus a constant with several
//! styles), the same size for any pair of images and any size.
//!
//! The style gradient uses the blended target S̄_l: since Σ_k b_k = 1,
//! ∂/∂G Σ_k b_k·mean((G − S_k)²) = 2(G − S̄)/C², so one backward serves every style.

use crate::error::{Field, Result, TransferError};
use nst_vgg::LayerId;
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// How one layer's term is weighted in its sum. Written `{"normalized": 1.0}` or
/// `{"raw": 1e3}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weight {
    /// This number divided by the mean square of the layer's target (F_l(c) for content,
    /// the blended style Gram for style), computed from the images at each run: a weight that
    /// means the same for any images, any size and any layer. The default, with 1.
    Normalized(f64),
    /// The raw term of `docs/loss.md` times this number.
    Raw(f64),
}

impl Weight {
    /// The number given, whichever the form.
    pub fn value(self) -> f64 {
        match self {
            Weight::Normalized(w) | Weight::Raw(w) => w,
        }
    }

    /// The factor of the raw term, given the mean square of the layer's target; `None` when
    /// a normalized weight meets a target that is all zero (or not finite).
    pub fn factor(self, target_mean_square: f64) -> Option<f64> {
        match self {
            Weight::Normalized(w) if target_mean_square > 0.0 && target_mean_square.is_finite() => {
                Some(w / target_mean_square)
            }
            Weight::Normalized(_) => None,
            Weight::Raw(w) => Some(w),
        }
    }
}

/// A layer and its weight in a sum of per-layer losses. Written
/// `{"layer": "relu4_2", "weight": {"normalized": 1.0}}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerWeight {
    /// The layer.
    pub layer: LayerId,
    /// Its weight (a_l or c_l).
    pub weight: Weight,
}

impl LayerWeight {
    /// The layer with the scale-free weight 1: the default.
    pub fn normalized(layer: LayerId) -> Self {
        LayerWeight {
            layer,
            weight: Weight::Normalized(1.0),
        }
    }

    /// The layer with a raw weight.
    pub fn raw(layer: LayerId, weight: f64) -> Self {
        LayerWeight {
            layer,
            weight: Weight::Raw(weight),
        }
    }

    /// `layers` with the raw `weights`, one per layer, or each normalized when `weights` is
    /// `None`. `field` names the list in the error when the counts differ.
    pub fn list(
        field: Field, layers: &[LayerId], weights: Option<&[f64]>,
    ) -> Result<Vec<LayerWeight>> {
        match weights {
            None => Ok(layers.iter().map(|&l| LayerWeight::normalized(l)).collect()),
            Some(w) if w.len() != layers.len() => Err(TransferError::invalid(
                field,
                format!(
                    "{} weights for {} layers: give one weight per layer",
                    w.len(),
                    layers.len()
                ),
            )),
            Some(w) => Ok(layers
                .iter()
                .zip(w)
                .map(|(&l, &w)| LayerWeight::raw(l, w))
                .collect()),
        }
    }
}

/// What the loss is made of and how its terms are weighted. Build it from
/// [`LossConfig::default`] and the builder methods.
///
/// Written with its fields' names; when read, a field left out keeps its default, a field
/// not known is an error, and `strength` may stand for `content_weight` and `style_weight`
/// ([`LossConfig::with_strength`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LossRead")]
pub struct LossConfig {
    /// Weight of the content terms.
    pub content_weight: f64,
    /// Weight of the style terms.
    pub style_weight: f64,
    /// Weight of the total variation.
    pub tv_weight: f64,
    /// Weight of the out-of-range penalty, which keeps the pixels near [0, 1] while L-BFGS
    /// runs (0 within [0, 1]).
    pub out_of_range_weight: f64,
    /// Content layers with their weights a_l.
    pub content_layers: Vec<LayerWeight>,
    /// Style layers with their weights c_l.
    pub style_layers: Vec<LayerWeight>,
}

impl Default for LossConfig {
    /// The defaults of [`crate::defaults`]: content at [`crate::CONTENT_LAYERS`], style at
    /// [`crate::STYLE_LAYERS`], every layer normalized with weight 1.
    fn default() -> Self {
        let layers = |names: &[&str]| {
            names
                .iter()
                .map(|n| LayerWeight::normalized(LayerId::parse(n).expect("a layer of the table")))
                .collect()
        };
        LossConfig {
            content_weight: crate::defaults::CONTENT_WEIGHT,
            style_weight: crate::defaults::STYLE_WEIGHT,
            tv_weight: crate::defaults::TV_WEIGHT,
            out_of_range_weight: crate::defaults::OUT_OF_RANGE_WEIGHT,
            content_layers: layers(crate::CONTENT_LAYERS),
            style_layers: layers(crate::STYLE_LAYERS),
        }
    }
}

/// [`LossConfig`] as read: what is left out keeps its default.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LossRead {
    strength: Option<f64>,
    content_weight: Option<f64>,
    style_weight: Option<f64>,
    tv_weight: Option<f64>,
    out_of_range_weight: Option<f64>,
    content_layers: Option<Vec<LayerWeight>>,
    style_layers: Option<Vec<LayerWeight>>,
}

impl TryFrom<LossRead> for LossConfig {
    type Error = TransferError;

    fn try_from(r: LossRead) -> Result<LossConfig> {
        let d = LossConfig::default();
        let cfg = LossConfig {
            content_weight: r.content_weight.unwrap_or(d.content_weight),
            style_weight: r.style_weight.unwrap_or(d.style_weight),
            tv_weight: r.tv_weight.unwrap_or(d.tv_weight),
            out_of_range_weight: r.out_of_range_weight.unwrap_or(d.out_of_range_weight),
            content_layers: r.content_layers.unwrap_or(d.content_layers),
            style_layers: r.style_layers.unwrap_or(d.style_layers),
        };
        match (r.strength, r.content_weight.or(r.style_weight)) {
            (None, _) => Ok(cfg),
            (Some(s), None) => cfg.with_strength(s),
            (Some(_), Some(_)) => Err(TransferError::invalid(
                Field::Strength,
                "sets content_weight and style_weight: give either it or them",
            )),
        }
    }
}

impl LossConfig {
    /// Sets the content and style weights from one strength in [0, 1]
    /// ([`crate::defaults::strength_weights`]).
    pub fn with_strength(mut self, strength: f64) -> Result<Self> {
        (self.content_weight, self.style_weight) = crate::defaults::strength_weights(strength)?;
        Ok(self)
    }

    /// Sets the weight of the content terms.
    pub fn content_weight(mut self, w: f64) -> Self {
        self.content_weight = w;
        self
    }

    /// Sets the weight of the style terms.
    pub fn style_weight(mut self, w: f64) -> Self {
        self.style_weight = w;
        self
    }

    /// Sets the weight of the total variation.
    pub fn tv_weight(mut self, w: f64) -> Self {
        self.tv_weight = w;
        self
    }

    /// Sets the weight of the out-of-range penalty.
    pub fn out_of_range_weight(mut self, w: f64) -> Self {
        self.out_of_range_weight = w;
        self
    }

    /// Sets the content layers and their weights.
    pub fn content_layers(mut self, layers: Vec<LayerWeight>) -> Self {
        self.content_layers = layers;
        self
    }

    /// Sets the style layers and their weights.
    pub fn style_layers(mut self, layers: Vec<LayerWeight>) -> Self {
        self.style_layers = layers;
        self
    }

    /// With `content` and `style` layers, each with the raw weight at its place in
    /// `content_weights` / `style_weights`, or each normalized where those are `None`.
    pub fn layers(
        self, content: &[LayerId], content_weights: Option<&[f64]>, style: &[LayerId],
        style_weights: Option<&[f64]>,
    ) -> Result<Self> {
        let c = LayerWeight::list(Field::ContentLayerWeights, content, content_weights)?;
        let s = LayerWeight::list(Field::StyleLayerWeights, style, style_weights)?;
        Ok(self.content_layers(c).style_layers(s))
    }

    /// The content terms' layers, in their order.
    pub fn content_layer_ids(&self) -> Vec<LayerId> {
        self.content_layers.iter().map(|l| l.layer).collect()
    }

    /// The style terms' layers, in their order.
    pub fn style_layer_ids(&self) -> Vec<LayerId> {
        self.style_layers.iter().map(|l| l.layer).collect()
    }

    /// Every layer a term reads, in network order, each once.
    pub fn taps(&self) -> Vec<LayerId> {
        let mut taps = self.content_layer_ids();
        taps.extend(self.style_layer_ids());
        taps.sort();
        taps.dedup();
        taps
    }

    /// Checks that every weight is finite and not negative, that no layer is named twice in
    /// one list, and that some layer is tapped.
    pub fn validate(&self) -> Result<()> {
        let globals = [
            (Field::ContentWeight, self.content_weight),
            (Field::StyleWeight, self.style_weight),
            (Field::TvWeight, self.tv_weight),
            (Field::OutOfRangeWeight, self.out_of_range_weight),
        ];
        for (field, w) in globals {
            if !w.is_finite() || w < 0.0 {
                return Err(TransferError::invalid(
                    field,
                    format!("must be a finite number ≥ 0, got {w}"),
                ));
            }
        }
        for (field, layers) in [
            (Field::ContentLayers, &self.content_layers),
            (Field::StyleLayers, &self.style_layers),
        ] {
            if let Some(l) = layers
                .iter()
                .find(|l| !l.weight.value().is_finite() || l.weight.value() < 0.0)
            {
                return Err(TransferError::invalid(
                    field,
                    format!(
                        "the weight of {} must be a finite number ≥ 0, got {}",
                        l.layer,
                        l.weight.value()
                    ),
                ));
            }
            // Each term has one value slot: a layer named twice would be counted once in the
            // reported loss but twice in the gradient.
            if let Some((_, l)) = layers
                .iter()
                .enumerate()
                .find(|(i, l)| layers[..*i].iter().any(|m| m.layer == l.layer))
            {
                return Err(TransferError::invalid(
                    field,
                    format!(
                        "names {} twice: name each layer once (raise its weight instead)",
                        l.layer
                    ),
                ));
            }
        }
        if self.taps().is_empty() {
            return Err(TransferError::invalid(
                Field::StyleLayers,
                "no content or style layer is given: name at least one",
            ));
        }
        Ok(())
    }
}

/// One term of the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    /// Content loss at a layer.
    Content(LayerId),
    /// Style loss at a layer against style image `style`.
    Style(LayerId, usize),
    /// Total variation of the image.
    Tv,
    /// How far the image lies outside [0, 1].
    OutOfRange,
    /// How far a video frame lies from an earlier stylized frame warped to it (1: the
    /// previous one), where the flow is reliable ([`crate::Temporal`]).
    Temporal(usize),
}

impl Term {
    /// A short stable key for logs: `content.relu4_2`, `style.relu1_1.1` (the style image
    /// counted from 1), `tv`, `out_of_range`, `temporal.1` (the earlier frame it compares
    /// with, counted back from the current one).
    pub fn key(&self) -> String {
        match self {
            Term::Content(l) => format!("content.{l}"),
            Term::Style(l, k) => format!("style.{l}.{}", k + 1),
            Term::Tv => "tv".into(),
            Term::OutOfRange => "out_of_range".into(),
            Term::Temporal(j) => format!("temporal.{j}"),
        }
    }
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Term::Content(l) => write!(f, "content {l}"),
            Term::Style(l, k) => write!(f, "style {l} (style image {})", k + 1),
            Term::Tv => f.write_str("total variation"),
            Term::OutOfRange => f.write_str("out of range"),
            Term::Temporal(j) => write!(f, "temporal (frame −{j})"),
        }
    }
}

impl Serialize for Term {
    /// As its [`Term::key`].
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

/// A term's value: `raw` as the formula defines it, and its weight in the total.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TermValue {
    /// Which term.
    pub term: Term,
    /// Its value, unweighted.
    #[serde(rename = "value")]
    pub raw: f64,
    /// Its factor in the total (content_weight·a_l, style_weight·b_k·c_l, tv_weight or
    /// out_of_range_weight).
    pub weight: f64,
}

/// Every term's value and the total.
#[derive(Clone, Debug, PartialEq)]
pub struct LossValues {
    /// The terms.
    pub terms: Vec<TermValue>,
}

impl LossValues {
    /// `Σ weight·raw`.
    pub fn total(&self) -> f64 {
        self.terms.iter().map(|t| t.weight * t.raw).sum()
    }

    /// The weighted content part.
    pub fn content(&self) -> f64 {
        self.sum(|t| matches!(t, Term::Content(_)))
    }

    /// The weighted style part.
    pub fn style(&self) -> f64 {
        self.sum(|t| matches!(t, Term::Style(..)))
    }

    /// The weighted total variation.
    pub fn tv(&self) -> f64 {
        self.sum(|t| matches!(t, Term::Tv))
    }

    /// The weighted out-of-range penalty.
    pub fn out_of_range(&self) -> f64 {
        self.sum(|t| matches!(t, Term::OutOfRange))
    }

    /// The weighted temporal terms (0 outside video).
    pub fn temporal(&self) -> f64 {
        self.sum(|t| matches!(t, Term::Temporal(_)))
    }

    fn sum(&self, pick: impl Fn(&Term) -> bool) -> f64 {
        self.terms
            .iter()
            .filter(|t| pick(&t.term))
            .map(|t| t.weight * t.raw)
            .sum()
    }

    /// The first term whose value is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<&TermValue> {
        self.terms
            .iter()
            .find(|t| !t.raw.is_finite() || !(t.weight * t.raw).is_finite())
    }
}

impl std::fmt::Display for LossValues {
    /// The total and its weighted parts, as the progress line shows them; the out-of-range
    /// part only when the image strays outside [0, 1].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.4e} (content {:.3e}, style {:.3e}, tv {:.3e}",
            self.total(),
            self.content(),
            self.style(),
            self.tv()
        )?;
        let r = self.out_of_range();
        if r != 0.0 {
            write!(f, ", out of range {r:.3e}")?;
        }
        let t = self.temporal();
        if self
            .terms
            .iter()
            .any(|t| matches!(t.term, Term::Temporal(_)))
        {
            write!(f, ", temporal {t:.3e}")?;
        }
        f.write_str(")")
    }
}

impl Serialize for LossValues {
    /// The total, its weighted parts, and every term.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("LossValues", 7)?;
        st.serialize_field("total", &self.total())?;
        st.serialize_field("content", &self.content())?;
        st.serialize_field("style", &self.style())?;
        st.serialize_field("tv", &self.tv())?;
        st.serialize_field("out_of_range", &self.out_of_range())?;
        if self
            .terms
            .iter()
            .any(|t| matches!(t.term, Term::Temporal(_)))
        {
            st.serialize_field("temporal", &self.temporal())?;
        }
        st.serialize_field("terms", &self.terms)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_weights_divide_by_the_target_and_refuse_a_flat_one() {
        assert_eq!(Weight::Normalized(2.0).factor(4.0), Some(0.5));
        assert_eq!(Weight::Raw(2.0).factor(4.0), Some(2.0));
        assert_eq!(Weight::Normalized(1.0).factor(0.0), None);
        assert_eq!(Weight::Raw(1.0).factor(0.0), Some(1.0));
        let cfg = LossConfig::default();
        assert!(cfg
            .style_layers
            .iter()
            .all(|l| l.weight == Weight::Normalized(1.0)));
        assert_eq!(cfg.clone().with_strength(0.25).unwrap().style_weight, 0.5);
        let mut twice = cfg;
        twice.style_layers.push(twice.style_layers[0]);
        let e = twice.validate().unwrap_err();
        assert!(e.to_string().contains("relu1_1 twice"), "{e}");
        assert_eq!(e.field(), Some(crate::Field::StyleLayers));
    }
}
