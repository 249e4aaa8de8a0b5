//! GPU memory of one job at one size, planned before anything is allocated, and the tiling
//! that keeps it within a budget ([`Settings::max_memory`], [`Settings::tile`]).
//!
//! A plan is the sum of what each part of the job states it creates, beside the code that
//! creates it: the weights, the (tiled) graph ([`TiledGraph::bytes`]), the masked taps, the
//! Gram matrices and their split-K partial sums, the content targets, the loss and the
//! optimizer's state. A test checks the sum against the bytes the GPU context counts.

use crate::error::{Field, Result, TransferError};
use crate::objective::{content_mean_squares_bytes, Guided, Objective};
use crate::optimize::Stepper;
use crate::settings::{Optimizer, Settings};
use crate::tiled_graph::{full_layout, tap_layout, Captures, GramSums, Masks, TiledGraph};
use nst_gpu::human_bytes;
use nst_kernels::{GramChoice, GramTiles, LbfgsRun};
use nst_vgg::tiling::halo_and_scale;
use nst_vgg::{ChunkLayout, GraphConfig, GraphLayout, LayerId, Limits, Tiling, VggError};
use serde::Serialize;

/// Bytes reserved in every plan for what is not storage, besides the uploads' staging copies
/// ([`MemoryPlan::job_bytes`] leaves both out): wgpu's own zero-filled buffer (512 KiB in
/// wgpu-core 30) and a small uniform buffer per launch. On lavapipe a tiled problem of 247
/// launches took 90 KB of uniforms and staging, as the allocator reported it: 1 MiB leaves
/// room for ten times as many launches.
pub const RESERVE_BYTES: u64 = (512 << 10) + (1 << 20);

/// The name of the weights' part of a plan.
const WEIGHTS: &str = "weights";
/// The name of the reserve's part of a plan.
const RESERVE: &str = "reserve (uniforms, upload staging, wgpu's own)";

/// The network, device and kernels a plan is for.
#[derive(Clone, Debug)]
pub struct Target {
    /// Output channels of each convolution.
    pub c_out: Vec<u32>,
    /// Bytes of the weights on the GPU.
    pub weight_bytes: u64,
    /// The adapter's limits.
    pub limits: Limits,
    /// Most workgroups per grid dimension (the Gram forward splits K within it).
    pub max_workgroups_per_dim: u32,
    /// Chunks of at most this many bytes (tests force chunking with it).
    pub max_chunk_bytes: Option<u64>,
    /// The Gram kernels' tiles, which set how much memory their split-K partial sums take.
    pub gram: GramChoice,
}

impl Target {
    /// VGG-19 with the real weights' shapes (f32 weights, all 16 convolutions uploaded), the
    /// built-in Gram tiles and WebGPU's default grid limit: a plan without a GPU.
    pub fn vgg19(limits: Limits) -> Target {
        let layers = &nst_weights::VGG19_LAYERS;
        Target {
            c_out: layers.iter().map(|l| l.c_out as u32).collect(),
            weight_bytes: nst_vgg::vgg19_weight_bytes(),
            limits,
            max_workgroups_per_dim: 65_535,
            max_chunk_bytes: None,
            gram: GramChoice::all(GramTiles::default()),
        }
    }
}

/// What a graph is built for.
#[derive(Clone, Debug, PartialEq)]
pub enum Job {
    /// Optimizing an image against `styles` style images: the problem (graph, targets, loss
    /// and gradient) and the optimizer's state.
    Optimize {
        /// Style images.
        styles: usize,
        /// Whether any style image is masked ([`crate::Style::mask`]): each then has its
        /// own guided Gram matrices.
        guided: bool,
        /// Earlier video frames the temporal loss compares with ([`crate::Temporal`]).
        temporal: usize,
    },
    /// The problem alone: the loss and its gradient for one image (`score`).
    Evaluate {
        /// Style images.
        styles: usize,
        /// Whether any style image is masked.
        guided: bool,
        /// Earlier video frames the temporal loss compares with.
        temporal: usize,
    },
    /// A forward pass that reads activations and Gram matrices back.
    Forward(ForwardJob),
}

