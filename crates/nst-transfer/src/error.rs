//! What can stop a run, and which setting a complaint is about.
//!
//! Errors name the setting ([`Field`]), never a command-line flag: a front end maps fields to
//! its own names (the CLI to its flags, a web page to its form fields).

use crate::image::{Image, ImageError};
use crate::terms::Term;
use nst_gpu::GpuError;
use nst_vgg::VggError;
use nst_weights::WeightsError;
use serde::Serialize;
use std::fmt;

/// A setting of [`crate::Settings`] or [`crate::LossConfig`], or an input of a call, that an
/// error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Field {
    /// [`crate::Settings::size`].
    Size,
    /// [`crate::Settings::style_scale`].
    StyleScale,
    /// [`crate::Settings::iterations`].
    Iterations,
    /// [`crate::Settings::tolerance`].
    Tolerance,
    /// [`crate::Settings::lr`].
    Lr,
    /// The history of [`crate::Optimizer::Lbfgs`].
    LbfgsHistory,
    /// [`crate::Settings::optimizer`].
    Optimizer,
    /// [`crate::Settings::init`].
    Init,
    /// [`crate::Settings::preserve_colors`].
    PreserveColors,
    /// [`crate::Settings::min_size`].
    MinSize,
    /// [`crate::Settings::scales`].
    Scales,
    /// [`crate::Settings::report_every`].
    ReportEvery,
    /// [`crate::Settings::max_memory`].
    MaxMemory,
    /// [`crate::Settings::tile`].
    Tile,
    /// [`crate::LossConfig::content_weight`].
    ContentWeight,
    /// [`crate::LossConfig::style_weight`].
    StyleWeight,
    /// [`crate::LossConfig::tv_weight`].
    TvWeight,
    /// [`crate::LossConfig::out_of_range_weight`].
    OutOfRangeWeight,
    /// The strength of [`crate::LossConfig::with_strength`].
    Strength,
    /// [`crate::LossConfig::content_layers`] (the layers or their weights).
    ContentLayers,
    /// [`crate::LossConfig::style_layers`] (the layers or their weights).
    StyleLayers,
    /// The raw weights given for the content layers ([`crate::LayerWeight::list`]).
    ContentLayerWeights,
    /// The raw weights given for the style layers ([`crate::LayerWeight::list`]).
    StyleLayerWeights,
    /// The style images and their blend weights ([`crate::Style`]).
    Styles,
    /// The content image.
    Content,
    /// The image scored or measured.
    Image,
    /// The weights file ([`crate::EngineOptions::weights`]).
    Weights,
    /// [`crate::Reporting::output`].
    Output,
    /// [`crate::Reporting::log`].
    Log,
    /// The plot file of [`crate::Reporting`].
    Plot,
    /// The folder of [`crate::Reporting::snapshots`].
    Snapshots,
    /// The file [`crate::Score::write_grad`] writes.
    Grad,
    /// A style image's file.
    Style,
    /// A style image's mask over the output ([`crate::Style::mask`]).
    StyleMask,
    /// The region of a style image that is the style ([`crate::Style::region`]).
    StyleRegion,
    /// [`crate::Settings::content_mask`].
    ContentMask,
    /// The optical flow's parameters ([`crate::FlowSettings`]).
    Flow,
    /// [`crate::VideoSettings::temporal_weight`].
    TemporalWeight,
    /// [`crate::VideoSettings::frames_back`].
    FramesBack,
    /// A folder of video frames, or a video file.
    Frames,
    /// A region's mask over a scored image ([`crate::Engine::region_measure`]).
    Mask,
    /// A settings document as a whole ([`crate::Settings::from_json`]): its syntax, a key it
    /// does not know, a value of the wrong type.
    Settings,
}

