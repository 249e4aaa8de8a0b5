//! `nst stylize`, `nst score` and `nst bench`: flags in, one engine call, reports out.

use crate::{fail, Failure};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use nst_transfer::image::Image;
use nst_transfer::report::load_image;
use nst_transfer::{
    defaults, Engine, EngineOptions, Field, Flow, Init, LossConfig, Optimizer, Pooling,
    PreserveColors, Reporter, Reporting, Settings, Style, TransferError,
};
use nst_vgg::LayerId;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A value of one of the library's named kinds, read by its `FromStr`, its names listed.
pub fn named<T>(values: &[T], name: fn(&T) -> &'static str) -> impl TypedValueParser<Value = T>
where
    T: FromStr<Err: std::fmt::Display> + Clone + Send + Sync + 'static,
{
    let names = values.iter().map(name);
    PossibleValuesParser::new(names).try_map(|s| s.parse::<T>().map_err(|e| e.to_string()))
}

/// The images and loss flags that `stylize`, `score` and `bench` share.
#[derive(Args, Debug)]
pub struct LossArgs {
    /// How much style, from 0 (the photo) through 0.5 (the default) to 1 (only the style): sets
    /// --content-weight and --style-weight together (docs/loss.md).
    #[arg(long, allow_negative_numbers = true, conflicts_with_all = ["content_weight", "style_weight"])]
    strength: Option<f64>,
    /// Weight of the content loss (each layer normalized unless --content-layer-weights).
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults::CONTENT_WEIGHT)]
    content_weight: f64,
    /// Weight of the style loss (each layer normalized unless --style-layer-weights).
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults::STYLE_WEIGHT)]
    style_weight: f64,
    /// Weight of the total variation (smoothness).
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults::TV_WEIGHT)]
    tv_weight: f64,
    /// Weight of the penalty on pixels outside [0, 1], which keeps L-BFGS's image near the
    /// range it is saved in.
    #[arg(long, allow_negative_numbers = true, default_value_t = defaults::OUT_OF_RANGE_WEIGHT)]
    out_of_range_weight: f64,
    /// Content layers, comma-separated (relu4_2 or block4_relu2 style names).
    #[arg(long, value_delimiter = ',', default_values = nst_transfer::CONTENT_LAYERS)]
    content_layers: Vec<LayerId>,
    /// Raw weights a_l, one per content layer (default: each layer divided by the mean square
    /// of the content image's activations there).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    content_layer_weights: Option<Vec<f64>>,
    /// Style layers, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = nst_transfer::STYLE_LAYERS)]
    style_layers: Vec<LayerId>,
    /// Raw weights c_l, one per style layer (default: each layer divided by the mean square of
    /// its target Gram matrix).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    style_layer_weights: Option<Vec<f64>>,
    /// Pooling.
    #[arg(long, default_value = "max", value_parser = named(&Pooling::NAMED, Pooling::name))]
    pooling: Pooling,
    /// The weights file (default: NST_WEIGHTS, then weights/vgg19.safetensors under the current
    /// directory, then the user cache; fetched if none).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// GPU memory one scale may take, weights included (`4G`, `1.5G`, `512M`; binary
    /// units): an image whose untiled graph needs more is evaluated exactly in tiles that fit.
    #[arg(long, value_parser = nst_transfer::settings::parse_bytes)]
    max_memory: Option<u64>,
    /// Evaluate in tiles whose windows are at most N pixels a side, even when the image
    /// fits (for testing; at least 192 for the default layers).
    #[arg(long, value_name = "N")]
    tile: Option<u32>,
}

