// The shape, bindings and weight indexing of the 3×3 convolution, shared by conv2d.wgsl and
// conv2d_subgroup.wgsl (prepended to both, after gemm.wgsl).
//
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
// The tiled kernel's tiling, register blocks and masked stores are gemm.wgsl's; conv2d.wgsl
// has the gathers that stage A and B. Out-of-range m, n and k stage zeros, so any shape
// works. Per output the sum runs over k in order, as the naive loop did.
//
// Launch (see conv2d.rs): pixel tiles along x, folded into y past the per-dimension limit
// (tile = wid.x + wid.y·nwg.x; whole workgroups past the end return before any barrier),
// channel tiles along z.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/conv2d.rs), and
// prepended to the compiled source.

const FLAG_ACCUMULATE: u32 = 1u; // dst += result (else forward: dst = bias + result; backward: dst = result)
const FLAG_RELU: u32 = 2u;       // forward only: dst = max(dst, 0) after adding

@group(0) @binding(0) var<uniform> shape: Uniform;
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

// ---- Shared by the direct kernels (conv2d.wgsl's `*_direct`, conv2d_subgroup.wgsl): each
// invocation computes DM destination channels × 4 pixels of one row.

// What the forward adds to the `rows` destination channels from m0: their bias, or nothing
// when adding to earlier chunk pairs. Rows past the chunk are not stored; clamped to stay
// inside `bias`. Only forward entry points may call it (the backward binds no bias).
fn bias_base(m0: u32, rows: u32) -> array<f32, MAX_RM> {
    var base: array<f32, MAX_RM>;
    if ((shape.flags & FLAG_ACCUMULATE) == 0u) {
        for (var r = 0u; r < rows; r++) {
            base[r] = bias[shape.dst_off + min(m0 + r, shape.c_dst - 1u)];
        }
    }
    return base;
}

// Source channel i's row y + ky − 1 at columns x0 − 1 … x0 + 4, zero outside the image: the
// six pixels a block of 4 output pixels reads through one kernel row.
fn source_row(i: u32, y: u32, ky: u32, x0: u32) -> array<f32, 6> {
    var p: array<f32, 6>;
    let sy = i32(y + ky) - 1;
    if (sy >= 0 && sy < i32(shape.h)) {
        let row = (i * shape.h + u32(sy)) * shape.w;
        for (var j = 0u; j < 6u; j++) {
            let sx = i32(x0 + j) - 1;
            if (sx >= 0 && sx < i32(shape.w)) {
                p[j] = src[row + u32(sx)];
            }
        }
    }
    return p;
}

override DM: u32 = 8u;  // destination channels per invocation, ≤ MAX_RM
override DWG: u32 = 64u; // invocations per workgroup

// Stores the block: dst = acc + base[r] (+ dst when accumulating), then max(·, 0) when relu.
fn direct_store(y: u32, x0: u32, m0: u32, acc: array<vec4<f32>, MAX_RM>,
                base: array<f32, MAX_RM>, relu: bool) {
    let accumulate = (shape.flags & FLAG_ACCUMULATE) != 0u;
    let hw = shape.h * shape.w;
    for (var r = 0u; r < DM; r++) {
        let m = m0 + r;
        if (m >= shape.c_dst) {
            break;
        }
        for (var c = 0u; c < 4u; c++) {
            if (x0 + c >= shape.w) {
                break;
            }
            let idx = m * hw + y * shape.w + x0 + c;
            var v = acc[r][c] + base[r];
            if (accumulate) {
                v += dst[idx];
            }
            if (relu) {
                v = max(v, 0.0);
            }
            dst[idx] = v;
        }
    }
}

