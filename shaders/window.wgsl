// Window: a rectangular region of some channels of a [c, h, w] tensor copied into, or added
// onto, a region of the same size of another. Tiled evaluation uses it to cut a tile's window
// out of the full image, to keep only a tile's own positions of a tapped activation (the rest
// of the plane zeroed), and to add a tile's image gradient back into the full one.
// One invocation per element of the domain: the region (modes 0 and 2) or, for mode 1, the
// whole destination plane, so that positions outside the region are written (zero) too.

// `Uniform` (binding 0) is declared once, in Rust (crates/nst-kernels/src/window.rs), and
// prepended to the compiled source.

@group(0) @binding(0) var<uniform> shape: Uniform;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

override WG: u32 = 256;

@compute @workgroup_size(WG)
fn window(@builtin(global_invocation_id) gid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let plane = shape.dom_h * shape.dom_w;
    if (i >= shape.channels * plane) {
        return;
    }
    let c = i / plane;
    let r = i % plane;
    var y = r / shape.dom_w;
    var x = r % shape.dom_w;
    if (shape.mode != 1u) {
        y += shape.dst_y;
        x += shape.dst_x;
    }
    let d = ((shape.dst_c0 + c) * shape.dst_h + y) * shape.dst_w + x;
    let inside = y >= shape.dst_y && y < shape.dst_y + shape.rh
        && x >= shape.dst_x && x < shape.dst_x + shape.rw;
    if (!inside) {
        dst[d] = 0.0; // only mode 1 reaches outside the region
        return;
    }
    let sy = y - shape.dst_y + shape.src_y;
    let sx = x - shape.dst_x + shape.src_x;
    let v = src[((shape.src_c0 + c) * shape.src_h + sy) * shape.src_w + sx];
    if (shape.mode == 2u) {
        dst[d] += v;
    } else {
        dst[d] = v;
    }
}
