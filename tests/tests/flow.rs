//! Optical flow on the GPU (TV-L1, `shaders/flow.wgsl`) against the ground truth of synthetic
//! pairs with known motion (`nst_tests::synthetic`): a photo panned, zoomed and rotated, with a
//! patch moving on its own in front; and against the f64 reference's TV-L1 on the same frames.

use nst_reference::flow as r;
use nst_tests::synthetic::{pair, Motion, Pair};
use nst_transfer::image::{load, resize, Image};
use nst_transfer::FlowSettings;

/// Tübingen (docs/gallery/inputs) at 128×96.
fn photo() -> Image {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/gallery/inputs/tubingen.jpg"
    );
    resize(&load(std::path::Path::new(path)).unwrap().image, 128, 96)
}

fn motions() -> [(&'static str, Motion); 3] {
    let m = |shift, zoom, degrees, patch| Motion {
        shift,
        zoom,
        degrees,
        patch,
    };
    [
        ("pan", m((2.5, -1.5), 1.0, 0.0, (3, 2))),
        ("zoom", m((0.0, 0.0), 1.04, 0.0, (-2, 1))),
        ("rotation", m((0.0, 0.0), 1.0, 2.0, (2, -2))),
    ]
}

fn grey(img: &Image) -> Vec<f64> {
    r::gray(&img.data().iter().map(|&v| v as f64).collect::<Vec<_>>())
}

/// Each pair's endpoint error over the pixels the truth holds for, by the GPU and by the
/// reference, and how far apart the two flows are.
#[test]
fn flow_finds_known_motion() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    let s = FlowSettings::default();
    let t = r::Tvl1 {
        lambda: s.lambda,
        theta: s.theta,
        tau: s.tau,
        warps: s.warps as usize,
        iterations: s.iterations as usize,
        min_side: s.min_side as usize,
    };
    let photo = photo();
    for (name, motion) in motions() {
        let Pair { a, b, truth, valid } = pair(&photo, motion, 20, (40, 30));
        let f = engine.flow(&a, &b, &s).unwrap();
        let gpu: Vec<f64> = f.data.iter().map(|&v| v as f64).collect();
        let (h, w) = (a.height() as usize, a.width() as usize);
        let reference = r::tvl1(&grey(&a), &grey(&b), h, w, &t);
        let epe = r::epe(&gpu, &truth, Some(&valid));
        let epe_ref = r::epe(&reference, &truth, Some(&valid));
        let apart = r::epe(&gpu, &reference, None);
        let zero = r::epe(&vec![0.0; 2 * h * w], &truth, Some(&valid));
        eprintln!(
            "{name}: EPE {epe:.3} px (reference {epe_ref:.3}, no motion {zero:.3}), GPU vs \
             reference {apart:.4} px, {:.0} % of pixels valid",
            100.0 * valid.iter().filter(|&&v| v).count() as f64 / valid.len() as f64
        );
        // OpenCV's DIS (medium) scored 0.16 to 0.23 px on such pairs, Farnebäck 0.47 to 1.0
        // (benches/flow/compare.py, docs/BENCHMARKS.md).
        assert!(epe < 0.35 && epe < 0.2 * zero, "{name}: EPE {epe}");
        assert!(
            apart < 0.05,
            "{name}: the GPU's flow is {apart} px from the reference's"
        );
    }
}
