//! `probe` finds the adapter `Context::open` would open, and says what it offers, without a
//! device: what the web page shows a visitor first.

use nst_gpu::{probe, Context, ContextOptions};

#[test]
fn probe_describes_the_adapter_a_context_opens() {
    let p = match pollster::block_on(probe(ContextOptions::default())) {
        Ok(p) => p,
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI is set and {e}"),
        Err(e) => return eprintln!("skipping: {e}"),
    };
    let ctx = Context::new().expect("the probed adapter opens");
    assert_eq!(p.summary.name, ctx.summary.name);
    assert_eq!(p.summary.backend, ctx.summary.backend);
    assert_eq!(p.problem, None, "nst runs on {}", p.summary.name);
    assert_eq!(p.subgroups, ctx.subgroups);
    assert_eq!(p.timestamps, ctx.timestamps);
    assert_eq!(p.max_binding_bytes, ctx.max_binding_bytes);
    assert_eq!(p.max_buffer_bytes, ctx.limits.max_buffer_size);
    // Known answers for the drivers CI runs: Mesa's software drivers and SwiftShader are CPU
    // implementations, and lavapipe binds at most 128 MiB.
    let name = p.summary.name.to_lowercase();
    if name.contains("llvmpipe") || name.contains("swiftshader") {
        assert!(p.software, "{} is a CPU implementation", p.summary.name);
    }
    if name.contains("llvmpipe") && p.summary.backend == "Vulkan" {
        assert_eq!(p.max_binding_bytes, 128 << 20);
    }
}
