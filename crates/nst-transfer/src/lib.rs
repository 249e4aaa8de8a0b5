//! The style transfer engine: it builds the VGG-19 graph for the content, style and output
//! sizes, computes the targets, and minimizes the loss over the output image's pixels.

use nst_vgg::LayerId;

/// The default content layer (Gatys et al.; jcjohnson/neural-style).
pub const CONTENT_LAYERS: &[&str] = &["relu4_2"];

/// The default style layers (Gatys et al.; jcjohnson/neural-style).
pub const STYLE_LAYERS: &[&str] = &["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];

/// The layers the default losses tap: the content and style layers, in network order.
pub fn default_taps() -> Vec<LayerId> {
    let mut taps: Vec<LayerId> = CONTENT_LAYERS
        .iter()
        .chain(STYLE_LAYERS)
        .map(|n| LayerId::parse(n).expect("the default layers are in the table"))
        .collect();
    taps.sort();
    taps.dedup();
    taps
}

pub mod colour;
pub mod defaults;
pub mod image;
pub mod measure;
pub use measure::Measure;
pub mod objective;
pub use objective::{
    LayerWeight, LossConfig, LossValues, Objective, StyleTarget, Term, TermValue, Weight,
};

pub mod engine;
pub use engine::{
    normalized_style_weights, plan_scales, Bench, Engine, Event, Flow, Init, Optimizer, Outcome,
    PreserveColors, Score, Settings, Style, TransferError, MAX_LBFGS_HISTORY, MULTISCALE_ABOVE,
};
