// Second stage of every GPU reduction (losses, dot products): sums the per-workgroup partial
// sums written by a first-stage kernel and stores scale · Σ into one slot of a scalar buffer
// (or adds to it). One workgroup of 256 invocations; at most 256 partial sums.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/reduce.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> params: Uniform;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> scalars: array<f32>;

@compute @workgroup_size(256)
fn reduce_finish(@builtin(local_invocation_index) lid: u32) {
    var v = 0.0;
    if (lid < params.count) {
        v = partials[lid];
    }
    let total = workgroup_sum(v, lid) * params.scale;
    if (lid == 0u) {
        if (params.accumulate != 0u) {
            scalars[params.out_index] += total;
        } else {
            scalars[params.out_index] = total;
        }
    }
}
