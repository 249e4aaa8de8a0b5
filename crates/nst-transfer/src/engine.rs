//! The engine: style targets, the optimization loop (one GPU submission per iteration),
//! coarse-to-fine scales, colour preservation, and `score`.

use crate::colour;
use crate::image::{fit_longest, resize, Image};
use crate::measure::{self, Measure};
use crate::objective::{LossConfig, LossValues, Objective, StyleTarget, Term};
use nst_gpu::{Context, GpuError, Record, View, ViewMut};
use nst_kernels::{AdamParams, Kernels, LbfgsParams};
use nst_vgg::{Graph, GraphConfig, LayerId, Pooling, VggError, VggWeights};
use std::fmt;
use std::time::{Duration, Instant};

/// What can stop a run.
#[derive(Debug)]
pub enum TransferError {
    /// Settings that make no sense (named, with the fix).
    Invalid(String),
    /// The graph could not be built (too large, too small, …).
    Vgg(VggError),
    /// A GPU failure.
    Gpu(GpuError),
    /// A loss became NaN or infinite; `last_good` is the last image whose loss was finite.
    NonFinite {
        /// The offending term.
        term: Term,
        /// The iteration at which it was seen.
        iteration: u32,
        /// The image before things went wrong.
        last_good: Box<Image>,
    },
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::Invalid(m) => f.write_str(m),
            TransferError::Vgg(e) => write!(f, "{e}"),
            TransferError::Gpu(e) => write!(f, "{e}"),
            TransferError::NonFinite {
                term, iteration, ..
            } => write!(
                f,
                "the {term} loss became NaN or infinite at iteration {iteration}: the step is too \
                 large for these weights; lower --lr (or the weight of that term) and try again. \
                 The last image with a finite loss was kept"
            ),
        }
    }
}

impl std::error::Error for TransferError {}

impl From<VggError> for TransferError {
    fn from(e: VggError) -> Self {
        TransferError::Vgg(e)
    }
}

impl From<GpuError> for TransferError {
    fn from(e: GpuError) -> Self {
        TransferError::Gpu(e)
    }
}

type Result<T> = std::result::Result<T, TransferError>;

/// Where the optimization starts.
#[derive(Clone, Debug)]
pub enum Init {
    /// The content image.
    Content,
    /// Uniform noise in [0, 1] from the seed.
    Random,
    /// This image (resized to each scale).
    Image(Image),
}

/// How colours are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PreserveColors {
    /// The style's colours.
    #[default]
    None,
    /// Transfer luminance only: the result keeps the content's chroma (YIQ).
    Luminance,
    /// Recolour each style image to the content's colour mean and covariance first.
    Histogram,
}

/// How the image is updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// Adam (PyTorch's), the image clamped to [0, 1] after each step.
    Adam,
    /// L-BFGS without a line search, keeping `history` pairs; the image is clamped to [0, 1]
    /// at the end of each scale only, since clamping between steps would corrupt the pairs.
    Lbfgs {
        /// Pairs kept (each costs two image-sized vectors).
        history: u32,
    },
}

impl Optimizer {
    /// The step size used when none is given: Adam's in pixel units, L-BFGS's step length.
    pub fn default_lr(self) -> f64 {
        match self {
            Optimizer::Adam => crate::defaults::LR,
            Optimizer::Lbfgs { .. } => crate::defaults::LBFGS_LR,
        }
    }
}

/// One style image and its blend weight.
#[derive(Clone, Debug)]
pub struct Style {
    /// The image.
    pub image: Image,
    /// Its weight (the weights are normalized to sum to 1).
    pub weight: f64,
}