/// A forward pass that captures the activations at `capture` and the Gram matrices at
/// `grams` (style targets, the measure).
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardJob {
    /// Layers read back at full size.
    pub capture: Vec<LayerId>,
    /// Layers whose Gram matrices are taken.
    pub grams: Vec<LayerId>,
    /// Whether the Gram matrices are guided by a region of the image
    /// ([`crate::Style::region`]).
    pub region: bool,
}

/// A style image as a scale's plan sees it: its size, and whether its style is taken from a
/// region of it ([`crate::Style::region`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StyleShape {
    /// The width at this scale.
    pub width: u32,
    /// The height at this scale.
    pub height: u32,
    /// Whether it has a region.
    pub region: bool,
}

impl From<(u32, u32)> for StyleShape {
    /// A style image of `(width, height)`, all of it the style.
    fn from((width, height): (u32, u32)) -> StyleShape {
        StyleShape {
            width,
            height,
            region: false,
        }
    }
}

/// One part of a plan: what it is for and the bytes it creates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryPart {
    /// What it holds, e.g. "graph" or "optimizer".
    pub what: &'static str,
    /// Its bytes.
    pub bytes: u64,
}

impl MemoryPart {
    fn new(what: &'static str, bytes: u64) -> Self {
        MemoryPart { what, bytes }
    }
}

/// The memory of one job at one size: the tiling and the bytes it takes.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryPlan {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// The tiles (one when untiled).
    pub tiling: Tiling,
    /// Bytes of the graph's tensors at the window's size.
    pub graph_bytes: u64,
    /// Bytes of everything the job allocates, weights included: the sum of `parts`.
    pub bytes: u64,
    /// What the bytes are for.
    pub parts: Vec<MemoryPart>,
    /// The same untiled, where the adapter's limits allow an untiled graph.
    pub untiled_bytes: Option<u64>,
    /// The budget it was planned for.
    pub budget: Option<u64>,
}

impl MemoryPlan {
    /// Bytes of storage the job itself creates: all but the weights, which the engine holds,
    /// and the reserve for what is not storage.
    pub fn job_bytes(&self) -> u64 {
        let other = self
            .parts
            .iter()
            .filter(|p| [WEIGHTS, RESERVE].contains(&p.what));
        self.bytes - other.map(|p| p.bytes).sum::<u64>()
    }
}

/// The memory plans of one scale of a run: each style image's forward (its style targets),
/// run one after another and freed, then the problem, which is kept.
#[derive(Clone, Debug, Serialize)]
pub struct ScalePlan {
    /// One forward per style image.
    pub styles: Vec<MemoryPlan>,
    /// The problem (and, for [`Job::Optimize`], the optimizer's state).
    pub problem: MemoryPlan,
}

impl ScalePlan {
    /// Bytes of storage building the scale creates, all but the weights: what the GPU
    /// context counts ([`nst_gpu::Context::created_bytes`]).
    pub fn job_bytes(&self) -> u64 {
        let styles: u64 = self.styles.iter().map(MemoryPlan::job_bytes).sum();
        styles + self.problem.job_bytes()
    }
}

/// What `nst layers` shows: VGG-19's graph for an image size, or a run's plan within a
/// memory budget.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LayersPlan {
    /// Every layer to the deepest tap: its shape, whether it is kept, its chunks.
    Graph(nst_vgg::PlanReport),
    /// An optimization run's tiles and memory.
    Run(MemoryPlan),
}

impl std::fmt::Display for LayersPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayersPlan::Graph(g) => g.fmt(f),
            LayersPlan::Run(r) => r.fmt(f),
        }
    }
}

