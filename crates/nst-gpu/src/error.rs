//! The runtime's error type: every message names the problem and the fix.

use std::fmt;

/// Everything that can go wrong between us and the GPU.
#[derive(Debug)]
pub enum GpuError {
    /// No adapter at all: no GPU driver, or the backends asked for have none.
    NoAdapter {
        /// The backends that were searched (from `WGPU_BACKEND`, or all).
        backends: String,
    },
    /// `WGPU_ADAPTER_NAME` matched none of the adapters present.
    AdapterNotFound {
        /// The name asked for.
        wanted: String,
        /// The adapters that exist, as `name (backend)`.
        available: Vec<String>,
    },
    /// The adapter lacks a limit the kernels cannot work without.
    Unsupported(String),
    /// `request_device` failed.
    RequestDevice(String),
    /// A buffer or binding larger than the adapter allows.
    TooLarge {
        /// What was being created ("storage binding conv1_1 output", …).
        what: String,
        /// Its size in bytes.
        bytes: u64,
        /// The adapter's limit in bytes.
        limit: u64,
        /// Which limit it is.
        limit_name: &'static str,
    },
    /// A dispatch needing more workgroups than the 2-D grid can express.
    GridTooLarge {
        /// Workgroups needed.
        groups: u64,
        /// Largest count that fits (`max_per_dimension²`).
        max: u64,
    },
    /// A shape that makes no sense (zero sizes, mismatched lengths).
    BadShape(String),
    /// Validation error caught by an error scope: a bug in nst, not in the input.
    Validation(String),
    /// The device ran out of memory.
    OutOfMemory(String),
    /// Mapping a buffer for readback failed, or the device was lost.
    Readback(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoAdapter { backends } => write!(
                f,
                "no GPU adapter found (backends searched: {backends}). Install a GPU driver with \
                 Vulkan, Metal or DX12 support; on Linux without a GPU, install the software \
                 Vulkan driver (`apt-get install mesa-vulkan-drivers libvulkan1`) and run with \
                 WGPU_BACKEND=vulkan"
            ),
            GpuError::AdapterNotFound { wanted, available } => write!(
                f,
                "WGPU_ADAPTER_NAME={wanted:?} matches no adapter; available: {}. Set \
                 WGPU_ADAPTER_NAME to part of one of these names, or unset it",
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            ),
            GpuError::Unsupported(msg) => write!(f, "this GPU adapter is not supported: {msg}"),
            GpuError::RequestDevice(msg) => write!(
                f,
                "could not open the GPU device: {msg}. Check the driver, or pick another \
                 adapter with WGPU_ADAPTER_NAME / WGPU_BACKEND"
            ),
            GpuError::TooLarge {
                what,
                bytes,
                limit,
                limit_name,
            } => write!(
                f,
                "{what} needs {} but this adapter's {limit_name} is {}: use a smaller image",
                human_bytes(*bytes),
                human_bytes(*limit)
            ),
            GpuError::GridTooLarge { groups, max } => write!(
                f,
                "a dispatch needs {groups} workgroups, more than this adapter can launch \
                 ({max}): use a smaller image"
            ),
            GpuError::BadShape(msg) => write!(f, "bad tensor shape: {msg}"),
            GpuError::Validation(msg) => write!(
                f,
                "GPU validation error (a bug in nst; please report it with this message): {msg}"
            ),
            GpuError::OutOfMemory(msg) => write!(
                f,
                "the GPU ran out of memory ({msg}): use a smaller image, or close other programs \
                 using the GPU"
            ),
            GpuError::Readback(msg) => write!(f, "reading results back from the GPU failed: {msg}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// Formats a byte count as MiB or GiB for messages.
pub fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.2} GiB", b / (1024.0 * MIB))
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = GpuError> = std::result::Result<T, E>;
