// 3×3 convolution, stride 1, zero padding 1, with bias and optional fused ReLU.
//
// Tensors are C×H×W, f32. `conv2d_forward` computes
//   y[o, p] = bias[o] + Σ_i Σ_{ky,kx} w[o, i, ky, kx] · x[i, p + (ky-1, kx-1)]
// and `conv2d_backward_input` computes the gradient with respect to x as the same
// gather with the kernel flipped and the channels swapped:
//   gx[i, p] = Σ_o Σ_{ky,kx} w[o, i, 2-ky, 2-kx] · gy[o, p + (ky-1, kx-1)].
// Only input gradients exist: the network is fixed, only the image is optimized.

struct Shape {
    c_in: u32,   // channels read (x for forward, gy for backward)
    c_out: u32,  // channels written
    h: u32,
    w: u32,
    relu: u32,   // forward only: apply max(0, ·) after the bias
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;   // (C_out_fwd, C_in_fwd, 3, 3)
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Σ over input channels and taps for output element (o, y, x); `flip` selects the backward
// weight indexing.
fn accumulate(o: u32, y: u32, x: u32, flip: bool) -> f32 {
    let h = shape.h;
    let w = shape.w;
    let plane = h * w;
    var acc = 0.0;
    for (var i = 0u; i < shape.c_in; i++) {
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
                var wi: u32;
                if (flip) {
                    // forward weight (o_fwd = i, i_fwd = o), taps rotated 180°
                    wi = ((i * shape.c_out + o) * 3u + (2u - ky)) * 3u + (2u - kx);
                } else {
                    wi = ((o * shape.c_in + i) * 3u + ky) * 3u + kx;
                }
                acc += weight[wi] * src[i * plane + u32(sy) * w + u32(sx)];
            }
        }
    }
    return acc;
}

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = shape.c_out * shape.h * shape.w;
    let idx = linear(gid, nwg);
    if (idx >= n) {
        return;
    }
    let plane = shape.h * shape.w;
    let o = idx / plane;
    let p = idx % plane;
    var v = bias[o] + accumulate(o, p / shape.w, p % shape.w, false);
    if (shape.relu != 0u) {
        v = max(v, 0.0);
    }
    dst[idx] = v;
}

@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = shape.c_out * shape.h * shape.w;
    let idx = linear(gid, nwg);
    if (idx >= n) {
        return;
    }
    let plane = shape.h * shape.w;
    let o = idx / plane;
    let p = idx % plane;
    dst[idx] = accumulate(o, p / shape.w, p % shape.w, true);
}
