// Vector ops for L-BFGS, all on the GPU so the two-loop recursion needs no readback:
//   dot:   scalars[out] = Σ x·x2      (dot_partial here, then reduce_finish)
//   asum:  scalars[out] = Σ |x|       (asum_partial here, then reduce_finish)
//   axpy:  y ← y + coef · x
//   scale: y ← coef · y
//   copy:  y ← coef · x              (scaled_copy)
// coef = c · scalars[num] / scalars[den], where an index of 0xffffffff stands for 1, so the
// coefficients of the recursion (α = ρ·sᵀq, γ = sᵀy / yᵀy …) come straight from earlier dots.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/vector.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> params: Uniform;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> x2: array<f32>;             // dot's second operand (may alias x)
@group(0) @binding(3) var<storage, read_write> y: array<f32>;        // axpy, scale, scaled_copy
@group(0) @binding(4) var<storage, read> scalars: array<f32>;        // coefficients
@group(0) @binding(5) var<storage, read_write> partials: array<f32>; // dot, asum

override WG: u32 = 256;

const NONE: u32 = 0xffffffffu;

fn coef() -> f32 {
    var k = params.c;
    if (params.num != NONE) {
        k *= scalars[params.num];
    }
    if (params.den != NONE) {
        k /= scalars[params.den];
    }
    return k;
}

@compute @workgroup_size(256)
fn dot_partial(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>) {
    var s = 0.0;
    for (var i = wid.x * 256u + lid; i < params.n; i += params.partials * 256u) {
        s += x[i] * x2[i];
    }
    let total = workgroup_sum(s, lid);
    if (lid == 0u) {
        partials[wid.x] = total;
    }
}

@compute @workgroup_size(256)
fn asum_partial(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>) {
    var s = 0.0;
    for (var i = wid.x * 256u + lid; i < params.n; i += params.partials * 256u) {
        s += abs(x[i]);
    }
    let total = workgroup_sum(s, lid);
    if (lid == 0u) {
        partials[wid.x] = total;
    }
}

@compute @workgroup_size(WG)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.n) {
        return;
    }
    y[i] += coef() * x[i];
}

@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.n) {
        return;
    }
    y[i] *= coef();
}

@compute @workgroup_size(WG)
fn scaled_copy(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.n) {
        return;
    }
    y[i] = coef() * x[i];
}
