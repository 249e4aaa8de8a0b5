//! Memory plans equal what is allocated. For untiled and tiled problems, both optimizers,
//! whole and chunked tensors, guided styles, style regions and a content mask, the bytes of storage the GPU context counts while the style
//! targets, the problem and the optimizer's state are built equal the plan's, to the byte.

use nst_transfer::{Engine, Image, Job, LayerWeight, LossConfig, Optimizer, Settings, Stepper};
use nst_vgg::LayerId;

fn noise(w: u32, h: u32, seed: u64) -> Image {
    let data = nst_tests::random(seed, 3 * (w * h) as usize, 0.0, 1.0);
    Image::new(w, h, data.into_iter().map(|v| v as f32).collect()).unwrap()
}

#[test]
fn plans_equal_what_is_allocated() {
    let Some(ctx) = nst_tests::context(Default::default()) else {
        return;
    };
    let mut engine = Engine::new(ctx, &nst_tests::vgg_tiny_weights()).unwrap();
    let (w, h) = (120, 104);
    let content = noise(w, h, 1);
    let styles = [noise(90, 110, 2), noise(130, 70, 3)];
    let shapes = |region: bool| -> Vec<nst_transfer::StyleShape> {
        let shape = |s: &Image, region| nst_transfer::StyleShape {
            width: s.width(),
            height: s.height(),
            region,
        };
        vec![shape(&styles[0], false), shape(&styles[1], region)]
    };
    // Layers to relu3_1, so that 48-px tiles split the image.
    let lw = |n: &str| LayerWeight::normalized(LayerId::parse(n).unwrap());
    let loss = LossConfig::default()
        .content_layers(vec![lw("relu2_2")])
        .style_layers(vec![lw("relu1_1"), lw("relu2_1"), lw("relu3_1")]);
    // Guided: a mask on the first style (and none on the second).
    let ramp: Vec<f32> = (0..w * h).map(|i| (i % w) as f32 / w as f32).collect();
    let masked = [
        Some(nst_transfer::guide::Mask::new(w, h, ramp).unwrap()),
        None,
    ];
    // A region of the second style image.
    let (rw, rh) = (styles[1].width(), styles[1].height());
    let blob: Vec<f32> = (0..rw * rh)
        .map(|i| ((i / rw) < rh / 2) as u32 as f32)
        .collect();
    let region = [
        None,
        Some(nst_transfer::guide::Mask::new(rw, rh, blob).unwrap()),
    ];
    // 52 KiB chunks split conv1's outputs at this size (see tests/tiling.rs).
    // A content mask at another size than the image's.
    let strength = nst_transfer::guide::Mask::new(
        60,
        52,
        (0..60 * 52).map(|i| (i % 7) as f32 / 6.0).collect(),
    )
    .unwrap();
    for (chunks, guides, regions, content_mask) in [
        (None, &[][..], &[][..], None),
        (Some(52 << 10), &[], &[], None),
        (None, &masked[..], &[], None),
        (None, &[], &region[..], None),
        (Some(52 << 10), &[], &[], Some(strength)),
    ] {
        let guided = !guides.is_empty();
        let sizes = shapes(!regions.is_empty());
        let job = Job::Optimize {
            styles: 2,
            guided,
            temporal: 0,
        };
        engine = engine.with_max_chunk_bytes(chunks);
        for tile in [None, Some(48)] {
            for optimizer in [Optimizer::Adam, Optimizer::Lbfgs { history: 3 }] {
                let what =
                    format!("chunks {chunks:?}, guided {guided}, region {}, content mask {}, tile {tile:?}, {optimizer:?}", !regions.is_empty(), content_mask.is_some());
                let s = (Settings::default().loss(loss.clone()))
                    .tile(tile)
                    .optimizer(optimizer)
                    .content_mask(content_mask.clone());
                let plan = engine.scale_plan((w, h), &sizes, &s, &job).unwrap();
                assert_eq!(plan.problem.tiling.is_tiled(), tile.is_some(), "{what}");
                let before = engine.context().created_bytes();
                let problem = engine
                    .problem(&content, &styles, &[0.5, 0.5], (guides, regions), &s)
                    .unwrap();
                let stepper = Stepper::new(&engine, &problem, optimizer, s.step_size()).unwrap();
                let created = engine.context().created_bytes() - before;
                println!("{what}: planned {}, created {created}", plan.job_bytes());
                assert_eq!(
                    created,
                    plan.job_bytes(),
                    "{what}: the plan's parts are {:?}",
                    plan.problem.parts
                );
                drop((stepper, problem));
            }
        }
    }
}

