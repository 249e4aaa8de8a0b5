// Guidance: features weighted per position by a guidance channel (Gatys et al. 2017), dst[c, q]
// (+)= src[c, q] · m[q] for every channel c of a chunk. The same op serves the guided Gram's
// forward (F ∘ m) and its backward (∂/∂F = ∂/∂(F ∘ m) ∘ m).

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/guide.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> shape: Uniform;
@group(0) @binding(1) var<storage, read> src: array<f32>;   // C × plane
@group(0) @binding(2) var<storage, read> guide: array<f32>; // plane
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn guide_apply(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= shape.n) {
        return;
    }
    let v = src[i] * guide[i % shape.plane];
    if (shape.accumulate != 0u) {
        dst[i] += v;
    } else {
        dst[i] = v;
    }
}