impl LossArgs {
    fn config(&self) -> Result<LossConfig, Failure> {
        let (content, style) = (&self.content_layer_weights, &self.style_layer_weights);
        let cfg = (LossConfig::default().content_weight(self.content_weight))
            .style_weight(self.style_weight)
            .tv_weight(self.tv_weight)
            .out_of_range_weight(self.out_of_range_weight)
            .layers(
                &self.content_layers,
                content.as_deref(),
                &self.style_layers,
                style.as_deref(),
            )?;
        let cfg = match self.strength {
            Some(s) => cfg.with_strength(s)?,
            None => cfg,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The default settings with this loss, pooling, memory budget and tile size.
    pub(crate) fn settings(&self) -> Result<Settings, Failure> {
        let s = Settings::default()
            .loss(self.config()?)
            .pooling(self.pooling);
        Ok(s.max_memory(self.max_memory).tile(self.tile))
    }

    pub(crate) fn open(&self, quiet: bool) -> Result<Engine, Failure> {
        let options = EngineOptions::default().fetch(true);
        let options = self.weights.iter().fold(options, |o, w| o.weights(w));
        Ok(nst_transfer::report::open_engine(options, quiet)?)
    }
}

/// The images a run reads.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The content image (PNG, JPEG, WebP, …).
    #[arg(long)]
    content: PathBuf,
    /// A style image; repeat for several styles.
    #[arg(long, required = true)]
    style: Vec<PathBuf>,
    /// Blend weights of the style images, comma-separated (normalized to sum to 1).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    style_weights: Option<Vec<f64>>,
    /// Style images' longest side relative to the output's.
    #[arg(long, default_value_t = 1.0)]
    style_scale: f64,
    /// Where a style applies: an image over the output (white: this style, black: not, grey:
    /// partly), one per --style in the same order, `all` for a style applied everywhere.
    #[arg(long, value_name = "FILE|all")]
    style_mask: Vec<PathBuf>,
    /// Which part of a style image is the style: an image over that style image (white: the
    /// style, black: not, grey: partly), one per --style in the same order, `all` for the
    /// whole image.
    #[arg(long, value_name = "FILE|all")]
    style_region: Vec<PathBuf>,
    /// How strongly each part of the output is styled: an image over the output whose
    /// brightness is the strength there, as --strength takes it (black 0: keep the photo,
    /// mid-grey 0.5: the default, white 1: only the style). It sets the content weight.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["content_weight", "strength"])]
    content_mask: Option<PathBuf>,
}

/// What `--style-mask` and `--style-region` take for the whole image.
const EVERYWHERE: &str = "all";

/// The files of a flag given once per --style (`field`'s), `None` for `all` or for every
/// style when the flag is not given; an error unless it is given once per style.
fn per_style(paths: &[PathBuf], n: usize, field: Field) -> Result<Vec<Option<&Path>>, Failure> {
    let flag = format!("--{}", field.name().replace('_', "-"));
    if !paths.is_empty() && paths.len() != n {
        let reason = format!(
            "{} given for {n} style images: give one {flag} per --style, in the same order \
             (`{EVERYWHERE}` for the whole image)",
            paths.len()
        );
        return Err(nst_transfer::TransferError::invalid(field, reason).into());
    }
    let mut files: Vec<Option<&Path>> = (paths.iter())
        .map(|p| (p.as_os_str() != EVERYWHERE).then_some(p.as_path()))
        .collect();
    files.resize(n, None);
    Ok(files)
}

impl ImageArgs {
    fn paths(&self) -> Vec<&Path> {
        let mut v = vec![self.content.as_path()];
        v.extend(self.style.iter().map(PathBuf::as_path));
        v.extend(self.content_mask.as_deref());
        let files = self.style_mask.iter().chain(&self.style_region);
        v.extend(
            files
                .filter(|p| p.as_os_str() != EVERYWHERE)
                .map(PathBuf::as_path),
        );
        v
    }

