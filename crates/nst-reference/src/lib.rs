//! Plain-Rust `f64` CPU reference implementations of every op the GPU kernels
//! implement, plus central finite-difference gradient checks of every backward
//! pass.
//!
//! These are the ground truth the WGSL kernels are tested against, so they are
//! written for clarity and exact semantics, not speed.
//!
//! Conventions:
//! - Tensors are flat `&[f64]` slices in C×H×W row-major order (batch 1, no
//!   batch dimension): element `(c, y, x)` lives at `(c * h + y) * w + x`.
//! - Each op family has one module, named like its shader
//!   (`shaders/<op>.wgsl`) and its kernel wrapper (`nst-kernels/src/<op>.rs`).
//! - A `*_backward` function returns the gradient of a scalar loss with respect
//!   to the op's input, given the gradient with respect to its output.
//! - Shape mismatches are programming errors and panic.

#![warn(missing_docs)]

pub mod adam;
pub mod conv2d;
pub mod finite_diff;
pub mod flow;
pub mod gram;
pub mod guide;
pub mod lbfgs;
pub mod loss;
pub mod pixel;
pub mod pool;
pub mod relu;
pub mod vector;
pub mod window;
