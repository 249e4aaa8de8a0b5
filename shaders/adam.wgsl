// Adam, exactly as PyTorch's torch.optim.Adam (no weight decay, no amsgrad):
//   m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
//   x ← x − (lr / bc1) · m / (√v / √bc2 + ε),   bc1 = 1 − β1ᵗ, bc2 = 1 − β2ᵗ
// The bias corrections are computed on the CPU in f64 for each step and passed in.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/adam.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> params: Uniform;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.n) {
        return;
    }
    let g = grad[i];
    let mi = params.beta1 * m[i] + (1.0 - params.beta1) * g;
    let vi = params.beta2 * v[i] + (1.0 - params.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    x[i] -= params.step_size * mi / (sqrt(vi) / params.sqrt_bc2 + params.eps);
}
