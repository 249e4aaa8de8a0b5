//! Exact tiled evaluation: with the image split into tiles (forced small, or chosen for a
//! memory budget), every loss term, the gradient, the measure and a few optimizer steps equal
//! the untiled ones to float32 rounding. Corner, edge and interior tiles, odd sizes, two
//! styles, both pooling kinds, and tensors chunked differently at full and at window size.

use nst_transfer::guide::Mask;
use nst_transfer::{
    Engine, Image, Job, LayerWeight, LossConfig, Optimizer, Pooling, Score, Settings, Style, Weight,
};
use nst_vgg::LayerId;

fn noise(w: u32, h: u32, seed: u64) -> Image {
    let data = nst_tests::random(seed, 3 * (w * h) as usize, 0.0, 1.0);
    Image::new(w, h, data.into_iter().map(|v| v as f32).collect()).unwrap()
}

/// The largest difference of `got` from `want` relative to `want`'s largest magnitude.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    err / scale.max(1e-30)
}

/// Tiled values, gradient and measure against untiled ones: each term to `rtol` of itself,
/// the gradient to `rtol` of its largest element.
fn assert_same(what: &str, tiled: &Score, whole: &Score, rtol: f64) {
    for (a, b) in tiled.values.terms.iter().zip(&whole.values.terms) {
        assert_eq!(a.term, b.term);
        let err = (a.raw - b.raw).abs() / b.raw.abs().max(1e-30);
        println!(
            "{what}: {:?} tiled {} untiled {} (rel {err:.1e})",
            a.term, a.raw, b.raw
        );
        assert!(err <= rtol, "{what}: {:?}: {} vs {}", a.term, a.raw, b.raw);
        // Normalized factors come from targets computed tile by tile too.
        let f = (a.weight - b.weight).abs() / b.weight.abs().max(1e-300);
        assert!(
            f <= rtol,
            "{what}: {:?}'s factor {} vs {}",
            a.term,
            a.weight,
            b.weight
        );
    }
    let g = rel_err(&tiled.grad, &whole.grad);
    println!("{what}: gradient rel err {g:.1e}");
    assert!(
        g <= rtol,
        "{what}: gradient differs by {g:.1e} of its largest element"
    );
    let (m, n) = (&tiled.measure, &whole.measure);
    for (x, y) in [
        (m.style_distance, n.style_distance),
        (m.content_distance, n.content_distance),
        (m.content_style_distance, n.content_style_distance),
    ] {
        assert!(
            (x - y).abs() <= rtol * y.abs().max(1e-12),
            "{what}: measure {m:?} vs {n:?}"
        );
    }
}

/// Float32 sums in another order: the worst seen on lavapipe was 3e-6 (a style term).
const RTOL: f64 = 2e-5;

#[test]
fn tiled_equals_untiled_with_vgg_tiny() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    // 301×243 in windows of at most 192: 5 × 5 tiles (corners, edges and the interior; the
    // windows are mostly halo), odd sizes.
    let (w, h) = (301, 243);
    let (content, x) = (noise(w, h, 1), noise(w, h, 2));
    let styles = [
        Style::new(noise(180, 150, 3), 2.0),
        Style::new(noise(200, 260, 4), 1.0),
    ];
    // Average pooling: the chunked and the real-weights tests.
    let whole = Settings::default().style_scale(0.9);
    let tiled = whole.clone().tile(Some(192));
    let plan = engine
        .memory_plan(
            &tiled,
            &Job::Optimize {
                styles: 2,
                guided: false,
                temporal: 0,
            },
            w,
            h,
        )
        .unwrap();
    assert_eq!(plan.tiling.tiles.len(), 25, "{plan}");
    let a = engine.score(&content, &styles, &x, &tiled).unwrap();
    let b = engine.score(&content, &styles, &x, &whole).unwrap();
    assert_same("VGG-tiny", &a, &b, RTOL);
}

/// Content at `content`, style at relu1_1, relu2_1 and relu3_1: layers to relu3_1 (a 10-px
/// halo on a 4-px grid) let small tiles split a small image.
fn to_relu3_1(content: &str) -> LossConfig {
    let lw = |n: &str| LayerWeight {
        layer: LayerId::parse(n).unwrap(),
        weight: Weight::Normalized(1.0),
    };
    LossConfig::default()
        .content_layers(vec![lw(content)])
        .style_layers(vec![lw("relu1_1"), lw("relu2_1"), lw("relu3_1")])
}

