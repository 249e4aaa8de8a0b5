// Gram matrix of a feature map F (C × N, N = H·W):  G = F·Fᵀ / N.
// Backward (a gather over dF's elements):            dF = (dG + dGᵀ)·F / N.
//
// A feature map too large for one binding comes in chunks of whole channels. One dispatch
// handles one pair of chunks (a, b): forward, the block G[a rows, b columns] = Fa·Fbᵀ / N;
// backward, the contribution of chunk b to dFa, added to what other chunks wrote. Unchunked,
// a and b are the whole map (bound twice).

struct Shape {
    c: u32,          // channels of the whole map (G's row stride)
    n: u32,          // H·W
    ca: u32,         // channels in chunk a (rows written, or dF rows)
    cb: u32,         // channels in chunk b
    a_off: u32,      // first channel of chunk a
    b_off: u32,      // first channel of chunk b
    accumulate: u32, // backward: add into dF
    _pad: u32,
    inv_n: f32,
    _pad1: f32,
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> fa: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // G, or dFa
@group(0) @binding(3) var<storage, read> grad_g: array<f32>;     // backward only
@group(0) @binding(4) var<storage, read> fb: array<f32>;

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn gram_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= shape.ca * shape.cb) {
        return;
    }
    let i = idx / shape.cb;
    let j = idx % shape.cb;
    var acc = 0.0;
    for (var k = 0u; k < shape.n; k++) {
        acc += fa[i * shape.n + k] * fb[j * shape.n + k];
    }
    dst[(shape.a_off + i) * shape.c + shape.b_off + j] = acc * shape.inv_n;
}

@compute @workgroup_size(WG)
fn gram_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= shape.ca * shape.n) {
        return;
    }
    let i = idx / shape.n;
    let k = idx % shape.n;
    let c = shape.c;
    let gi = shape.a_off + i;
    var acc = 0.0;
    for (var j = 0u; j < shape.cb; j++) {
        let gj = shape.b_off + j;
        acc += (grad_g[gi * c + gj] + grad_g[gj * c + gi]) * fb[j * shape.n + k];
    }
    let g = acc * shape.inv_n;
    if (shape.accumulate != 0u) {
        dst[idx] += g;
    } else {
        dst[idx] = g;
    }
}
