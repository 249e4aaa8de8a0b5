//! A plan described for people and scripts: `nst layers`.

use crate::error::VggError;
use crate::graph::{GraphConfig, GraphLayout, Limits, Pooling};
use crate::layers::{layers, output_shape, LayerId, LayerKind};
use serde::Serialize;
use std::fmt;

/// Bytes of VGG-19's weights and biases in f32, all 16 convolutions (as the engine uploads
/// them).
pub fn vgg19_weight_bytes() -> u64 {
    nst_weights::VGG19_LAYERS
        .iter()
        .map(|l| 4 * (l.c_out * l.c_in * 9 + l.c_out) as u64)
        .sum()
}

/// One layer of a [`PlanReport`].
#[derive(Clone, Debug, Serialize)]
pub struct LayerRow {
    /// `relu4_2`, …
    pub name: &'static str,
    /// `block4_relu2`, …
    pub keras_name: &'static str,
    /// What it does.
    pub kind: LayerKind,
    /// Channels, height, width of its output.
    pub shape: [u32; 3],
    /// Whether the graph computes it (it is at or before the deepest tap).
    pub built: bool,
    /// Whether a loss reads it.
    pub tapped: bool,
    /// Chunks its output is split into (built layers only).
    pub chunks: Option<usize>,
}

/// Every layer's shape and chunking at one size, and the GPU memory of the graph.
#[derive(Clone, Debug, Serialize)]
pub struct PlanReport {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Pooling kind.
    pub pooling: Pooling,
    /// Tapped layers.
    pub taps: Vec<&'static str>,
    /// The deepest tap.
    pub deepest: &'static str,
    /// The binding limit the chunks are planned for.
    pub max_binding_bytes: u64,
    /// Bytes of the graph's tensors.
    pub graph_bytes: u64,
    /// Bytes of the weights (f32).
    pub weights_bytes: u64,
    /// Every layer.
    pub layers: Vec<LayerRow>,
}

impl PlanReport {
    /// Plans VGG-19 for `config` with chunks for bindings of at most `max_binding_bytes`
    /// (and no limit on buffers), and describes the plan.
    pub fn vgg19(config: &GraphConfig, max_binding_bytes: u64) -> Result<Self, VggError> {
        let layers = &nst_weights::VGG19_LAYERS;
        let c_out: Vec<u32> = layers.iter().map(|l| l.c_out as u32).collect();

        let limits = Limits {
            max_binding_bytes,
            max_buffer_bytes: u64::MAX,
        };
        let plan = GraphLayout::new(&c_out, config, limits)?;
        Ok(Self::new(
            &plan,
            config,
            &c_out,
            vgg19_weight_bytes(),
            max_binding_bytes,
        ))
    }

    /// Describes `plan`, made from `config` for a network whose convolutions output `c_out`
    /// channels and whose weights take `weights_bytes`, with chunks for `max_binding_bytes`.
    pub fn new(
        plan: &GraphLayout, config: &GraphConfig, c_out: &[u32], weights_bytes: u64,
        max_binding_bytes: u64,
    ) -> Self {
        let (w, h) = (config.width, config.height);
        let layers = layers()
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (c, oh, ow) = output_shape(LayerId(i), c_out, h, w);
                let built = plan.output(LayerId(i));
                LayerRow {
                    name: LayerId(i).name(),
                    keras_name: LayerId(i).layer().keras_name.as_str(),
                    kind: l.kind,
                    shape: [c, oh, ow],
                    built: built.is_some(),
                    tapped: plan.is_tap(LayerId(i)),
                    chunks: built.map(|b| b.chunks.len()),
                }
            })
            .collect();
        PlanReport {
            width: w,
            height: h,
            pooling: config.pooling,
            taps: config.taps.iter().map(|t| t.name()).collect(),
            deepest: plan.deepest.name(),
            max_binding_bytes,
            graph_bytes: plan.bytes,
            weights_bytes,
            layers,
        }
    }
}

impl fmt::Display for PlanReport {
    /// A table: one line per layer, then the memory.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pooling = match self.pooling {
            Pooling::Max => "max",
            Pooling::Avg => "average",
        };
        writeln!(
            f,
            "VGG-19 at {}×{}, {pooling} pooling, built to {} (taps: {})",
            self.width,
            self.height,
            self.deepest,
            self.taps.join(" ")
        )?;
        writeln!(
            f,
            "{:<9} {:<14} {:>16}  chunks",
            "layer", "keras name", "C×H×W"
        )?;
        for l in &self.layers {
            let [c, h, w] = l.shape;
            let note = match (l.chunks, l.tapped) {
                (None, _) => "  (not built)".to_string(),
                (Some(n), true) => format!("  {n}  tapped"),
                (Some(n), false) => format!("  {n}"),
            };
            let shape = format!("{c}×{h}×{w}");
            writeln!(f, "{:<9} {:<14} {shape:>16}{note}", l.name, l.keras_name)?;
        }
        writeln!(
            f,
            "GPU memory: graph tensors {}, weights {} (chunks planned for a {} binding limit)",
            nst_gpu::human_bytes(self.graph_bytes),
            nst_gpu::human_bytes(self.weights_bytes),
            nst_gpu::human_bytes(self.max_binding_bytes)
        )
    }
}
