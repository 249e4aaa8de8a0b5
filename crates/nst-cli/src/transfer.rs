//! `nst stylize` and `nst score`: flags in, engine calls, files out.

use crate::plot;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nst_transfer::image::{self as img, Image};
use nst_transfer::{
    plan_scales, Engine, Event, Flow, Init, LayerWeight, LossConfig, LossValues, Measure,
    Optimizer, PreserveColors, Settings, Style, Term, TransferError,
};
use nst_vgg::{LayerId, Pooling};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The loss flags, shared by `stylize` and `score`.
#[derive(Args, Clone, Debug)]
pub struct LossArgs {
    /// How much style, from 0 (the photo) through 0.5 (the default) to 1 (only the style): sets
    /// --content-weight and --style-weight together (docs/loss.md).
    #[arg(long, allow_negative_numbers = true, conflicts_with_all = ["content_weight", "style_weight"])]
    strength: Option<f64>,
    /// Weight of the content loss (each layer normalised unless --content-layer-weights).
    #[arg(long, allow_negative_numbers = true, default_value_t = nst_transfer::defaults::CONTENT_WEIGHT)]
    content_weight: f64,
    /// Weight of the style loss (each layer normalised unless --style-layer-weights).
    #[arg(long, allow_negative_numbers = true, default_value_t = nst_transfer::defaults::STYLE_WEIGHT)]
    style_weight: f64,
    /// Weight of the total variation (smoothness).
    #[arg(long, allow_negative_numbers = true, default_value_t = nst_transfer::defaults::TV_WEIGHT)]
    tv_weight: f64,
    /// Content layers, comma-separated (relu4_2 or block4_relu2 style names).
    #[arg(long, value_delimiter = ',', default_values = nst_transfer::CONTENT_LAYERS.iter().copied())]
    content_layers: Vec<String>,
    /// Raw weights a_l, one per content layer (default: each layer divided by the mean square
    /// of the content image's activations there).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    content_layer_weights: Option<Vec<f64>>,
    /// Style layers, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = nst_transfer::STYLE_LAYERS.iter().copied())]
    style_layers: Vec<String>,
    /// Raw weights c_l, one per style layer (default: each layer divided by the mean square of
    /// its target Gram matrix).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    style_layer_weights: Option<Vec<f64>>,
    /// Pooling: max or avg.
    #[arg(long, default_value = "max")]
    pooling: Pooling,
    /// The weights file (default: NST_WEIGHTS, then weights/vgg19.safetensors under the current
    /// directory, then the user cache; fetched if none).
    #[arg(long)]
    weights: Option<PathBuf>,
}