    /// The content, the styles with their masks and regions, and `settings` with the content
    /// mask, each mask checked against its image.
    fn load(
        &self, settings: Settings, quiet: bool,
    ) -> Result<(Image, Vec<Style>, Settings), Failure> {
        let n = self.style.len();
        let weights = nst_transfer::settings::style_weights(n, self.style_weights.clone())?;
        let masks = per_style(&self.style_mask, n, Field::StyleMask)?;
        let regions = per_style(&self.style_region, n, Field::StyleRegion)?;
        let mut styles = Vec::new();
        for (((p, w), mask), region) in self.style.iter().zip(weights).zip(masks).zip(regions) {
            let mut style = Style::new(load_image(Field::Style, p, quiet)?, w);
            if let Some(m) = mask {
                let mask = nst_transfer::report::load_mask(Field::StyleMask, m, quiet)?;
                style = style.with_mask(mask);
            }
            if let Some(r) = region {
                let region = nst_transfer::report::load_mask(Field::StyleRegion, r, quiet)?;
                style = style.with_region(region);
            }
            styles.push(style);
        }
        let content = load_image(Field::Content, &self.content, quiet)?;
        let settings = match &self.content_mask {
            None => settings,
            Some(p) => {
                let m = nst_transfer::report::load_mask(Field::ContentMask, p, quiet)?;
                settings.content_mask(Some(m))
            }
        };
        let size = (content.width(), content.height());
        nst_transfer::guide::check_masks(&styles, &settings, size)?;
        Ok((content, styles, settings))
    }
}

/// `nst stylize`.
#[derive(Args, Debug)]
pub struct StylizeArgs {
    #[command(flatten)]
    images: ImageArgs,
    /// Where to write the result: .png, .jpg or .webp (lossless).
    #[arg(long, short)]
    output: PathBuf,
    /// Bits per channel of a PNG output.
    #[arg(long, default_value = "8", value_parser = ["8", "16"])]
    bit_depth: String,
    /// Longest side of the output, in pixels.
    #[arg(long, default_value_t = defaults::SIZE)]
    size: u32,
    /// The most iterations at each scale (an iteration is one evaluation of the loss and its
    /// gradient).
    #[arg(long, default_value_t = defaults::ITERATIONS)]
    iterations: u32,
    /// End a scale early once its loss fell by less than this fraction over 20 iterations
    /// (0: run every iteration).
    #[arg(long, default_value_t = defaults::TOLERANCE)]
    tolerance: f64,
    /// The optimizer (default: lbfgs).
    #[arg(long, value_parser = named(&Optimizer::NAMED, Optimizer::name))]
    optimizer: Option<Optimizer>,
    /// Adam's step size in [0, 1] pixel units (default 0.02); L-BFGS's step length (default 1).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Pairs L-BFGS keeps (each costs two image-sized vectors on the GPU).
    #[arg(long, default_value_t = defaults::LBFGS_HISTORY)]
    lbfgs_history: u32,
    /// Starting image.
    #[arg(long, default_value = "content", value_parser = named(&Init::NAMED, Init::name))]
    init: Init,
    /// Start from this image file instead.
    #[arg(long, conflicts_with = "init")]
    init_image: Option<PathBuf>,
    /// Seed of the random start (same seed, same adapter: same output).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep colors.
    #[arg(long, default_value = "none", value_parser = named(&PreserveColors::NAMED, PreserveColors::name))]
    preserve_colors: PreserveColors,
    /// Number of coarse-to-fine scales (default: 1 up to 700 px, else steps of about √2 from --min-size).
    #[arg(long)]
    scales: Option<u32>,
    /// Longest side of the first scale.
    #[arg(long, default_value_t = defaults::MIN_SIZE)]
    min_size: u32,
    /// Save the current image every N iterations into --save-dir.
    #[arg(long, default_value_t = 0, requires = "save_dir")]
    save_every: u32,
    /// Folder for the intermediate images.
    #[arg(long)]
    save_dir: Option<PathBuf>,
    /// Write per-iteration losses and times to a .csv or .json file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Draw the loss curves into this PNG file when the run ends.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Report (and log) every N iterations.
    #[arg(long, default_value_t = defaults::REPORT_EVERY)]
    report_every: u32,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
    /// Print one JSON object per reported iteration on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    loss: LossArgs,
}

impl StylizeArgs {
    pub(crate) fn settings(&self) -> Result<Settings, Failure> {
        let optimizer = self.optimizer.unwrap_or(defaults::OPTIMIZER);
        let init = match &self.init_image {
            Some(p) => Init::File(p.clone()),
            None => self.init.clone(),
        };
        let s = (self.loss.settings()?)
            .size(self.size)
            .style_scale(self.images.style_scale)
            .iterations(self.iterations)
            .tolerance(self.tolerance)
            .optimizer(optimizer.with_history(self.lbfgs_history))
            .lr(self.lr)
            .init(init)
            .seed(self.seed)
            .preserve_colors(self.preserve_colors)
            .scales(self.scales)
            .min_size(self.min_size)
            .report_every(self.report_every)
            .snapshot_every(self.save_every);
        s.validate()?;
        Ok(s)
    }

