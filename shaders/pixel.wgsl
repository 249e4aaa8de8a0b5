// The pixel transform from RGB in [0, 1] (3 × H × W) to a weight set's input convention:
//   out[c] = scale[c] · x[perm[c]] + offset[c]
// (original VGG: perm = BGR, scale 255, offset −mean pixel; torchvision: RGB, 1/std, −mean/std).
// Backward: gx[k] = scale[c] · gy[c] with perm[c] = k.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/pixel.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> params: Uniform;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn pixel_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= 3u * params.plane) {
        return;
    }
    let c = idx / params.plane;
    let p = idx % params.plane;
    dst[idx] = params.scale[c] * src[params.perm[c] * params.plane + p] + params.offset[c];
}

@compute @workgroup_size(WG)
fn pixel_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= 3u * params.plane) {
        return;
    }
    let k = idx / params.plane;
    let p = idx % params.plane;
    let c = params.inv_perm[k];
    let g = params.scale[c] * src[c * params.plane + p];
    if (params.accumulate != 0u) {
        dst[idx] += g;
    } else {
        dst[idx] = g;
    }
}

// Keeps an image a valid picture after an optimizer step: x ← clamp(x, 0, 1) in place (dst).
@compute @workgroup_size(WG)
fn pixel_clamp(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = linear(gid, nwg);
    if (idx >= 3u * params.plane) {
        return;
    }
    dst[idx] = clamp(dst[idx], 0.0, 1.0);
}
