//! The runtime's error type: every message names the problem and the fix.

/// Everything that can go wrong between us and the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter at all: no GPU driver, or the backends asked for have none.
    #[error(
        "no GPU adapter found (backends searched: {backends}). Install a GPU driver with \
         Vulkan, Metal or DX12 support; on Linux without a GPU, install the software \
         Vulkan driver (`apt-get install mesa-vulkan-drivers libvulkan1`) and run with \
         WGPU_BACKEND=vulkan"
    )]
    NoAdapter {
        /// The backends that were searched (from `WGPU_BACKEND`, or all).
        backends: String,
    },
    /// `WGPU_ADAPTER_NAME` matched none of the adapters present.
    #[error(
        "WGPU_ADAPTER_NAME={wanted:?} matches no adapter; available: {}. Set \
         WGPU_ADAPTER_NAME to part of one of these names, or unset it",
        list_or_none(available)
    )]
    AdapterNotFound {
        /// The name asked for.
        wanted: String,
        /// The adapters that exist, as `name (backend)`.
        available: Vec<String>,
    },
    /// The adapter lacks a limit the kernels cannot work without.
    #[error("this GPU adapter is not supported: {0}")]
    Unsupported(String),
    /// `request_device` failed.
    #[error(
        "could not open the GPU device: {0}. Check the driver, or pick another adapter with \
         WGPU_ADAPTER_NAME / WGPU_BACKEND"
    )]
    RequestDevice(String),
    /// A buffer or binding larger than the adapter allows.
    #[error(
        "{what} needs {} but this adapter's {limit_name} is {}: use a smaller image",
        human_bytes(*bytes),
        human_bytes(*limit)
    )]
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
    #[error(
        "a dispatch needs {groups} workgroups, more than this adapter can launch ({max}): use \
         a smaller image"
    )]
    GridTooLarge {
        /// Workgroups needed.
        groups: u64,
        /// Largest count that fits (`max_per_dimension²`).
        max: u64,
    },
    /// A shape that makes no sense (zero sizes, mismatched lengths).
    #[error("bad tensor shape: {0}")]
    BadShape(String),
    /// A launch whose bindings disagree with its entry point's contract: a bug in nst.
    #[error("kernel launch does not match its binding contract (a bug in nst): {0}")]
    Contract(String),
    /// Validation error caught by an error scope: a bug in nst, not in the input.
    #[error("GPU validation error (a bug in nst; please report it with this message): {0}")]
    Validation(String),
    /// The device ran out of memory.
    #[error(
        "the GPU ran out of memory ({0}): use a smaller image, or close other programs using \
         the GPU"
    )]
    OutOfMemory(String),
    /// Mapping a buffer for readback failed.
    #[error("reading results back from the GPU failed: {0}")]
    Readback(String),
    /// The device was lost: the driver reset it (a hang or a crash) or the GPU went away.
    /// Nothing on it can be used again.
    #[error(
        "the GPU device was lost ({0}): the driver reset it or the GPU went away. Run again;          if it happens again, update the GPU driver or pick another adapter with          WGPU_ADAPTER_NAME"
    )]
    DeviceLost(String),
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

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
