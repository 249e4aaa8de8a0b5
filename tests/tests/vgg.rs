//! Layer 4: the composed VGG-19 graph. A "VGG-tiny" (VGG-19's topology, channels / 8, random
//! weights) against JAX's activations and input gradient for both pooling kinds, chunked and
//! unchunked; a finite-difference check of the composed backward; and, when the real weights
//! are present, the activations of a small real image against JAX's with the same weights.

use nst_tests::{assert_close, vgg_tiny_weights, with_gpu, Fixture, Gpu};
use nst_vgg::{Graph, GraphConfig, LayerId, Pooling, VggWeights};
use std::sync::OnceLock;

const TINY_TAPS: &[&str] = &[
    "conv1_1", "relu1_1", "relu2_1", "pool2", "relu3_1", "conv4_2", "relu4_2", "relu5_1", "pool5",
];

fn tiny() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture::load("vgg_tiny.safetensors"))
}

fn taps(names: &[&str]) -> Vec<LayerId> {
    names.iter().map(|n| LayerId::parse(n).unwrap()).collect()
}

/// The results of one forward + backward: activations at the taps and the input gradient.
struct Run {
    acts: Vec<Vec<f32>>,
    grad: Vec<f32>,
}

/// Builds the graph, writes `input` and the tap gradients `cot`, records forward and
/// backward into one submission, and reads back.
fn run_graph(
    g: &Gpu, weights: &VggWeights, config: &GraphConfig, input: &[f32], cot: &[Vec<f32>],
) -> (Graph, Run) {
    let graph = Graph::new(&g.ctx, &g.k, weights, config).unwrap();
    g.ctx.write(graph.input().buffer, 0, input);
    for (tap, c) in config.taps.iter().zip(cot) {
        graph.gradient(*tap).unwrap().write(&g.ctx, c).unwrap();
    }
    record_iteration(g, &graph);
    let acts = config
        .taps
        .iter()
        .map(|t| graph.activation(*t).unwrap().read(&g.ctx).unwrap())
        .collect();
    let grad = g.ctx.read(graph.input_grad()).unwrap();
    (graph, Run { acts, grad })
}

fn record_iteration(g: &Gpu, graph: &Graph) {
    g.ctx
        .submit(|pass| {
            graph.record_forward(pass);
            graph.record_backward(pass);
        })
        .unwrap();
    g.ctx.wait().unwrap();
}

/// Compares with a tolerance scaled to the tensor's largest magnitude: a float32 forward may
/// take the other side of a ReLU or max-pool switch for values within rounding of it.
fn assert_close_scaled(what: &str, got: &[f32], want: &[f64], rel: f64) {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert_close(what, got, want, rel * scale, rel);
}

fn tiny_config(pooling: Pooling, max_chunk_bytes: Option<u64>) -> GraphConfig {
    GraphConfig {
        height: 32,
        width: 40,
        taps: taps(TINY_TAPS),
        pooling,
        max_chunk_bytes,
    }
}

fn tiny_case(g: &Gpu, pooling: Pooling, max_chunk_bytes: Option<u64>) -> Run {
    let f = tiny();
    let weights = VggWeights::upload(&g.ctx, &vgg_tiny_weights()).unwrap();
    let config = tiny_config(pooling, max_chunk_bytes);
    let cot: Vec<Vec<f32>> = TINY_TAPS
        .iter()
        .map(|t| f.f32s(&format!("cot.{t}")))
        .collect();
    let (graph, run) = run_graph(g, &weights, &config, &f.f32s("input"), &cot);
    if let Some(limit) = max_chunk_bytes {
        // The point of the limit: conv1_1's output must really be split.
        let chunks = graph
            .layout()
            .output(LayerId::parse("conv1_1").unwrap())
            .unwrap()
            .chunks
            .len();
        assert!(
            chunks > 1,
            "a {limit}-byte chunk limit should split conv1_1"
        );
    }
    let p = match pooling {
        Pooling::Max => "max",
        Pooling::Avg => "avg",
    };
    for (tap, got) in TINY_TAPS.iter().zip(&run.acts) {
        let (want, _) = f.f64s(&format!("{p}.act.{tap}"));
        assert_close_scaled(
            &format!("VGG-tiny {p}-pool {tap} (chunk limit {max_chunk_bytes:?})"),
            got,
            &want,
            1e-5,
        );
    }
    let (want, _) = f.f64s(&format!("{p}.grad_input"));
    assert_close_scaled(
        &format!("VGG-tiny {p}-pool input gradient (chunk limit {max_chunk_bytes:?})"),
        &run.grad,
        &want,
        1e-5,
    );
    run
}

#[test]
fn vgg_tiny_matches_jax_with_max_pooling() {
    with_gpu(|g| {
        tiny_case(g, Pooling::Max, None);
    });
}

#[test]
fn vgg_tiny_matches_jax_with_average_pooling() {
    with_gpu(|g| {
        tiny_case(g, Pooling::Avg, None);
    });
}

/// A 6 KiB chunk limit splits conv1 (5 KiB a channel) into one channel per chunk, block 2
/// into four chunks and block 3 into two: every kernel takes its chunked path. The results
/// match JAX's and the unchunked graph's.
#[test]
fn chunked_graph_matches_unchunked() {
    with_gpu(|g| {
        for pooling in [Pooling::Max, Pooling::Avg] {
            let whole = tiny_case(g, pooling, None);
            let chunked = tiny_case(g, pooling, Some(6 * 1024));
            for ((tap, a), b) in TINY_TAPS.iter().zip(&chunked.acts).zip(&whole.acts) {
                let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
                assert_close_scaled(&format!("chunked vs whole {pooling:?} {tap}"), a, &b, 1e-6);
            }
            let b: Vec<f64> = whole.grad.iter().map(|&v| v as f64).collect();
            assert_close_scaled(
                &format!("chunked vs whole {pooling:?} gradient"),
                &chunked.grad,
                &b,
                1e-6,
            );
        }
    });
}