/// Scores `x` in tiles of at most 48 px and whole, with `loss`, for both poolings, and
/// compares them.
fn same_in_48px_tiles(
    engine: &Engine, what: &str, [content, x]: [&Image; 2], styles: &[Style], loss: LossConfig,
) {
    same_in_48px_tiles_with(engine, what, [content, x], styles, loss, None);
}

/// [`same_in_48px_tiles`] with a content mask.
fn same_in_48px_tiles_with(
    engine: &Engine, what: &str, [content, x]: [&Image; 2], styles: &[Style], loss: LossConfig,
    content_mask: Option<Mask>,
) {
    for pooling in [Pooling::Max, Pooling::Avg] {
        let whole = (Settings::default().loss(loss.clone()).pooling(pooling))
            .content_mask(content_mask.clone());
        let tiled = whole.clone().tile(Some(48));
        let job = Job::Optimize {
            styles: styles.len(),
            guided: false,
            temporal: 0,
        };
        let plan = engine
            .memory_plan(&tiled, &job, x.width(), x.height())
            .unwrap();
        assert!(plan.tiling.tiles.len() >= 4, "{plan}");
        let a = engine.score(content, styles, x, &tiled).unwrap();
        let b = engine.score(content, styles, x, &whole).unwrap();
        assert_same(&format!("{what}, {pooling:?}"), &a, &b, RTOL);
    }
}

#[test]
fn tiled_matches_untiled_when_full_and_window_tensors_chunk_differently() {
    let Some(ctx) = nst_tests::context(Default::default()) else {
        return;
    };
    // 52 KiB chunks hold one channel of conv1_1 at 120×104 and, of the content layer relu3_1
    // (32 channels), 17 at full size (30×26) but all 32 in a window of at most 48 px.
    let engine = Engine::new(ctx, &nst_tests::vgg_tiny_weights())
        .unwrap()
        .with_max_chunk_bytes(Some(52 << 10));
    let (w, h) = (120, 104);
    let (content, x) = (noise(w, h, 5), noise(w, h, 6));
    let styles = [Style::new(noise(110, 90, 7), 1.0)];
    let loss = to_relu3_1("relu3_1");
    same_in_48px_tiles(&engine, "VGG-tiny, chunked", [&content, &x], &styles, loss);
}

#[test]
fn tiled_lbfgs_steps_equal_untiled_ones() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    let (w, h) = (230, 200);
    let content = noise(w, h, 8);
    let styles = [Style::new(noise(220, 220, 9), 1.0)];
    let whole = Settings::default().size(w).iterations(3).report_every(1);
    let run = |s: &Settings| {
        engine
            .stylize(&content, &styles, s, |_| nst_transfer::Flow::Continue)
            .unwrap()
    };
    let (a, b) = (run(&whole.clone().tile(Some(192))), run(&whole));
    // L-BFGS (the default) steps along the whole gradient. (Adam's first steps move each
    // pixel by about ±lr whatever its gradient's size, so pixels whose gradient is float32
    // noise may step either way.)
    let err = rel_err(a.image.data(), b.image.data());
    println!("3 L-BFGS steps: image rel err {err:.1e}");
    assert!(err < 1e-4, "tiled and untiled runs part: {err:.1e}");
    let (va, vb) = (a.values.unwrap().total(), b.values.unwrap().total());
    assert!((va - vb).abs() <= 1e-4 * vb.abs(), "{va} vs {vb}");
}

#[test]
fn tiled_equals_untiled_with_real_weights() {
    let Some(engine) = nst_tests::real_engine() else {
        return;
    };
    let (w, h) = (97, 83);
    let (content, x) = (noise(w, h, 10), noise(w, h, 11));
    let styles = [
        Style::new(noise(90, 70, 12), 1.0),
        Style::new(noise(60, 99, 13), 3.0),
    ];
    let loss = to_relu3_1("relu2_2");
    same_in_48px_tiles(&engine, "real", [&content, &x], &styles, loss);
}