/// Plans VGG-19 with the real weights' shapes for a `width × height` image, without a GPU,
/// for a device whose storage bindings hold at most `max_binding_bytes`: with
/// [`Settings::max_memory`], the tiles and memory of an optimization run with one style
/// image (`settings`' optimizer's state counted); else the graph that taps `taps`, by
/// default the loss's layers.
pub fn plan_vgg19(
    settings: &Settings, (width, height): (u32, u32), taps: Option<Vec<LayerId>>,
    max_binding_bytes: u64,
) -> Result<LayersPlan> {
    if settings.max_memory.is_some() {
        let limits = Limits {
            max_binding_bytes,
            max_buffer_bytes: u64::MAX,
        };
        let job = Job::Optimize {
            styles: 1,
            guided: false,
            temporal: 0,
        };
        let plan = MemoryPlan::new(&Target::vgg19(limits), settings, &job, width, height)?;
        return Ok(LayersPlan::Run(plan));
    }
    let config = GraphConfig {
        height,
        width,
        taps: taps.unwrap_or_else(|| settings.loss.taps()),
        pooling: settings.pooling,
        max_chunk_bytes: None,
    };
    let report = nst_vgg::PlanReport::vgg19(&config, max_binding_bytes)?;
    Ok(LayersPlan::Graph(report))
}

impl std::fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.tiling;
        let budget = self.budget.map_or("no budget".to_string(), |b| {
            format!("budget {}", human_bytes(b))
        });
        let untiled = self
            .untiled_bytes
            .map_or("does not fit the adapter's limits".into(), human_bytes);
        writeln!(f, "size:       {}×{} ({budget})", self.width, self.height)?;
        if t.is_tiled() {
            let (wh, ww) = t.window();
            writeln!(
                f,
                "tiles:      {} windows of {ww}×{wh} (halo {} px, on a {}-px grid)",
                t.tiles.len(),
                t.halo,
                t.align
            )?;
        } else {
            writeln!(f, "tiles:      none (the image is evaluated whole)")?;
        }
        writeln!(
            f,
            "memory:     {} in all (graph {}); untiled {untiled}",
            human_bytes(self.bytes),
            human_bytes(self.graph_bytes)
        )?;
        writeln!(
            f,
            "cost:       {:.2}× the untiled work per iteration",
            t.cost()
        )
    }
}

impl MemoryPlan {
    /// Plans `job` for a `width × height` image under `settings`' budget and tile size: the
    /// untiled graph when it fits, else the tiles that fit with the least work.
    pub fn new(
        target: &Target, settings: &Settings, job: &Job, width: u32, height: u32,
    ) -> Result<MemoryPlan> {
        let taps = job_taps(settings, job);
        let deepest = *taps.iter().max().ok_or(VggError::NoTaps)?;
        let budget = settings.max_memory;
        let untiled = plan_with(target, settings, job, Tiling::whole(height, width));
        let untiled_bytes = untiled.as_ref().ok().map(|p| p.bytes);
        let chosen = match (settings.tile, budget) {
            (Some(side), _) => {
                // A forward job (style targets, the measure) may reach deeper than the
                // optimized loss: its tiles grow to what its deepest layer needs.
                let side = match job {
                    Job::Forward(_) => side.max(Tiling::least_window(deepest)),
                    Job::Optimize { .. } | Job::Evaluate { .. } => side,
                };
                let tiling = Tiling::new(height, width, (side, side), deepest)
                    .map_err(|e| too_small(e, Field::Tile))?;
                plan_with(target, settings, job, tiling)?
            }
            (None, Some(b)) => match untiled {
                Ok(p) if p.bytes <= b => p,
                untiled => {
                    match cheapest_tiles(target, settings, job, (width, height), deepest, b)? {
                        Some(p) => p,
                        // No tiles at all: why the whole image cannot run (too small, a binding
                        // too large) says more than the budget does.
                        None => {
                            return Err(untiled
                                .err()
                                .unwrap_or_else(|| cannot_tile(width, height, b)))
                        }
                    }
                }
            },
            (None, None) => untiled?,
        };
        if let Some(b) = budget {
            if chosen.bytes > b {
                return Err(over_budget(settings, job, &chosen, b));
            }
        }
        Ok(MemoryPlan {
            untiled_bytes,
            budget,
            ..chosen
        })
    }

