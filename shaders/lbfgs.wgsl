// L-BFGS bookkeeping on the scalar buffer, one invocation each, so that no iteration waits
// for a readback; the vector work is in vector.wgsl. The slots are named by the uniform.
//   lbfgs_first_step: t = lr · min(1, 1 / ‖g‖₁)        (torch's cautious first step)
//   lbfgs_accept:     the newest pair (s, y) is kept if sᵀy > 1e-10: its slot's sᵀy and
//                     mask 1, γ = sᵀy / yᵀy; otherwise sᵀy 1 and mask 0 (the caller then
//                     zeroes the pair, which the two-loop recursion ignores); t = lr.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/lbfgs.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> params: Uniform;
@group(0) @binding(1) var<storage, read_write> scalars: array<f32>;

const CURVATURE_EPS: f32 = 1e-10;

@compute @workgroup_size(1)
fn lbfgs_first_step() {
    let l1 = scalars[params.asum];
    var t = params.lr;
    if (l1 > 1.0) {
        t = params.lr / l1;
    }
    scalars[params.t] = t;
    scalars[params.gamma] = 1.0;
}

@compute @workgroup_size(1)
fn lbfgs_accept() {
    let ys = scalars[params.ys];
    if (ys > CURVATURE_EPS) {
        scalars[params.slot_ys] = ys;
        scalars[params.slot_mask] = 1.0;
        scalars[params.gamma] = ys / scalars[params.yy];
    } else {
        scalars[params.slot_ys] = 1.0;
        scalars[params.slot_mask] = 0.0;
    }
    scalars[params.t] = params.lr;
}
