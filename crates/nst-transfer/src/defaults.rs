//! Default settings: what `nst stylize` does with no flags beyond the images.
//!
//! The weights were chosen by running this exact loss in JAX on the CPU with the real VGG-19
//! (`tests/fixtures/tune_defaults.py`) on two photos and three paintings at 192–256 px and
//! looking at the results. The raw style terms differ by orders of magnitude from layer to
//! layer (Gram entries grow with the activations), so the per-layer weights bring each layer's
//! typical initial loss to the same order; see `docs/loss.md`.

use nst_vgg::LayerId;

/// Weight of the content loss.
pub const CONTENT_WEIGHT: f64 = 1e-5;
/// Weight of the style loss.
pub const STYLE_WEIGHT: f64 = 1.0;
/// Weight of the total variation.
pub const TV_WEIGHT: f64 = 30.0;
/// Adam's step size in [0, 1] pixel units.
pub const LR: f64 = 0.02;
/// L-BFGS's step length after its first step (torch's and jcjohnson/neural-style's 1).
pub const LBFGS_LR: f64 = 1.0;
/// Pairs L-BFGS keeps: 2·20 + 2 image-sized vectors, 126 MiB at 512 × 512.
pub const LBFGS_HISTORY: u32 = 20;
/// Iterations per scale.
pub const ITERATIONS: u32 = 500;

/// The default weight c_l of a style layer, by block (relu1_1 … relu5_1 and the other layers
/// of their blocks): 1e-6, 1e-9, 1e-9, 1e-11, 1e-8.
pub fn style_layer_weight(layer: LayerId) -> f64 {
    match layer.layer().block {
        1 => 1e-6,
        2 | 3 => 1e-9,
        4 => 1e-11,
        _ => 1e-8,
    }
}