impl Field {
    /// The setting's name as the library spells it (`style_scale`, `lr`, …): the name of
    /// its field or builder method.
    pub fn name(self) -> &'static str {
        match self {
            Field::Size => "size",
            Field::StyleScale => "style_scale",
            Field::Iterations => "iterations",
            Field::Tolerance => "tolerance",
            Field::Lr => "lr",
            Field::LbfgsHistory => "lbfgs_history",
            Field::Optimizer => "optimizer",
            Field::Init => "init",
            Field::PreserveColors => "preserve_colors",
            Field::MinSize => "min_size",
            Field::Scales => "scales",
            Field::ReportEvery => "report_every",
            Field::MaxMemory => "max_memory",
            Field::Tile => "tile",
            Field::ContentWeight => "content_weight",
            Field::StyleWeight => "style_weight",
            Field::TvWeight => "tv_weight",
            Field::OutOfRangeWeight => "out_of_range_weight",
            Field::Strength => "strength",
            Field::ContentLayers => "content_layers",
            Field::StyleLayers => "style_layers",
            Field::ContentLayerWeights => "content_layer_weights",
            Field::StyleLayerWeights => "style_layer_weights",
            Field::Styles => "styles",
            Field::Content => "content",
            Field::Image => "image",
            Field::Weights => "weights",
            Field::Output => "output",
            Field::Log => "log",
            Field::Plot => "plot",
            Field::Snapshots => "snapshots",
            Field::Grad => "grad",
            Field::Style => "style",
            Field::StyleMask => "style_mask",
            Field::StyleRegion => "style_region",
            Field::ContentMask => "content_mask",
            Field::Flow => "flow",
            Field::TemporalWeight => "temporal_weight",
            Field::FramesBack => "frames_back",
            Field::Frames => "frames",
            Field::Mask => "mask",
            Field::Settings => "settings",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A setting or input that makes no sense; `reason` says why and what would do.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting.
        field: Field,
        /// What is wrong with it, and the fix.
        reason: String,
    },
    /// An image file could not be read or written.
    #[error("{field}: {source}")]
    Image {
        /// Which image.
        field: Field,
        /// Why.
        #[source]
        source: ImageError,
    },
    /// An output file (a log, a gradient) could not be written; nothing was left at `path`.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why, and the fix.
        reason: String,
    },
    /// An intermediate image ([`crate::Settings::snapshot_every`]) could not be saved.
    #[error("saving an intermediate image: {0}")]
    Snapshot(#[source] ImageError),
    /// The output image ([`crate::Reporting::output`]) could not be saved.
    #[error(transparent)]
    Output(ImageError),
    /// The weights could not be found, fetched or loaded.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The graph could not be built (too large for the device, too small, …).
    #[error(transparent)]
    Vgg(#[from] VggError),
    /// A GPU failure.
    #[error(transparent)]
    Gpu(#[from] GpuError),
    /// A loss became NaN or infinite; `last_good` is the last image whose loss was finite.
    #[error(
        "the {term} loss became NaN or infinite at iteration {iteration}: the step is too large \
         for these weights; lower the step size `lr` (or the weight of that term) and try \
         again. The last image with a finite loss was kept"
    )]
    NonFinite {
        /// The first term found NaN or infinite.
        term: Term,
        /// The iteration at which it was seen.
        iteration: u32,
        /// The image before things went wrong.
        last_good: Box<Image>,
    },
    /// The GPU device was lost during a run; `last_good` is the last image read back from it
    /// (at every reported iteration), at the output's size.
    #[error("{source}. The last image read back from the GPU was kept")]
    DeviceLost {
        /// The GPU's error ([`GpuError::DeviceLost`]).
        source: GpuError,
        /// The last image read back before the loss.
        last_good: Box<Image>,
    },
}

impl TransferError {
    /// A [`TransferError::Invalid`] about `field`.
    pub fn invalid(field: Field, reason: impl Into<String>) -> Self {
        TransferError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The setting the error is about, if it is about one.
    pub fn field(&self) -> Option<Field> {
        match self {
            TransferError::Invalid { field, .. } | TransferError::Image { field, .. } => {
                Some(*field)
            }
            TransferError::Weights(_) => Some(Field::Weights),
            _ => None,
        }
    }
}

/// The result of the engine's calls.
pub type Result<T> = std::result::Result<T, TransferError>;
