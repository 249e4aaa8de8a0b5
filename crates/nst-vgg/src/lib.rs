//! The VGG-19 graph of neural style transfer, without autodiff: the layer table, the weights
//! on the GPU, a forward pass that stops at the deepest layer any loss reads, and a backward
//! pass written by hand from the tapped layers' gradients to the RGB pixels.
//!
//! ```text
//! RGB [0,1] ─ pixel transform ─ conv1_1 ─ relu1_1 ─ … ─ deepest tap
//!                                  taps: activations out, gradients in
//! RGB gradient ─ pixel backward ─ … (ReLU masks, pool arg-max, flipped convolutions)
//! ```
//!
//! Tensors larger than the adapter's storage-binding limit are split into chunks of whole
//! channels ([`Tensor`]); every kernel launch works on one chunk or one pair of chunks.

pub mod error;
pub mod graph;
pub mod layers;
pub mod report;
pub mod tensor;
pub mod tiling;
pub mod weights;

pub use error::{largest_fitting, VggError};
pub use graph::{Graph, GraphConfig, GraphLayout, Limits, Pooling};
pub use layers::{layers, output_shape, output_size, valid_names, Layer, LayerId, LayerKind};
pub use report::{vgg19_weight_bytes, LayerRow, PlanReport};
pub use tensor::{ChunkLayout, Tensor};
pub use tiling::{Rect, Tile, Tiling};
pub use weights::{transform_for, ConvWeights, VggWeights};
