// 2×2 pooling, stride 2; odd sizes floor (the last row/column is dropped), as in PyTorch.
//
// Max pooling records, per output, which of the four inputs (dy*2+dx) was the first maximum in
// scan order (0,0),(0,1),(1,0),(1,1); its backward sends each output's gradient to that input
// only. Both backward passes are gathers: one invocation per input element.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/pool.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> shape: Uniform;
@group(0) @binding(1) var<storage, read> src: array<f32>;            // x (forward) or gy (backward)
@group(0) @binding(2) var<storage, read> argmax_in: array<u32>;      // max backward
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;      // y (forward) or gx (backward)
@group(0) @binding(4) var<storage, read_write> argmax_out: array<u32>; // max forward

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn out_h() -> u32 { return shape.h / 2u; }
fn out_w() -> u32 { return shape.w / 2u; }

// The output this invocation computes (forward), or 0xffffffff past the end.
fn output_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    let idx = linear(gid, nwg);
    return select(0xffffffffu, idx, idx < shape.c * out_h() * out_w());
}

// Input index of the top-left element of output `idx`'s window.
fn window_base(idx: u32) -> u32 {
    let ho = out_h();
    let wo = out_w();
    let c = idx / (ho * wo);
    let oy = (idx / wo) % ho;
    let ox = idx % wo;
    return c * shape.h * shape.w + 2u * oy * shape.w + 2u * ox;
}

// The input element a backward invocation computes the gradient of (`idx`, 0xffffffff past
// the end), the output whose window holds it (`out`) and its place there, dy·2+dx (`place`).
// `inside` is false in a dropped last row or column, where `out` is 0 (a valid index whose
// value is not used).
struct Gather {
    idx: u32,
    out: u32,
    place: u32,
    inside: bool,
}

fn gather_target(gid: vec3<u32>, nwg: vec3<u32>) -> Gather {
    let idx = linear(gid, nwg);
    let plane = shape.h * shape.w;
    if (idx >= shape.c * plane) {
        return Gather(0xffffffffu, 0u, 0u, false);
    }
    let c = idx / plane;
    let y = (idx % plane) / shape.w;
    let x = idx % shape.w;
    let ho = out_h();
    let wo = out_w();
    if (y / 2u >= ho || x / 2u >= wo) {
        return Gather(idx, 0u, 0u, false);
    }
    return Gather(idx, c * ho * wo + (y / 2u) * wo + x / 2u, (y % 2u) * 2u + (x % 2u), true);
}

fn store_gradient(idx: u32, g: f32) {
    if (shape.accumulate != 0u) {
        dst[idx] += g;
    } else {
        dst[idx] = g;
    }
}

@compute @workgroup_size(WG)
fn max_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = output_index(gid, nwg);
    if (idx == 0xffffffffu) {
        return;
    }
    let base = window_base(idx);
    var best = src[base];
    var arg = 0u;
    for (var k = 1u; k < 4u; k++) {
        let v = src[base + (k / 2u) * shape.w + (k % 2u)];
        if (v > best) {
            best = v;
            arg = k;
        }
    }
    dst[idx] = best;
    argmax_out[idx] = arg;
}

@compute @workgroup_size(WG)
fn max_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gather_target(gid, nwg);
    if (t.idx != 0xffffffffu) {
        store_gradient(t.idx, select(0.0, src[t.out], t.inside && argmax_in[t.out] == t.place));
    }
}

@compute @workgroup_size(WG)
fn avg_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = output_index(gid, nwg);
    if (idx != 0xffffffffu) {
        let b = window_base(idx);
        dst[idx] = 0.25 * (src[b] + src[b + 1u] + src[b + shape.w] + src[b + shape.w + 1u]);
    }
}

@compute @workgroup_size(WG)
fn avg_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gather_target(gid, nwg);
    if (t.idx != 0xffffffffu) {
        store_gradient(t.idx, select(0.0, 0.25 * src[t.out], t.inside));
    }
}