/// The composed backward against central differences of the composed forward, along random
/// directions: L(x) = Σ_taps Σ cot·A(x), (L(x + εv) − L(x − εv)) / 2ε ≈ ⟨∇L, v⟩.
#[test]
fn graph_gradient_matches_finite_differences() {
    with_gpu(|g| {
        let weights = VggWeights::upload(&g.ctx, &vgg_tiny_weights()).unwrap();
        let names = ["relu1_2", "pool2", "conv3_1", "relu3_1"];
        for pooling in [Pooling::Max, Pooling::Avg] {
            let config = GraphConfig {
                height: 12,
                width: 10,
                taps: taps(&names),
                pooling,
                max_chunk_bytes: None,
            };
            let graph = Graph::new(&g.ctx, &g.k, &weights, &config).unwrap();
            let x: Vec<f32> = nst_tests::random(5, 3 * 12 * 10, 0.2, 0.8)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let cot: Vec<Vec<f32>> = config
                .taps
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let n = graph.layout().output(*t).unwrap().len() as usize;
                    nst_tests::random(10 + i as u64, n, -1.0, 1.0)
                        .iter()
                        .map(|&v| v as f32)
                        .collect()
                })
                .collect();
            for (t, c) in config.taps.iter().zip(&cot) {
                graph.gradient(*t).unwrap().write(&g.ctx, c).unwrap();
            }
            let loss = |x: &[f32]| -> f64 {
                g.ctx.write(graph.input().buffer, 0, x);
                record_iteration(g, &graph);
                config
                    .taps
                    .iter()
                    .zip(&cot)
                    .map(|(t, c)| {
                        let a = graph.activation(*t).unwrap().read(&g.ctx).unwrap();
                        a.iter()
                            .zip(c)
                            .map(|(&a, &c)| a as f64 * c as f64)
                            .sum::<f64>()
                    })
                    .sum()
            };
            let _ = loss(&x);
            let eps = 3e-4f32;
            let grad = g.ctx.read::<f32>(graph.input_grad()).unwrap();
            // Directions along the gradient, straight and mixed with random ones: the signal
            // ⟨∇L, v⟩ is then large against float32 rounding in L. L is piecewise linear
            // (ReLU, pooling), so the central difference is exact unless a switch lies within
            // ε; ε is small enough that few do.
            let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
            let g64: Vec<f64> = grad.iter().map(|&v| v as f64).collect();
            let g_hat: Vec<f64> = g64.iter().map(|v| v / norm(&g64)).collect();
            for seed in 0..3u64 {
                let r = nst_tests::random(100 + seed, x.len(), -1.0, 1.0);
                let mix = if seed == 0 { 0.0 } else { 1.0 / norm(&r) };
                let v: Vec<f32> = g_hat
                    .iter()
                    .zip(&r)
                    .map(|(g, r)| (g + mix * r) as f32)
                    .collect();
                let shifted =
                    |s: f32| -> Vec<f32> { x.iter().zip(&v).map(|(&a, &b)| a + s * b).collect() };
                let numeric = (loss(&shifted(eps)) - loss(&shifted(-eps))) / (2.0 * eps as f64);
                let analytic: f64 = grad
                    .iter()
                    .zip(&v)
                    .map(|(&g, &v)| g as f64 * v as f64)
                    .sum();
                let err = (numeric - analytic).abs() / analytic.abs();
                eprintln!("{pooling:?} direction {seed}: numeric {numeric}, analytic {analytic}, relative error {err:.1e}");
                assert!(
                    err < 2e-3,
                    "{pooling:?}, direction {seed}: finite difference {numeric}, backward {analytic} (relative error {err:.2e})"
                );
            }
        }
    });
}

/// With the real VGG-19 weights: a 32×24 photo's activations at relu1_1 … relu5_1 against
/// JAX's. Skipped when the weights are absent (`nst weights fetch`), except under CI.
#[test]
fn real_weights_match_jax() {
    let Some(real) = nst_tests::real_weights() else {
        return;
    };
    let f = Fixture::load("vgg_real.safetensors");
    with_gpu(|g| {
        let weights = VggWeights::upload(&g.ctx, &real).unwrap();
        let names = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
        let config = GraphConfig {
            height: 24,
            width: 32,
            taps: taps(&names),
            pooling: Pooling::Max,
            max_chunk_bytes: None,
        };
        let cot: Vec<Vec<f32>> = config
            .taps
            .iter()
            .map(|t| vec![0.0; len_of(&config, &weights, *t)])
            .collect();
        let (_, run) = run_graph(g, &weights, &config, &f.f32s("content"), &cot);
        for (name, got) in names.iter().zip(&run.acts) {
            let (want, _) = f.f64s(&format!("act.{name}"));
            assert_close_scaled(&format!("real VGG-19 {name}"), got, &want, 1e-4);
        }
    });
}

fn len_of(config: &GraphConfig, weights: &VggWeights, t: LayerId) -> usize {
    let (c, h, w) = nst_vgg::output_shape(t, &weights.c_out(), config.height, config.width);
    (c * h * w) as usize
}
