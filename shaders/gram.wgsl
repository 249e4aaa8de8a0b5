// Gram matrix of a feature map F (C × N, N = H·W):  G = F·Fᵀ / N,
// and its backward:                                  dF = (dG + dGᵀ)·F / N.
//
// A feature map too large for one binding comes in chunks of whole channels. One launch
// handles one pair of chunks (a, b): forward, the block G[a rows, b columns] = Fa·Fbᵀ / N;
// backward, the contribution of chunk b to dFa, added to what other chunks wrote. Unchunked,
// a and b are the whole map (bound twice).
//
// Both are tiled GEMMs in the style of conv2d.wgsl: each workgroup computes a TM×TN tile,
// staging TK-deep slices of both operands in workgroup memory (zeros past every edge, so any
// shape works; only the stores are masked), and each invocation accumulates an RM×4 block in
// registers.
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

struct Shape {
    c: u32,       // channels of the whole map (G's row stride)
    n: u32,       // H·W
    ca: u32,      // channels in chunk a (rows of the G block, or of dFa)
    cb: u32,      // channels in chunk b
    a_off: u32,   // first channel of chunk a
    b_off: u32,   // first channel of chunk b
    flags: u32,   // FLAG_ACCUMULATE (backward) | FLAG_SYMMETRIC (forward)
    splits: u32,  // forward: K-slices
    k_slice: u32, // forward: K per slice, a multiple of TK (the last slice may be shorter)
    tiles: u32,   // forward: tiles per slice (upper-triangle ones only when symmetric)
    inv_n: f32,
    _pad: u32,
}

const FLAG_ACCUMULATE: u32 = 1u; // backward: dFa += result
const FLAG_SYMMETRIC: u32 = 2u;  // forward: a = b, so the block is symmetric

@group(0) @binding(0) var<uniform> shape: Shape;
@group(0) @binding(1) var<storage, read> fa: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>; // partials, G, or dFa
@group(0) @binding(3) var<storage, read> grad_g: array<f32>;    // backward only
@group(0) @binding(4) var<storage, read> fb: array<f32>;
@group(0) @binding(5) var<storage, read> partials: array<f32>;  // finish only

// Tile sizes, set from Rust (`GramTiles`, which checks the same constraints as `ConvTiles`):
//   RM ∈ {4, 8}, TM % RM == 0, TN % 4 == 0; WG = (TM / RM)·(TN / 4) ≤ the invocation limit;
//   WG % TK == 0, TM·TK % WG == 0, WG % TN == 0, TK·TN % WG == 0; 4·TK·(TM + TN) bytes of
//   workgroup memory.
override TM: u32 = 64u;
override TN: u32 = 64u;
override TK: u32 = 16u;
override RM: u32 = 4u;
override WG: u32 = (TM / RM) * (TN / 4u);
const MAX_RM: u32 = 8u;
const FINISH_WG: u32 = 256u; // nst_kernels::WORKGROUP_SIZE

var<workgroup> a_tile: array<vec4<f32>, TK * TM / 4u>; // A[k][m]: 4 consecutive m per vec4
var<workgroup> b_tile: array<vec4<f32>, TK * TN / 4u>; // B[k][n]: 4 consecutive n per vec4

// acc += this invocation's RM×4 share of the staged a_tile·b_tile.
fn multiply(lid: u32, acc: ptr<function, array<vec4<f32>, MAX_RM>>) {
    let tm = lid / (TN / 4u);
    let tn = lid % (TN / 4u);
    for (var kk = 0u; kk < TK; kk++) {
        let b = b_tile[kk * (TN / 4u) + tn];
        for (var q = 0u; q < RM / 4u; q++) {
            let a = a_tile[kk * (TM / 4u) + tm * (RM / 4u) + q];
            (*acc)[4u * q] += a.x * b;
            (*acc)[4u * q + 1u] += a.y * b;
            (*acc)[4u * q + 2u] += a.z * b;
            (*acc)[4u * q + 3u] += a.w * b;
        }
    }
}

// First row and column of this invocation's block in its tile.
fn block_offset(lid: u32) -> vec2<u32> {
    return vec2<u32>((lid / (TN / 4u)) * RM, (lid % (TN / 4u)) * 4u);
}

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
    // Staging: both operands along k, contiguous in F's rows.
    let s_k = lid % TK;
    let s_r = lid / TK;

    var acc: array<vec4<f32>, MAX_RM>;
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        let k = k0 + s_k;
        for (var j = 0u; j < TM * TK / WG; j++) {
            let ml = s_r + j * (WG / TK);
            let m = m0 + ml;
            var v = 0.0;
            if (m < shape.ca && k < k_end) {
                v = fa[m * shape.n + k];
            }
            a_tile[s_k * (TM / 4u) + ml / 4u][ml % 4u] = v;
        }
        for (var j = 0u; j < TN * TK / WG; j++) {
            let pl = s_r + j * (WG / TK);
            let p = p0 + pl;
            var v = 0.0;
            if (p < shape.cb && k < k_end) {
                v = fb[p * shape.n + k];
            }
            b_tile[s_k * (TN / 4u) + pl / 4u][pl % 4u] = v;
        }
        workgroupBarrier();
        multiply(lid, &acc);
        workgroupBarrier();
    }

    let at = vec2<u32>(m0, p0) + block_offset(lid);
    let base = split * shape.ca * shape.cb;
    for (var r = 0u; r < RM; r++) {
        let m = at.x + r;
        if (m >= shape.ca) {
            break;
        }
        for (var q = 0u; q < 4u; q++) {
            let p = at.y + q;
            if (p >= shape.cb) {
                break;
            }
            dst[base + m * shape.cb + p] = acc[r][q];
        }
    }
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
    let c = shape.c;
    // Staging: A along k (a row of dG), B along pixels.
    let a_k = lid % TK;
    let a_m = lid / TK;
    let b_n = lid % TN;
    let b_k = lid / TN;

    var acc: array<vec4<f32>, MAX_RM>;
    for (var k0 = 0u; k0 < shape.cb; k0 += TK) {
        for (var j = 0u; j < TM * TK / WG; j++) {
            let ml = a_m + j * (WG / TK);
            let m = m0 + ml;
            let k = k0 + a_k;
            var v = 0.0;
            if (m < shape.ca && k < shape.cb) {
                let gi = shape.a_off + m;
                let gj = shape.b_off + k;
                v = grad_g[gi * c + gj] + grad_g[gj * c + gi];
            }
            a_tile[a_k * (TM / 4u) + ml / 4u][ml % 4u] = v;
        }
        for (var j = 0u; j < TK * TN / WG; j++) {
            let kl = b_k + j * (WG / TN);
            let k = k0 + kl;
            let p = n0 + b_n;
            var v = 0.0;
            if (p < shape.n && k < shape.cb) {
                v = fb[k * shape.n + p];
            }
            b_tile[kl * (TN / 4u) + b_n / 4u][b_n % 4u] = v;
        }
        workgroupBarrier();
        multiply(lid, &acc);
        workgroupBarrier();
    }

    let at = vec2<u32>(m0, n0) + block_offset(lid);
    let accumulate = (shape.flags & FLAG_ACCUMULATE) != 0u;
    for (var r = 0u; r < RM; r++) {
        let m = at.x + r;
        if (m >= shape.ca) {
            break;
        }
        for (var q = 0u; q < 4u; q++) {
            let p = at.y + q;
            if (p >= shape.n) {
                break;
            }
            let idx = m * shape.n + p;
            var v = acc[r][q] * shape.inv_n;
            if (accumulate) {
                v += dst[idx];
            }
            dst[idx] = v;
        }
    }
}
