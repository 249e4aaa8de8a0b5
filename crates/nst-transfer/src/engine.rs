//! The engine: style targets, the optimization loop (one GPU submission per iteration),
//! coarse-to-fine scales, colour preservation, `score`, `measure` and `bench`.

use crate::colour;
use crate::error::{Field, Result, TransferError};
use crate::image::{fit_longest, resize, Image};
use crate::loss::{LossValues, Term};
use crate::measure::{self, Measure};
use crate::memory::{Job, MemoryPlan, Target};
use crate::objective::{content_mean_squares, Objective, StyleTarget};
use crate::settings::{normalized_blend, Init, Optimizer, PreserveColors, Settings, Style};
use crate::tiles::{Captures, GramSums, Masks, TiledGraph};
use nst_gpu::{human_bytes, Context, View, ViewMut};
use nst_kernels::{AdamParams, ConvShape, Kernels, LbfgsParams};
use nst_vgg::{Graph, LayerId, Pooling, VggWeights};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
// std's Instant panics in a browser; this one reads the page's clock there.
use web_time::Instant;

/// What the engine tells its caller as it runs.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// A scale begins.
    Scale {
        /// 0-based.
        index: usize,
        /// Number of scales.
        count: usize,
        /// Its size.
        width: u32,
        /// Its size.
        height: u32,
        /// Tiles it is evaluated in (1: whole), as the memory budget needs.
        tiles: usize,
    },
    /// Losses were read back after `iteration` (1-based, within the scale).
    Iteration {
        /// Scale index, 0-based.
        scale: usize,
        /// Iteration within the scale, 1-based: the values are the loss of the image before
        /// that iteration's step.
        iteration: u32,
        /// Iterations in the scale.
        of: u32,
        /// The losses.
        values: &'a LossValues,
        /// Mean wall time per iteration since the last report.
        #[serde(serialize_with = "seconds")]
        per_iteration: Duration,
    },
    /// The current image, every `snapshot_every` iterations.
    Snapshot {
        /// Scale index, 0-based.
        scale: usize,
        /// Iteration within the scale.
        iteration: u32,
        /// The image.
        #[serde(skip)]
        image: &'a Image,
    },
    /// The loss of the final image of the last scale (what `score` reports for it).
    Final {
        /// The losses.
        values: &'a LossValues,
    },
}

impl std::fmt::Display for Event<'_> {
    /// One line for people, as `nst stylize` prints progress.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Scale {
                index,
                count,
                width,
                height,
                tiles,
            } => {
                write!(f, "scale {}/{count}: {width}×{height}", index + 1)?;
                match tiles {
                    1 => Ok(()),
                    n => write!(f, " in {n} tiles"),
                }
            }
            Event::Iteration {
                scale,
                iteration,
                of,
                values,
                per_iteration,
            } => {
                let ms = per_iteration.as_secs_f64() * 1e3;
                let s = scale + 1;
                write!(
                    f,
                    "scale {s} iteration {iteration}/{of}: loss {values} {ms:.0} ms/it"
                )
            }
            Event::Snapshot {
                scale, iteration, ..
            } => write!(f, "scale {} iteration {iteration}: snapshot", scale + 1),
            Event::Final { values } => write!(f, "final loss {values}"),
        }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The caller's answer to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop now and return the current image (Ctrl-C).
    Stop,
}

/// A run's result.
#[derive(Debug)]
pub struct Outcome {
    /// The output image.
    pub image: Image,
    /// Whether the caller stopped it early.
    pub stopped: bool,
    /// The final image's losses, if the run finished.
    pub values: Option<LossValues>,
    /// The final image's [`Measure`], if the run finished.
    pub measure: Option<Measure>,
    /// Scales begun.
    pub scales: usize,
    /// Iterations per scale.
    pub iterations: u32,
}

/// The losses of one image, their gradient, and its [`Measure`]. Serialised (without the
/// gradient) and displayed as `nst score` prints them.
#[derive(Debug, Serialize)]
pub struct Score {
    /// The image's width.
    pub width: u32,
    /// The image's height.
    pub height: u32,
    /// The terms and total.
    #[serde(flatten)]
    pub values: LossValues,
    /// The image's measure against the content and styles.
    #[serde(flatten)]
    pub measure: Measure,
    /// ∂total/∂image over RGB [0, 1] pixels, 3 × height × width.
    #[serde(skip)]
    pub grad: Vec<f32>,
}

impl std::fmt::Display for Score {
    /// One line per term (value × weight = weighted value), the total, then the measure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for t in &self.values.terms {
            let (key, raw, w) = (t.term.key(), t.raw, t.weight);
            writeln!(f, "{key:<24} {raw:>14.6e} × {w:<10.4e} = {:.6e}", raw * w)?;
        }
        let m = &self.measure;
        writeln!(f, "{:<24} {:>14.6e}", "total", self.values.total())?;
        writeln!(f, "{:<24} {:>14.6}", "style distance", m.style_distance)?;
        writeln!(f, "{:<24} {:>14.6}", "content distance", m.content_distance)?;
        writeln!(
            f,
            "{:<24} {:>14.6}",
            "style gap closed",
            m.style_gap_closed()
        )
    }
}

