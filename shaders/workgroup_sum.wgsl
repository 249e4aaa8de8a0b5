// Shared by the reducing shaders (prepended to their source): a tree sum over one workgroup
// of 256 invocations. Every invocation must call it (it contains barriers). The order of
// additions is fixed, so results are reproducible run to run.

const REDUCE_WG: u32 = 256u;

var<workgroup> scratch: array<f32, 256>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var stride = REDUCE_WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            scratch[lid] += scratch[lid + stride];
        }
        workgroupBarrier();
    }
    let total = scratch[0];
    workgroupBarrier();
    return total;
}