    /// The graph configuration to build, at the image's size (the window's comes from the
    /// tiling).
    pub fn graph_config(&self, target: &Target, settings: &Settings, job: &Job) -> GraphConfig {
        GraphConfig {
            height: self.height,
            width: self.width,
            taps: job_taps(settings, job),
            pooling: settings.pooling,
            max_chunk_bytes: target.max_chunk_bytes,
        }
    }
}

fn too_small(e: VggError, field: Field) -> TransferError {
    match e {
        VggError::TileTooSmall { .. } => TransferError::invalid(field, e.to_string()),
        e => e.into(),
    }
}

/// The layers a job's graph taps.
fn job_taps(settings: &Settings, job: &Job) -> Vec<LayerId> {
    match job {
        Job::Optimize { .. } | Job::Evaluate { .. } => settings.loss.taps(),
        Job::Forward(ForwardJob { capture, grams, .. }) => {
            let mut t: Vec<LayerId> = capture.iter().chain(grams).copied().collect();
            t.sort();
            t.dedup();
            t
        }
    }
}

/// The tiles within `budget` with the least work per iteration: for each window height, the
/// widest window that fits (memory grows with the window), then the cheapest of those; `None`
/// when the image cannot be tiled at all.
fn cheapest_tiles(
    target: &Target, settings: &Settings, job: &Job, (width, height): (u32, u32), deepest: LayerId,
    budget: u64,
) -> Result<Option<MemoryPlan>> {
    let (_, align) = halo_and_scale(deepest);
    let least = Tiling::least_window(deepest) - align;
    // The window lengths an axis can have: the whole axis, or the axis less a multiple of the
    // grid, down to the shortest that tiles.
    let lengths = |len: u32| -> Vec<u32> {
        let mut v = vec![len];
        v.extend(
            (1..)
                .map(|k| len.saturating_sub(k * align))
                .take_while(|&l| l >= least),
        );
        v
    };
    let plan_at = |wh: u32, ww: u32| -> Option<MemoryPlan> {
        let tiling = Tiling::new(height, width, (wh, ww), deepest).ok()?;
        plan_with(target, settings, job, tiling).ok()
    };
    let (heights, widths) = (lengths(height), lengths(width));
    let mut best: Option<MemoryPlan> = None;
    let mut smallest: Option<MemoryPlan> = None;
    for &wh in &heights {
        // `widths` runs from the widest down: find the first that fits.
        let (mut lo, mut hi) = (0usize, widths.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match plan_at(wh, widths[mid]) {
                Some(p) if p.bytes <= budget => hi = mid,
                _ => lo = mid + 1,
            }
        }
        let Some(p) = widths.get(lo).and_then(|&ww| plan_at(wh, ww)) else {
            if let Some(p) = widths.last().and_then(|&ww| plan_at(wh, ww)) {
                if smallest.as_ref().is_none_or(|s| p.bytes < s.bytes) {
                    smallest = Some(p);
                }
            }
            continue;
        };
        let cheaper = |b: &MemoryPlan| {
            let (c, d) = (p.tiling.cost(), b.tiling.cost());
            c < d || (c == d && p.bytes < b.bytes)
        };
        if best.as_ref().is_none_or(cheaper) {
            best = Some(p);
        }
    }
    match (best, smallest) {
        (Some(p), _) => Ok(Some(p)),
        (None, Some(p)) => Err(over_budget(settings, job, &p, budget)),
        (None, None) => Ok(None),
    }
}

/// The error for an image that no tiling fits within `budget`.
fn cannot_tile(width: u32, height: u32, budget: u64) -> TransferError {
    let m = format!(
        "a {width}×{height} image cannot be tiled within {}: raise it or lower the size",
        human_bytes(budget)
    );
    TransferError::invalid(Field::MaxMemory, m)
}

