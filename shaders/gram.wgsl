// Gram matrix of a feature map F (C × N, N = H·W):  G = F·Fᵀ / N.
// Backward (a gather over dF's elements):            dF = (dG + dGᵀ)·F / N.

struct Shape {
    c: u32,
    n: u32,
    accumulate: u32, // backward: add into dF
    _pad: u32,
    inv_n: f32,
    _pad1: f32,
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> f: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // G, or dF
@group(0) @binding(3) var<storage, read> grad_g: array<f32>;     // backward only

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn gram_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    let c = shape.c;
    if (idx >= c * c) {
        return;
    }
    let i = idx / c;
    let j = idx % c;
    var acc = 0.0;
    for (var k = 0u; k < shape.n; k++) {
        acc += f[i * shape.n + k] * f[j * shape.n + k];
    }
    dst[idx] = acc * shape.inv_n;
}

@compute @workgroup_size(WG)
fn gram_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    let c = shape.c;
    if (idx >= c * shape.n) {
        return;
    }
    let i = idx / shape.n;
    let k = idx % shape.n;
    var acc = 0.0;
    for (var j = 0u; j < c; j++) {
        acc += (grad_g[i * c + j] + grad_g[j * c + i]) * f[j * shape.n + k];
    }
    let g = acc * shape.inv_n;
    if (shape.accumulate != 0u) {
        dst[idx] += g;
    } else {
        dst[idx] = g;
    }
}
