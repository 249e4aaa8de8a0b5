//! What a run does besides the images: [`Settings`], built from its defaults.

use crate::defaults;
use crate::error::{Field, Result, TransferError};
use crate::guide::Mask;
use crate::image::Image;
use crate::terms::LossConfig;
use nst_vgg::Pooling;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// `FromStr` for an enum of named values: its `NAMED` values found by `name`, any other
/// word an error about `$field`.
macro_rules! from_name {
    ($ty:ty, $field:expr) => {
        impl FromStr for $ty {
            type Err = TransferError;

            fn from_str(s: &str) -> Result<Self> {
                let found = Self::NAMED.iter().find(|v| v.name() == s).cloned();
                found.ok_or_else(|| unknown_name($field, s, Self::NAMED.iter().map(Self::name)))
            }
        }
    };
}

/// `Display`, `Serialize` and `Deserialize` for an enum written as its `name` alone.
macro_rules! as_name {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(de::Error::custom)
            }
        }
    };
}

/// The error for a name that is none of `names`.
fn unknown_name<'a>(
    field: Field, got: &str, names: impl Iterator<Item = &'a str>,
) -> TransferError {
    let names: Vec<&str> = names.collect();
    let reason = format!("must be {}, got `{got}`", names.join(" or "));
    TransferError::invalid(field, reason)
}

/// Where the optimization starts. Written `content` or `random`; in a settings file also
/// `{"file": PATH}`. An image in memory is not written.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Init {
    /// The content image.
    #[default]
    Content,
    /// Uniform noise in [0, 1] from [`Settings::seed`].
    Random,
    /// The image in this file (resized to each scale).
    File(PathBuf),
    /// This image (resized to each scale).
    Image(Image),
}

impl Init {
    /// The starts that have a name.
    pub const NAMED: [Init; 2] = [Init::Content, Init::Random];

    /// Its name: `content`, `random`, and for the others `file` and `image`.
    pub fn name(&self) -> &'static str {
        match self {
            Init::Content => "content",
            Init::Random => "random",
            Init::File(_) => FILE,
            Init::Image(_) => "image",
        }
    }
}

/// The name of [`Init::File`], and its key in a settings file.
const FILE: &str = "file";

impl fmt::Display for Init {
    /// Its name, and a file's path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::File(path) => write!(f, "file {}", path.display()),
            other => f.write_str(other.name()),
        }
    }
}

from_name!(Init, Field::Init);

impl Serialize for Init {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Init::File(path) => s.serialize_newtype_variant("Init", 2, FILE, path),
            Init::Image(_) => Err(serde::ser::Error::custom(
                "init: an image in memory cannot be written; save it and give its file",
            )),
            named => s.serialize_str(named.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Init {
    /// A name, or `{"file": PATH}`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Init, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Init;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`content`, `random` or {\"file\": PATH}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Init, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self, mut map: A,
            ) -> std::result::Result<Init, A::Error> {
                let entry = map.next_entry::<String, PathBuf>()?;
                match (entry, map.next_key::<String>()?) {
                    (Some((key, path)), None) if key == FILE => Ok(Init::File(path)),
                    _ => Err(de::Error::invalid_value(de::Unexpected::Map, &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// How colors are kept. Written `none`, `luminance` or `histogram`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PreserveColors {
    /// The style's colors.
    #[default]
    None,
    /// Transfer luminance only: the result keeps the content's chroma (YIQ).
    Luminance,
    /// Recolor each style image to the content's color mean and covariance first.
    Histogram,
}

impl PreserveColors {
    /// Every kind.
    pub const NAMED: [PreserveColors; 3] = [
        PreserveColors::None,
        PreserveColors::Luminance,
        PreserveColors::Histogram,
    ];

    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            PreserveColors::None => "none",
            PreserveColors::Luminance => "luminance",
            PreserveColors::Histogram => "histogram",
        }
    }
}

from_name!(PreserveColors, Field::PreserveColors);
as_name!(PreserveColors);

/// How the image is updated. Written `adam` or `lbfgs` (which reads as
/// [`Optimizer::LBFGS`]; [`Settings`] writes the history as `lbfgs_history`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// Adam (PyTorch's), the image clamped to [0, 1] after each step.
    Adam,
    /// L-BFGS without a line search, keeping `history` pairs; the image is clamped to [0, 1]
    /// at the end of each scale only, since clamping between steps would corrupt the pairs.
    Lbfgs {
        /// Pairs kept (each costs two image-sized vectors), 1 to [`MAX_LBFGS_HISTORY`].
        history: u32,
    },
}

impl Optimizer {
    /// L-BFGS with the default history.
    pub const LBFGS: Optimizer = Optimizer::Lbfgs {
        history: defaults::LBFGS_HISTORY,
    };

    /// Every kind, L-BFGS with the default history.
    pub const NAMED: [Optimizer; 2] = [Optimizer::Adam, Optimizer::LBFGS];

    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Adam => "adam",
            Optimizer::Lbfgs { .. } => "lbfgs",
        }
    }

