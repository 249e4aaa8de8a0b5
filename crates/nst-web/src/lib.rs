//! nst in the browser. Compiled for `wasm32-unknown-unknown`, this crate is the web page's
//! module: the same engine, kernels and shaders as the command line, on the browser's WebGPU
//! ([`page`]). Compiled natively, it is the tool that builds that page ([`build()`]):
//! `cargo run -p nst-web -- web/dist`.
//!
//! What the page and the engine share is said once: the defaults the page's controls start
//! from come from [`nst_transfer::defaults`] through [`page::defaults`], and the page's
//! settings are the engine's [`nst_transfer::Settings`] as JSON
//! ([`nst_transfer::Settings::from_json`]), read and checked by the engine, whose errors name
//! the setting.

#[cfg(not(target_arch = "wasm32"))]
mod build;
#[cfg(target_arch = "wasm32")]
pub mod page;

#[cfg(not(target_arch = "wasm32"))]
pub use build::{build, wasm_target_installed, BuildError, Profile, WASM_TARGET};
