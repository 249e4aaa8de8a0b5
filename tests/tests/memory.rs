//! Memory plans equal what is allocated. For untiled and tiled problems, both optimizers,
//! whole and chunked tensors, the bytes of storage the GPU context counts while the style
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
    let sizes: Vec<(u32, u32)> = styles.iter().map(|s| (s.width(), s.height())).collect();
    // Layers to relu3_1, so that 48-px tiles split the image.
    let lw = |n: &str| LayerWeight::normalized(LayerId::parse(n).unwrap());
    let loss = LossConfig::default()
        .content_layers(vec![lw("relu2_2")])
        .style_layers(vec![lw("relu1_1"), lw("relu2_1"), lw("relu3_1")]);
    let job = Job::Optimize { styles: 2 };
    // 52 KiB chunks split conv1's outputs at this size (see tests/tiling.rs).
    for chunks in [None, Some(52 << 10)] {
        engine = engine.with_max_chunk_bytes(chunks);
        for tile in [None, Some(48)] {
            for optimizer in [Optimizer::Adam, Optimizer::Lbfgs { history: 3 }] {
                let what = format!("chunks {chunks:?}, tile {tile:?}, {optimizer:?}");
                let s = (Settings::default().loss(loss.clone()))
                    .tile(tile)
                    .optimizer(optimizer);
                let plan = engine.scale_plan((w, h), &sizes, &s, &job).unwrap();
                assert_eq!(plan.problem.tiling.is_tiled(), tile.is_some(), "{what}");
                let before = engine.context().created_bytes();
                let problem = engine.problem(&content, &styles, &[0.5, 0.5], &s).unwrap();
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