    /// The same optimizer, L-BFGS keeping `history` pairs (Adam keeps none).
    pub fn with_history(self, history: u32) -> Optimizer {
        match self {
            Optimizer::Adam => Optimizer::Adam,
            Optimizer::Lbfgs { .. } => Optimizer::Lbfgs { history },
        }
    }

    /// The step size used when none is given: Adam's in pixel units, L-BFGS's step length.
    pub fn default_lr(self) -> f64 {
        match self {
            Optimizer::Adam => defaults::LR,
            Optimizer::Lbfgs { .. } => defaults::LBFGS_LR,
        }
    }
}

from_name!(Optimizer, Field::Optimizer);
as_name!(Optimizer);

impl Default for Optimizer {
    fn default() -> Self {
        defaults::OPTIMIZER
    }
}

/// One style image, its blend weight, and where on the output it applies.
#[derive(Clone, Debug)]
pub struct Style {
    /// The image.
    pub image: Image,
    /// Its weight, ≥ 0 (the weights of a run's styles are normalized to sum to 1).
    pub weight: f64,
    /// Where on the output the style applies (1), does not (0), or partly: a mask of the
    /// output's aspect ratio, resized to each scale. `None`: everywhere. With any style
    /// masked, each style is matched by guided Gram matrices ([`crate::guide`]).
    pub mask: Option<crate::guide::Mask>,
    /// The region of the style image that is the style (1), is not (0), or partly: a mask of
    /// the style image's aspect ratio. Its guided Gram matrices ([`crate::guide`]) are the
    /// targets. `None`: the whole image.
    pub region: Option<crate::guide::Mask>,
}

impl Style {
    /// A style image with its blend weight, applying everywhere.
    pub fn new(image: Image, weight: f64) -> Self {
        Style {
            image,
            weight,
            mask: None,
            region: None,
        }
    }

    /// The style applied only where `mask` says ([`Style::mask`]).
    pub fn with_mask(mut self, mask: crate::guide::Mask) -> Self {
        self.mask = Some(mask);
        self
    }

    /// The style taken only from the region of the style image that `region` marks
    /// ([`Style::region`]).
    pub fn with_region(mut self, region: crate::guide::Mask) -> Self {
        self.region = Some(region);
        self
    }
}

/// The most pairs L-BFGS may keep (each is two image-sized vectors).
pub const MAX_LBFGS_HISTORY: u32 = 1000;

/// Outputs above this longest side are made coarse to fine by default.
pub const MULTISCALE_ABOVE: u32 = 700;

/// The largest longest side accepted, in pixels.
pub const MAX_SIZE: u32 = 16384;

