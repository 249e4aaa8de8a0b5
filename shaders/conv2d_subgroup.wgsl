// The direct convolution with weights shared through subgroup shuffles (`ConvKernel::Subgroup`).
// Prepended: gemm.wgsl (for MAX_RM) and conv2d_common.wgsl. Compiled only for adapters with
// subgroup operations (a module of its own, so that conv2d.wgsl needs none).
//
// In the direct variant every invocation of a subgroup reads the same DM·3 weights per
// (source channel, kernel row): on a software adapter each of those reads is one scalar load
// per lane. Here lane l reads only the 9 taps of destination channel m0 + l mod DM, and every
// lane takes the weights it needs from the lane that read them. Needs DM ≤ the subgroup size,
// and every lane active at the shuffles: invocations past the end compute a clamped block and
// skip the stores.

fn subgroup_gemm(y: u32, x0: u32, m0: u32, lane: u32, flip: bool) -> array<vec4<f32>, MAX_RM> {
    let mine = min(m0 + lane % DM, shape.c_dst - 1u);
    var acc: array<vec4<f32>, MAX_RM>;
    for (var i = 0u; i < shape.c_src; i++) {
        var wl: array<f32, 9>;
        for (var t = 0u; t < 9u; t++) {
            wl[t] = weight[weight_index(mine, i * 9u + t, flip)];
        }
        for (var ky = 0u; ky < 3u; ky++) {
            let p = source_row(i, y, ky, x0);
            let v0 = vec4<f32>(p[0], p[1], p[2], p[3]);
            let v1 = vec4<f32>(p[1], p[2], p[3], p[4]);
            let v2 = vec4<f32>(p[2], p[3], p[4], p[5]);
            for (var r = 0u; r < DM; r++) {
                let w0 = subgroupShuffle(wl[ky * 3u], r);
                let w1 = subgroupShuffle(wl[ky * 3u + 1u], r);
                let w2 = subgroupShuffle(wl[ky * 3u + 2u], r);
                acc[r] += w0 * v0 + w1 * v1 + w2 * v2;
            }
        }
    }
    return acc;
}

// This invocation's pixel block, clamped to the last one (with z = 0 past the end).
fn subgroup_block(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> vec3<u32> {
    let bpr = (shape.w + 3u) / 4u;
    let blocks = shape.h * bpr;
    let block = (wid.x + wid.y * nwg.x) * DWG + lid;
    let b = min(block, blocks - 1u);
    return vec3<u32>(b / bpr, (b % bpr) * 4u, u32(block < blocks));
}

@compute @workgroup_size(DWG)
fn conv2d_forward_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32,
                           @builtin(subgroup_invocation_id) lane: u32) {
    let b = subgroup_block(wid, nwg, lid);
    let m0 = wid.z * DM;
    let acc = subgroup_gemm(b.x, b.y, m0, lane, false);
    if (b.z == 0u) {
        return;
    }
    direct_store(b.x, b.y, m0, acc, bias_base(m0, DM), (shape.flags & FLAG_RELU) != 0u);
}

// Must not touch `bias`, as conv2d_backward_input.
@compute @workgroup_size(DWG)
fn conv2d_backward_input_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                                  @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32,
                                  @builtin(subgroup_invocation_id) lane: u32) {
    let b = subgroup_block(wid, nwg, lid);
    let m0 = wid.z * DM;
    let acc = subgroup_gemm(b.x, b.y, m0, lane, true);
    if (b.z == 0u) {
        return;
    }
    var zero: array<f32, MAX_RM>;
    direct_store(b.x, b.y, m0, acc, zero, false);
}