    /// How the run is reported.
    fn reporting(&self) -> Reporting {
        let stem = self.output.file_stem().and_then(|s| s.to_str());
        let dir = self.save_dir.clone().unwrap_or_else(|| ".".into());
        Reporting {
            quiet: self.quiet || self.json,
            json: self.json,
            bar: true,
            output: Some(self.output.clone()),
            sixteen_bit: self.bit_depth == "16",
            snapshots: Some((dir, stem.unwrap_or("nst").into())),
            log: self.log.clone(),
            plot: self.plot.clone(),
        }
    }
}

/// Runs `nst stylize`.
pub fn stylize(a: StylizeArgs) -> Result<(), Failure> {
    let settings = a.settings()?;
    let how = a.reporting();
    let mut inputs = a.images.paths();
    inputs.extend(a.init_image.as_deref());
    how.check(&inputs)?;
    let (content, styles, settings) = a.images.load(settings, how.quiet)?;
    let engine = a.loss.open(how.quiet)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // The first Ctrl-C stops the run after the current iteration and writes the image; a
    // second exits at once, removing any file half written.
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            nst_weights::remove_unfinished();
            std::process::exit(130);
        }
    });
    if let Err(e) = handler {
        if !how.quiet {
            eprintln!("note: Ctrl-C will end nst at once, without writing the image ({e})");
        }
    }
    let mut reporter = Reporter::new(how, &settings);
    let result = engine.stylize(&content, &styles, &settings, |e| {
        match (reporter.event(&e), interrupted.load(Ordering::SeqCst)) {
            (Flow::Continue, false) => Flow::Continue,
            _ => Flow::Stop,
        }
    });
    match reporter.finish(result) {
        Err(e @ TransferError::NonFinite { .. }) => {
            Err(fail(5, format!("{e} (written to {})", a.output.display())))
        }
        Err(e @ TransferError::DeviceLost { .. }) => {
            Err(fail(4, format!("{e} (written to {})", a.output.display())))
        }
        other => other.map(drop).map_err(Failure::from),
    }
}

/// `nst score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    images: ImageArgs,
    /// The image to score (at its own size; the content is resized to it, the styles to
    /// --style-scale times its longest side, as stylize does).
    #[arg(long)]
    image: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Write ∂total/∂pixels (float32, shape 3×H×W, RGB [0, 1]) to this .safetensors file.
    #[arg(long)]
    grad: Option<PathBuf>,
    /// A region of the image (white) to measure apart: its style distance from each style.
    /// Repeatable.
    #[arg(long, value_name = "FILE")]
    mask: Vec<PathBuf>,
    #[command(flatten)]
    loss: LossArgs,
}

/// Runs `nst score`.
pub fn score(a: ScoreArgs) -> Result<(), Failure> {
    let settings = a.loss.settings()?.style_scale(a.images.style_scale);
    settings.validate()?;
    let mut inputs = a.images.paths();
    inputs.push(&a.image);
    inputs.extend(a.mask.iter().map(PathBuf::as_path));
    if let Some(g) = &a.grad {
        nst_transfer::report::check_not_input(Field::Grad, g, &inputs)?;
    }
    let (content, styles, settings) = a.images.load(settings, a.json)?;
    let image = load_image(Field::Image, &a.image, a.json)?;
    // The masks are read and checked before the GPU is opened.
    let size = (image.width(), image.height());
    let mut masks = Vec::new();
    for path in &a.mask {
        let m = nst_transfer::report::load_mask(Field::Mask, path, a.json)?;
        nst_transfer::guide::check(&m, size, &path.display().to_string(), Field::Mask)?;
        masks.push((path, m));
    }
    let engine = a.loss.open(a.json)?;
    let mut s = engine.score(&content, &styles, &image, &settings)?;
    for (path, m) in masks {
        s.regions.push(nst_transfer::Region {
            mask: path.display().to_string(),
            measure: engine.region_measure(&content, &styles, &image, &m)?,
        });
    }
    if let Some(g) = &a.grad {
        s.write_grad(g)?;
    }
    report(&s, a.json)
}

/// `nst bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Image size: `N` for N×N, or `WxH`.
    #[arg(long, default_value = "512", value_parser = nst_transfer::settings::parse_dims)]
    size: (u32, u32),
    /// Timed iterations (after the warm-up).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    loss: LossArgs,
}

/// Runs `nst bench`: full iterations (forward, losses, backward, Adam) on noise images.
pub fn bench(a: BenchArgs) -> Result<(), Failure> {
    let settings = a.loss.settings()?;
    let engine = a.loss.open(a.json)?;
    let (w, h) = a.size;
    let b = engine.bench(w, h, a.warmup, a.iterations, &settings)?;
    report(&b, a.json)
}