/// Everything a run needs besides the images. Start from [`Settings::default`] (the
/// defaults of [`crate::defaults`]) and change what you need:
///
/// ```
/// use nst_transfer::{Optimizer, Settings};
/// let s = Settings::default().size(256).iterations(100).optimizer(Optimizer::Adam);
/// assert_eq!(s.scale_sizes(), vec![256]);
/// ```
///
/// Settings are also read from and written to JSON ([`Settings::from_json`], serde): the
/// fields by their names, the optimizer by its name with L-BFGS's history as
/// `lbfgs_history`, and the loss as [`LossConfig`] writes it. A field left out keeps its
/// default; a field not known is an error.
///
/// ```
/// use nst_transfer::{Optimizer, Settings};
/// let s = Settings::from_json(r#"{"size": 256, "optimizer": "adam"}"#).unwrap();
/// assert_eq!(s, Settings::default().size(256).optimizer(Optimizer::Adam));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "Written", into = "Written")]
pub struct Settings {
    /// Longest side of the output, in pixels.
    pub size: u32,
    /// Style images' longest side relative to the output's.
    pub style_scale: f64,
    /// The most iterations at each scale: each iteration is one evaluation of the loss and
    /// its gradient, a rejected L-BFGS step's included.
    pub iterations: u32,
    /// A scale ends early once its loss fell by less than this fraction over the last
    /// [`defaults::STOP_WINDOW`] iterations; 0 runs every iteration.
    pub tolerance: f64,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Adam's step size in [0, 1] pixel units, or L-BFGS's step length; `None`: the
    /// optimizer's [`Optimizer::default_lr`].
    pub lr: Option<f64>,
    /// The loss.
    pub loss: LossConfig,
    /// Pooling kind.
    pub pooling: Pooling,
    /// Starting image.
    pub init: Init,
    /// Seed of [`Init::Random`].
    pub seed: u64,
    /// Color handling.
    pub preserve_colors: PreserveColors,
    /// Number of coarse-to-fine scales; `None`: one up to [`MULTISCALE_ABOVE`] pixels, else
    /// steps of about √2 from `min_size` ([`plan_scales`]).
    pub scales: Option<u32>,
    /// Longest side of the first scale.
    pub min_size: u32,
    /// Read the losses back every this many iterations (and at each scale's first and last).
    pub report_every: u32,
    /// Hand the current image to the caller every this many iterations (0: never).
    pub snapshot_every: u32,
    /// GPU memory a scale may take, in bytes (weights included): a scale whose untiled
    /// graph needs more is evaluated exactly in tiles that fit. `None`: no budget beyond the
    /// adapter's limits.
    pub max_memory: Option<u64>,
    /// Force tiling, with windows of at most this many pixels a side (mainly for tests; at
    /// least [`nst_vgg::Tiling::least_window`] for the loss's deepest layer; the forward passes
    /// of style targets and of the measure raise it to what their layers need). `None`: tile
    /// only as `max_memory` needs.
    pub tile: Option<u32>,
    /// How strongly each part of the output is styled: a map of strengths over the output
    /// (its shape, any size; resized to each scale), each in [0, 1] like
    /// [`LossConfig::with_strength`]'s (0: keep the photo, 0.5: the default balance, 1: only
    /// the style). It weighs the content term per position so that each pixel's balance of
    /// content and style is its strength's ([`defaults::mask_balance`]); the content weight
    /// is then [`defaults::mask_content_weight`] of the style weight, and
    /// [`LossConfig::content_weight`] is not used. `None`: one balance everywhere.
    pub content_mask: Option<Mask>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            size: defaults::SIZE,
            style_scale: 1.0,
            iterations: defaults::ITERATIONS,
            tolerance: defaults::TOLERANCE,
            optimizer: defaults::OPTIMIZER,
            lr: None,
            loss: LossConfig::default(),
            pooling: Pooling::Max,
            init: Init::Content,
            seed: 0,
            preserve_colors: PreserveColors::None,
            scales: None,
            min_size: defaults::MIN_SIZE,
            report_every: defaults::REPORT_EVERY,
            snapshot_every: 0,
            max_memory: None,
            tile: None,
            content_mask: None,
        }
    }
}

