// The register-blocked GEMM core that conv2d.wgsl and gram.wgsl share (prepended to both:
// WGSL has no includes). Each workgroup computes a TM×TN tile of dst[m][n] = Σ_k A[m][k]·B[k][n],
// staging TK-deep slices of A and B in workgroup memory (the including shader gathers them:
// zeros past every edge, so any shape works); each invocation accumulates an RM×4 block (RM
// rows × one vec4 of columns) in registers, and only the final stores are masked.
//
// Tile sizes, set from Rust (`ConvTiles`, `GramTiles`, which check these constraints):
//   RM ∈ {4, 8} (A is read as vec4s, the accumulators are MAX_RM long), TM % RM == 0,
//   TN % 4 == 0; WG = (TM / RM)·(TN / 4) ≤ the adapter's invocations per workgroup;
//   staging divides evenly: WG % TK == 0, TM·TK % WG == 0, WG % TN == 0, TK·TN % WG == 0
//   (so each invocation loads a fixed k column of A and a fixed column of B every step);
//   4·TK·(TM + TN) bytes of workgroup memory.
//
// The including shader declares `dst`, the read_write array the stores go to.

override TM: u32 = 64u; // rows per tile
override TN: u32 = 64u; // columns per tile
override TK: u32 = 16u; // K per staging step
override RM: u32 = 4u;  // rows per invocation (× 4 columns)
override WG: u32 = (TM / RM) * (TN / 4u);
const MAX_RM: u32 = 8u;

var<workgroup> a_tile: array<vec4<f32>, TK * TM / 4u>; // A[k][m]: 4 consecutive m per vec4
var<workgroup> b_tile: array<vec4<f32>, TK * TN / 4u>; // B[k][n]: 4 consecutive n per vec4

// Staging slot j of this invocation (j < rows·TK / WG) for rows staged along k, k fastest:
// (tile-relative k, row).
fn along_k(lid: u32, j: u32) -> vec2<u32> {
    return vec2<u32>(lid % TK, lid / TK + j * (WG / TK));
}

// Staging slot j (j < TK·TN / WG) for B staged along n, n fastest: (tile-relative k, n).
fn along_n(lid: u32, j: u32) -> vec2<u32> {
    return vec2<u32>(lid / TN + j * (WG / TN), lid % TN);
}

// Stages A[m][k] (tile-relative m, k).
fn stage_a(kl: u32, ml: u32, v: f32) {
    a_tile[kl * (TM / 4u) + ml / 4u][ml % 4u] = v;
}

// Stages B[k][n] (tile-relative k, n).
fn stage_b(kl: u32, nl: u32, v: f32) {
    b_tile[kl * (TN / 4u) + nl / 4u][nl % 4u] = v;
}

// acc += this invocation's RM×4 share of the staged a_tile·b_tile, summing over k in order.
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

// First row and column of this invocation's block within its tile.
fn block_origin(lid: u32) -> vec2<u32> {
    return vec2<u32>((lid / (TN / 4u)) * RM, (lid % (TN / 4u)) * 4u);
}

// Writes the in-range elements (row < rows, column < cols) of the block at (row, col):
// dst[offset + row·cols + col] = acc·scale + add[r], plus the old value when `accumulate`,
// then max(·, 0) when `relu`.
fn store_block(row: u32, col: u32, rows: u32, cols: u32, offset: u32,
               acc: array<vec4<f32>, MAX_RM>, scale: f32, add: array<f32, MAX_RM>,
               accumulate: bool, relu: bool) {
    for (var r = 0u; r < RM; r++) {
        let m = row + r;
        if (m >= rows) {
            break;
        }
        for (var c = 0u; c < 4u; c++) {
            let n = col + c;
            if (n >= cols) {
                break;
            }
            let idx = offset + m * cols + n;
            var v = acc[r][c] * scale + add[r];
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
