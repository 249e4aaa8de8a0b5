// 3×3 convolution, stride 1, zero padding 1, with bias and optional fused ReLU.
//
// Tensors are C×H×W, f32. `conv2d_forward` computes
//   y[o, p] = bias[o] + Σ_i Σ_{ky,kx} w[o, i, ky, kx] · x[i, p + (ky-1, kx-1)]
// and `conv2d_backward_input` computes the gradient with respect to x as the same
// gather with the kernel flipped and the channels swapped:
//   gx[i, p] = Σ_o Σ_{ky,kx} w[o, i, 2-ky, 2-kx] · gy[o, p + (ky-1, kx-1)].
// Only input gradients exist: the network is fixed, only the image is optimized.
//
// A tensor too large for one storage binding is split into chunks of whole channels. One
// dispatch handles one (source chunk, destination chunk) pair: `src_off`/`dst_off` place the
// chunks in the whole tensors (for the weight and bias indices), and the destination either
// starts from the bias (forward) or zero (backward), or adds to what earlier pairs wrote.

struct Shape {
    c_src: u32,     // channels in the source chunk (x forward, gy backward)
    c_dst: u32,     // channels in the destination chunk
    h: u32,
    w: u32,
    src_off: u32,   // first channel of the source chunk in its tensor
    dst_off: u32,   // first channel of the destination chunk in its tensor
    w_cin: u32,     // input channels of the whole forward weight (its row stride)
    flags: u32,     // FLAG_ACCUMULATE | FLAG_RELU
}

const FLAG_ACCUMULATE: u32 = 1u; // dst += result (else forward: dst = bias + result; backward: dst = result)
const FLAG_RELU: u32 = 2u;       // forward only: dst = max(dst, 0) after adding

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;   // (C_out_fwd, C_in_fwd, 3, 3)
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Σ over the source chunk's channels and taps for destination element (o, y, x); `flip`
// selects the backward weight indexing.
fn accumulate(o: u32, y: u32, x: u32, flip: bool) -> f32 {
    let h = shape.h;
    let w = shape.w;
    let plane = h * w;
    var acc = 0.0;
    for (var i = 0u; i < shape.c_src; i++) {
        var wbase: u32;
        if (flip) {
            // forward weight (o_fwd = source channel, i_fwd = destination channel)
            wbase = ((shape.src_off + i) * shape.w_cin + shape.dst_off + o) * 9u;
        } else {
            wbase = ((shape.dst_off + o) * shape.w_cin + shape.src_off + i) * 9u;
        }
        for (var ky = 0u; ky < 3u; ky++) {
            let sy = i32(y) + i32(ky) - 1;
            if (sy < 0 || sy >= i32(h)) {
                continue;
            }
            for (var kx = 0u; kx < 3u; kx++) {
                let sx = i32(x) + i32(kx) - 1;
                if (sx < 0 || sx >= i32(w)) {
                    continue;
                }
                var tap = ky * 3u + kx;
                if (flip) {
                    tap = 8u - tap; // taps rotated 180°
                }
                acc += weight[wbase + tap] * src[i * plane + u32(sy) * w + u32(sx)];
            }
        }
    }
    return acc;
}

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = shape.c_dst * shape.h * shape.w;
    let idx = linear(gid, nwg);
    if (idx >= n) {
        return;
    }
    let plane = shape.h * shape.w;
    let o = idx / plane;
    let p = idx % plane;
    var v = accumulate(o, p / shape.w, p % shape.w, false);
    if ((shape.flags & FLAG_ACCUMULATE) != 0u) {
        v += dst[idx];
    } else {
        v += bias[shape.dst_off + o];
    }
    if ((shape.flags & FLAG_RELU) != 0u) {
        v = max(v, 0.0);
    }
    dst[idx] = v;
}

@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = shape.c_dst * shape.h * shape.w;
    let idx = linear(gid, nwg);
    if (idx >= n) {
        return;
    }
    let plane = shape.h * shape.w;
    let o = idx / plane;
    let p = idx % plane;
    var v = accumulate(o, p / shape.w, p % shape.w, true);
    if ((shape.flags & FLAG_ACCUMULATE) != 0u) {
        v += dst[idx];
    }
    dst[idx] = v;
}