/// The error for a plan over budget: the optimizer's history when that is what does not fit,
/// else the budget.
fn over_budget(settings: &Settings, job: &Job, plan: &MemoryPlan, budget: u64) -> TransferError {
    let need = human_bytes(plan.bytes);
    let (w, h) = (plan.width, plan.height);
    if let (Optimizer::Lbfgs { history }, Job::Optimize { .. }) = (settings.optimizer, job) {
        let n = 3 * w as u64 * h as u64;
        let pair = LbfgsRun::bytes_for(n, 2) - LbfgsRun::bytes_for(n, 1);
        let without = plan.bytes - history as u64 * pair;
        if without <= budget {
            let fits = (budget - without) / pair;
            return TransferError::invalid(
                Field::LbfgsHistory,
                format!(
                    "L-BFGS's history of {history} pairs takes {} at {w}×{h}, and with it the \
                     run needs {need}, over the memory budget of {}: keep at most {fits} pairs, \
                     or use Adam",
                    human_bytes(history as u64 * pair),
                    human_bytes(budget)
                ),
            );
        }
    }
    let tiles = match plan.tiling.is_tiled() {
        true => format!(
            " in tiles of {}×{}",
            plan.tiling.window().1,
            plan.tiling.window().0
        ),
        false => String::new(),
    };
    TransferError::invalid(
        Field::MaxMemory,
        format!(
            "a {w}×{h} image needs {need}{tiles}, over the budget of {}: raise it or lower the \
             size",
            human_bytes(budget)
        ),
    )
}

/// The plan of `job` over `tiling`: the sum of what each part states it creates.
fn plan_with(
    target: &Target, settings: &Settings, job: &Job, tiling: Tiling,
) -> Result<MemoryPlan> {
    let (height, width) = (tiling.height, tiling.width);
    let (wh, ww) = tiling.window();
    let config = GraphConfig {
        height: wh,
        width: ww,
        taps: job_taps(settings, job),
        pooling: settings.pooling,
        max_chunk_bytes: target.max_chunk_bytes,
    };
    let layout = GraphLayout::new(&target.c_out, &config, target.limits)?;
    let tiled = tiling.is_tiled();
    let chunk_limit = target.limits.chunk_limit(target.max_chunk_bytes);
    let full = |layers: &[LayerId]| -> Result<Vec<ChunkLayout>> {
        let at = |&l| full_layout(&target.c_out, l, (height, width), chunk_limit);
        layers.iter().map(at).collect()
    };
    let device = (
        target.limits.max_binding_bytes,
        target.max_workgroups_per_dim,
    );
    let grams = |layers: &[LayerId]| GramSums::bytes(&layout, layers, tiled, &target.gram, device);
    let mut parts = vec![
        MemoryPart::new(WEIGHTS, target.weight_bytes),
        MemoryPart::new("graph", TiledGraph::bytes(&layout, &tiling)),
    ];
    match job {
        Job::Forward(f) => {
            parts.push(MemoryPart::new(
                "masked taps",
                Masks::bytes(&layout, &f.grams, tiled)?,
            ));
            parts.push(MemoryPart::new("Gram matrices", grams(&f.grams)?));
            if f.region {
                let at = |&l| Guided::bytes(&layout, l, (height, width), tiled);
                let bytes: u64 = f.grams.iter().map(at).sum::<Result<u64>>()?;
                parts.push(MemoryPart::new("region", bytes));
            }
            parts.push(MemoryPart::new(
                "captures",
                Captures::bytes(&full(&f.capture)?),
            ));
        }
        Job::Optimize {
            styles,
            guided,
            temporal,
        }
        | Job::Evaluate {
            styles,
            guided,
            temporal,
        } => {
            let loss = &settings.loss;
            let content = full(&loss.content_layer_ids())?;
            let style = loss.style_layer_ids();
            let read: Vec<LayerId> = loss
                .content_layer_ids()
                .into_iter()
                .chain(style.clone())
                .collect();
            parts.extend([
                MemoryPart::new("content targets", Captures::bytes(&content)),
                MemoryPart::new("content norms", content_mean_squares_bytes(&content)),
                MemoryPart::new("masked taps", Masks::bytes(&layout, &read, tiled)?),
                MemoryPart::new(
                    "Gram matrices",
                    grams(&gram_layers(&style, *styles, *guided))?,
                ),
                MemoryPart::new(
                    "loss",
                    Objective::bytes(
                        &layout,
                        loss,
                        (*styles, *guided),
                        settings.content_mask.is_some(),
                        *temporal,
                        (height, width),
                        tiled,
                    )?,
                ),
            ]);
            if let Job::Optimize { .. } = job {
                let n = 3 * height as u64 * width as u64;
                parts.push(MemoryPart::new(
                    "optimizer",
                    Stepper::bytes(settings.optimizer, n),
                ));
            }
        }
    }
    // wgpu stages every upload until the submission after it ends: the image, and the style
    // targets (each style's and the blended) that the loss uploads when it is built. The
    // allocator counted 4.9 MB of such copies beside a 512×384 problem on lavapipe.
    let mut uploads = nst_gpu::tensor_bytes(3 * height as u64 * width as u64);
    let guide_uploads = |l| Guided::upload_bytes(l, (height, width));
    match job {
        Job::Optimize {
            styles,
            guided,
            temporal,
        }
        | Job::Evaluate {
            styles,
            guided,
            temporal,
        } => {
            for l in settings.loss.style_layer_ids() {
                let c = tap_layout(&layout, l)?.c as u64;
                // Guided: each style's target (no blend) and its guidance over the whole layer.
                let (targets, guides) = match guided {
                    false => (*styles as u64 + 1, 0),
                    true => (*styles as u64, *styles as u64),
                };
                uploads += targets * nst_gpu::tensor_bytes(c * c) + guides * guide_uploads(l);
            }
            // A temporal loss: each earlier frame's weights and weighted target.
            let n = height as u64 * width as u64;
            uploads += *temporal as u64 * (nst_gpu::tensor_bytes(n) + nst_gpu::tensor_bytes(3 * n));
            // A content mask: its weights at each content layer, and the content activations
            // written back weighted.
            if settings.content_mask.is_some() {
                for l in settings.loss.content_layer_ids() {
                    let full = full_layout(&target.c_out, l, (height, width), chunk_limit)?;
                    uploads += guide_uploads(l) + full.bytes();
                }
            }
        }
        Job::Forward(f) if f.region => {
            uploads += f.grams.iter().map(|&l| guide_uploads(l)).sum::<u64>()
        }
        Job::Forward(_) => {}
    }
    parts.push(MemoryPart::new(RESERVE, RESERVE_BYTES + uploads));
    Ok(MemoryPlan {
        width,
        height,
        tiling,
        graph_bytes: layout.bytes,
        bytes: parts.iter().map(|p| p.bytes).sum(),
        parts,
        untiled_bytes: None,
        budget: None,
    })
}