impl LossArgs {
    fn config(&self) -> Result<LossConfig, String> {
        let content = weighted(
            &self.content_layers,
            self.content_layer_weights.as_deref(),
            "--content-layer-weights",
            "--content-layers",
        )?;
        let style = weighted(
            &self.style_layers,
            self.style_layer_weights.as_deref(),
            "--style-layer-weights",
            "--style-layers",
        )?;
        let mut cfg = LossConfig {
            content_weight: self.content_weight,
            style_weight: self.style_weight,
            tv_weight: self.tv_weight,
            content_layers: content,
            style_layers: style,
        };
        if let Some(s) = self.strength {
            cfg = cfg
                .with_strength(s)
                .map_err(|e| format!("--strength: {e}"))?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Layer names with their weights: raw where given, else normalised.
fn weighted(
    names: &[String],
    weights: Option<&[f64]>,
    weights_flag: &str,
    layers_flag: &str,
) -> Result<Vec<LayerWeight>, String> {
    let layers: Vec<LayerId> = names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| LayerId::parse(n).map_err(|e| format!("{layers_flag}: {e}")))
        .collect::<Result<_, _>>()?;
    match weights {
        Some(w) if w.len() != layers.len() => Err(format!(
            "{weights_flag} has {} values for {} layers in {layers_flag}: give one weight per layer",
            w.len(),
            layers.len()
        )),
        Some(w) => Ok(layers
            .iter()
            .zip(w)
            .map(|(&l, &w)| LayerWeight::raw(l, w))
            .collect()),
        None => Ok(layers.into_iter().map(LayerWeight::normalized).collect()),
    }
}

/// `nst stylize`.
#[derive(Args, Debug)]
pub struct StylizeArgs {
    /// The content image (PNG, JPEG, WebP, …).
    #[arg(long)]
    content: PathBuf,
    /// A style image; repeat for several styles.
    #[arg(long, required = true)]
    style: Vec<PathBuf>,
    /// Blend weights of the style images, comma-separated (normalized to sum to 1).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    style_weights: Option<Vec<f64>>,
    /// Where to write the result: .png, .jpg or .webp (lossless).
    #[arg(long, short)]
    output: PathBuf,
    /// Bits per channel of a PNG output: 8 or 16.
    #[arg(long, default_value_t = 8, value_parser = parse_bit_depth)]
    bit_depth: u8,
    /// Longest side of the output, in pixels.
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Style images' longest side relative to the output's.
    #[arg(long, default_value_t = 1.0)]
    style_scale: f64,
    /// Iterations (at each scale).
    #[arg(long, default_value_t = nst_transfer::defaults::ITERATIONS)]
    iterations: u32,
    /// The optimizer: lbfgs (the default) or adam.
    #[arg(long, value_parser = parse_optimizer)]
    optimizer: Option<OptimizerKind>,
    /// Adam's step size in [0, 1] pixel units (default 0.02); L-BFGS's step length (default 1).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Pairs L-BFGS keeps (each costs two image-sized vectors on the GPU).
    #[arg(long, default_value_t = nst_transfer::defaults::LBFGS_HISTORY)]
    lbfgs_history: u32,
    /// Starting image: content, random, or a file.
    #[arg(long, default_value = "content")]
    init: String,
    /// Seed of the random start (same seed, same adapter: same output).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep colours: none, luminance (transfer luminance only, keep the content's colours) or
    /// histogram (recolour the style to the content's colour statistics first).
    #[arg(long, default_value = "none")]
    preserve_colors: String,
    /// Number of coarse-to-fine scales (default: 1 up to 700 px, else steps of about √2 from --min-size).
    #[arg(long)]
    scales: Option<u32>,
    /// Longest side of the first scale.
    #[arg(long, default_value_t = 256)]
    min_size: u32,
    /// Save the current image every N iterations into --save-dir.
    #[arg(long, default_value_t = 0)]
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
    #[arg(long, default_value_t = 10)]
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

/// The `--optimizer` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OptimizerKind {
    Adam,
    Lbfgs,
}

fn parse_optimizer(s: &str) -> Result<OptimizerKind, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "adam" => Ok(OptimizerKind::Adam),
        "lbfgs" | "l-bfgs" => Ok(OptimizerKind::Lbfgs),
        _ => Err(format!("`{s}` is not an optimizer: use adam or lbfgs")),
    }
}

fn parse_bit_depth(s: &str) -> Result<u8, String> {
    match s.trim() {
        "8" => Ok(8),
        "16" => Ok(16),
        _ => Err(format!(
            "`{s}` is not a bit depth: use 8 or 16 (16 needs a .png output)"
        )),
    }
}

fn parse_preserve(s: &str) -> Result<PreserveColors, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(PreserveColors::None),
        "luminance" => Ok(PreserveColors::Luminance),
        "histogram" => Ok(PreserveColors::Histogram),
        _ => Err(format!(
            "--preserve-colors `{s}` is not one of none, luminance, histogram"
        )),
    }
}

fn load(path: &Path, what: &str, quiet: bool) -> Result<Image, String> {
    let loaded = img::load(path).map_err(|e| format!("{what}: {e}"))?;
    if !quiet {
        for note in &loaded.notes {
            eprintln!("note: {what} {}: {note}", path.display());
        }
    }
    Ok(loaded.image)
}

fn open_engine(weights: Option<&Path>, quiet: bool) -> Result<Engine, String> {
    let mut progress = |m: &str| {
        if !quiet {
            eprintln!("{m}")
        }
    };
    let path =
        nst_weights::locate_or_fetch(weights, &mut progress).map_err(crate::weights_error)?;
    let w = nst_weights::load(&path).map_err(crate::weights_error)?;
    let ctx = nst_gpu::Context::new().map_err(|e| e.to_string())?;
    if !quiet {
        eprintln!("GPU: {} ({})", ctx.summary.name, ctx.summary.backend);
    }
    Engine::new(ctx, &w).map_err(|e| e.to_string())
}

