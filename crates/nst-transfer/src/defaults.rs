//! Default settings: what `nst stylize` does with no flags beyond the images.
//!
//! Every layer's term is scale-free by default ([`crate::Weight::Normalized`]): each content
//! layer is divided by the mean square of the content image's activations, each style layer
//! by the mean square of its target Gram matrix. The weights below then mean the same for any
//! pair of images and any size. They were chosen by running nst's loss and the classic
//! reference (jcjohnson/neural-style's defaults) in JAX on the CPU
//! (`tests/fixtures/tune_defaults.py`); `docs/loss.md` has the comparison.

use crate::error::{Field, TransferError};
use crate::settings::Optimizer;

/// Weight of the (normalized) content loss: 0.5 met the classic reference at 300 iterations;
/// 0.65, with the out-of-range penalty, meets it at the default 60 (`docs/loss.md`, "How many
/// iterations").
pub const CONTENT_WEIGHT: f64 = 0.65;
/// Weight of the (normalized) style loss.
pub const STYLE_WEIGHT: f64 = 1.0;
/// Weight of the total variation (the mean absolute difference of neighboring pixels).
pub const TV_WEIGHT: f64 = 0.2;
/// Weight of the out-of-range penalty (the mean squared distance of the pixels outside
/// [0, 1]). L-BFGS's steps are not bounded, and clamping the result when it is saved took away
/// up to 0.05 of the style gap closed; with this weight the pixels stay within about 0.01 of
/// [0, 1] (`docs/loss.md`, "How many iterations").
pub const OUT_OF_RANGE_WEIGHT: f64 = 1000.0;
/// The default strength: [`strength_weights`] of it gives the default content and style
/// weights.
pub const STRENGTH: f64 = 0.5;
/// Adam's step size in [0, 1] pixel units.
pub const LR: f64 = 0.02;
/// L-BFGS's step length after its first step (torch's and jcjohnson/neural-style's 1).
pub const LBFGS_LR: f64 = 1.0;
/// Pairs L-BFGS keeps: 2·20 + 3 image-sized vectors, 129 MiB at 512 × 512.
pub const LBFGS_HISTORY: u32 = 20;
/// The optimizer.
pub const OPTIMIZER: Optimizer = Optimizer::Lbfgs {
    history: LBFGS_HISTORY,
};
/// The most iterations per scale: a fifth of the 300 the classic tool runs, which the
/// measurements in `docs/loss.md` found enough (`tests/fixtures/schedule.py`).
pub const ITERATIONS: u32 = 60;
/// A scale ends once its loss fell by less than this fraction over [`STOP_WINDOW`]
/// iterations.
pub const TOLERANCE: f64 = 0.01;
/// The iterations the stopping rule looks back over.
pub const STOP_WINDOW: u32 = 20;
/// How many times in a row L-BFGS shrinks a step that raised the loss before the scale ends
/// (each shrinks it to between a tenth and a half).
pub const MAX_SHRINKS: u32 = 10;
/// Longest side of the output, in pixels.
pub const SIZE: u32 = 512;
/// Longest side of the first scale of a coarse-to-fine run.
pub const MIN_SIZE: u32 = 256;
/// Losses are read back (and reported) every this many iterations.
pub const REPORT_EVERY: u32 = 10;

/// The content and style weights of a strength `s` in [0, 1]: 2(1 − s)·[`CONTENT_WEIGHT`] and
/// 2s·[`STYLE_WEIGHT`]. 0 keeps the photo, [`STRENGTH`] (0.5) gives the defaults, 1 keeps only
/// the style; the ratio of the two, s/(1 − s) times the default ratio, is what sets the look,
/// and it means the same for any images since the terms are normalized.
pub fn strength_weights(s: f64) -> Result<(f64, f64), TransferError> {
    if !(s.is_finite() && (0.0..=1.0).contains(&s)) {
        return Err(TransferError::invalid(
            Field::Strength,
            format!(
                "must lie in [0, 1] (0: the photo, 0.5: the default, 1: only the style), got {s}"
            ),
        ));
    }
    Ok((2.0 * (1.0 - s) * CONTENT_WEIGHT, 2.0 * s * STYLE_WEIGHT))
}

/// TV-L1's parameters for video (`docs/video.md`): IPOL's λ, θ and τ; 5 warps of 10 steps,
/// which on the synthetic pairs of `benches/flow/compare.py` were as accurate as 5 of 30 or 50
/// in a third of the time or less.
pub const FLOW: crate::FlowSettings = crate::FlowSettings {
    lambda: 0.15,
    theta: 0.3,
    tau: 0.25,
    warps: 5,
    iterations: 10,
    min_side: 16,
};

/// Weight of video's temporal loss. On the test clip at 96 px (`docs/video.md`), 30 cut the
/// warping error 15-fold with every frame within 0.02 of the style gap its own run closes;
/// 100 cut it 30-fold but drifted 0.043 by the 12th frame, 1000 170-fold but 0.16.
pub const TEMPORAL_WEIGHT: f64 = 30.0;
/// The earlier frames video's temporal loss compares with: the previous one.
pub const FRAMES_BACK: [u32; 1] = [1];
/// The most iterations of each video frame after the first, which starts from the previous
/// result warped.
pub const LATER_ITERATIONS: u32 = 30;

/// The least strength a content mask's pixel counts as ([`crate::Settings::content_mask`]):
/// at 0 the content's weight there would be infinite. 0.02 weighs it 49 times the default.
pub const MIN_MASK_STRENGTH: f64 = 0.02;

/// How much a content mask's pixel of strength `s` weighs the content there, relative to
/// strength 0.5: (1 − s)/s, `s` floored at [`MIN_MASK_STRENGTH`]. With the content weight
/// [`mask_content_weight`] times this, each pixel's balance of content and style is the one
/// [`strength_weights`] gives `s` over a whole image.
pub fn mask_balance(s: f64) -> f64 {
    let s = s.max(MIN_MASK_STRENGTH);
    (1.0 - s) / s
}

/// The content weight a content mask's balance multiplies ([`mask_balance`]), for a run with
/// style weight `style_weight`: `style_weight`·[`CONTENT_WEIGHT`]/[`STYLE_WEIGHT`], the one
/// strength 0.5 pairs with it. (The run's own content weight is not used.)
pub fn mask_content_weight(style_weight: f64) -> f64 {
    style_weight * CONTENT_WEIGHT / STYLE_WEIGHT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_strength_gives_the_default_weights() {
        assert_eq!(
            strength_weights(STRENGTH).unwrap(),
            (CONTENT_WEIGHT, STYLE_WEIGHT)
        );
        assert_eq!(strength_weights(0.0).unwrap().1, 0.0);
        assert_eq!(strength_weights(1.0).unwrap().0, 0.0);
        assert!(strength_weights(1.5).is_err() && strength_weights(f64::NAN).is_err());
    }

    #[test]
    fn a_content_mask_pixel_balances_as_its_strength_does() {
        for s in [0.1, 0.2, 0.5, 0.7, 0.9] {
            let (c, st) = strength_weights(s).unwrap();
            let sw = 1.3;
            let here = mask_content_weight(sw) * mask_balance(s);
            assert!((here / sw - c / st).abs() < 1e-12, "{s}");
        }
        assert_eq!(mask_balance(1.0), 0.0);
        assert_eq!(mask_balance(0.0), mask_balance(MIN_MASK_STRENGTH));
        assert!((mask_balance(0.0) - 49.0).abs() < 1e-9);
    }
}