impl Score {
    /// Writes [`Score::grad`] to a `.safetensors` file as the float32 tensor `grad` of shape
    /// 3 × height × width, atomically.
    pub fn write_grad(&self, path: &std::path::Path) -> Result<()> {
        let fail = |reason: String| TransferError::Write {
            path: path.to_owned(),
            reason,
        };
        let ok = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        if !ok {
            return Err(fail("use a .safetensors file name".into()));
        }
        let bytes: Vec<u8> = bytemuck::cast_slice(&self.grad).to_vec();
        let shape = vec![3, self.height as usize, self.width as usize];
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &bytes)
            .map_err(|e| fail(e.to_string()))?;
        let data =
            safetensors::serialize([("grad", view)], None).map_err(|e| fail(e.to_string()))?;
        crate::image::write_atomic(path, |out| out.write_all(&data))
            .map_err(|e: std::io::Error| fail(e.to_string()))
    }
}

/// How [`Engine::open`] finds the weights and the GPU.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The weights file; `None`: looked up ([`nst_weights::locate`]).
    pub weights: Option<PathBuf>,
    /// Download and convert the weights when none are found (with the `fetch` feature; without
    /// it a missing file is an error that says how to get one).
    pub fetch: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            weights: None,
            fetch: true,
        }
    }
}

impl EngineOptions {
    /// Uses this weights file.
    pub fn weights(mut self, path: impl Into<PathBuf>) -> Self {
        self.weights = Some(path.into());
        self
    }

    /// Whether to fetch missing weights.
    pub fn fetch(mut self, fetch: bool) -> Self {
        self.fetch = fetch;
        self
    }
}

/// The graph for one image size and the loss over it: what one iteration evaluates, whole
/// or tile by tile (the same values and gradient either way, up to float32 rounding).
pub struct Problem {
    tg: TiledGraph,
    objective: Objective,
    memory: MemoryPlan,
}

impl Problem {
    /// Records every tile's forward and the loss values.
    pub fn record_value(&self, pass: &mut wgpu::ComputePass<'_>) {
        for t in 0..self.tg.tiles() {
            self.tg.record_forward(t, pass);
            self.objective.record_tile_values(t, pass);
        }
        self.objective.record_values(pass);
    }

    /// Records the loss values and the gradient with respect to the image, in
    /// [`Problem::image_grad`]: the values, then per tile (its forward again when tiled) the
    /// taps' gradients and the backward, then the whole-image terms' gradients.
    pub fn record_value_and_grad(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.record_value(pass);
        self.objective.record_gram_gradients(pass);
        for t in 0..self.tg.tiles() {
            if self.tg.is_tiled() {
                self.tg.record_forward(t, pass);
                self.objective.record_tile_masks(t, pass);
            }
            self.objective.record_tap_gradients(pass);
            self.tg.record_backward(t, pass);
        }
        self.objective.record_image_gradients(pass);
    }

    /// The graph (at the size of one tile's window when tiled).
    pub fn graph(&self) -> &Graph {
        self.tg.graph()
    }

    /// The graph with its tiles.
    pub fn tiled(&self) -> &TiledGraph {
        &self.tg
    }

    /// The memory plan it was built from.
    pub fn memory(&self) -> &MemoryPlan {
        &self.memory
    }

    /// `(height, width)` of the image.
    pub fn size(&self) -> (u32, u32) {
        self.tg.size()
    }

    /// The image being optimized, RGB in [0, 1], `3 × h × w`.
    pub fn image(&self) -> View<'_> {
        self.tg.image()
    }

    /// The gradient with respect to the image.
    pub fn image_grad(&self) -> View<'_> {
        self.tg.image_grad()
    }

    /// Reads the loss values back.
    pub fn values(&self, ctx: &Context) -> Result<LossValues> {
        pollster::block_on(self.values_async(ctx))
    }

    /// [`Problem::values`] without blocking (for a browser).
    pub async fn values_async(&self, ctx: &Context) -> Result<LossValues> {
        self.objective.read(ctx).await
    }
}

/// The GPU, its kernels and the weights: built once, used for any number of runs.
pub struct Engine {
    ctx: Context,
    k: Kernels,
    weights: VggWeights,
    max_chunk_bytes: Option<u64>,
    choice: crate::tuning::Choice,
}

impl Engine {
    /// Finds (or, with [`EngineOptions::fetch`], fetches) the weights, opens the GPU, compiles
    /// the kernels and uploads the weights.
    pub fn open(options: EngineOptions) -> Result<Engine> {
        Self::open_with_progress(options, &mut |_| {})
    }