/// Everything a run needs besides the images.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest side of the output.
    pub size: u32,
    /// Style images' longest side relative to the output's.
    pub style_scale: f64,
    /// Iterations at each scale.
    pub iterations: u32,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Adam's step size in [0, 1] pixel units, or L-BFGS's step length.
    pub lr: f64,
    /// The loss.
    pub loss: LossConfig,
    /// Pooling kind.
    pub pooling: Pooling,
    /// Starting image.
    pub init: Init,
    /// Seed for random initialization.
    pub seed: u64,
    /// Colour handling.
    pub preserve_colors: PreserveColors,
    /// The longest side of each scale, smallest first; the last is `size`.
    pub scales: Vec<u32>,
    /// Read the losses back every this many iterations (and at each scale's last).
    pub report_every: u32,
    /// Hand the current image to the caller every this many iterations (0: never).
    pub snapshot_every: u32,
}

/// The longest side of each scale of a coarse-to-fine run: `count` sizes growing
/// geometrically from `min_size` to `size`; with `count` unset, one scale up to
/// [`MULTISCALE_ABOVE`] pixels and otherwise steps of about √2 from `min_size`.
pub fn plan_scales(size: u32, min_size: u32, count: Option<u32>) -> Vec<u32> {
    let min_size = min_size.min(size).max(1);
    let count = match count {
        Some(n) => n.max(1),
        None if size <= MULTISCALE_ABOVE => 1,
        None => ((size as f64 / min_size as f64).log2() * 2.0).round() as u32 + 1,
    };
    if count == 1 {
        return vec![size];
    }
    let ratio = (size as f64 / min_size as f64).powf(1.0 / (count - 1) as f64);
    let mut out: Vec<u32> = (0..count)
        .map(|i| (min_size as f64 * ratio.powi(i as i32)).round() as u32)
        .collect();
    *out.last_mut().unwrap() = size;
    out.dedup();
    out
}

/// The most pairs L-BFGS may keep (each is two image-sized vectors).
pub const MAX_LBFGS_HISTORY: u32 = 1000;

/// Outputs above this longest side are made coarse to fine by default.
pub const MULTISCALE_ABOVE: u32 = 700;

/// What the engine tells its caller as it runs.
#[derive(Debug)]
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
    },
    /// Losses were read back after `iteration` (1-based, within the scale).
    Iteration {
        /// Scale index.
        scale: usize,
        /// Iteration within the scale, 1-based: the values are the loss of the image before
        /// that iteration's step.
        iteration: u32,
        /// Iterations in the scale.
        of: u32,
        /// The losses.
        values: &'a LossValues,
        /// Mean wall time per iteration since the last report.
        per_iteration: Duration,
    },
    /// The current image, every `snapshot_every` iterations.
    Snapshot {
        /// Scale index.
        scale: usize,
        /// Iteration within the scale.
        iteration: u32,
        /// The image.
        image: &'a Image,
    },
    /// The loss of the final image of the last scale (what `score` reports for it).
    Final {
        /// The losses.
        values: &'a LossValues,
    },
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
pub struct Outcome {
    /// The output image.
    pub image: Image,
    /// Whether the caller stopped it early.
    pub stopped: bool,
    /// The final image's losses, if the run finished.
    pub values: Option<LossValues>,
    /// The final image's [`Measure`], if the run finished.
    pub measure: Option<Measure>,
}

/// The losses of one image and their gradient.
pub struct Score {
    /// The terms and total.
    pub values: LossValues,
    /// ∂total/∂image over RGB [0, 1] pixels, 3 × height × width.
    pub grad: Vec<f32>,
}

/// The GPU, its kernels and the weights: built once, used for any number of runs.
pub struct Engine {
    ctx: Context,
    k: Kernels,
    weights: VggWeights,
}

impl Engine {
    /// Compiles the kernels and uploads the weights.
    pub fn new(ctx: Context, weights: &nst_weights::Vgg19Weights) -> Result<Engine> {
        let k = Kernels::new(&ctx)?;
        let weights = VggWeights::upload(&ctx, weights)?;
        Ok(Engine { ctx, k, weights })
    }

    /// The GPU context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The uploaded weights.
    pub fn weights(&self) -> &VggWeights {
        &self.weights
    }

