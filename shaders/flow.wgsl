// Optical flow: TV-L1 (Zach, Pock & Bischof 2007; Sánchez, Meinhardt-Llopis & Facciolo, IPOL
// 2013) coarse to fine, and Ruder et al.'s reliability weights. One thread per pixel; planes
// are h × w, row-major. A flow is two planes (u, then v) in pixels; the dual variable four
// (p11, p12, p21, p22); the linearized data term four (∂x, ∂y, |∇|², ρ₀). The CPU reference of
// each entry point is the function of the same name in crates/nst-reference/src/flow.rs.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/flow.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> u: Uniform;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Bilinear sample of plane `k` of `a` (u.h × u.w) at (x, y), clamped to the image.
fn sample_a(k: u32, x: f32, y: f32) -> f32 {
    let xc = clamp(x, 0.0, f32(u.w - 1u));
    let yc = clamp(y, 0.0, f32(u.h - 1u));
    let x0 = u32(floor(xc));
    let y0 = u32(floor(yc));
    let x1 = min(x0 + 1u, u.w - 1u);
    let y1 = min(y0 + 1u, u.h - 1u);
    let fx = xc - f32(x0);
    let fy = yc - f32(y0);
    let base = k * u.h * u.w;
    let top = a[base + y0 * u.w + x0] * (1.0 - fx) + a[base + y0 * u.w + x1] * fx;
    let bottom = a[base + y1 * u.w + x0] * (1.0 - fx) + a[base + y1 * u.w + x1] * fx;
    return top * (1.0 - fy) + bottom * fy;
}

// The neighbours of (i, j) for centered differences, clamped to the image: left, right, top,
// bottom.
fn neighbours(i: u32, j: u32) -> vec4<u32> {
    return vec4<u32>(select(j - 1u, 0u, j == 0u), min(j + 1u, u.w - 1u),
                     select(i - 1u, 0u, i == 0u), min(i + 1u, u.h - 1u));
}

// Grey levels in [0, 255] of RGB in [0, 1] (a: 3 planes).
@compute @workgroup_size(WG)
fn flow_gray(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h * u.w;
    if (q >= n) {
        return;
    }
    out[q] = 255.0 * (0.299 * a[q] + 0.587 * a[n + q] + 0.114 * a[2u * n + q]);
}

// u.c planes of a (u.h × u.w) halved: 2×2 means, an odd last row or column dropped.
@compute @workgroup_size(WG)
fn flow_downsample(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let h2 = u.h / 2u;
    let w2 = u.w / 2u;
    if (q >= h2 * w2) {
        return;
    }
    let i = q / w2;
    let j = q % w2;
    for (var k = 0u; k < u.c; k++) {
        let base = k * u.h * u.w + 2u * i * u.w + 2u * j;
        let s = a[base] + a[base + 1u] + a[base + u.w] + a[base + u.w + 1u];
        out[k * h2 * w2 + q] = s / 4.0;
    }
}

// A plane a with its centered gradient: a, ∂x, ∂y, the index clamped at the border (the three
// planes the warp samples).
@compute @workgroup_size(WG)
fn flow_with_gradient(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h * u.w;
    if (q >= n) {
        return;
    }
    let i = q / u.w;
    let j = q % u.w;
    let nb = neighbours(i, j);
    out[q] = a[q];
    out[n + q] = 0.5 * (a[i * u.w + nb.y] - a[i * u.w + nb.x]);
    out[2u * n + q] = 0.5 * (a[nb.w * u.w + j] - a[nb.z * u.w + j]);
}

// u.c planes of a warped by the flow b: out(p) = a(p + b(p)), bilinear, clamped.
@compute @workgroup_size(WG)
fn flow_warp(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h * u.w;
    if (q >= n) {
        return;
    }
    let x = f32(q % u.w) + b[q];
    let y = f32(q / u.w) + b[n + q];
    for (var k = 0u; k < u.c; k++) {
        out[k * n + q] = sample_a(k, x, y);
    }
}

// The data term linearized at the flow c: a = I0, b = I1, ∂xI1, ∂yI1 warped by c.
@compute @workgroup_size(WG)
fn flow_prepare(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h * u.w;
    if (q >= n) {
        return;
    }
    let gx = b[n + q];
    let gy = b[2u * n + q];
    out[q] = gx;
    out[n + q] = gy;
    out[2u * n + q] = gx * gx + gy * gy;
    out[3u * n + q] = b[q] - gx * c[q] - gy * c[n + q] - a[q];
}

