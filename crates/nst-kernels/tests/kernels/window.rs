//! Region copies (tiled evaluation's windows) in every mode, with channel offsets, against the
//! reference.

use nst_kernels::{Plane, WindowMode, WindowShape};
use nst_reference::window::{window, Mode};
use nst_tests::{assert_close, random, ro, rw, with_gpu, with_small_grid_gpu, Gpu};

/// A region of `[3, 5, 6]` at channel 1, row 2, column 1 of a 5×9×8 source, copied to
/// channel 0, row 4, column 3 of a 4×11×10 destination that already holds values.
fn case(g: &Gpu, mode: WindowMode, seed: u64) {
    let (sd, dd, region) = ([5, 9, 8], [4, 11, 10], [3, 5, 6]);
    let (sa, da) = ([1, 2, 1], [0, 4, 3]);
    let src = random(seed, sd.iter().product(), -1.0, 1.0);
    let prior = random(seed + 1, dd.iter().product(), -1.0, 1.0);
    let (bs, bd) = (g.upload("src", &src), g.upload("dst", &prior));
    let plane = |d: [usize; 3], a: [usize; 3]| {
        let p = Plane::whole(d[0] as u32, d[1] as u32, d[2] as u32);
        p.at(a[0] as u32, a[1] as u32, a[2] as u32)
    };
    let s = WindowShape {
        src: plane(sd, sa),
        dst: plane(dd, da),
        channels: region[0] as u32,
        h: region[1] as u32,
        w: region[2] as u32,
    };
    let d = g.k.window.copy(&g.ctx, s, mode, ro(&bs), rw(&bd)).unwrap();
    g.run(&[&d]);
    // Exact f32 values: round the reference's inputs the way the upload did.
    let f32s = |v: &[f64]| -> Vec<f64> { v.iter().map(|&x| x as f32 as f64).collect() };
    let mut want = f32s(&prior);
    let m = match mode {
        WindowMode::Copy => Mode::Copy,
        WindowMode::CopyZeroRest => Mode::CopyZeroRest,
        WindowMode::Add => Mode::Add,
    };
    window((&f32s(&src), sd, sa), (&mut want, dd, da), region, m);
    let atol = if mode == WindowMode::Add { 1e-7 } else { 0.0 };
    assert_close(&format!("window {mode:?}"), &g.read(&bd), &want, atol, 0.0);
}

#[test]
fn window_matches_reference_in_every_mode() {
    with_gpu(|g| {
        for (i, mode) in [WindowMode::Copy, WindowMode::CopyZeroRest, WindowMode::Add]
            .into_iter()
            .enumerate()
        {
            case(g, mode, 40 + 2 * i as u64);
        }
    });
    with_small_grid_gpu(|g| case(g, WindowMode::CopyZeroRest, 50));
}

#[test]
fn window_regions_outside_their_tensors_are_refused() {
    with_gpu(|g| {
        let (bs, bd) = (g.zeros("src", 2 * 4 * 4), g.zeros("dst", 2 * 4 * 4));
        let p = Plane::whole(2, 4, 4);
        let s = WindowShape {
            src: p.at(0, 1, 0),
            dst: p,
            channels: 2,
            h: 4,
            w: 4,
        };
        let e =
            g.k.window
                .copy(&g.ctx, s, WindowMode::Copy, ro(&bs), rw(&bd));
        let msg = e
            .err()
            .expect("a region past the source's last row")
            .to_string();
        assert!(msg.contains("window source"), "{msg}");
    });
}