/// From one list of the fields: a builder method for each, and [`Settings`] as written
/// (`Written`), flat, the optimizer's kind and L-BFGS's history apart.
macro_rules! fields {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        impl Settings {
            $(
                $(#[$doc])*
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }

        #[derive(Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Written {
            $($name: $ty,)*
            lbfgs_history: u32,
        }

        impl From<Settings> for Written {
            fn from(s: Settings) -> Written {
                let lbfgs_history = match s.optimizer {
                    Optimizer::Lbfgs { history } => history,
                    Optimizer::Adam => defaults::LBFGS_HISTORY,
                };
                Written {
                    $($name: s.$name,)*
                    lbfgs_history,
                }
            }
        }

        impl From<Written> for Settings {
            fn from(w: Written) -> Settings {
                let s = Settings { $($name: w.$name,)* };
                let optimizer = s.optimizer.with_history(w.lbfgs_history);
                s.optimizer(optimizer)
            }
        }

        impl Default for Written {
            fn default() -> Self {
                Settings::default().into()
            }
        }
    };
}

fields! {
    /// Sets [`Settings::size`].
    size: u32,
    /// Sets [`Settings::style_scale`].
    style_scale: f64,
    /// Sets [`Settings::iterations`].
    iterations: u32,
    /// Sets [`Settings::tolerance`].
    tolerance: f64,
    /// Sets [`Settings::optimizer`].
    optimizer: Optimizer,
    /// Sets [`Settings::lr`].
    lr: Option<f64>,
    /// Sets [`Settings::loss`].
    loss: LossConfig,
    /// Sets [`Settings::pooling`].
    pooling: Pooling,
    /// Sets [`Settings::init`].
    init: Init,
    /// Sets [`Settings::seed`].
    seed: u64,
    /// Sets [`Settings::preserve_colors`].
    preserve_colors: PreserveColors,
    /// Sets [`Settings::scales`].
    scales: Option<u32>,
    /// Sets [`Settings::min_size`].
    min_size: u32,
    /// Sets [`Settings::report_every`].
    report_every: u32,
    /// Sets [`Settings::snapshot_every`].
    snapshot_every: u32,
    /// Sets [`Settings::max_memory`].
    max_memory: Option<u64>,
    /// Sets [`Settings::tile`].
    tile: Option<u32>,
    /// Sets [`Settings::content_mask`].
    content_mask: Option<Mask>,
}

impl Settings {
    /// The step size in use: [`Settings::lr`] or the optimizer's default.
    pub fn step_size(&self) -> f64 {
        self.lr.unwrap_or(self.optimizer.default_lr())
    }

    /// The longest side of each scale, smallest first; the last is [`Settings::size`].
    pub fn scale_sizes(&self) -> Vec<u32> {
        plan_scales(self.size, self.min_size, self.scales)
    }