    /// [`Engine::open`], telling `progress` what a fetch is doing.
    pub fn open_with_progress(
        options: EngineOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Engine> {
        let explicit = options.weights.as_deref();
        #[cfg(feature = "fetch")]
        let path = match options.fetch {
            true => nst_weights::locate_or_fetch(explicit, progress)?,
            false => nst_weights::locate(explicit).into_result()?,
        };
        #[cfg(not(feature = "fetch"))]
        let path = {
            let _ = progress;
            nst_weights::locate(explicit).into_result()?
        };
        let weights = nst_weights::load(&path)?;
        let ctx = Context::new()?;
        let choice = crate::tuning::Choice::load(&ctx);
        Self::with_choice(ctx, &weights, choice)
    }

    /// Compiles the kernels for `ctx`, with the built-in choice of variants, and uploads
    /// `weights`.
    pub fn new(ctx: Context, weights: &nst_weights::Vgg19Weights) -> Result<Engine> {
        let choice = crate::tuning::Choice {
            kernels: nst_kernels::KernelChoice::builtin(&ctx),
            source: crate::tuning::Source::BuiltIn,
            tuning: None,
        };
        Self::with_choice(ctx, weights, choice)
    }

    /// Compiles the kernels for `ctx` with `choice`'s variants and uploads `weights`.
    pub fn with_choice(
        ctx: Context,
        weights: &nst_weights::Vgg19Weights,
        choice: crate::tuning::Choice,
    ) -> Result<Engine> {
        let k = Kernels::with_choice(&ctx, &choice.kernels)?;
        let weights = VggWeights::upload(&ctx, weights)?;
        Ok(Engine {
            ctx,
            k,
            weights,
            max_chunk_bytes: None,
            choice,
        })
    }

    /// The kernel variants in use and where they come from ([`crate::tuning`]).
    pub fn tuning(&self) -> &crate::tuning::Choice {
        &self.choice
    }

    /// Times the kernel variants of every class of launch of a `size × size` iteration on this
    /// adapter (`nst tune`), keeps the winners in the tuning cache, and uses them from now on.
    /// `progress` hears one line per class.
    pub fn tune(
        &mut self,
        size: u32,
        progress: &mut dyn FnMut(&str),
    ) -> Result<crate::tuning::Tuning> {
        if size < 16 {
            return Err(TransferError::invalid(Field::Size, "must be at least 16"));
        }
        let t = crate::tuning::tune(&self.ctx, &self.weights.c_out(), size, progress)?;
        let choice = crate::tuning::Choice::load(&self.ctx);
        self.k = Kernels::with_choice(&self.ctx, &choice.kernels)?;
        self.choice = choice;
        Ok(t)
    }

    /// Splits every activation into chunks of at most `bytes` (whole channels), as a tensor
    /// larger than the device's binding limit is split, so that the chunked paths (the
    /// content mean over chunks, Gram matrices over chunk pairs) run at any size: for tests.
    /// `None`, the default: chunks only where the device's limit requires them.
    pub fn with_max_chunk_bytes(mut self, bytes: Option<u64>) -> Engine {
        self.max_chunk_bytes = bytes;
        self
    }

    /// The GPU context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The uploaded weights.
    pub fn weights(&self) -> &VggWeights {
        &self.weights
    }

    /// The network and device memory plans are made for.
    pub fn target(&self) -> Target {
        Target {
            c_out: self.weights.c_out(),
            weight_bytes: self.weights.bytes(),
            limits: nst_vgg::Limits::of(&self.ctx),
            max_chunk_bytes: self.max_chunk_bytes,
        }
    }

    /// Plans `job` at `w × h` under `settings`' budget and tile size.
    pub fn plan(&self, settings: &Settings, job: &Job, w: u32, h: u32) -> Result<MemoryPlan> {
        MemoryPlan::new(&self.target(), settings, job, w, h)
    }

    /// Builds the (tiled) graph of `plan`.
    fn tiled_graph(&self, plan: &MemoryPlan, settings: &Settings, job: &Job) -> Result<TiledGraph> {
        let config = plan.graph_config(&self.target(), settings, job);
        TiledGraph::new(
            &self.ctx,
            &self.k,
            &self.weights,
            &config,
            plan.tiling.clone(),
        )
    }

    /// Checks, without allocating, that an output of `side` (longest side, the content's
    /// aspect) and the styles at `style_scale` times it fit this device and the budget.
    fn check_fits(&self, content: &Image, styles: &[Image], side: u32, s: &Settings) -> Result<()> {
        let (w, h) = fit_longest(content.width, content.height, side);
        self.plan(
            s,
            &Job::Optimize {
                styles: styles.len(),
            },
            w,
            h,
        )?;
        let grams: Vec<LayerId> = s.loss.style_layers.iter().map(|l| l.layer).collect();
        if !grams.is_empty() {
            let job = Job::Forward {
                capture: Vec::new(),
                grams,
            };
            for img in styles {
                let (sw, sh) = style_size(img, side, s.style_scale);
                self.plan(s, &job, sw, sh)?;
            }
        }
        Ok(())
    }

    /// The Gram matrices of `image` at `layers`: the style targets of one style image.
    pub fn grams(
        &self,
        image: &Image,
        layers: &[LayerId],
        pooling: Pooling,
    ) -> Result<Vec<Vec<f32>>> {
        let settings = Settings::default().pooling(pooling);
        pollster::block_on(self.grams_with(image, layers, &settings))
    }

    /// [`Engine::grams`] with `settings`' pooling, memory budget and tile size.
    async fn grams_with(
        &self,
        image: &Image,
        layers: &[LayerId],
        settings: &Settings,
    ) -> Result<Vec<Vec<f32>>> {
        let job = Job::Forward {
            capture: Vec::new(),
            grams: layers.to_vec(),
        };
        Ok(self.forward(image, &job, settings).await?.grams)
    }

    /// Runs `job`'s forward over `image` tile by tile: its Gram matrices and its full-size
    /// captures, read back.
    async fn forward(&self, image: &Image, job: &Job, settings: &Settings) -> Result<Forward> {
        let Job::Forward { capture, grams } = job else {
            unreachable!("forward jobs only")
        };
        let plan = self.plan(settings, job, image.width, image.height)?;
        let tg = self.tiled_graph(&plan, settings, job)?;
        let (ctx, k) = (&self.ctx, &self.k);
        let mut masks = Masks::new(&tg);
        let sums = GramSums::new(ctx, k, &tg, &mut masks, grams)?;
        let captures = Captures::new(ctx, k, &tg, capture)?;
        self.ctx.write(tg.image().buffer, 0, &image.data);
        // One submission per tile: a long image's work is not one huge command buffer.
        for t in 0..tg.tiles() {
            self.ctx.submit(|pass| {
                tg.record_forward(t, pass);
                masks.record(t, pass);
                sums.record(t, pass);
                captures.record(t, pass);
            })?;
        }
        let mut grams = Vec::new();
        for g in &sums.grams {
            grams.push(ctx.read_async::<f32>(View::whole(g)).await?);
        }
        let mut captured = Vec::new();
        for (_, t) in &captures.tensors {
            captured.push(t.read_async(ctx).await?);
        }
        Ok(Forward { grams, captured })
    }

    /// The measure of `image` against `content` and the blended `styles` (see
    /// [`crate::measure`]): how much of the photo's style gap it closes and how far it moved
    /// from the content, independent of any loss weight. The content image is resized to
    /// `image`'s size and each style image to `image`'s longest side.
    pub fn measure(&self, content: &Image, styles: &[Style], image: &Image) -> Result<Measure> {
        let settings = Settings::default();
        pollster::block_on(self.measure_with(content, styles, image, &settings))
    }

    /// [`Engine::measure`] within `settings`' memory budget and tile size.
    async fn measure_with(
        &self,
        content: &Image,
        styles: &[Style],
        image: &Image,
        settings: &Settings,
    ) -> Result<Measure> {
        let blend = normalized_blend(styles)?;
        let (w, h) = (image.width, image.height);
        let style_layers = measure::style_layers();
        // The measure is defined on max pooling, whatever the run used.
        let s = settings.clone().pooling(Pooling::Max);
        let job = Job::Forward {
            capture: vec![measure::content_layer()],
            grams: style_layers.clone(),
        };
        let of_image = self.forward(image, &job, &s).await?;
        let of_content = self.forward(&resize(content, w, h), &job, &s).await?;
        let images = scaled_styles(styles.iter().map(|s| &s.image), w.max(h), 1.0);
        let targets = self.style_targets(&images, &style_layers, &s).await?;
        let blended: Vec<Vec<f64>> = targets.iter().map(|t| t.blended(&blend)).collect();
        Ok(Measure::from_features(
            &of_image.grams,
            &of_content.grams,
            &blended,
            &of_image.captured[0],
            &of_content.captured[0],
        ))
    }

    /// Each style image's Gram matrices at `layers`.
    async fn style_targets(
        &self,
        styles: &[Image],
        layers: &[LayerId],
        settings: &Settings,
    ) -> Result<Vec<StyleTarget>> {
        let mut targets: Vec<StyleTarget> = layers
            .iter()
            .map(|&layer| StyleTarget {
                layer,
                grams: Vec::new(),
            })
            .collect();
        for s in styles {
            for (t, g) in targets
                .iter_mut()
                .zip(self.grams_with(s, layers, settings).await?)
            {
                t.grams.push(g);
            }
        }
        Ok(targets)
    }

    /// The problem for an output of `content`'s size under `settings` (its loss, pooling,
    /// memory budget and tile size), with the style and content targets captured.
    pub fn problem(
        &self,
        content: &Image,
        styles: &[Image],
        blend: &[f64],
        settings: &Settings,
    ) -> Result<Problem> {
        pollster::block_on(self.problem_async(content, styles, blend, settings))
    }

    /// [`Engine::problem`] without blocking (for a browser).
    pub async fn problem_async(
        &self,
        content: &Image,
        styles: &[Image],
        blend: &[f64],
        settings: &Settings,
    ) -> Result<Problem> {
        let cfg = &settings.loss;
        let layers: Vec<LayerId> = cfg.style_layers.iter().map(|l| l.layer).collect();
        let targets = self.style_targets(styles, &layers, settings).await?;
        let job = Job::Optimize {
            styles: styles.len(),
        };
        let memory = self.plan(settings, &job, content.width, content.height)?;
        let tg = self.tiled_graph(&memory, settings, &job)?;
        let (ctx, k) = (&self.ctx, &self.k);
        let content_layers: Vec<LayerId> = cfg.content_layers.iter().map(|l| l.layer).collect();
        let captures = Captures::new(ctx, k, &tg, &content_layers)?;
        self.ctx.write(tg.image().buffer, 0, &content.data);
        for t in 0..tg.tiles() {
            self.ctx.submit(|pass| {
                tg.record_forward(t, pass);
                captures.record(t, pass);
            })?;
        }
        let content_ms = content_mean_squares(ctx, k, &captures).await?;
        let objective = Objective::new(ctx, k, &tg, cfg, &targets, blend, captures, &content_ms)?;
        Ok(Problem {
            tg,
            objective,
            memory,
        })
    }

    /// The losses of `image`, their gradient with respect to its pixels, and its measure:
    /// exactly what [`Engine::stylize`] minimizes at the scale of `image` with `settings`
    /// (its loss, pooling and style scale). The content image is resized to `image`'s size
    /// and each style image to `style_scale` times its longest side, as `stylize` does.
    pub fn score(
        &self,
        content: &Image,
        styles: &[Style],
        image: &Image,
        settings: &Settings,
    ) -> Result<Score> {
        settings.validate()?;
        let blend = normalized_blend(styles)?;
        let (w, h) = (image.width, image.height);
        let c = resize(content, w, h);
        let longest = w.max(h);
        let style_images = scaled_styles(
            styles.iter().map(|s| &s.image),
            longest,
            settings.style_scale,
        );
        let problem = self.problem(&c, &style_images, &blend, settings)?;
        self.ctx.write(problem.image().buffer, 0, &image.data);
        self.ctx
            .submit(|pass| problem.record_value_and_grad(pass))?;
        let values = problem.values(&self.ctx)?;
        let grad = self.ctx.read::<f32>(problem.image_grad())?;
        drop(problem);
        let measure = pollster::block_on(self.measure_with(content, styles, image, settings))?;
        Ok(Score {
            values,
            grad,
            measure,
            width: w,
            height: h,
        })
    }

    /// Runs style transfer: returns the output image (the current one if the caller
    /// stopped early). `on_event` hears of each scale, each reported iteration and each
    /// snapshot, and may stop the run.
    pub fn stylize(
        &self,
        content: &Image,
        styles: &[Style],
        settings: &Settings,
        on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<Outcome> {
        pollster::block_on(self.stylize_async(content, styles, settings, on_event))
    }

    /// [`Engine::stylize`] without blocking: in a browser, each reported iteration and
    /// snapshot lets the page run (set [`Settings::report_every`] low to keep it lively).
    pub async fn stylize_async(
        &self,
        content: &Image,
        styles: &[Style],
        settings: &Settings,
        mut on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<Outcome> {
        settings.validate()?;
        let blend = normalized_blend(styles)?;
        let init = match &settings.init {
            Init::File(path) => Init::Image(
                crate::image::load(path)
                    .map_err(|source| TransferError::Image {
                        field: Field::Init,
                        source,
                    })?
                    .image,
            ),
            other => other.clone(),
        };
        let (content_in, style_in) = match settings.preserve_colors {
            PreserveColors::None => (
                content.clone(),
                styles.iter().map(|s| s.image.clone()).collect::<Vec<_>>(),
            ),
            PreserveColors::Histogram => (
                content.clone(),
                styles
                    .iter()
                    .map(|s| colour::match_colour(&s.image, content))
                    .collect(),
            ),
            PreserveColors::Luminance => (
                grey(content),
                styles
                    .iter()
                    .map(|s| colour::luminance_only_style(&s.image, content))
                    .collect(),
            ),
        };
        let sizes = settings.scale_sizes();
        let largest = sizes.iter().copied().max().unwrap_or(settings.size);
        self.check_fits(&content_in, &style_in, largest, settings)?;
        let mut current: Option<Image> = None;
        let mut stopped = false;
        let mut final_values = None;
        let count = sizes.len();
        let mut begun = 0;
        for (index, &side) in sizes.iter().enumerate() {
            let (w, h) = fit_longest(content_in.width, content_in.height, side);
            let c = resize(&content_in, w, h);
            let styles_here = scaled_styles(style_in.iter(), w.max(h), settings.style_scale);
            let job = Job::Optimize {
                styles: styles_here.len(),
            };
            let event = Event::Scale {
                index,
                count,
                width: w,
                height: h,
                tiles: self.plan(settings, &job, w, h)?.tiling.tiles.len(),
            };
            if on_event(event) == Flow::Stop {
                stopped = true;
                break;
            }
            begun += 1;
            let problem = self
                .problem_async(&c, &styles_here, &blend, settings)
                .await?;
            let start = match (&current, &init) {
                (Some(prev), _) => resize(prev, w, h),
                (None, Init::Random) => noise(w, h, settings.seed),
                (None, Init::Image(img)) => match settings.preserve_colors {
                    PreserveColors::Luminance => resize(&grey(img), w, h),
                    _ => resize(img, w, h),
                },
                (None, _) => c.clone(),
            };
            let run = ScaleRun {
                problem: &problem,
                index,
                last: index + 1 == count,
            };
            let done = self.optimize(&run, &start, settings, &mut on_event).await?;
            current = Some(done.image);
            if done.stopped {
                stopped = true;
                break;
            }
            final_values = done.values;
        }
        let mut image = current.unwrap_or_else(|| content_in.clone());
        if settings.preserve_colors == PreserveColors::Luminance {
            let c = resize(content, image.width, image.height);
            image = colour::with_luminance(&c, &colour::luminance(&image));
        }
        let measure = match stopped {
            true => None,
            false => Some(self.measure_with(content, styles, &image, settings).await?),
        };
        Ok(Outcome {
            image,
            stopped,
            values: if stopped { None } else { final_values },
            measure,
            scales: begun,
            iterations: settings.iterations,
        })
    }

    /// One scale's optimization: one submission per iteration.
    async fn optimize(
        &self,
        run: &ScaleRun<'_>,
        start: &Image,
        settings: &Settings,
        on_event: &mut impl FnMut(Event<'_>) -> Flow,
    ) -> Result<ScaleDone> {
        let ctx = &self.ctx;
        let tg = &run.problem.tg;
        let (h, w) = tg.size();
        ctx.write(tg.image().buffer, 0, &start.data);
        // The last image whose loss was finite (the start until then), kept on the CPU: a
        // reporting iteration reads its image back once its values prove finite, so no
        // image-sized GPU buffer is spent on it.
        let mut good = start.data.clone();
        let clamp = self.k.pixel.clamp(ctx, h, w, tg.image_mut())?;
        let stepper = Stepper::new(self, settings.optimizer, settings.step_size(), tg)?;
        let read_image = || async {
            let data = ctx.read_async::<f32>(tg.image()).await?;
            Ok::<Image, TransferError>(Image::from_parts(w, h, data))
        };
        let last_good = |good: Vec<f32>, term: Term, iteration: u32| -> Result<ScaleDone> {
            Err(TransferError::NonFinite {
                term,
                iteration,
                last_good: Box::new(Image::from_parts(w, h, good)),
            })
        };
        let stopped = |image: Image| ScaleDone {
            image,
            values: None,
            stopped: true,
        };
        let step = |pass: &mut wgpu::ComputePass<'_>, t: u32| {
            stepper.record(pass, t);
            if stepper.clamps_each_step() {
                clamp.record(pass);
            }
        };
        let iterations = settings.iterations;
        let mut since = Instant::now();
        let mut since_iter = 0;
        for t in 1..=iterations {
            stepper.set_step(ctx, t);
            let report = t % settings.report_every.max(1) == 0 || t == iterations || t == 1;
            if !report {
                ctx.submit(|pass| {
                    run.problem.record_value_and_grad(pass);
                    step(pass, t);
                })?;
            } else {
                // The values first, then (once they prove finite) the step.
                ctx.submit(|pass| run.problem.record_value_and_grad(pass))?;
                let values = run.problem.values_async(ctx).await?;
                if let Some(bad) = values.first_non_finite() {
                    return last_good(good, bad.term, t);
                }
                good = ctx.read_async::<f32>(tg.image()).await?;
                ctx.submit(|pass| step(pass, t))?;
                let per = since.elapsed() / (t - since_iter).max(1);
                since = Instant::now();
                since_iter = t;
                let flow = on_event(Event::Iteration {
                    scale: run.index,
                    iteration: t,
                    of: iterations,
                    values: &values,
                    per_iteration: per,
                });
                if flow == Flow::Stop {
                    return Ok(stopped(read_image().await?));
                }
            }
            if settings.snapshot_every > 0 && t % settings.snapshot_every == 0 {
                let image = read_image().await?;
                let event = Event::Snapshot {
                    scale: run.index,
                    iteration: t,
                    image: &image,
                };
                if on_event(event) == Flow::Stop {
                    return Ok(stopped(image));
                }
            }
        }
        if !stepper.clamps_each_step() {
            self.ctx.submit(|pass| clamp.record(pass))?;
        }
        // The loss of the image returned, as `score` computes it: the last step may have
        // made it (or its pixels, which clamping need not clean: lavapipe's makes NaN 0) NaN.
        self.ctx.submit(|pass| run.problem.record_value(pass))?;
        let values = run.problem.values_async(ctx).await?;
        if let Some(bad) = values.first_non_finite() {
            return last_good(good, bad.term, iterations);
        }
        let image = read_image().await?;
        let mut kept = None;
        if run.last {
            on_event(Event::Final { values: &values });
            kept = Some(values);
        }
        Ok(ScaleDone {
            image,
            values: kept,
            stopped: false,
        })
    }
}

/// One scale of a run, as [`Engine::optimize`] needs it.
struct ScaleRun<'a> {
    problem: &'a Problem,
    index: usize,
    last: bool,
}

/// What one scale's optimization ends with.
struct ScaleDone {
    image: Image,
    /// The final image's losses (on the last scale).
    values: Option<LossValues>,
    stopped: bool,
}

/// What a forward job read back: Gram matrices (`c × c` each) and full-size captures.
struct Forward {
    grams: Vec<Vec<f32>>,
    captured: Vec<Vec<f32>>,
}

/// The update step of one scale.
enum Stepper {
    Adam {
        step: nst_kernels::AdamStep,
        /// Its moment buffers, kept with it.
        _moments: [wgpu::Buffer; 2],
    },
    Lbfgs(Box<nst_kernels::LbfgsRun>),
}

impl Stepper {
    fn new(engine: &Engine, optimizer: Optimizer, lr: f64, tg: &TiledGraph) -> Result<Stepper> {
        let (ctx, k) = (&engine.ctx, &engine.k);
        let n = tg.image().len;
        Ok(match optimizer {
            Optimizer::Adam => {
                let m = ctx.tensor("adam m", n)?;
                let v = ctx.tensor("adam v", n)?;
                let step = k.adam.prepare(
                    ctx,
                    AdamParams::new(lr),
                    tg.image_grad(),
                    tg.image_mut(),
                    ViewMut::whole(&m),
                    ViewMut::whole(&v),
                )?;
                Stepper::Adam {
                    step,
                    _moments: [m, v],
                }
            }
            Optimizer::Lbfgs { history } => Stepper::Lbfgs(Box::new(k.lbfgs.prepare(
                ctx,
                &k.vector,
                LbfgsParams { history, lr },
                tg.image_mut(),
                tg.image_grad(),
            )?)),
        })
    }

    /// Before recording iteration `t`.
    fn set_step(&self, ctx: &Context, t: u32) {
        if let Stepper::Adam { step, .. } = self {
            step.set_step(ctx, t);
        }
    }

    fn record(&self, pass: &mut wgpu::ComputePass<'_>, t: u32) {
        match self {
            Stepper::Adam { step, .. } => nst_gpu::Record::record(step, pass),
            Stepper::Lbfgs(run) => run.record(pass, t),
        }
    }

    fn clamps_each_step(&self) -> bool {
        matches!(self, Stepper::Adam { .. })
    }
}

/// The timing of full iterations (forward, losses, backward, Adam) at one size. Serialised
/// and displayed as `nst bench` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Bench {
    /// The adapter's name.
    pub adapter: String,
    /// Its backend.
    pub backend: String,
    /// Its driver.
    pub driver: String,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Untimed iterations before the timed ones.
    pub warmup: u32,
    /// What `ms` measures: `"GPU timestamps"` (the pass of each iteration, on the GPU's clock)
    /// where the adapter has them, else `"wall clock"` (submission to completion).
    pub timer: String,
    /// Time of each iteration by `timer`, in milliseconds.
    pub ms: Vec<f64>,
    /// Wall time of each iteration, submission to completion, in milliseconds.
    pub wall_ms: Vec<f64>,
    /// Floating-point operations of the convolutions in one iteration (forward and input
    /// gradient), the bulk of the work.
    pub conv_flops: f64,
    /// Bytes the graph's tensors take (planned; a window's graph when tiled).
    pub graph_bytes: u64,
    /// Bytes of every buffer the iteration allocates, weights included (planned).
    pub planned_bytes: u64,
    /// Tiles the image is evaluated in (1: untiled).
    pub tiles: usize,
    /// `(height, width)` of each tile's window (the image's when untiled).
    pub window: (u32, u32),
    /// The work of an iteration relative to the untiled graph's (1 untiled).
    pub cost: f64,
    /// Bytes the weights take.
    pub weight_bytes: u64,
    /// GPU memory the device's allocator held at its peak (sampled after building the
    /// problem and after the iterations), where the backend reports it: allocated and reserved
    /// bytes.
    pub gpu_memory: Option<GpuMemory>,
    /// The median of `ms`.
    pub median_ms: f64,
    /// Convolution throughput at the median time, GFLOP/s.
    pub conv_gflops: f64,
    /// GPU time per entry point in one more iteration, timestamped after every launch (most
    /// first); empty without timestamps.
    pub kernels: Vec<KernelTime>,
    /// Where the kernel variants come from: `"tuned"` (nst tune's cache) or `"built-in"`.
    pub variants: String,
}

/// GPU memory held by the device's allocator.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GpuMemory {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in the memory blocks holding them.
    pub reserved: u64,
}