/// Prints `value` for people, or as JSON ([`nst_transfer::report::print`]).
pub fn report(
    value: &(impl std::fmt::Display + serde::Serialize), json: bool,
) -> Result<(), Failure> {
    nst_transfer::report::print(value, json).map_err(|e| fail(1, e))
}

/// `nst tune`.
#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Image size N: the layer shapes of an N×N iteration are timed (on a software adapter,
    /// 512 takes long: try 64).
    #[arg(long, default_value_t = defaults::SIZE, value_parser = clap::value_parser!(u32).range(16..=16384))]
    size: u32,
    /// The weights file (for the layer shapes).
    #[arg(long)]
    weights: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `nst tune`: times every variant of every class of launch and keeps the winners.
pub fn tune(a: TuneArgs) -> Result<(), Failure> {
    let options = EngineOptions::default().fetch(true);
    let options = a.weights.iter().fold(options, |o, w| o.weights(w));
    let mut engine = nst_transfer::report::open_engine(options, false)?;
    let t = engine.tune(a.size, &mut |m: &str| eprintln!("{m}"))?;
    report(&t, a.json)
}

/// TV-L1's flags, shared by `nst flow` (and the video commands).
#[derive(Args, Debug)]
pub struct FlowArgs {
    /// TV-L1's data weight (grey levels in [0, 255]; higher follows the frames more closely).
    #[arg(long, default_value_t = defaults::FLOW.lambda)]
    flow_lambda: f64,
    /// TV-L1's linearizations per scale.
    #[arg(long, default_value_t = defaults::FLOW.warps)]
    flow_warps: u32,
    /// TV-L1's primal-dual steps per linearization.
    #[arg(long, default_value_t = defaults::FLOW.iterations)]
    flow_iterations: u32,
}

impl FlowArgs {
    pub(crate) fn settings(&self) -> nst_transfer::FlowSettings {
        nst_transfer::FlowSettings {
            lambda: self.flow_lambda,
            warps: self.flow_warps,
            iterations: self.flow_iterations,
            ..defaults::FLOW
        }
    }
}

/// `nst flow`.
#[derive(Args, Debug)]
pub struct FlowCommandArgs {
    /// The first frame.
    #[arg(long)]
    from: PathBuf,
    /// The second frame (the same size).
    #[arg(long)]
    to: PathBuf,
    /// Where to write the flow from the first frame to the second: a .safetensors file with
    /// `flow` (2 × H × W: u, then v, in pixels) and `reliability` (H × W: Ruder et al.'s
    /// forward-backward and motion-boundary check of the backward flow, 1 where it holds).
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    flow: FlowArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `nst flow`: the TV-L1 flow between two frames on the GPU, timed.
pub fn flow(a: FlowCommandArgs) -> Result<(), Failure> {
    let settings = a.flow.settings();
    settings.validate()?;
    nst_transfer::report::check_not_input(Field::Output, &a.output, &[&a.from, &a.to])?;
    let from = load_image(Field::Content, &a.from, a.json)?;
    let to = load_image(Field::Content, &a.to, a.json)?;
    if (from.width(), from.height()) != (to.width(), to.height()) {
        let message = format!(
            "--from is {}×{} and --to {}×{}: give two frames of one size",
            from.width(),
            from.height(),
            to.width(),
            to.height()
        );
        return Err(fail(2, message));
    }
    let flows = nst_transfer::Flows::open()?;
    // The first run compiles the pipelines; the timed run is the second.
    flows.flow(&from, &to, &settings)?;
    let start = std::time::Instant::now();
    let forward = flows.flow(&from, &to, &settings)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let pair = flows.flows(&from, &to, &settings)?;
    forward.write(&a.output, Some(&pair.reliability))?;
    let reliable = pair.reliability.iter().filter(|&&r| r > 0.5).count() as f64
        / pair.reliability.len() as f64;
    match a.json {
        true => println!(
            "{}",
            serde_json::json!({
                "width": forward.width,
                "height": forward.height,
                "ms": ms,
                "mean_length": forward.mean_length(),
                "reliable": reliable,
            })
        ),
        false => println!(
            "flow {}×{}: mean length {:.2} px, {:.1} % reliable, {ms:.1} ms (one direction) on {}",
            forward.width,
            forward.height,
            forward.mean_length(),
            100.0 * reliable,
            flows.context().summary.name
        ),
    }
    Ok(())
}
