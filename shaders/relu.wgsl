// ReLU: y = max(x, 0); backward gx (+)= gy where y > 0, else 0 (PyTorch's convention at 0).

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/relu.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> shape: Uniform;
@group(0) @binding(1) var<storage, read> src: array<f32>;      // x (forward) or y (backward)
@group(0) @binding(2) var<storage, read> grad_out: array<f32>; // backward only
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= shape.n) {
        return;
    }
    dst[i] = max(src[i], 0.0);
}

@compute @workgroup_size(WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= shape.n) {
        return;
    }
    let g = select(0.0, grad_out[i], src[i] > 0.0);
    if (shape.accumulate != 0u) {
        dst[i] += g;
    } else {
        dst[i] = g;
    }
}