/// One entry point's share of an iteration.
#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    /// The WGSL entry point.
    pub entry: String,
    /// Its launches in one iteration.
    pub launches: u32,
    /// Their GPU time, ms.
    pub ms: f64,
}

impl std::fmt::Display for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (median, n) = (self.median_ms, self.ms.len());
        writeln!(
            f,
            "adapter:    {} ({}, driver {})",
            self.adapter, self.backend, self.driver
        )?;
        writeln!(
            f,
            "size:       {}×{}, {n} iterations after {} warm-up; kernels {}",
            self.width, self.height, self.warmup, self.variants
        )?;
        writeln!(
            f,
            "median:     {median:.1} ms per iteration by {} (forward, losses, backward, Adam); \
             wall clock {:.1} ms",
            self.timer,
            median_of(&self.wall_ms)
        )?;
        let per = self.conv_flops / 1e9;
        let rate = self.conv_gflops;
        writeln!(
            f,
            "throughput: {rate:.1} GFLOP/s in convolutions ({per:.1} GFLOP per iteration)"
        )?;
        if self.tiles > 1 {
            let (wh, ww) = self.window;
            writeln!(
                f,
                "tiles:      {} windows of {ww}×{wh}: {:.2}× the untiled work",
                self.tiles, self.cost
            )?;
        }
        let (p, g, w) = (
            human_bytes(self.planned_bytes),
            human_bytes(self.graph_bytes),
            human_bytes(self.weight_bytes),
        );
        match self.gpu_memory {
            Some(m) => writeln!(
                f,
                "memory:     planned {p} (graph {g}, weights {w}); GPU peak {} allocated \
                 ({} reserved)",
                human_bytes(m.allocated),
                human_bytes(m.reserved)
            )?,
            None => writeln!(
                f,
                "memory:     planned {p} (graph {g}, weights {w}); GPU peak not reported by \
                 this backend"
            )?,
        }
        let total: f64 = self.kernels.iter().map(|k| k.ms).sum();
        if total > 0.0 {
            writeln!(
                f,
                "kernels:    GPU time of one iteration by entry point ({total:.1} ms)"
            )?;
            for k in self.kernels.iter().take(8) {
                writeln!(
                    f,
                    "  {:<32} {:>4} launches {:>10.2} ms {:>5.1}%",
                    k.entry,
                    k.launches,
                    k.ms,
                    100.0 * k.ms / total
                )?;
            }
        }
        Ok(())
    }
}

