// Gram matrix of a feature map F (C × N, N = H·W):  G = F·Fᵀ / N,
// and its backward:                                  dF = (dG + dGᵀ)·F / N.
//
// A feature map too large for one binding comes in chunks of whole channels. One launch
// handles one pair of chunks (a, b): forward, the block G[a rows, b columns] = Fa·Fbᵀ / N;
// backward, the contribution of chunk b to dFa, added to what other chunks wrote. Unchunked,
// a and b are the whole map (bound twice).
//
// Both are tiled GEMMs on gemm.wgsl's core (prepended to this file), as conv2d.wgsl is: here
// are the gathers that stage both operands (zeros past every edge, so any shape works).
//
// Forward: a ca × cb block over K = H·W, which is huge (2¹⁸ at relu1_1 for a 512² image) while
// the channels are few (64 there: a single tile), so K is split across workgroups (split-K).
// `gram_forward` writes each split's tile of partial sums to `dst` = partials[split][ca][cb];
// `gram_forward_finish` adds the splits in order (deterministic), scales by 1/N and writes the
// block into G. When a = b (FLAG_SYMMETRIC) the block is symmetric: only tiles reaching on or
// above the diagonal are launched, and the finish reads (i, j) below it from (j, i).
//
// Backward: a ca × H·W block over K = cb, with A[i][j] = dG[a_i, b_j] + dG[b_j, a_i] gathered
// while staging. K is small (the channels): no split.
//
// Launch (see gram.rs): the forward's tiles × splits and the backward's pixel tiles run along
// x, folded into y past the per-dimension limit (whole workgroups past the end return before
// any barrier); the backward's channel tiles along z.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/gram.rs), and
// prepended to the compiled source.

const FLAG_ACCUMULATE: u32 = 1u; // backward: dFa += result
const FLAG_SYMMETRIC: u32 = 2u;  // forward: a = b, so the block is symmetric

@group(0) @binding(0) var<uniform> shape: Uniform;
@group(0) @binding(1) var<storage, read> fa: array<f32>;        // forward only
@group(0) @binding(2) var<storage, read> fb: array<f32>;
@group(0) @binding(3) var<storage, read> grad_g: array<f32>;    // backward only
@group(0) @binding(4) var<storage, read> partials: array<f32>;  // finish only
@group(0) @binding(5) var<storage, read_write> dst: array<f32>; // partials, G, or dFa

const FINISH_WG: u32 = 256u; // nst_kernels::WORKGROUP_SIZE

// (row, column) of tile `t` of a slice: row-major, or when symmetric row by row over the tiles
// whose first row is at most their last column (tile row r starts at column tile r·TM / TN).
fn tile_of(t: u32) -> vec2<u32> {
    let cols = (shape.cb + TN - 1u) / TN;
    if ((shape.flags & FLAG_SYMMETRIC) == 0u) {
        return vec2<u32>(t / cols, t % cols);
    }
    var r = 0u;
    var rest = t;
    loop {
        let len = cols - r * TM / TN;
        if (rest < len) {
            break;
        }
        rest -= len;
        r++;
    }
    return vec2<u32>(r, r * TM / TN + rest);
}

// The gathers, zero past every edge. Forward: F[m][k] of chunk a and F[p][k] of chunk b, k
// below the slice's end.
fn fa_at(m: u32, k: u32, k_end: u32) -> f32 {
    if (m >= shape.ca || k >= k_end) { return 0.0; }
    return fa[m * shape.n + k];
}

fn fb_at(p: u32, k: u32, k_end: u32) -> f32 {
    if (p >= shape.cb || k >= k_end) { return 0.0; }
    return fb[p * shape.n + k];
}

// Backward: A[m][k] = dG[a_m, b_k] + dG[b_k, a_m], and B[k][p] = Fb[k][p].
fn grad_g_sym(m: u32, k: u32) -> f32 {
    if (m >= shape.ca || k >= shape.cb) { return 0.0; }
    let gi = shape.a_off + m;
    let gj = shape.b_off + k;
    return grad_g[gi * shape.c + gj] + grad_g[gj * shape.c + gi];
}

fn fb_column(k: u32, p: u32) -> f32 {
    if (p >= shape.n || k >= shape.cb) { return 0.0; }
    return fb[k * shape.n + p];
}

@compute @workgroup_size(WG)
fn gram_forward(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let w = wid.x + wid.y * nwg.x;
    if (w >= shape.tiles * shape.splits) {
        return; // uniform across the workgroup
    }
    let split = w / shape.tiles;
    let tile = tile_of(w % shape.tiles);
    let m0 = tile.x * TM;
    let p0 = tile.y * TN;
    let k_begin = split * shape.k_slice;
    let k_end = min(k_begin + shape.k_slice, shape.n);
    var acc: array<vec4<f32>, MAX_RM>;
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        // Both operands are rows of F along k: TM rows of chunk a, then TN of chunk b (each
        // j stages rows of one of them: TM is a multiple of WG / TK).
        for (var j = 0u; j < (TM + TN) * TK / WG; j++) {
            let s = along_k(lid, j);
            if (s.y < TM) {
                stage_a(s.x, s.y, fa_at(m0 + s.y, k0 + s.x, k_end));
            } else {
                stage_b(s.x, s.y - TM, fb_at(p0 + s.y - TM, k0 + s.x, k_end));
            }
        }
        workgroupBarrier();
        multiply(lid, &acc);
        workgroupBarrier();
    }

    let at = vec2<u32>(m0, p0) + block_origin(lid);
    var zero: array<f32, MAX_RM>;
    store_block(at.x, at.y, shape.ca, shape.cb, split * shape.ca * shape.cb, acc, 1.0, zero,
                false, false);
}

// One invocation per entry of the block.
@compute @workgroup_size(FINISH_WG)
fn gram_forward_finish(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * FINISH_WG;
    let block = shape.ca * shape.cb;
    if (idx >= block) {
        return;
    }
    let i = idx / shape.cb;
    let j = idx % shape.cb;
    var src = idx;
    if ((shape.flags & FLAG_SYMMETRIC) != 0u && i > j) {
        src = j * shape.cb + i; // ca = cb; only tiles reaching the upper triangle were written
    }
    var acc = 0.0;
    for (var s = 0u; s < shape.splits; s++) {
        acc += partials[s * block + src];
    }
    dst[(shape.a_off + i) * shape.c + shape.b_off + j] = acc * shape.inv_n;
}

@compute @workgroup_size(WG)
fn gram_backward(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let n0 = (wid.x + wid.y * nwg.x) * TN;
    if (n0 >= shape.n) {
        return; // uniform across the workgroup
    }
    let m0 = wid.z * TM;
    var acc: array<vec4<f32>, MAX_RM>;
    for (var k0 = 0u; k0 < shape.cb; k0 += TK) {
        for (var j = 0u; j < TM * TK / WG; j++) {
            let s = along_k(lid, j);
            stage_a(s.x, s.y, grad_g_sym(m0 + s.y, k0 + s.x));
        }
        for (var j = 0u; j < TK * TN / WG; j++) {
            let s = along_n(lid, j);
            stage_b(s.x, s.y, fb_column(k0 + s.x, n0 + s.y));
        }
        workgroupBarrier();
        multiply(lid, &acc);
        workgroupBarrier();
    }

    let at = vec2<u32>(m0, n0) + block_origin(lid);
    var zero: array<f32, MAX_RM>;
    store_block(at.x, at.y, shape.ca, shape.n, 0u, acc, shape.inv_n, zero,
                (shape.flags & FLAG_ACCUMULATE) != 0u, false);
}
