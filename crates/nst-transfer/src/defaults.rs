//! Default settings: what `nst stylize` does with no flags beyond the images. See
//! `docs/loss.md` for how they were chosen.

use nst_vgg::LayerId;

/// Weight of the content loss.
pub const CONTENT_WEIGHT: f64 = 1.0;
/// Weight of the style loss.
pub const STYLE_WEIGHT: f64 = 1.0;
/// Weight of the total variation.
pub const TV_WEIGHT: f64 = 1.0;
/// Adam's step size in [0, 1] pixel units.
pub const LR: f64 = 0.02;
/// Iterations per scale.
pub const ITERATIONS: u32 = 500;

/// The default weight c_l of a style layer.
pub fn style_layer_weight(_layer: LayerId) -> f64 {
    1.0
}