/// The median of `v` (NaN when empty).
fn median_of(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

impl Engine {
    /// Times `iterations` iterations of `settings`' loss (Adam steps) on noise images of
    /// `width × height` (after `warmup` untimed ones), waiting for the GPU after each, by GPU
    /// timestamps where the adapter has them; then, untiled, times each kernel in one more.
    pub fn bench(
        &self,
        width: u32,
        height: u32,
        warmup: u32,
        iterations: u32,
        settings: &Settings,
    ) -> Result<Bench> {
        settings.validate()?;
        if iterations == 0 {
            return Err(TransferError::invalid(
                Field::Iterations,
                "must be at least 1",
            ));
        }
        let content = noise(width, height, 1);
        let style = noise(width, height, 2);
        // Its iterations are Adam steps, whatever optimizer `settings` names.
        let settings = &settings.clone().optimizer(Optimizer::Adam);
        let problem = self.problem(&content, &[style], &[1.0], settings)?;
        let adam = Stepper::new(self, Optimizer::Adam, crate::defaults::LR, &problem.tg)?;
        let iteration = |pass: &mut wgpu::ComputePass<'_>| {
            problem.record_value_and_grad(pass);
            adam.record(pass, 1);
        };
        let mut memory = self.gpu_memory();
        for _ in 0..warmup {
            self.ctx.submit(iteration)?;
            self.ctx.wait()?;
        }
        let timer = nst_gpu::GpuTimer::new(&self.ctx, 1);
        let (mut ms, mut wall_ms) = (Vec::new(), Vec::new());
        for t in 0..iterations {
            adam.set_step(&self.ctx, t + 2);
            let start = Instant::now();
            self.ctx.submit_timed(timer.as_ref(), iteration)?;
            self.ctx.wait()?;
            let wall = start.elapsed().as_secs_f64() * 1e3;
            wall_ms.push(wall);
            ms.push(match &timer {
                Some(timer) => timer.read_ms(&self.ctx, 1)?[0],
                None => wall,
            });
        }
        adam.set_step(&self.ctx, iterations + 2);
        // A tiled iteration repeats the graph's launches for every tile: not profiled.
        let profile = match problem.tg.is_tiled() {
            false => nst_gpu::profile(&self.ctx, iteration)?,
            true => None,
        };
        let mut kernels: Vec<KernelTime> = profile
            .unwrap_or_default()
            .into_iter()
            .map(|(entry, launches, ms)| KernelTime {
                entry: entry.into(),
                launches,
                ms,
            })
            .collect();
        kernels.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        if let (Some(m), Some(now)) = (&mut memory, self.gpu_memory()) {
            m.allocated = m.allocated.max(now.allocated);
            m.reserved = m.reserved.max(now.reserved);
        }
        let c_out = self.weights.c_out();
        let deepest = problem.graph().plan().deepest;
        // Each convolution runs forward and backward (its input gradient) once.
        let conv_flops = LayerId::all()
            .take_while(|&id| id <= deepest)
            .filter(|id| id.layer().kind == nst_vgg::LayerKind::Conv)
            .map(|id| {
                let (c_out, h, w) = nst_vgg::output_shape(id, &c_out, height, width);
                let c_in = self.weights.convs[id.layer().conv].c_in;
                2.0 * ConvShape { c_in, c_out, h, w }.flops()
            })
            .sum();
        let summary = &self.ctx.summary;
        let median_ms = median_of(&ms);
        Ok(Bench {
            adapter: summary.name.clone(),
            backend: summary.backend.clone(),
            driver: summary.driver.clone(),
            width,
            height,
            warmup,
            timer: match timer {
                Some(_) => "GPU timestamps",
                None => "wall clock",
            }
            .into(),
            ms,
            wall_ms,
            conv_flops,
            graph_bytes: problem.graph().bytes(),
            planned_bytes: problem.memory.bytes,
            tiles: problem.tg.tiles(),
            window: problem.tg.tiling().window(),
            cost: problem.tg.tiling().cost(),
            weight_bytes: self.weights.bytes(),
            gpu_memory: memory,
            median_ms,
            conv_gflops: conv_flops / (median_ms * 1e-3) / 1e9,
            kernels,
            variants: match self.choice.source {
                crate::tuning::Source::BuiltIn => "built-in (not tuned)",
                crate::tuning::Source::Cached(_) => "tuned (nst tune)",
            }
            .into(),
        })
    }

    /// What the device's allocator holds now, where the backend reports it.
    fn gpu_memory(&self) -> Option<GpuMemory> {
        self.ctx
            .device
            .generate_allocator_report()
            .map(|r| GpuMemory {
                allocated: r.total_allocated_bytes,
                reserved: r.total_reserved_bytes,
            })
    }
}

/// The size of a style image whose longest side is `style_scale` times `longest`.
fn style_size(s: &Image, longest: u32, style_scale: f64) -> (u32, u32) {
    let long = (longest as f64 * style_scale).round().max(1.0) as u32;
    fit_longest(s.width, s.height, long)
}

/// Style images resized by [`style_size`].
fn scaled_styles<'a>(
    styles: impl Iterator<Item = &'a Image>,
    longest: u32,
    style_scale: f64,
) -> Vec<Image> {
    styles
        .map(|s| {
            let (sw, sh) = style_size(s, longest, style_scale);
            resize(s, sw, sh)
        })
        .collect()
}

/// The image's luminance in all three channels.
fn grey(img: &Image) -> Image {
    let y = colour::luminance(img);
    let mut data = Vec::with_capacity(y.len() * 3);
    for _ in 0..3 {
        data.extend_from_slice(&y);
    }
    Image::from_parts(img.width, img.height, data)
}

/// Uniform noise in [0, 1].
fn noise(w: u32, h: u32, seed: u64) -> Image {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = (0..3 * w as usize * h as usize)
        .map(|_| rng.random::<f32>())
        .collect();
    Image::from_parts(w, h, data)
}
