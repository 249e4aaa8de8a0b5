//! Errors of the graph: each names the problem and what to change.

use nst_gpu::GpuError;
use std::fmt;

/// What can go wrong building or running the graph.
#[derive(Debug)]
pub enum VggError {
    /// A layer name that is not in the table.
    UnknownLayer {
        /// The name as given.
        name: String,
    },
    /// A graph with no tapped layer computes nothing.
    NoTaps,
    /// Weights that do not form a VGG-19 (wrong layer count, channels that do not chain,
    /// tensors of the wrong length).
    BadWeights(String),
    /// An image whose tensors cannot be bound or allocated on this device.
    TooLarge {
        /// The requested size.
        height: u32,
        /// The requested size.
        width: u32,
        /// What does not fit, and the limit it breaks.
        why: String,
        /// The largest `(height, width)` with the same aspect ratio that fits, if any.
        largest: Option<(u32, u32)>,
    },
    /// An image smaller than the deepest tap needs (each pooling halves it).
    TooSmall {
        /// The requested size.
        height: u32,
        /// The requested size.
        width: u32,
        /// The smallest side that reaches the deepest tap.
        min_side: u32,
        /// The deepest tap.
        layer: String,
    },
    /// Any other GPU failure.
    Gpu(GpuError),
}

impl fmt::Display for VggError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VggError::UnknownLayer { name } => write!(
                f,
                "unknown layer `{name}`; valid layers are:{}",
                crate::layers::valid_names()
            ),
            VggError::NoTaps => write!(f, "no layer is tapped: name at least one layer to read"),
            VggError::BadWeights(msg) => write!(
                f,
                "the weights are not a VGG-19: {msg}; fetch the real ones with `{}`",
                nst_weights::FETCH_COMMAND
            ),
            VggError::TooLarge {
                height,
                width,
                why,
                largest,
            } => {
                write!(
                    f,
                    "a {width}×{height} image does not fit on this device: {why}"
                )?;
                match largest {
                    Some((h, w)) => write!(
                        f,
                        "; the largest size of this shape that fits is about {w}×{h}: use a \
                         smaller size"
                    ),
                    None => write!(f, "; no size of this shape fits"),
                }
            }
            VggError::TooSmall {
                height,
                width,
                min_side,
                layer,
            } => write!(
                f,
                "a {width}×{height} image is too small to reach layer {layer}: both sides \
                 must be at least {min_side} pixels"
            ),
            VggError::Gpu(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for VggError {}

impl From<GpuError> for VggError {
    fn from(e: GpuError) -> Self {
        VggError::Gpu(e)
    }
}

impl VggError {
    pub(crate) fn too_large(
        height: u32,
        width: u32,
        why: String,
        fits: impl Fn(u32, u32) -> bool,
    ) -> VggError {
        VggError::TooLarge {
            height,
            width,
            why,
            largest: largest_fitting(height, width, fits),
        }
    }
}

/// The largest size with the aspect ratio of `height × width` for which `fits` holds,
/// searching on the longest side (`fits` must be monotone: true below some size).
pub fn largest_fitting(
    height: u32,
    width: u32,
    fits: impl Fn(u32, u32) -> bool,
) -> Option<(u32, u32)> {
    let long = height.max(width) as u64;
    let at = |side: u64| {
        let h = ((height as u64 * side) / long).max(1) as u32;
        let w = ((width as u64 * side) / long).max(1) as u32;
        (h, w)
    };
    let (mut lo, mut hi) = (0u64, long);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let (h, w) = at(mid);
        if fits(h, w) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (lo > 0).then(|| at(lo))
}
