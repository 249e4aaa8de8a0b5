// Losses, each reduced on the GPU in two stages (a `*_partial` kernel here writes one sum per
// workgroup; `reduce_finish` in reduce.wgsl adds them up), and their backward passes.
//
//   mse(a, b) = mean((a − b)²)                 ga = scale · 2(a − b) / n
//   tv(x)     = mean_{c,h<H−1,w} |x[c,h+1,w] − x[c,h,w]| + mean_{c,h,w<W−1} |x[c,h,w+1] − x[c,h,w]|
//   out_of_range(x) = mean(max(x − 1, 0)² + max(−x, 0)²)
//                                              gx = scale · 2(max(x − 1, 0) − max(−x, 0)) / n
//
// `scale` is the upstream gradient (the loss weight); `accumulate` adds into the gradient
// buffer, so several losses can share one tap. sign(0) = 0, as PyTorch's |·|.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/loss.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> shape: Uniform;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;        // mse only
@group(0) @binding(3) var<storage, read_write> dst: array<f32>; // partial sums, or the gradient

override WG: u32 = 256;

fn linear(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(256)
fn mse_partial(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>) {
    var s = 0.0;
    for (var i = wid.x * 256u + lid; i < shape.n; i += shape.partials * 256u) {
        let d = a[i] - b[i];
        s += d * d;
    }
    let total = workgroup_sum(s, lid);
    if (lid == 0u) {
        dst[wid.x] = total;
    }
}

@compute @workgroup_size(WG)
fn mse_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= shape.n) {
        return;
    }
    let g = shape.scale * 2.0 * (a[i] - b[i]) / f32(shape.n);
    if (shape.accumulate != 0u) {
        dst[i] += g;
    } else {
        dst[i] = g;
    }
}

// |x[i + step] − x[i]| weighted, for the neighbor below and to the right of element i.
fn tv_terms(i: u32) -> f32 {
    let x = i % shape.w;
    let y = (i / shape.w) % shape.h;
    var t = 0.0;
    if (y + 1u < shape.h) {
        t += abs(a[i + shape.w] - a[i]) * shape.inv_nh;
    }
    if (x + 1u < shape.w) {
        t += abs(a[i + 1u] - a[i]) * shape.inv_nw;
    }
    return t;
}

@compute @workgroup_size(256)
fn tv_partial(@builtin(local_invocation_index) lid: u32,
              @builtin(workgroup_id) wid: vec3<u32>) {
    var s = 0.0;
    for (var i = wid.x * 256u + lid; i < shape.n; i += shape.partials * 256u) {
        s += tv_terms(i);
    }
    let total = workgroup_sum(s, lid);
    if (lid == 0u) {
        dst[wid.x] = total;
    }
}

fn sgn(v: f32) -> f32 {
    return select(select(0.0, -1.0, v < 0.0), 1.0, v > 0.0);
}

@compute @workgroup_size(WG)
fn tv_backward(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= shape.n) {
        return;
    }
    let x = i % shape.w;
    let y = (i / shape.w) % shape.h;
    var g = 0.0;
    // x[i] appears in its own two differences (as the subtrahend) and in those of the
    // neighbors above and to the left (as the minuend).
    if (y + 1u < shape.h) {
        g -= sgn(a[i + shape.w] - a[i]) * shape.inv_nh;
    }
    if (y > 0u) {
        g += sgn(a[i] - a[i - shape.w]) * shape.inv_nh;
    }
    if (x + 1u < shape.w) {
        g -= sgn(a[i + 1u] - a[i]) * shape.inv_nw;
    }
    if (x > 0u) {
        g += sgn(a[i] - a[i - 1u]) * shape.inv_nw;
    }
    g *= shape.scale;
    if (shape.accumulate != 0u) {
        dst[i] += g;
    } else {
        dst[i] = g;
    }
}

// How far x lies outside [0, 1]: 0 inside, the distance to the nearer bound outside (negative
// below 0).
fn excess(v: f32) -> f32 {
    return max(v - 1.0, 0.0) - max(-v, 0.0);
}

@compute @workgroup_size(256)
fn out_of_range_partial(@builtin(local_invocation_index) lid: u32,
                        @builtin(workgroup_id) wid: vec3<u32>) {
    var s = 0.0;
    for (var i = wid.x * 256u + lid; i < shape.n; i += shape.partials * 256u) {
        let e = excess(a[i]);
        s += e * e;
    }
    let total = workgroup_sum(s, lid);
    if (lid == 0u) {
        dst[wid.x] = total;
    }
}

@compute @workgroup_size(WG)
fn out_of_range_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear(gid, nwg);
    if (i >= shape.n) {
        return;
    }
    let g = shape.scale * 2.0 * excess(a[i]) / f32(shape.n);
    if (shape.accumulate != 0u) {
        dst[i] += g;
    } else {
        dst[i] = g;
    }
}