    /// Settings from JSON (see [`Settings`]), checked ([`Settings::validate`]). A document
    /// that is not JSON, or has a key not known or a value of the wrong type, is an error
    /// about [`Field::Settings`] whose reason names the key.
    pub fn from_json(json: &str) -> Result<Settings> {
        let invalid = |reason: String| TransferError::invalid(Field::Settings, reason);
        let mut de = serde_json::Deserializer::from_str(json);
        let settings: Settings = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let (path, reason) = (e.path().to_string(), e.inner().to_string());
            // A value's own error names its key already; serde's type errors do not.
            let key = path.rsplit('.').next().unwrap_or_default();
            match path == "." || reason.starts_with(key) {
                true => invalid(reason),
                false => invalid(format!("`{path}`: {reason}")),
            }
        })?;
        de.end().map_err(|e| invalid(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every setting, naming the one to change. The engine calls it before any work.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(TransferError::invalid(field, reason));
        self.loss.validate()?;
        if !(1..=MAX_SIZE).contains(&self.size) {
            return bad(
                Field::Size,
                format!("must lie in 1..={MAX_SIZE} pixels, got {}", self.size),
            );
        }
        if self.iterations == 0 {
            return bad(Field::Iterations, "must be at least 1".into());
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return bad(
                Field::Tolerance,
                format!(
                    "must lie in [0, 1) (a fraction of the loss; 0 runs every iteration), got {}",
                    self.tolerance
                ),
            );
        }
        let lr = self.step_size();
        if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
            return bad(
                Field::Lr,
                format!(
                    "must lie in (0, 1] (Adam: pixel units; L-BFGS: the step length, 1 by \
                     default), got {lr}"
                ),
            );
        }
        if let Optimizer::Lbfgs { history } = self.optimizer {
            if !(1..=MAX_LBFGS_HISTORY).contains(&history) {
                return bad(
                    Field::LbfgsHistory,
                    format!("must lie in 1..={MAX_LBFGS_HISTORY}, got {history}"),
                );
            }
        }
        if !(self.style_scale.is_finite() && self.style_scale > 0.0 && self.style_scale <= 8.0) {
            return bad(
                Field::StyleScale,
                format!("must lie in (0, 8], got {}", self.style_scale),
            );
        }
        if self.min_size == 0 {
            return bad(Field::MinSize, "must be at least 1 pixel".into());
        }
        if self.scales == Some(0) {
            return bad(Field::Scales, "must be at least 1".into());
        }
        if self.report_every == 0 {
            return bad(Field::ReportEvery, "must be at least 1".into());
        }
        if self.max_memory == Some(0) {
            return bad(Field::MaxMemory, "must be more than 0 bytes".into());
        }
        if self.tile == Some(0) {
            return bad(Field::Tile, "must be at least 1 pixel".into());
        }
        if self.content_mask.is_some() && self.loss.style_weight <= 0.0 {
            return bad(
                Field::ContentMask,
                "sets the content weight relative to the style weight, which is 0: raise the \
                 style weight or drop the content mask"
                    .into(),
            );
        }
        if let Init::File(path) = &self.init {
            if !path.is_file() {
                return bad(
                    Field::Init,
                    format!(
                        "{} is not a file: give an image file, or start from the content or \
                         from noise",
                        path.display()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The longest side of each scale of a coarse-to-fine run: `count` sizes growing
/// geometrically from `min_size` to `size`; with `count` unset, one scale up to
/// [`MULTISCALE_ABOVE`] pixels and otherwise steps of about √2 from `min_size`.
pub fn plan_scales(size: u32, min_size: u32, count: Option<u32>) -> Vec<u32> {
    let min_size = min_size.min(size).max(1);
    let count = match count {
        Some(n) => n.max(1),
        None if size <= MULTISCALE_ABOVE => 1,
        None => ((size as f64 / min_size as f64).log2() * 2.0).round() as u32 + 1,
    };
    if count == 1 {
        return vec![size];
    }
    let ratio = (size as f64 / min_size as f64).powf(1.0 / (count - 1) as f64);
    let mut out: Vec<u32> = (0..count)
        .map(|i| (min_size as f64 * ratio.powi(i as i32)).round() as u32)
        .collect();
    *out.last_mut().unwrap() = size;
    out.dedup();
    out
}

/// The styles' blend weights normalized to sum to 1, or what is wrong with them (no style,
/// a weight negative or not finite, all zero).
pub fn normalized_blend(styles: &[Style]) -> Result<Vec<f64>> {
    let bad = |reason: String| Err(TransferError::invalid(Field::Styles, reason));
    if styles.is_empty() {
        return bad("no style image is given: give at least one".into());
    }
    if let Some(s) = styles
        .iter()
        .find(|s| !s.weight.is_finite() || s.weight < 0.0)
    {
        return bad(format!(
            "blend weights must be finite numbers ≥ 0, got {}",
            s.weight
        ));
    }
    let sum: f64 = styles.iter().map(|s| s.weight).sum();
    if sum <= 0.0 {
        return bad("the blend weights add up to 0: give at least one a positive weight".into());
    }
    Ok(styles.iter().map(|s| s.weight / sum).collect())
}

/// The blend weights of `n` style images: `weights`, one per image, or 1 each.
pub fn style_weights(n: usize, weights: Option<Vec<f64>>) -> Result<Vec<f64>> {
    let w = weights.unwrap_or_else(|| vec![1.0; n]);
    if w.len() != n {
        let m = format!(
            "{} values for {n} style images: give one per style",
            w.len()
        );
        return Err(TransferError::invalid(Field::Styles, m));
    }
    Ok(w)
}

/// A byte count: `4G`, `512M`, `1.5GiB`, `1073741824` (K, M, G, T are powers of 1024).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("`{s}` is not a size in bytes ({e}): write e.g. 4G or 512M"))
}

/// `N` (square) or `WxH`, in pixels.
pub fn parse_dims(s: &str) -> std::result::Result<(u32, u32), String> {
    let parse = |t: &str| -> std::result::Result<u32, String> {
        match t.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("`{t}` is not a positive whole number of pixels")),
        }
    };
    match s.split_once(['x', 'X', '×']) {
        Some((w, h)) => Ok((parse(w)?, parse(h)?)),
        None => parse(s).map(|n| (n, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_grow_geometrically_to_the_size() {
        assert_eq!(plan_scales(512, 256, None), vec![512]);
        let s = plan_scales(1024, 256, None);
        assert_eq!(s.first(), Some(&256));
        assert_eq!(s.last(), Some(&1024));
        assert_eq!(s.len(), 5); // 256, 362, 512, 724, 1024
        assert_eq!(plan_scales(512, 128, Some(3)), vec![128, 256, 512]);
        assert_eq!(plan_scales(100, 256, Some(3)), vec![100]);
    }

    fn field_of(s: Settings) -> Option<Field> {
        s.validate().err().and_then(|e| e.field())
    }

    #[test]
    fn each_bad_setting_is_named() {
        let d = Settings::default;
        assert!(d().validate().is_ok());
        assert_eq!(field_of(d().size(0)), Some(Field::Size));
        assert_eq!(field_of(d().size(MAX_SIZE + 1)), Some(Field::Size));
        assert_eq!(field_of(d().iterations(0)), Some(Field::Iterations));
        assert_eq!(field_of(d().tolerance(1.0)), Some(Field::Tolerance));
        assert_eq!(field_of(d().tolerance(-0.1)), Some(Field::Tolerance));
        assert_eq!(field_of(d().lr(Some(-0.5))), Some(Field::Lr));
        assert_eq!(field_of(d().lr(Some(f64::NAN))), Some(Field::Lr));
        let lbfgs0 = Optimizer::Lbfgs { history: 0 };
        assert_eq!(field_of(d().optimizer(lbfgs0)), Some(Field::LbfgsHistory));
        assert_eq!(field_of(d().style_scale(0.0)), Some(Field::StyleScale));
        assert_eq!(field_of(d().min_size(0)), Some(Field::MinSize));
        assert_eq!(field_of(d().max_memory(Some(0))), Some(Field::MaxMemory));
        assert_eq!(field_of(d().tile(Some(0))), Some(Field::Tile));
        assert_eq!(field_of(d().scales(Some(0))), Some(Field::Scales));
        assert_eq!(field_of(d().report_every(0)), Some(Field::ReportEvery));
        let missing = Init::File("no/such/start.png".into());
        assert_eq!(field_of(d().init(missing)), Some(Field::Init));
        let loss = LossConfig::default().tv_weight(-1.0);
        assert_eq!(field_of(d().loss(loss)), Some(Field::TvWeight));
    }

    #[test]
    fn blend_weights_are_checked_and_normalized() {
        let img = || Image::new(1, 1, vec![0.0; 3]).unwrap();
        let styles = [Style::new(img(), 1.0), Style::new(img(), 3.0)];
        assert_eq!(normalized_blend(&styles).unwrap(), vec![0.25, 0.75]);
        for bad in [
            vec![],
            vec![Style::new(img(), -1.0)],
            vec![Style::new(img(), 0.0)],
            vec![Style::new(img(), f64::INFINITY)],
        ] {
            let e = normalized_blend(&bad).unwrap_err();
            assert_eq!(e.field(), Some(Field::Styles), "{e}");
        }
    }

    #[test]
    fn json_starts_from_the_defaults() {
        let s = Settings::from_json("{}").unwrap();
        assert_eq!(s, Settings::default());
        let s = Settings::from_json(
            r#"{"size": 64, "iterations": 7, "loss": {"strength": 0.25}, "optimizer": "adam",
                "snapshot_every": 2, "report_every": 1, "pooling": "avg",
                "preserve_colors": "luminance", "init": "random"}"#,
        )
        .unwrap();
        assert_eq!((s.size, s.iterations, s.snapshot_every), (64, 7, 2));
        assert_eq!((s.optimizer, s.report_every), (Optimizer::Adam, 1));
        assert_eq!(s.loss, LossConfig::default().with_strength(0.25).unwrap());
        assert_eq!(
            (s.pooling, s.preserve_colors),
            (Pooling::Avg, PreserveColors::Luminance)
        );
        assert_eq!(s.init, Init::Random);
        let s = Settings::from_json(r#"{"lbfgs_history": 5}"#).unwrap();
        assert_eq!(s.optimizer, Optimizer::Lbfgs { history: 5 });
    }

    #[test]
    fn json_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let start = dir.path().join("start.png");
        std::fs::write(&start, b"x").unwrap();
        let s = Settings::default()
            .optimizer(Optimizer::Lbfgs { history: 7 })
            .init(Init::File(start))
            .lr(Some(0.5))
            .max_memory(Some(1 << 30))
            .loss(LossConfig::default().tv_weight(0.0))
            .content_mask(Mask::new(3, 2, vec![0.0, 0.2, 0.45, 0.5, 0.7, 1.0]));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(Settings::from_json(&json).unwrap(), s, "{json}");
        let image = Init::Image(Image::new(1, 1, vec![0.0; 3]).unwrap());
        assert!(serde_json::to_string(&Settings::default().init(image)).is_err());
    }

    #[test]
    fn bad_json_names_the_setting() {
        for (json, what) in [
            (
                r#"{"optimizer": "sgd"}"#,
                "optimizer: must be adam or lbfgs, got `sgd`",
            ),
            (r#"{"loss": {"strength": 2}}"#, "strength"),
            (
                r#"{"loss": {"strength": 0.5, "style_weight": 1}}"#,
                "strength",
            ),
            (r#"{"size": 0}"#, "size"),
            (
                r#"{"content_mask": {"width": 2, "height": 2, "values": [1, 0, 1]}}"#,
                "`content_mask`: a mask of 2×2 needs 4 values, not 3",
            ),
            (
                r#"{"content_mask": {"width": 1, "height": 1, "values": [1]},
                    "loss": {"style_weight": 0}}"#,
                "content_mask: sets the content weight relative to the style weight",
            ),
            (r#"{"iterations": 0}"#, "iterations"),
            (r#"{"color": 1}"#, "color"),
            (r#"{"loss": {"color": 1}}"#, "color"),
            (r#"{"pooling": "min"}"#, "pooling"),
            (r#"{"init": "noise"}"#, "init"),
            (r#"{"preserve_colors": "sepia"}"#, "preserve_colors"),
            (r#"{"init": {"path": "x.png"}}"#, "{\"file\": PATH}"),
            ("[", "settings"),
            (r#"{"size": "big"}"#, "`size`: invalid type"),
            (
                r#"{"loss": {"tv_weight": "x"}}"#,
                "`loss.tv_weight`: invalid type",
            ),
            (r#"{"size": 64} x"#, "trailing characters"),
        ] {
            let err = Settings::from_json(json).unwrap_err().to_string();
            assert!(err.contains(what), "{json}: {err}");
        }
    }

    #[test]
    fn names_read_back() {
        for o in Optimizer::NAMED {
            assert_eq!(o.to_string().parse::<Optimizer>().unwrap(), o);
        }
        for p in PreserveColors::NAMED {
            assert_eq!(p.to_string().parse::<PreserveColors>().unwrap(), p);
        }
        for i in Init::NAMED {
            assert_eq!(i.to_string().parse::<Init>().unwrap(), i);
        }
        let e = "sepia".parse::<PreserveColors>().unwrap_err();
        assert_eq!(e.field(), Some(Field::PreserveColors));
    }

    #[test]
    fn a_file_named_random_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random");
        std::fs::write(&path, b"x").unwrap();
        let s = Settings::default().init(Init::File(path.clone()));
        assert!(s.validate().is_ok());
        assert_eq!(s.init, Init::File(path));
    }
}
