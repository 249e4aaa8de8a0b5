//! Neural style transfer (Gatys, Ecker & Bethge) on any GPU wgpu drives: the library behind
//! the `nst` command.
//!
//! An [`Engine`] holds the GPU, the compiled kernels and the VGG-19 weights; it is built once
//! and runs any number of jobs. [`Settings`] says what a run does, starting from its
//! defaults; [`Engine::stylize`] paints, [`Engine::score`] evaluates the same loss and its
//! gradient for any image, and [`Engine::measure`] says how stylized an image is. Errors are
//! [`TransferError`]s that name the setting at fault ([`Field`]).
//!
//! ```
//! use nst_transfer::image::{load, save};
//! use nst_transfer::{Engine, EngineOptions, Flow, Optimizer, Settings, Style};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // Run from the repository root, where the weights and the pictures are.
//! # let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
//! # if std::env::set_current_dir(root).is_err()
//! #     || !std::path::Path::new("weights/vgg19.safetensors").exists()
//! # {
//! #     // Outside the repository, or no weights fetched: nothing to run, except under CI.
//! #     assert!(std::env::var_os("CI").is_none(), "CI needs the weights (nst weights fetch)");
//! #     return Ok(());
//! # }
//! # // A tuning cache of this run's own, so that a user's `nst tune` cannot change the test.
//! # let cache = std::env::temp_dir().join(format!("nst-doctest-{}", std::process::id()));
//! # std::env::set_var(nst_transfer::tuning::ENV_VAR, cache.join("tuning.json"));
//! let engine = Engine::open(EngineOptions::default())?; // finds (or fetches) the weights
//! let content = load("docs/gallery/inputs/tubingen.jpg")?.image;
//! let painting = load("docs/gallery/inputs/starry_night.jpg")?.image;
//! let styles = [Style::new(painting, 1.0)];
//! // Tiny and short, so that this example runs in the tests on a software driver; leave out
//! // `size` and `iterations` for the defaults (512 px, at most 60 iterations).
//! let settings = Settings::default()
//!     .size(32)
//!     .iterations(10)
//!     .optimizer(Optimizer::Lbfgs { history: 20 });
//! let out = engine.stylize(&content, &styles, &settings, |_event| Flow::Continue)?;
//! let report = engine.score(&content, &styles, &out.image, &settings)?;
//! println!("style gap closed: {:.2}", report.measure.style_gap_closed());
//! save(&out.image, std::env::temp_dir().join("nst_example.png"), false)?;
//! # Ok(())
//! # }
//! ```

use nst_vgg::LayerId;

/// The default content layer (Gatys et al.; jcjohnson/neural-style).
pub const CONTENT_LAYERS: &[&str] = &["relu4_2"];

/// The default style layers (Gatys et al.; jcjohnson/neural-style).
pub const STYLE_LAYERS: &[&str] = &["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];

/// The layers the default losses tap: the content and style layers, in network order.
pub fn default_taps() -> Vec<LayerId> {
    LossConfig::default().taps()
}

pub mod bench;
pub mod color;
pub mod defaults;
pub mod engine;
pub mod error;
pub mod events;
pub mod flow;
pub mod guide;
pub mod image;
pub mod log;
pub mod measure;
pub mod memory;
pub mod objective;
pub mod optimize;
#[cfg(feature = "plot")]
pub mod plot;
pub mod problem;
pub mod report;
pub mod schedule;
pub mod settings;
pub mod terms;
pub mod tiled_graph;
pub mod tuning;
pub mod video;

pub use bench::{Bench, GpuMemory, KernelTime};
pub use engine::{Engine, EngineOptions};
pub use error::{Field, Result, TransferError};
pub use events::{Event, Flow, Outcome, Region, Score};
pub use flow::{FlowField, FlowSettings, Flows, FramePair};
pub use image::{Image, ImageError};
pub use log::{Log, LogRow};
pub use measure::Measure;
pub use memory::{
    plan_vgg19, ForwardJob, Job, LayersPlan, MemoryPart, MemoryPlan, ScalePlan, StyleShape, Target,
};
pub use nst_vgg::Pooling;
pub use objective::{Objective, StyleTarget, Temporal, TemporalFrame};
pub use optimize::Stepper;
pub use problem::Problem;
pub use report::{Reporter, Reporting};
pub use schedule::{RunPlan, ScaleEnd};
pub use settings::{
    plan_scales, Init, Optimizer, PreserveColors, Settings, Style, MAX_LBFGS_HISTORY, MAX_SIZE,
    MULTISCALE_ABOVE,
};
pub use terms::{LayerWeight, LossConfig, LossValues, Term, TermValue, Weight};
pub use video::{Video, VideoFrame, VideoSettings};