/// The temporal loss of a video frame (two earlier frames) is planned to the byte too,
/// untiled and tiled, with both optimizers.
#[test]
fn a_video_frames_plan_equals_what_is_allocated() {
    let Some(ctx) = nst_tests::context(Default::default()) else {
        return;
    };
    let engine = Engine::new(ctx, &nst_tests::vgg_tiny_weights()).unwrap();
    let (w, h) = (120, 104);
    let content = noise(w, h, 4);
    let styles = [noise(90, 110, 5)];
    let frame = |seed| nst_transfer::TemporalFrame {
        warped: noise(w, h, seed),
        weights: (0..w * h).map(|i| (i % 3) as f32 / 2.0).collect(),
    };
    let temporal = nst_transfer::Temporal {
        weight: 30.0,
        frames: vec![frame(6), frame(7)],
    };
    let lw = |n: &str| LayerWeight::normalized(LayerId::parse(n).unwrap());
    let loss = LossConfig::default()
        .content_layers(vec![lw("relu2_2")])
        .style_layers(vec![lw("relu1_1"), lw("relu2_1"), lw("relu3_1")]);
    let job = Job::Optimize {
        styles: 1,
        guided: false,
        temporal: 2,
    };
    for tile in [None, Some(48)] {
        for optimizer in [Optimizer::Adam, Optimizer::Lbfgs { history: 3 }] {
            let what = format!("tile {tile:?}, {optimizer:?}");
            let s = (Settings::default().loss(loss.clone()))
                .tile(tile)
                .optimizer(optimizer);
            let plan = engine
                .scale_plan((w, h), &[(90, 110).into()], &s, &job)
                .unwrap();
            let before = engine.context().created_bytes();
            let problem = engine
                .frame_problem(&content, &styles, &[1.0], (&[], &[]), &s, Some(&temporal))
                .unwrap();
            let stepper = Stepper::new(&engine, &problem, optimizer, s.step_size()).unwrap();
            let created = engine.context().created_bytes() - before;
            assert_eq!(
                created,
                plan.job_bytes(),
                "{what}: {:?}",
                plan.problem.parts
            );
            drop((stepper, problem));
        }
    }
}

/// Running out of GPU memory while a run allocates (`Context::cap_memory`): in a graph (a cap
/// of half what the first style's graph needs) and after the graphs (a byte short of the
/// whole plan). No panic, and the error says what ran out, how much fit, and the largest
/// image of this shape whose graph, or whole plan, fits in that.
#[test]
fn running_out_of_memory_says_what_fits() {
    let Some(ctx) = nst_tests::context(Default::default()) else {
        return;
    };
    let engine = Engine::new(ctx, &nst_tests::vgg_tiny_weights()).unwrap();
    let (w, h) = (120, 104);
    let content = noise(w, h, 1);
    let styles = [nst_transfer::Style::new(noise(w, h, 2), 1.0)];
    let settings = Settings::default().size(w).iterations(1);
    let job = Job::Optimize {
        styles: 1,
        guided: false,
        temporal: 0,
    };
    let plan = engine
        .scale_plan((w, h), &[(w, h).into()], &settings, &job)
        .unwrap();
    let ctx = engine.context();
    // Runs out under `cap`: the message, and the plan of the largest size it names.
    let run_out = |cap: u64| {
        ctx.cap_memory(Some(cap));
        let err = engine
            .stylize(&content, &styles, &settings, |_| {
                nst_transfer::Flow::Continue
            })
            .expect_err("the plan cannot fit");
        ctx.cap_memory(None);
        let message = err.to_string();
        eprintln!("{message}");
        let nst_transfer::TransferError::Vgg(nst_vgg::VggError::TooLarge {
            largest: Some((lh, lw)),
            ..
        }) = err
        else {
            panic!("expected a too-large error with a size that fits: {message}");
        };
        assert!(lw < w && lh < h, "{lw}×{lh}");
        let fits = engine.scale_plan((lw, lh), &[(lw, lh).into()], &settings, &job);
        (message, fits.unwrap())
    };
    let half = plan.styles[0].graph_bytes / 2;
    let (message, fits) = run_out(ctx.created_bytes() + half);
    for needle in [
        "ran out of memory",
        "120×104 image does not fit",
        "the largest",
    ] {
        assert!(
            message.contains(needle),
            "`{needle}` missing from: {message}"
        );
    }
    // The largest size named does fit the graph's plan in half the bytes.
    assert!(fits.styles[0].graph_bytes <= half, "{message}");

    // A byte short of the whole plan: the graphs fit, what comes last does not, and the engine
    // names the largest size whose whole plan fits in what did.
    let (message, fits) = run_out(ctx.created_bytes() + plan.job_bytes() - 1);
    assert!(message.contains("this scale needs"), "{message}");
    assert!(fits.job_bytes() < plan.job_bytes(), "{message}");
}