fn styles(paths: &[PathBuf], weights: Option<&[f64]>, quiet: bool) -> Result<Vec<Style>, String> {
    if let Some(w) = weights {
        if w.len() != paths.len() {
            return Err(format!(
                "--style-weights has {} values for {} --style images: give one weight per style",
                w.len(),
                paths.len()
            ));
        }
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(Style {
                image: load(p, "style image", quiet)?,
                weight: weights.map_or(1.0, |w| w[i]),
            })
        })
        .collect()
}

/// One row of the log: a reported iteration, or the final image with its measure.
struct Row {
    scale: usize,
    iteration: u32,
    values: LossValues,
    ms_per_iteration: f64,
    elapsed_s: f64,
    /// Only on the final row.
    measure: Option<Measure>,
}

impl Row {
    fn json(&self) -> serde_json::Value {
        let terms: serde_json::Map<String, serde_json::Value> = self
            .values
            .terms
            .iter()
            .map(|t| (term_key(&t.term), serde_json::json!(t.raw)))
            .collect();
        let mut v = serde_json::json!({
            "scale": self.scale,
            "iteration": self.iteration,
            "total": self.values.total(),
            "content": self.values.content(),
            "style": self.values.style(),
            "tv": self.values.tv(),
            "terms": terms,
            "ms_per_iteration": self.ms_per_iteration,
            "elapsed_s": self.elapsed_s,
        });
        if let Some(m) = &self.measure {
            v["final"] = serde_json::json!(true);
            add_measure(&mut v, m);
        }
        v
    }
}

/// The measure's figures, as `score --json` and the logs name them.
fn add_measure(v: &mut serde_json::Value, m: &Measure) {
    v["style_distance"] = serde_json::json!(m.style_distance);
    v["content_distance"] = serde_json::json!(m.content_distance);
    v["style_gap_closed"] = serde_json::json!(m.style_gap_closed());
    v["content_style_distance"] = serde_json::json!(m.content_style_distance);
}

/// One line for people: the measure of a result.
fn measure_line(m: &Measure) -> String {
    format!(
        "style gap closed {:.1} % (style distance {:.3}, the photo's {:.3}); content distance {:.3}",
        100.0 * m.style_gap_closed(),
        m.style_distance,
        m.content_style_distance,
        m.content_distance
    )
}

fn term_key(t: &Term) -> String {
    match t {
        Term::Content(l) => format!("content.{l}"),
        Term::Style(l, k) => format!("style.{l}.{}", k + 1),
        Term::Tv => "tv".into(),
    }
}

fn write_log(path: &Path, rows: &[Row]) -> Result<(), String> {
    let text = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let mut s = String::from(
            "scale,iteration,total,content,style,tv,ms_per_iteration,elapsed_s,\
             style_distance,content_distance,style_gap_closed\n",
        );
        for r in rows {
            let measure = r.measure.map_or(",,".into(), |m| {
                format!(
                    "{},{},{}",
                    m.style_distance,
                    m.content_distance,
                    m.style_gap_closed()
                )
            });
            s.push_str(&format!(
                "{},{},{},{},{},{},{:.3},{:.3},{measure}\n",
                r.scale + 1,
                if r.measure.is_some() {
                    "final".into()
                } else {
                    r.iteration.to_string()
                },
                r.values.total(),
                r.values.content(),
                r.values.style(),
                r.values.tv(),
                r.ms_per_iteration,
                r.elapsed_s
            ));
        }
        s
    } else {
        let all: Vec<_> = rows.iter().map(Row::json).collect();
        serde_json::to_string_pretty(&all).map_err(|e| e.to_string())? + "\n"
    };
    let tmp = path.with_extension("tmp-log");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write the log {}: {e}", path.display()))
}

fn check_log_path(path: &Path) -> Result<(), String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !ext.eq_ignore_ascii_case("csv") && !ext.eq_ignore_ascii_case("json") {
        return Err(format!(
            "--log {}: use a .csv or .json file name",
            path.display()
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "--log {}: the folder {} does not exist; create it first",
            path.display(),
            dir.display()
        ));
    }
    Ok(())
}

fn check_plot_path(
    path: &Path,
    inputs: &[&Path],
    output: &Path,
    log: Option<&Path>,
) -> Result<(), String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !ext.eq_ignore_ascii_case("png") {
        return Err(format!("--plot {}: use a .png file name", path.display()));
    }
    let mut taken: Vec<&Path> = inputs.to_vec();
    taken.push(output);
    taken.extend(log);
    img::check_output_path(path, &taken, false).map_err(|e| format!("--plot: {e}"))
}

