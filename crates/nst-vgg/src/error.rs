//! Errors of the graph: each names the problem and what to change.

use nst_gpu::GpuError;

/// What can go wrong building or running the graph.
#[derive(Debug, thiserror::Error)]
pub enum VggError {
    /// A layer name that is not in the table.
    #[error(
        "unknown layer `{name}`; valid layers are:{}",
        crate::layers::valid_names()
    )]
    UnknownLayer {
        /// The name as given.
        name: String,
    },
    /// A pooling kind that is none of [`crate::Pooling::NAMED`].
    #[error("pooling: must be {}, got `{name}`", pooling_names())]
    UnknownPooling {
        /// The name as given.
        name: String,
    },
    /// A graph with no tapped layer computes nothing.
    #[error("no layer is tapped: name at least one layer to read")]
    NoTaps,
    /// Weights that do not form a VGG-19 (wrong layer count, channels that do not chain,
    /// tensors of the wrong length).
    #[error("the weights are not a VGG-19: {0}; fetch the real ones")]
    BadWeights(String),
    /// An image whose tensors cannot be bound or allocated on this device.
    #[error("a {width}×{height} image does not fit on this device: {why}; {}", largest_text(*largest))]
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
    #[error(
        "a {width}×{height} image is too small to reach layer {layer}: both sides must be at \
         least {min_side} pixels"
    )]
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
    /// Tiles whose windows cannot hold the receptive field of the deepest tap.
    #[error(
        "tiles of at most {}×{} pixels are too small for layer {layer}: a tile's window needs \
         at least {least} pixels on each tiled side; give a larger tile or memory budget",
        window.1, window.0
    )]
    TileTooSmall {
        /// The largest window asked for, `(height, width)`.
        window: (u32, u32),
        /// The least window side that tiles.
        least: u32,
        /// The deepest tap.
        layer: String,
    },
    /// Any other GPU failure.
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

fn pooling_names() -> String {
    let names: Vec<&str> = crate::Pooling::NAMED.iter().map(|p| p.name()).collect();
    names.join(" or ")
}

fn largest_text(largest: Option<(u32, u32)>) -> String {
    match largest {
        Some((h, w)) => {
            format!("the largest size of this shape that fits is about {w}×{h}: use a smaller size")
        }
        None => "no size of this shape fits".into(),
    }
}

impl VggError {
    /// [`VggError::TooLarge`] for a `height × width` image, `why` saying what does not fit,
    /// with the largest size of the same shape for which `fits` holds.
    pub fn too_large(
        height: u32, width: u32, why: String, fits: impl Fn(u32, u32) -> bool,
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
    height: u32, width: u32, fits: impl Fn(u32, u32) -> bool,
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