// The divergence of the dual field in planes ka, kb of b at (i, j): backward differences with
// IPOL's boundary rule.
fn divergence(ka: u32, kb: u32, i: u32, j: u32) -> f32 {
    let n = u.h * u.w;
    let q = i * u.w + j;
    let pa = ka * n;
    let pb = kb * n;
    var dx = 0.0;
    if (u.w > 1u) {
        if (j == 0u) {
            dx = b[pa + q];
        } else if (j == u.w - 1u) {
            dx = -b[pa + q - 1u];
        } else {
            dx = b[pa + q] - b[pa + q - 1u];
        }
    }
    var dy = 0.0;
    if (u.h > 1u) {
        if (i == 0u) {
            dy = b[pb + q];
        } else if (i == u.h - 1u) {
            dy = -b[pb + q - u.w];
        } else {
            dy = b[pb + q] - b[pb + q - u.w];
        }
    }
    return dx + dy;
}

// The primal step: a = the flow, b = the dual variable, c = the data term; out = the new flow.
@compute @workgroup_size(WG)
fn flow_primal(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h * u.w;
    if (q >= n) {
        return;
    }
    let gx = c[q];
    let gy = c[n + q];
    let g2 = c[2u * n + q];
    let rho = c[3u * n + q] + gx * a[q] + gy * a[n + q];
    let lt = u.lambda_theta;
    var d = vec2<f32>(0.0, 0.0);
    if (rho < -lt * g2) {
        d = vec2<f32>(lt * gx, lt * gy);
    } else if (rho > lt * g2) {
        d = vec2<f32>(-lt * gx, -lt * gy);
    } else if (g2 > 1e-10) {
        d = vec2<f32>(-rho * gx / g2, -rho * gy / g2);
    }
    let i = q / u.w;
    let j = q % u.w;
    out[q] = a[q] + d.x + u.theta * divergence(0u, 1u, i, j);
    out[n + q] = a[n + q] + d.y + u.theta * divergence(2u, 3u, i, j);
}

// The dual step, in place on out (four planes), from the flow a.
@compute @workgroup_size(WG)
fn flow_dual(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h * u.w;
    if (q >= n) {
        return;
    }
    let i = q / u.w;
    let j = q % u.w;
    for (var k = 0u; k < 2u; k++) {
        let base = k * n;
        var ux = 0.0;
        if (j + 1u < u.w) {
            ux = a[base + q + 1u] - a[base + q];
        }
        var uy = 0.0;
        if (i + 1u < u.h) {
            uy = a[base + q + u.w] - a[base + q];
        }
        let norm = 1.0 + u.tau_theta * sqrt(ux * ux + uy * uy);
        let p1 = 2u * k * n + q;
        let p2 = (2u * k + 1u) * n + q;
        out[p1] = (out[p1] + u.tau_theta * ux) / norm;
        out[p2] = (out[p2] + u.tau_theta * uy) / norm;
    }
}

// A flow a at u.h × u.w brought to u.h2 × u.w2 (here the finer size): bilinear, centres
// mapped, vectors scaled by the sides' ratios.
@compute @workgroup_size(WG)
fn flow_upsample(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h2 * u.w2;
    if (q >= n) {
        return;
    }
    let sx = f32(u.w) / f32(u.w2);
    let sy = f32(u.h) / f32(u.h2);
    let x = (f32(q % u.w2) + 0.5) * sx - 0.5;
    let y = (f32(q / u.w2) + 0.5) * sy - 0.5;
    out[q] = sample_a(0u, x, y) / sx;
    out[n + q] = sample_a(1u, x, y) / sy;
}

// Ruder et al.'s reliability of the backward flow b given the forward flow a: 0 where they
// disagree or at motion boundaries of b, 1 elsewhere.
@compute @workgroup_size(WG)
fn flow_reliability(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear(gid, nwg);
    let n = u.h * u.w;
    if (q >= n) {
        return;
    }
    let i = q / u.w;
    let j = q % u.w;
    let bu = b[q];
    let bv = b[n + q];
    let fu = sample_a(0u, f32(j) + bu, f32(i) + bv);
    let fv = sample_a(1u, f32(j) + bu, f32(i) + bv);
    let sum = (bu + fu) * (bu + fu) + (bv + fv) * (bv + fv);
    let sizes = bu * bu + bv * bv + fu * fu + fv * fv;
    let nb = neighbours(i, j);
    var grad = 0.0;
    for (var k = 0u; k < 2u; k++) {
        let gx = 0.5 * (b[k * n + i * u.w + nb.y] - b[k * n + i * u.w + nb.x]);
        let gy = 0.5 * (b[k * n + nb.w * u.w + j] - b[k * n + nb.z * u.w + j]);
        grad += gx * gx + gy * gy;
    }
    let inconsistent = sum > 0.01 * sizes + 0.5;
    let boundary = grad > 0.01 * (bu * bu + bv * bv) + 0.002;
    out[q] = select(1.0, 0.0, inconsistent || boundary);
}
