//! GPU runtime for nst: opens an adapter (honoring `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`),
//! asks only for the limits it needs, turns wgpu's validation and out-of-memory errors into
//! `Result`s, creates and reads back buffers, spreads launches over 2-D grids, and times
//! passes with GPU timestamps.

mod buffer;
mod context;
mod error;
mod grid;
mod kernel;
mod timer;

pub use buffer::{tensor_bytes, View, ViewMut, TENSOR_USAGE};
pub use context::{list_adapters, probe, AdapterSummary, Context, ContextOptions, Probe};
pub use error::{human_bytes, GpuError, Result};
pub use grid::grid;
pub use kernel::{
    layout, pipeline, shader, Access, Bind, Contract, Dispatch, EntryPoint, Groups, Record, Slot,
    UniformLayout, WgslType, BOUNDS_CHECKS, RUNTIME_CHECKS, ZERO_INITIALIZE_WORKGROUP_MEMORY,
};
// For `uniform!`'s WGSL text, built at compile time.
#[doc(hidden)]
pub use const_format;
pub use timer::{profile, EntryTime, GpuTimer};
pub use wgpu;