/// Runs `nst stylize`.
pub fn stylize(a: StylizeArgs) -> Result<(), String> {
    let cfg = a.loss.config()?;
    let preserve = parse_preserve(&a.preserve_colors)?;
    if a.size == 0 || a.size > 16384 {
        return Err(format!(
            "--size {} is not between 1 and 16384 pixels",
            a.size
        ));
    }
    if a.report_every == 0 {
        return Err("--report-every must be at least 1".into());
    }
    let sixteen = a.bit_depth == 16;
    let init_path = match a.init.as_str() {
        "content" | "random" => None,
        p => Some(PathBuf::from(p)),
    };
    let mut inputs: Vec<&Path> = vec![&a.content];
    inputs.extend(a.style.iter().map(|p| p.as_path()));
    inputs.extend(init_path.as_deref());
    img::check_output_path(&a.output, &inputs, sixteen).map_err(|e| e.to_string())?;
    if let Some(log) = &a.log {
        check_log_path(log)?;
    }
    if let Some(plot) = &a.plot {
        check_plot_path(plot, &inputs, &a.output, a.log.as_deref())?;
    }
    if a.save_every > 0 {
        match &a.save_dir {
            Some(d) if d.is_dir() => {}
            Some(d) => {
                return Err(format!(
                    "--save-dir {}: no such folder; create it first",
                    d.display()
                ))
            }
            None => return Err("--save-every needs --save-dir DIR".into()),
        }
    }
    let quiet = a.quiet;
    let content = load(&a.content, "content image", quiet)?;
    let styles = styles(&a.style, a.style_weights.as_deref(), quiet)?;
    let init = match &init_path {
        None if a.init == "random" => Init::Random,
        None => Init::Content,
        Some(p) => Init::Image(load(p, "--init image", quiet)?),
    };
    let optimizer = match a.optimizer {
        None => match nst_transfer::defaults::OPTIMIZER {
            Optimizer::Lbfgs { .. } => Optimizer::Lbfgs {
                history: a.lbfgs_history,
            },
            o => o,
        },
        Some(OptimizerKind::Adam) => Optimizer::Adam,
        Some(OptimizerKind::Lbfgs) => Optimizer::Lbfgs {
            history: a.lbfgs_history,
        },
    };
    let settings = Settings {
        size: a.size,
        style_scale: a.style_scale,
        iterations: a.iterations,
        optimizer,
        lr: a.lr.unwrap_or(optimizer.default_lr()),
        loss: cfg,
        pooling: a.loss.pooling,
        init,
        seed: a.seed,
        preserve_colors: preserve,
        scales: plan_scales(a.size, a.min_size, a.scales),
        report_every: a.report_every,
        snapshot_every: a.save_every,
    };
    settings.validate()?;
    if let Some(w) = &a.style_weights {
        nst_transfer::normalized_style_weights(w)?;
    }
    let engine = open_engine(a.loss.weights.as_deref(), quiet)?;

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second Ctrl-C while the first is handled exits at once.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let n_scales = settings.scales.len();
    let total_iters = settings.iterations as u64 * n_scales as u64;
    let bar = if !quiet && !a.json && std::io::stderr().is_terminal() {
        let b = ProgressBar::new(total_iters);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .expect("a valid template"),
        );
        Some(b)
    } else {
        None
    };
    let start = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let stem = a
        .output
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("nst")
        .to_string();
    let mut save_error: Option<String> = None;
    let mut final_values = None;
    let result = engine.stylize(&content, &styles, &settings, &mut |e| {
        match e {
            Event::Scale {
                index,
                count,
                width,
                height,
            } => {
                let line = format!("scale {}/{count}: {width}×{height}", index + 1);
                match &bar {
                    Some(b) => b.println(line),
                    None if !quiet && !a.json => eprintln!("{line}"),
                    None => {}
                }
            }
            Event::Iteration {
                scale,
                iteration,
                of,
                values,
                per_iteration,
            } => {
                let ms = per_iteration.as_secs_f64() * 1e3;
                let row = Row {
                    scale,
                    iteration,
                    values: values.clone(),
                    ms_per_iteration: ms,
                    elapsed_s: start.elapsed().as_secs_f64(),
                    measure: None,
                };
                let done = scale as u64 * settings.iterations as u64 + iteration as u64;
                let msg = format!(
                    "loss {:.4e} (content {:.3e}, style {:.3e}, tv {:.3e}) {ms:.0} ms/it",
                    values.total(),
                    values.content(),
                    values.style(),
                    values.tv()
                );
                if a.json {
                    println!("{}", row.json());
                } else if let Some(b) = &bar {
                    b.set_position(done);
                    b.set_message(msg);
                } else if !quiet {
                    eprintln!(
                        "scale {}/{n_scales} iteration {iteration}/{of}: {msg}",
                        scale + 1
                    );
                }
                rows.push(row);
            }
            Event::Snapshot {
                scale,
                iteration,
                image,
            } => {
                if let Some(dir) = &a.save_dir {
                    let p = dir.join(format!("{stem}_s{}_{iteration:05}.png", scale + 1));
                    if let Err(e) = img::save(image, &p, false) {
                        save_error = Some(e.to_string());
                        return Flow::Stop;
                    }
                }
            }
            Event::Final { values } => final_values = Some(values.clone()),
        }
        if interrupted.load(Ordering::SeqCst) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let measure = result.as_ref().ok().and_then(|o| o.measure);
    if let (Some(values), Some(m)) = (final_values, measure) {
        let row = Row {
            scale: n_scales - 1,
            iteration: settings.iterations,
            values,
            ms_per_iteration: 0.0,
            elapsed_s: start.elapsed().as_secs_f64(),
            measure: Some(m),
        };
        if a.json {
            println!("{}", row.json());
        } else if !quiet {
            eprintln!(
                "final loss {:.4e}; {}",
                row.values.total(),
                measure_line(&m)
            );
        }
        rows.push(row);
    }
    if let Some(log) = &a.log {
        write_log(log, &rows)?;
    }
    if let Some(path) = &a.plot {
        let per_scale = settings.iterations as u64;
        let points: Vec<plot::Point> = rows
            .iter()
            .filter(|r| r.measure.is_none())
            .map(|r| plot::Point {
                iteration: r.scale as u64 * per_scale + r.iteration as u64,
                values: [
                    r.values.total(),
                    r.values.content(),
                    r.values.style(),
                    r.values.tv(),
                ],
            })
            .collect();
        let scales_run = rows
            .iter()
            .rfind(|r| r.measure.is_none())
            .map_or(0, |r| r.scale as u64);
        let starts: Vec<u64> = (1..=scales_run).map(|s| s * per_scale).collect();
        plot::write(path, &points, &starts)?;
    }
    if let Some(e) = save_error {
        return Err(format!("saving an intermediate image: {e}"));
    }
    match result {
        Ok(out) => {
            img::save(&out.image, &a.output, sixteen).map_err(|e| e.to_string())?;
            if !quiet {
                let how = if out.stopped {
                    "stopped early; wrote the current image to"
                } else {
                    "wrote"
                };
                eprintln!(
                    "{how} {} in {:.1} s",
                    a.output.display(),
                    start.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Err(TransferError::NonFinite {
            term,
            iteration,
            last_good,
        }) => {
            img::save(&last_good, &a.output, sixteen).map_err(|e| e.to_string())?;
            let e = TransferError::NonFinite {
                term,
                iteration,
                last_good,
            };
            Err(format!("{e} (written to {})", a.output.display()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `nst score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The content image.
    #[arg(long)]
    content: PathBuf,
    /// A style image; repeat for several.
    #[arg(long, required = true)]
    style: Vec<PathBuf>,
    /// Blend weights of the style images.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    style_weights: Option<Vec<f64>>,
    /// The image to score (at its own size; the content is resized to it, the styles to
    /// --style-scale times its longest side, as stylize does).
    #[arg(long)]
    image: PathBuf,
    /// Style images' longest side relative to the image's.
    #[arg(long, default_value_t = 1.0)]
    style_scale: f64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Write ∂total/∂pixels (float32, shape 3×H×W, RGB [0, 1]) to this .safetensors file.
    #[arg(long)]
    grad: Option<PathBuf>,
    #[command(flatten)]
    loss: LossArgs,
}

/// Runs `nst score`.
pub fn score(a: ScoreArgs) -> Result<(), String> {
    let cfg = a.loss.config()?;
    if let Some(g) = &a.grad {
        let ok = g
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        if !ok {
            return Err(format!(
                "--grad {}: use a .safetensors file name",
                g.display()
            ));
        }
        let inputs = [&a.content, &a.image];
        if inputs.iter().any(|p| img::same_file(p, g))
            || a.style.iter().any(|p| img::same_file(p, g))
        {
            return Err(format!(
                "--grad {} is one of the input images; choose another name",
                g.display()
            ));
        }
    }
    let content = load(&a.content, "content image", a.json)?;
    let styles = styles(&a.style, a.style_weights.as_deref(), a.json)?;
    let image = load(&a.image, "image", a.json)?;
    let engine = open_engine(a.loss.weights.as_deref(), a.json)?;
    let s = engine
        .score(
            &content,
            &styles,
            &image,
            a.style_scale,
            &cfg,
            a.loss.pooling,
        )
        .map_err(|e| e.to_string())?;
    let m = engine
        .measure(&content, &styles, &image)
        .map_err(|e| e.to_string())?;
    if let Some(g) = &a.grad {
        write_grad(g, &s.grad, image.height, image.width)?;
    }
    if a.json {
        let terms: Vec<_> = s
            .values
            .terms
            .iter()
            .map(|t| serde_json::json!({"term": term_key(&t.term), "value": t.raw, "weight": t.weight}))
            .collect();
        let mut out = serde_json::json!({
            "width": image.width,
            "height": image.height,
            "total": s.values.total(),
            "content": s.values.content(),
            "style": s.values.style(),
            "tv": s.values.tv(),
            "terms": terms,
        });
        add_measure(&mut out, &m);
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        let mut out = std::io::stdout().lock();
        for t in &s.values.terms {
            let _ = writeln!(
                out,
                "{:<24} {:>14.6e} × {:<10.4e} = {:.6e}",
                term_key(&t.term),
                t.raw,
                t.weight,
                t.raw * t.weight
            );
        }
        let _ = writeln!(out, "{:<24} {:>14.6e}", "total", s.values.total());
        let _ = writeln!(out, "{:<24} {:>14.6}", "style distance", m.style_distance);
        let _ = writeln!(
            out,
            "{:<24} {:>14.6}",
            "content distance", m.content_distance
        );
        let _ = writeln!(
            out,
            "{:<24} {:>14.6}",
            "style gap closed",
            m.style_gap_closed()
        );
    }
    Ok(())
}

fn write_grad(path: &Path, grad: &[f32], h: u32, w: u32) -> Result<(), String> {
    let bytes: Vec<u8> = grad.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![3, h as usize, w as usize],
        &bytes,
    )
    .map_err(|e| e.to_string())?;
    let data = safetensors::serialize([("grad", view)], None).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, data)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
}

/// `nst bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Image size: N for N×N.
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 20)]
    iterations: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    loss: LossArgs,
}

/// Runs `nst bench`: full iterations (forward, losses, backward, Adam) on noise images.
pub fn bench(a: BenchArgs) -> Result<(), String> {
    let cfg = a.loss.config()?;
    if a.size < 16 || a.size > 16384 || a.iterations == 0 {
        return Err("--size must be 16 to 16384 and --iterations at least 1".into());
    }
    let engine = open_engine(a.loss.weights.as_deref(), a.json)?;
    let b = engine
        .bench(a.size, a.size, a.iterations, &cfg, a.loss.pooling)
        .map_err(|e| e.to_string())?;
    let s = &engine.context().summary;
    let median = b.median_ms();
    let gflops = b.conv_flops / (median * 1e-3) / 1e9;
    if a.json {
        let out = serde_json::json!({
            "adapter": s.name,
            "backend": s.backend,
            "driver": s.driver,
            "width": b.width,
            "height": b.height,
            "iterations": a.iterations,
            "median_ms": median,
            "ms": b.ms,
            "conv_gflop_per_iteration": b.conv_flops / 1e9,
            "conv_gflops": gflops,
            "graph_bytes": b.graph_bytes,
            "weight_bytes": b.weight_bytes,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "adapter:    {} ({}, driver {})",
            s.name, s.backend, s.driver
        );
        println!(
            "size:       {}×{}, {} iterations after one warm-up",
            b.width, b.height, a.iterations
        );
        println!("median:     {median:.1} ms per iteration (forward, losses, backward, Adam)");
        println!(
            "throughput: {gflops:.1} GFLOP/s in convolutions ({:.1} GFLOP per iteration)",
            b.conv_flops / 1e9
        );
        println!(
            "memory:     graph {} + weights {}",
            nst_gpu::human_bytes(b.graph_bytes),
            nst_gpu::human_bytes(b.weight_bytes)
        );
    }
    Ok(())
}