#[test]
fn a_memory_budget_tiles_and_the_measured_peak_stays_under_it() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    let (w, h) = (480, 360);
    let adam = Settings::default().optimizer(Optimizer::Adam);
    let job = Job::Optimize {
        styles: 1,
        guided: false,
        temporal: 0,
    };
    let untiled = engine.memory_plan(&adam, &job, w, h).unwrap();
    assert!(!untiled.tiling.is_tiled());
    let budget = untiled.bytes * 2 / 3;
    let s = adam.max_memory(Some(budget));
    let plan = engine.memory_plan(&s, &job, w, h).unwrap();
    assert!(plan.tiling.is_tiled() && plan.bytes <= budget, "{plan}");
    let bench = engine.bench(w, h, 0, 1, &s).unwrap();
    assert_eq!(bench.tiles, plan.tiling.tiles.len());
    if let Some(m) = bench.gpu_memory {
        println!(
            "budget {budget}, planned {}, allocated {}",
            plan.bytes, m.allocated
        );
        assert!(
            m.allocated <= budget,
            "allocated {} of {budget}",
            m.allocated
        );
    }
}

/// Guided style terms in tiles: two masked styles (a soft ramp with hard ends, and a corner)
/// and one applied everywhere, in 48-px tiles and whole, for both poolings; the masks are drawn
/// at another size than the image's and resized.
#[test]
fn tiled_equals_untiled_with_masks() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    let (w, h) = (120, 104);
    let (content, x) = (noise(w, h, 11), noise(w, h, 12));
    // At 60×52, half the image's size: resized to it.
    let ramp: Vec<f32> = (0..60 * 52)
        .map(|i| ((i % 60) as f32 - 20.0) / 20.0)
        .collect();
    // Only in a corner: a few positions at relu3_1, in one tile's own region.
    let corner: Vec<f32> = (0..60 * 52)
        .map(|i| if i / 60 >= 50 && i % 60 < 8 { 1.0 } else { 0.0 })
        .collect();
    let mask = |d: Vec<f32>| nst_transfer::guide::Mask::new(60, 52, d).unwrap();
    let styles = [
        Style::new(noise(110, 90, 13), 2.0).with_mask(mask(ramp)),
        Style::new(noise(90, 110, 14), 1.0).with_mask(mask(corner)),
        Style::new(noise(100, 100, 15), 1.0),
    ];
    same_in_48px_tiles(
        &engine,
        "VGG-tiny, masked",
        [&content, &x],
        &styles,
        to_relu3_1("relu2_2"),
    );
}

/// Style regions and a content mask in tiles: a style taken from a soft region of its image
/// and one from a corner, and a content mask of strengths from 0 to 1 across the image, drawn
/// at half its size.
#[test]
fn tiled_equals_untiled_with_regions_and_a_content_mask() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    let (w, h) = (120, 104);
    let (content, x) = (noise(w, h, 21), noise(w, h, 22));
    let ramp = |w: u32, h: u32| -> Mask {
        let d = (0..w * h)
            .map(|i| (i % w) as f32 / (w - 1) as f32)
            .collect();
        Mask::new(w, h, d).unwrap()
    };
    let corner: Vec<f32> = (0..45 * 55)
        .map(|i| if i / 45 < 20 && i % 45 < 20 { 1.0 } else { 0.0 })
        .collect();
    let styles = [
        Style::new(noise(110, 90, 23), 1.0).with_region(ramp(55, 45)),
        Style::new(noise(90, 110, 24), 1.0).with_region(Mask::new(45, 55, corner).unwrap()),
    ];
    // Strength from 0 on the left to 1 on the right; rows alike but for a hard step.
    let strength: Vec<f32> = (0..60 * 52)
        .map(|i| match i / 60 < 26 {
            true => (i % 60) as f32 / 59.0,
            false => 0.2 + 0.5 * ((i % 60) >= 30) as u32 as f32,
        })
        .collect();
    same_in_48px_tiles_with(
        &engine,
        "VGG-tiny, regions and a content mask",
        [&content, &x],
        &styles,
        to_relu3_1("relu2_2"),
        Some(Mask::new(60, 52, strength).unwrap()),
    );
}
