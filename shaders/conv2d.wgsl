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
//
// Both are one implicit GEMM, dst[m][n] = Σ_k A[m][k]·B[k][n], with no im2col buffer:
//   M = c_dst, N = H·W, K = 9·c_src, k = i·9 + tap (tap = ky·3 + kx);
//   B[k][n] = src[i, n + (ky-1, kx-1)], or 0 in the padding: gathered while staging;
//   A[m][k] = w[dst_off+m, src_off+i, tap] forward,
//             w[src_off+i, dst_off+m, 8-tap] backward (`flip`).
// The tiling, register blocks and masked stores are gemm.wgsl's (prepended to this file);
// here are the gathers that stage A and B. Out-of-range m, n and k stage zeros, so any shape
// works. Per output the sum runs over k in order, as the naive loop did.
//
// Launch (see conv2d.rs): pixel tiles along x, folded into y past the per-dimension limit
// (tile = wid.x + wid.y·nwg.x; whole workgroups past the end return before any barrier),
// channel tiles along z.

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

// Index of A[m][k] in the forward weight.
fn weight_index(m: u32, k: u32, flip: bool) -> u32 {
    if (flip) {
        let i = k / 9u;
        return ((shape.src_off + i) * shape.w_cin + shape.dst_off + m) * 9u + 8u - k % 9u;
    }
    // The weight row of output channel m holds the chunk's (i, tap) pairs contiguously.
    return ((shape.dst_off + m) * shape.w_cin + shape.src_off) * 9u + k;
}

// This invocation's RM×4 block of the tile at (m0, n0): acc[r][c] = Σ_k A[m0+tm·RM+r][k]·
// B[k][n0+tn·4+c]. Every invocation of the workgroup must call it (it has barriers).
fn gemm(m0: u32, n0: u32, lid: u32, flip: bool) -> array<vec4<f32>, MAX_RM> {
    let hw = shape.h * shape.w;
    let k_total = 9u * shape.c_src;
    // Staging: A along k (contiguous in the forward weight), B along n (contiguous pixels).
    let a_k = lid % TK;
    let a_m = lid / TK;
    let b_n = lid % TN;
    let b_k = lid / TN;
    let n = n0 + b_n;
    let y = i32(n / shape.w);
    let x = i32(n % shape.w);

    var acc: array<vec4<f32>, MAX_RM>;
    for (var k0 = 0u; k0 < k_total; k0 += TK) {
        for (var j = 0u; j < TM * TK / WG; j++) {
            let ml = a_m + j * (WG / TK);
            let m = m0 + ml;
            let k = k0 + a_k;
            var v = 0.0;
            if (m < shape.c_dst && k < k_total) {
                v = weight[weight_index(m, k, flip)];
            }
            stage_a(a_k, ml, v);
        }
        for (var j = 0u; j < TK * TN / WG; j++) {
            let kl = b_k + j * (WG / TN);
            let k = k0 + kl;
            var v = 0.0;
            if (n < hw && k < k_total) {
                let tap = k % 9u;
                let sy = y + i32(tap / 3u) - 1;
                let sx = x + i32(tap % 3u) - 1;
                if (sy >= 0 && sy < i32(shape.h) && sx >= 0 && sx < i32(shape.w)) {
                    v = src[(k / 9u) * hw + u32(sy) * shape.w + u32(sx)];
                }
            }
            stage_b(kl, b_n, v);
        }
        workgroupBarrier();
        multiply(lid, &acc);
        workgroupBarrier();
    }
    return acc;
}

// First pixel of this workgroup's tile (≥ H·W past the end of a folded grid).
fn tile_n0(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * TN;
}

// Stores the block of dst at (row, col) (channels × pixels of the destination chunk).
fn store(row: u32, col: u32, acc: array<vec4<f32>, MAX_RM>, base: array<f32, MAX_RM>,
         relu: bool) {
    let accumulate = (shape.flags & FLAG_ACCUMULATE) != 0u;
    store_block(row, col, shape.c_dst, shape.h * shape.w, 0u, acc, 1.0, base, accumulate, relu);
}

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let n0 = tile_n0(wid, nwg);
    if (n0 >= shape.h * shape.w) {
        return; // uniform across the workgroup
    }
    let acc = gemm(wid.z * TM, n0, lid, false);
    let at = vec2<u32>(wid.z * TM, n0) + block_origin(lid);
    var base: array<f32, MAX_RM>; // the bias, unless adding to earlier parts
    if ((shape.flags & FLAG_ACCUMULATE) == 0u) {
        for (var r = 0u; r < RM; r++) {
            // Rows past the chunk are not stored; clamp them to stay inside `bias`.
            base[r] = bias[shape.dst_off + min(at.x + r, shape.c_dst - 1u)];
        }
    }
    store(at.x, at.y, acc, base, (shape.flags & FLAG_RELU) != 0u);
}

// Must not touch `bias`: its binding is left out of this entry point's layout.
@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let n0 = tile_n0(wid, nwg);
    if (n0 >= shape.h * shape.w) {
        return;
    }
    let acc = gemm(wid.z * TM, n0, lid, true);
    let at = vec2<u32>(wid.z * TM, n0) + block_origin(lid);
    var zero: array<f32, MAX_RM>;
    store(at.x, at.y, acc, zero, false);
}
