// 2×2 pooling, stride 2; odd sizes floor (the last row/column is dropped), as in PyTorch.
//
// Max pooling records, per output, which of the four inputs (dy*2+dx) was the first maximum in
// scan order (0,0),(0,1),(1,0),(1,1); its backward sends each output's gradient to that input
// only. Both backward passes are gathers: one invocation per input element.

struct Shape {
    c: u32,
    h: u32,   // input height
    w: u32,   // input width
    accumulate: u32, // backward: add into gx
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> src: array<f32>;       // x (forward) or gy (backward)
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>; // max pool only

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

fn out_h() -> u32 { return shape.h / 2u; }
fn out_w() -> u32 { return shape.w / 2u; }

// Input index of the top-left element of output `idx`'s window.
fn window_base(idx: u32) -> u32 {
    let ho = out_h();
    let wo = out_w();
    let c = idx / (ho * wo);
    let oy = (idx / wo) % ho;
    let ox = idx % wo;
    return c * shape.h * shape.w + 2u * oy * shape.w + 2u * ox;
}

// For input element `idx`: the output whose window holds it (x) and its place in that window,
// dy·2+dx (y); x = 0xffffffff in a dropped last row or column.
fn window_of(idx: u32) -> vec2<u32> {
    let plane = shape.h * shape.w;
    let c = idx / plane;
    let y = (idx % plane) / shape.w;
    let x = idx % shape.w;
    let ho = out_h();
    let wo = out_w();
    if (y / 2u >= ho || x / 2u >= wo) {
        return vec2<u32>(0xffffffffu, 0u);
    }
    return vec2<u32>(c * ho * wo + (y / 2u) * wo + x / 2u, (y % 2u) * 2u + (x % 2u));
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
    let idx = linear(gid, nwg);
    if (idx >= shape.c * out_h() * out_w()) {
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
    argmax[idx] = arg;
}

@compute @workgroup_size(WG)
fn max_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= shape.c * shape.h * shape.w) {
        return;
    }
    let win = window_of(idx);
    var g = 0.0;
    if (win.x != 0xffffffffu && argmax[win.x] == win.y) {
        g = src[win.x];
    }
    store_gradient(idx, g);
}

@compute @workgroup_size(WG)
fn avg_pool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= shape.c * out_h() * out_w()) {
        return;
    }
    let base = window_base(idx);
    dst[idx] = 0.25 * (src[base] + src[base + 1u] + src[base + shape.w] + src[base + shape.w + 1u]);
}

@compute @workgroup_size(WG)
fn avg_pool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= shape.c * shape.h * shape.w) {
        return;
    }
    let win = window_of(idx);
    var g = 0.0;
    if (win.x != 0xffffffffu) {
        g = 0.25 * src[win.x];
    }
    store_gradient(idx, g);
}