    fn graph(&self, h: u32, w: u32, taps: Vec<LayerId>, pooling: Pooling) -> Result<Graph> {
        let config = GraphConfig {
            height: h,
            width: w,
            taps,
            pooling,
            max_chunk_bytes: None,
        };
        Ok(Graph::new(&self.ctx, &self.k, &self.weights, &config)?)
    }

    /// Checks, without allocating, that graphs for an output of `side` (longest side, the
    /// content's aspect) and for the styles at `style_scale` times it fit this device.
    fn check_fits(
        &self,
        content: &Image,
        styles: &[Image],
        side: u32,
        style_scale: f64,
        cfg: &LossConfig,
        pooling: Pooling,
    ) -> Result<()> {
        let plan = |w: u32, h: u32, taps: Vec<LayerId>| {
            let config = GraphConfig {
                height: h,
                width: w,
                taps,
                pooling,
                max_chunk_bytes: None,
            };
            nst_vgg::Plan::new(
                &self.weights.c_out(),
                &config,
                nst_vgg::Limits::of(&self.ctx),
            )
            .map(drop)
        };
        let (w, h) = fit_longest(content.width, content.height, side);
        plan(w, h, cfg.taps())?;
        let style_taps: Vec<LayerId> = cfg.style_layers.iter().map(|l| l.layer).collect();
        if !style_taps.is_empty() {
            for s in styles {
                let (sw, sh) = style_size(s, side, style_scale);
                plan(sw, sh, style_taps.clone())?;
            }
        }
        Ok(())
    }

