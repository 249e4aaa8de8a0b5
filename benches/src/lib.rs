//! Benchmarks only: see `benches/kernels.rs` (run with `cargo bench`).
