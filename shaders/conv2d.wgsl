// 3×3 convolution: the tiled implicit GEMM and the direct kernel. Prepended: gemm.wgsl and
// conv2d_common.wgsl (the shape, bindings, weight indexing and the direct kernels' store).

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
    store(at.x, at.y, acc, bias_base(at.x, RM), (shape.flags & FLAG_RELU) != 0u);
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

// ---- The direct variant: no workgroup memory and no barriers (`ConvKernel::Direct`).
//
// Software adapters (Mesa's lavapipe) run a workgroup's invocations as SIMD lanes of one CPU
// thread, where every barrier is a coroutine switch and workgroup memory is no faster than
// storage: this variant reads both operands straight from the storage buffers (the CPU's
// caches do the staging) and keeps DM destination channels × 4 pixels of one row in
// registers. Each (source channel, kernel row) loads the 6 source pixels the 3 taps of the 4
// pixels need, once, and DM·3 weights, for DM·12 multiply-adds. The invocations of a
// workgroup lie along the pixels and share their channels, so the weight reads are the same
// across a workgroup's lanes. Per output the sum runs over (i, ky, kx) in order.
//
// Launch: pixel blocks (4 pixels of a row: h·⌈w / 4⌉ of them) DWG per workgroup along x,
// folded into y past the per-dimension limit; destination-channel blocks of DM along z.

// This invocation's DM × 4 block at destination channel m0, pixels (x0..x0+3, y).
fn direct_gemm(y: u32, x0: u32, m0: u32, flip: bool) -> array<vec4<f32>, MAX_RM> {
    var acc: array<vec4<f32>, MAX_RM>;
    for (var i = 0u; i < shape.c_src; i++) {
        for (var ky = 0u; ky < 3u; ky++) {
            let p = source_row(i, y, ky, x0);
            let v0 = vec4<f32>(p[0], p[1], p[2], p[3]);
            let v1 = vec4<f32>(p[1], p[2], p[3], p[4]);
            let v2 = vec4<f32>(p[2], p[3], p[4], p[5]);
            let k = i * 9u + ky * 3u;
            for (var r = 0u; r < DM; r++) {
                let m = min(m0 + r, shape.c_dst - 1u); // rows past the chunk are not stored
                let w0 = weight[weight_index(m, k, flip)];
                let w1 = weight[weight_index(m, k + 1u, flip)];
                let w2 = weight[weight_index(m, k + 2u, flip)];
                acc[r] += w0 * v0 + w1 * v1 + w2 * v2;
            }
        }
    }
    return acc;
}

// The pixel block (its row and first column) of this invocation, or none past the end.
fn direct_block(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> vec3<u32> {
    let bpr = (shape.w + 3u) / 4u;
    let block = (wid.x + wid.y * nwg.x) * DWG + lid;
    return vec3<u32>(block / bpr, (block % bpr) * 4u, u32(block < shape.h * bpr));
}

@compute @workgroup_size(DWG)
fn conv2d_forward_direct(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let b = direct_block(wid, nwg, lid);
    if (b.z == 0u) {
        return;
    }
    let m0 = wid.z * DM;
    let acc = direct_gemm(b.x, b.y, m0, false);
    direct_store(b.x, b.y, m0, acc, bias_base(m0, DM), (shape.flags & FLAG_RELU) != 0u);
}

// Must not touch `bias`, as conv2d_backward_input.
@compute @workgroup_size(DWG)
fn conv2d_backward_input_direct(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    let b = direct_block(wid, nwg, lid);
    if (b.z == 0u) {
        return;
    }
    let m0 = wid.z * DM;
    var zero: array<f32, MAX_RM>;
    direct_store(b.x, b.y, m0, direct_gemm(b.x, b.y, m0, true), zero, false);
}