    /// Records `f` into one compute pass of one command buffer and submits it.
    fn submit(&self, f: impl FnOnce(&mut wgpu::ComputePass<'_>)) -> Result<()> {
        Ok(self.ctx.submit(f)?)
    }

    /// The Gram matrices of `image` at `layers`: the style targets of one style image.
    pub fn grams(
        &self,
        image: &Image,
        layers: &[LayerId],
        pooling: Pooling,
    ) -> Result<Vec<Vec<f32>>> {
        let graph = self.graph(image.height, image.width, layers.to_vec(), pooling)?;
        let probe = self.gram_probe(&graph, layers)?;
        self.probe_forward(&graph, &probe, image)
    }

    /// Buffers and launches that compute the Gram matrices at `layers` (taps of `graph`)
    /// after its forward.
    fn gram_probe(&self, graph: &Graph, layers: &[LayerId]) -> Result<GramProbe> {
        let mut probe = GramProbe {
            outs: Vec::new(),
            dispatches: Vec::new(),
        };
        for &l in layers {
            let act = graph.activation(l).expect("tapped");
            let (c, n) = (act.layout.c, act.layout.h * act.layout.w);
            let g = self.ctx.tensor("gram", c as u64 * c as u64)?;
            for (i, &a) in act.layout.chunks.iter().enumerate() {
                for (j, &b) in act.layout.chunks.iter().enumerate() {
                    probe.dispatches.push(self.k.gram.forward_part(
                        &self.ctx,
                        c,
                        n,
                        (a, act.view(i)),
                        (b, act.view(j)),
                        ViewMut::whole(&g),
                    )?);
                }
            }
            probe.outs.push(g);
        }
        Ok(probe)
    }

    /// Runs `graph` forward on `image` and reads back `probe`'s Gram matrices.
    fn probe_forward(
        &self,
        graph: &Graph,
        probe: &GramProbe,
        image: &Image,
    ) -> Result<Vec<Vec<f32>>> {
        self.ctx.write(graph.input().buffer, 0, &image.data);
        self.submit(|pass| {
            graph.record_forward(pass);
            for d in &probe.dispatches {
                d.record(pass);
            }
        })?;
        probe
            .outs
            .iter()
            .map(|g| Ok(self.ctx.read::<f32>(View::whole(g))?))
            .collect()
    }

    /// The measure of `image` against `content` and the blended `styles` (see
    /// [`crate::measure`]): how much of the photo's style gap it closes and how far it moved
    /// from the content, independent of any loss weight. The content image is resized to
    /// `image`'s size and each style image to `image`'s longest side.
    pub fn measure(&self, content: &Image, styles: &[Style], image: &Image) -> Result<Measure> {
        let blend = normalized_blend(styles)?;
        let (w, h) = (image.width, image.height);
        let style_layers = measure::style_layers();
        let (image_grams, image_content, content_grams, content_content) = {
            let graph = self.graph(h, w, measure::taps(), Pooling::Max)?;
            let probe = self.gram_probe(&graph, &style_layers)?;
            let act = graph.activation(measure::content_layer()).expect("tapped");
            let read_content = || -> Result<Vec<f32>> {
                let mut out = Vec::with_capacity(act.layout.len() as usize);
                for i in 0..act.chunk_count() {
                    out.extend(self.ctx.read::<f32>(act.view(i))?);
                }
                Ok(out)
            };
            let ig = self.probe_forward(&graph, &probe, image)?;
            let ic = read_content()?;
            let cg = self.probe_forward(&graph, &probe, &resize(content, w, h))?;
            let cc = read_content()?;
            (ig, ic, cg, cc)
        };
        let images = scaled_styles(styles.iter().map(|s| &s.image), w.max(h), 1.0);
        let targets = self.style_targets(&images, &style_layers, Pooling::Max)?;
        let blended: Vec<Vec<f64>> = targets.iter().map(|t| t.blended(&blend)).collect();
        Ok(Measure::from_features(
            &image_grams,
            &content_grams,
            &blended,
            &image_content,
            &content_content,
        ))
    }

    /// Each style image's Gram matrices at `layers`.
    fn style_targets(
        &self,
        styles: &[Image],
        layers: &[LayerId],
        pooling: Pooling,
    ) -> Result<Vec<StyleTarget>> {
        let mut targets: Vec<StyleTarget> = layers
            .iter()
            .map(|&layer| StyleTarget {
                layer,
                grams: Vec::new(),
            })
            .collect();
        for s in styles {
            for (t, g) in targets.iter_mut().zip(self.grams(s, layers, pooling)?) {
                t.grams.push(g);
            }
        }
        Ok(targets)
    }

    /// The graph and objective for an output of `h × w`, with the content targets captured.
    fn prepare(
        &self,
        content: &Image,
        styles: &[Image],
        blend: &[f64],
        cfg: &LossConfig,
        pooling: Pooling,
    ) -> Result<(Graph, Objective)> {
        let layers: Vec<LayerId> = cfg.style_layers.iter().map(|l| l.layer).collect();
        let targets = self.style_targets(styles, &layers, pooling)?;
        let graph = self.graph(content.height, content.width, cfg.taps(), pooling)?;
        self.ctx.write(graph.input().buffer, 0, &content.data);
        self.submit(|pass| graph.record_forward(pass))?;
        let content_ms = self.content_mean_squares(&graph, cfg)?;
        let objective = Objective::new(
            &self.ctx,
            &self.k,
            &graph,
            cfg,
            &targets,
            blend,
            &content_ms,
        )?;
        self.ctx.scoped(|| {
            let mut enc = self.ctx.device.create_command_encoder(&Default::default());
            objective.record_capture_content(&graph, &mut enc);
            self.ctx.queue.submit([enc.finish()]);
            Ok(())
        })?;
        Ok((graph, objective))
    }

    /// mean(F_l(c)²) at each content layer of `cfg`, after a forward pass on the content
    /// image (one value per chunk, added here in f64).
    fn content_mean_squares(&self, graph: &Graph, cfg: &LossConfig) -> Result<Vec<f64>> {
        let acts: Vec<&nst_vgg::Tensor> = cfg
            .content_layers
            .iter()
            .map(|l| graph.activation(l.layer).expect("tapped"))
            .collect();
        let slots: usize = acts.iter().map(|a| a.chunk_count()).sum();
        if slots == 0 {
            return Ok(Vec::new());
        }
        let sums = self.ctx.tensor("content sums of squares", slots as u64)?;
        let mut reductions = Vec::new();
        for a in &acts {
            for c in 0..a.chunk_count() {
                let (v, slot) = (a.view(c), reductions.len() as u32);
                let dot = self
                    .k
                    .vector
                    .dot(&self.ctx, v, v, ViewMut::whole(&sums), slot)?;
                reductions.push(dot);
            }
        }
        self.submit(|pass| reductions.iter().for_each(|r| r.record(pass)))?;
        let sums = self.ctx.read::<f32>(View::whole(&sums))?;
        let mut at = 0;
        Ok(acts
            .iter()
            .map(|a| {
                let n = a.chunk_count();
                let total: f64 = sums[at..at + n].iter().map(|&v| v as f64).sum();
                at += n;
                total / a.layout.len() as f64
            })
            .collect())
    }

    /// The losses of `image` and their gradient with respect to its pixels: exactly what
    /// [`Engine::stylize`] minimizes at the scale of `image`. The content image is resized to
    /// `image`'s size and each style image to `style_scale` times its longest side, as
    /// `stylize` does (images already at those sizes are used as they are).
    pub fn score(
        &self,
        content: &Image,
        styles: &[Style],
        image: &Image,
        style_scale: f64,
        cfg: &LossConfig,
        pooling: Pooling,
    ) -> Result<Score> {
        cfg.validate().map_err(TransferError::Invalid)?;
        let (w, h) = (image.width, image.height);
        let content = &resize(content, w, h);
        let style_images = scaled_styles(styles.iter().map(|s| &s.image), w.max(h), style_scale);
        let blend = normalized_blend(styles)?;
        let (graph, objective) = self.prepare(content, &style_images, &blend, cfg, pooling)?;
        self.ctx.write(graph.input().buffer, 0, &image.data);
        self.submit(|pass| {
            graph.record_forward(pass);
            objective.record_forward(pass);
            objective.record_tap_gradients(pass);
            graph.record_backward(pass);
            objective.record_image_gradients(pass);
        })?;
        let values = objective.read(&self.ctx)?;
        let grad = self.ctx.read::<f32>(graph.input_grad())?;
        Ok(Score { values, grad })
    }

    /// Runs style transfer: returns the output image (the current one if the caller
    /// stopped early).
    pub fn stylize(
        &self,
        content: &Image,
        styles: &[Style],
        settings: &Settings,
        on_event: &mut dyn FnMut(Event<'_>) -> Flow,
    ) -> Result<Outcome> {
        settings.validate().map_err(TransferError::Invalid)?;
        let blend = normalized_blend(styles)?;
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
        let largest = settings
            .scales
            .iter()
            .copied()
            .max()
            .unwrap_or(settings.size);
        self.check_fits(
            &content_in,
            &style_in,
            largest,
            settings.style_scale,
            &settings.loss,
            settings.pooling,
        )?;
        let mut current: Option<Image> = None;
        let mut stopped = false;
        let mut final_values = None;
        let count = settings.scales.len();
        for (index, &side) in settings.scales.iter().enumerate() {
            let (w, h) = fit_longest(content_in.width, content_in.height, side);
            let c = resize(&content_in, w, h);
            let styles_here = scaled_styles(style_in.iter(), w.max(h), settings.style_scale);
            if on_event(Event::Scale {
                index,
                count,
                width: w,
                height: h,
            }) == Flow::Stop
            {
                stopped = true;
                break;
            }
            let (graph, objective) =
                self.prepare(&c, &styles_here, &blend, &settings.loss, settings.pooling)?;
            let start = match (&current, &settings.init) {
                (Some(prev), _) => resize(prev, w, h),
                (None, Init::Content) => c.clone(),
                (None, Init::Random) => noise(w, h, settings.seed),
                (None, Init::Image(img)) => match settings.preserve_colors {
                    PreserveColors::Luminance => resize(&grey(img), w, h),
                    _ => resize(img, w, h),
                },
            };
            let last_scale = index + 1 == count;
            let (image, values, was_stopped) = self.optimize(
                &graph, &objective, &start, index, settings, last_scale, on_event,
            )?;
            current = Some(image);
            if was_stopped {
                stopped = true;
                break;
            }
            final_values = values;
        }
        let mut image = current.unwrap_or_else(|| content_in.clone());
        if settings.preserve_colors == PreserveColors::Luminance {
            let c = resize(content, image.width, image.height);
            image = colour::with_luminance(&c, &colour::luminance(&image));
        }
        let measure = match stopped {
            true => None,
            false => Some(self.measure(content, styles, &image)?),
        };
        Ok(Outcome {
            image,
            stopped,
            values: if stopped { None } else { final_values },
            measure,
        })
    }

    /// One scale's optimization: one submission per iteration.
    #[allow(clippy::too_many_arguments)]
    fn optimize(
        &self,
        graph: &Graph,
        objective: &Objective,
        start: &Image,
        scale: usize,
        settings: &Settings,
        last_scale: bool,
        on_event: &mut dyn FnMut(Event<'_>) -> Flow,
    ) -> Result<(Image, Option<LossValues>, bool)> {
        let ctx = &self.ctx;
        let (h, w) = graph.size();
        let n = 3 * h as u64 * w as u64;
        ctx.write(graph.input().buffer, 0, &start.data);
        // `evaluated`: the image a reporting iteration computes its loss on (copied before its
        // step); `good`: the last such image whose loss was finite (the start until then).
        let evaluated = ctx.tensor("evaluated image", n)?;
        let good = ctx.tensor_from("last good image", &start.data)?;
        let clamp = self.k.pixel.clamp(ctx, h, w, graph.input_mut())?;
        let stepper = Stepper::new(self, settings.optimizer, settings.lr, graph)?;
        let iterations = settings.iterations;
        let mut since = Instant::now();
        let mut since_iter = 0;
        for t in 1..=iterations {
            stepper.set_step(ctx, t);
            let report = t % settings.report_every.max(1) == 0 || t == iterations || t == 1;
            self.ctx.scoped(|| {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                if report {
                    enc.copy_buffer_to_buffer(graph.input().buffer, 0, &evaluated, 0, n * 4);
                }
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    graph.record_forward(&mut pass);
                    objective.record_forward(&mut pass);
                    objective.record_tap_gradients(&mut pass);
                    graph.record_backward(&mut pass);
                    objective.record_image_gradients(&mut pass);
                    stepper.record(&mut pass, t);
                    if stepper.clamps_each_step() {
                        clamp.record(&mut pass);
                    }
                }
                ctx.queue.submit([enc.finish()]);
                Ok(())
            })?;
            if report {
                let values = objective.read(ctx)?;
                if let Some(bad) = values.first_non_finite() {
                    let data = ctx.read::<f32>(View::whole(&good))?;
                    return Err(TransferError::NonFinite {
                        term: bad.term,
                        iteration: t,
                        last_good: Box::new(Image::new(w, h, data)),
                    });
                }
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                enc.copy_buffer_to_buffer(&evaluated, 0, &good, 0, n * 4);
                ctx.queue.submit([enc.finish()]);
                let per = since.elapsed() / (t - since_iter).max(1);
                since = Instant::now();
                since_iter = t;
                let flow = on_event(Event::Iteration {
                    scale,
                    iteration: t,
                    of: iterations,
                    values: &values,
                    per_iteration: per,
                });
                if flow == Flow::Stop {
                    let data = ctx.read::<f32>(graph.input())?;
                    return Ok((Image::new(w, h, data), None, true));
                }
            }
            if settings.snapshot_every > 0 && t % settings.snapshot_every == 0 {
                let data = ctx.read::<f32>(graph.input())?;
                let image = Image::new(w, h, data);
                if on_event(Event::Snapshot {
                    scale,
                    iteration: t,
                    image: &image,
                }) == Flow::Stop
                {
                    return Ok((image, None, true));
                }
            }
        }
        if !stepper.clamps_each_step() {
            self.submit(|pass| clamp.record(pass))?;
        }
        let data = ctx.read::<f32>(graph.input())?;
        let image = Image::new(w, h, data);
        let mut values = None;
        if last_scale {
            // The loss of the image returned, as `score` computes it.
            self.submit(|pass| {
                graph.record_forward(pass);
                objective.record_forward(pass);
            })?;
            let v = objective.read(ctx)?;
            on_event(Event::Final { values: &v });
            values = Some(v);
        }
        Ok((image, values, false))
    }
}

/// Gram matrices recorded after a graph's forward.
struct GramProbe {
    outs: Vec<wgpu::Buffer>,
    dispatches: Vec<nst_kernels::GramForward>,
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
    fn new(engine: &Engine, optimizer: Optimizer, lr: f64, graph: &Graph) -> Result<Stepper> {
        let (ctx, k) = (&engine.ctx, &engine.k);
        let n = graph.input().len;
        Ok(match optimizer {
            Optimizer::Adam => {
                let m = ctx.tensor("adam m", n)?;
                let v = ctx.tensor("adam v", n)?;
                let step = k.adam.prepare(
                    ctx,
                    AdamParams::new(lr),
                    graph.input_grad(),
                    graph.input_mut(),
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
                graph.input_mut(),
                graph.input_grad(),
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

/// The timing of `iterations` full iterations (forward, losses, backward, Adam) at one size.
#[derive(Clone, Debug)]
pub struct Bench {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Wall time of each iteration, submission to completion, in milliseconds.
    pub ms: Vec<f64>,
    /// Floating-point operations of the convolutions in one iteration (forward and input
    /// gradient), the bulk of the work.
    pub conv_flops: f64,
    /// Bytes the graph's tensors take.
    pub graph_bytes: u64,
    /// Bytes the weights take.
    pub weight_bytes: u64,
}

impl Bench {
    /// The median time per iteration, ms.
    pub fn median_ms(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let m = v.len() / 2;
        if v.len() % 2 == 1 {
            v[m]
        } else {
            0.5 * (v[m - 1] + v[m])
        }
    }
}

impl Engine {
    /// Times `iterations` iterations of the default loss on noise images of `width × height`
    /// (after one untimed warm-up iteration), waiting for the GPU after each.
    pub fn bench(
        &self,
        width: u32,
        height: u32,
        iterations: u32,
        cfg: &LossConfig,
        pooling: Pooling,
    ) -> Result<Bench> {
        cfg.validate().map_err(TransferError::Invalid)?;
        let content = noise(width, height, 1);
        let style = noise(width, height, 2);
        let (graph, objective) = self.prepare(&content, &[style], &[1.0], cfg, pooling)?;
        let adam = Stepper::new(self, Optimizer::Adam, crate::defaults::LR, &graph)?;
        let iteration = |pass: &mut wgpu::ComputePass<'_>| {
            graph.record_forward(pass);
            objective.record_forward(pass);
            objective.record_tap_gradients(pass);
            graph.record_backward(pass);
            objective.record_image_gradients(pass);
            adam.record(pass, 1);
        };
        self.submit(iteration)?;
        self.ctx.wait()?;
        let mut ms = Vec::with_capacity(iterations as usize);
        for t in 0..iterations {
            adam.set_step(&self.ctx, t + 2);
            let start = Instant::now();
            self.submit(iteration)?;
            self.ctx.wait()?;
            ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let c_out = self.weights.c_out();
        let deepest = graph.plan().deepest;
        let conv_flops = nst_vgg::layers()
            .iter()
            .enumerate()
            .take(deepest.0 + 1)
            .filter(|(_, l)| l.kind == nst_vgg::LayerKind::Conv)
            .map(|(i, l)| {
                let (co, h, w) = nst_vgg::output_shape(LayerId(i), &c_out, height, width);
                let ci = self.weights.convs[l.conv].c_in;
                2.0 * 2.0 * 9.0 * ci as f64 * co as f64 * h as f64 * w as f64
            })
            .sum();
        Ok(Bench {
            width,
            height,
            ms,
            conv_flops,
            graph_bytes: graph.bytes(),
            weight_bytes: self.weights.bytes(),
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

/// Style blend weights normalized to sum to 1, or what is wrong with them (none, negative,
/// not finite, all zero).
pub fn normalized_style_weights(weights: &[f64]) -> std::result::Result<Vec<f64>, String> {
    if weights.is_empty() {
        return Err("no style image is given: pass --style PATH".into());
    }
    if let Some(w) = weights.iter().find(|w| !w.is_finite() || **w < 0.0) {
        return Err(format!(
            "--style-weights must be finite numbers ≥ 0, got {w}"
        ));
    }
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 {
        return Err("--style-weights add up to 0: give at least one a positive weight".into());
    }
    Ok(weights.iter().map(|w| w / sum).collect())
}

fn normalized_blend(styles: &[Style]) -> Result<Vec<f64>> {
    let weights: Vec<f64> = styles.iter().map(|s| s.weight).collect();
    normalized_style_weights(&weights).map_err(TransferError::Invalid)
}

impl Settings {
    /// Checks every setting, naming the flag to change: call it before any work.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let s = self;
        s.loss.validate()?;
        let bad = |m: String| Err(m);
        if s.iterations == 0 {
            return bad("--iterations must be at least 1".into());
        }
        if !(s.lr.is_finite() && s.lr > 0.0 && s.lr <= 1.0) {
            return bad(format!(
                "--lr must lie in (0, 1] (Adam: pixel units; L-BFGS: the step length, 1 by \
                 default), got {}",
                s.lr
            ));
        }
        if let Optimizer::Lbfgs { history } = s.optimizer {
            if !(1..=MAX_LBFGS_HISTORY).contains(&history) {
                return bad(format!(
                    "--lbfgs-history must lie in 1..={MAX_LBFGS_HISTORY}, got {history}"
                ));
            }
        }
        if !(s.style_scale.is_finite() && s.style_scale > 0.0 && s.style_scale <= 8.0) {
            return bad(format!(
                "--style-scale must lie in (0, 8], got {}",
                s.style_scale
            ));
        }
        if s.scales.is_empty() || s.scales.contains(&0) {
            return bad("there must be at least one scale, each of at least 1 pixel".into());
        }
        Ok(())
    }
}

/// The image's luminance in all three channels.
fn grey(img: &Image) -> Image {
    let y = colour::luminance(img);
    let mut data = Vec::with_capacity(y.len() * 3);
    for _ in 0..3 {
        data.extend_from_slice(&y);
    }
    Image::new(img.width, img.height, data)
}

/// Uniform noise in [0, 1].
fn noise(w: u32, h: u32, seed: u64) -> Image {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = (0..3 * w as usize * h as usize)
        .map(|_| rng.random::<f32>())
        .collect();
    Image::new(w, h, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_grow_geometrically_to_the_size() {
        assert_eq!(plan_scales(512, 256, None), vec![512]);
        let s = plan_scales(1024, 256, None);
        assert_eq!(s.first(), Some(&256));
        assert_eq!(s.last(), Some(&1024));
        assert_eq!(s.len(), 5); // 256, 362, 512, 724, 1024
        assert_eq!(plan_scales(512, 128, Some(3)), vec![128, 256, 512]);
        assert_eq!(plan_scales(100, 256, Some(3)), vec![100]);
    }
}