/// The layers of the Gram sums a loss computes: each style layer once, or, guided, once per
/// style image.
fn gram_layers(style: &[LayerId], styles: usize, guided: bool) -> Vec<LayerId> {
    let per = if guided { styles } else { 1 };
    style
        .iter()
        .flat_map(|&l| std::iter::repeat_n(l, per))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAVAPIPE: Limits = Limits {
        max_binding_bytes: 128 << 20,
        max_buffer_bytes: 2 << 30,
    };

    fn adam() -> Settings {
        Settings::default().optimizer(Optimizer::Adam)
    }

    fn assert_field(e: &TransferError, want: Field) {
        let got = match e {
            TransferError::Invalid { field, .. } => Some(*field),
            _ => None,
        };
        assert_eq!(got, Some(want), "{e}");
    }

    #[test]
    fn a_budget_the_untiled_graph_fits_does_not_tile() {
        let t = Target::vgg19(LAVAPIPE);
        let job = Job::Optimize {
            styles: 1,
            guided: false,
            temporal: 0,
        };
        let p = MemoryPlan::new(&t, &adam().max_memory(Some(8 << 30)), &job, 512, 384).unwrap();
        assert!(!p.tiling.is_tiled());
        assert_eq!(Some(p.bytes), p.untiled_bytes);
    }

    #[test]
    fn a_small_budget_tiles_within_it() {
        let t = Target::vgg19(LAVAPIPE);
        let job = Job::Optimize {
            styles: 1,
            guided: false,
            temporal: 0,
        };
        let s = adam().max_memory(Some(1 << 30));
        let p = MemoryPlan::new(&t, &s, &job, 2048, 1536).unwrap();
        assert!(p.tiling.is_tiled(), "{p}");
        assert!(p.bytes <= 1 << 30, "{p}");
        assert!(p.untiled_bytes.unwrap() > 1 << 30);
        // The largest tiles: one grid step larger would not fit.
        let (wh, ww) = p.tiling.window();
        let bigger = adam().tile(Some(wh.max(ww) + 16));
        let q = MemoryPlan::new(&t, &bigger, &job, 2048, 1536).unwrap();
        assert!(
            q.bytes > 1 << 30 || q.tiling.window() == p.tiling.window(),
            "{q}"
        );
    }

    #[test]
    fn a_coarse_to_fine_run_tiles_only_the_scales_that_need_it() {
        let limits = Limits {
            max_binding_bytes: 4 << 30,
            max_buffer_bytes: 4 << 30,
        };
        let t = Target::vgg19(limits);
        let s = adam().size(4096).max_memory(Some(4 << 30));
        let sizes = s.scale_sizes();
        assert!(sizes.len() > 4, "{sizes:?}");
        let tiled: Vec<bool> = sizes
            .iter()
            .map(|&side| {
                let (w, h) = (side, side * 3 / 4);
                let p = MemoryPlan::new(
                    &t,
                    &s,
                    &Job::Optimize {
                        styles: 1,
                        guided: false,
                        temporal: 0,
                    },
                    w,
                    h,
                )
                .unwrap();
                assert!(p.bytes <= 4 << 30, "{p}");
                p.tiling.is_tiled()
            })
            .collect();
        // 256 px to 1024 px fit whole; from about 1448 px on, the scales are tiled.
        assert!(!tiled[0] && tiled[sizes.len() - 1], "{sizes:?}: {tiled:?}");
        let first = tiled.iter().position(|&t| t).unwrap();
        assert!(tiled[first..].iter().all(|&t| t), "{sizes:?}: {tiled:?}");
        assert!(sizes[first] > 1024, "{sizes:?}: {tiled:?}");
    }

    #[test]
    fn lbfgs_history_over_the_budget_names_the_history() {
        let t = Target::vgg19(LAVAPIPE);
        let job = Job::Optimize {
            styles: 1,
            guided: false,
            temporal: 0,
        };
        let s = Settings::default().max_memory(Some(1 << 30));
        let e = MemoryPlan::new(&t, &s, &job, 2048, 1536).unwrap_err();
        assert_field(&e, Field::LbfgsHistory);
        assert!(e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn a_budget_below_the_weights_is_an_error_naming_it() {
        let t = Target::vgg19(LAVAPIPE);
        let job = Job::Optimize {
            styles: 1,
            guided: false,
            temporal: 0,
        };
        let e =
            MemoryPlan::new(&t, &adam().max_memory(Some(50 << 20)), &job, 1024, 768).unwrap_err();
        assert_field(&e, Field::MaxMemory);
    }

    #[test]
    fn an_image_too_small_for_any_tiles_says_so_under_a_budget() {
        let t = Target::vgg19(LAVAPIPE);
        let job = Job::Optimize {
            styles: 1,
            guided: false,
            temporal: 0,
        };
        let e = MemoryPlan::new(&t, &adam().max_memory(Some(1 << 30)), &job, 8, 8).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
    }

    #[test]
    fn a_forced_tile_too_small_names_the_tile() {
        let t = Target::vgg19(LAVAPIPE);
        let job = Job::Optimize {
            styles: 1,
            guided: false,
            temporal: 0,
        };
        let e = MemoryPlan::new(&t, &adam().tile(Some(100)), &job, 512, 512).unwrap_err();
        assert_field(&e, Field::Tile);
        assert!(e.to_string().contains("192"), "{e}");
    }
}
