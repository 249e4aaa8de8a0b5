//! The engine: the GPU, its kernels and the weights, built once; style targets, forward
//! jobs, `score` and `measure`. The optimization loop is in [`crate::optimize`], the
//! problem one iteration evaluates in [`crate::problem`], `bench` in [`crate::bench`].

use crate::error::{Field, Result, TransferError};
use crate::events::Score;
use crate::guide::Mask;
use crate::image::{fit_longest, resize, Image};
use crate::measure::{self, Measure};
use crate::memory::{ForwardJob, Job, MemoryPlan, ScalePlan, StyleShape, Target};
use crate::objective::Guided;
use crate::objective::StyleTarget;
use crate::settings::{normalized_blend, Settings, Style};
use crate::tiled_graph::{Captures, GramSums, Masks, TiledGraph};
use nst_gpu::{Context, View};
use nst_kernels::Kernels;
use nst_vgg::{LayerId, Pooling, VggWeights};
use std::path::PathBuf;

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

/// The GPU, its kernels and the weights: built once, used for any number of runs.
pub struct Engine {
    pub(crate) ctx: Context,
    pub(crate) k: Kernels,
    pub(crate) weights: VggWeights,
    max_chunk_bytes: Option<u64>,
    pub(crate) choice: crate::tuning::Choice,
}

impl Engine {
    /// Finds (or, with [`EngineOptions::fetch`], fetches) the weights, opens the GPU, compiles
    /// the kernels and uploads the weights.
    pub fn open(options: EngineOptions) -> Result<Engine> {
        Self::open_with_progress(options, &mut |_| {})
    }

    /// [`Engine::open`], telling `progress` what a fetch is doing.
    pub fn open_with_progress(
        options: EngineOptions, progress: &mut dyn FnMut(&str),
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
        let choice = crate::tuning::Choice::builtin(&ctx);
        Self::with_choice(ctx, weights, choice)
    }

    /// Compiles the kernels for `ctx` with `choice`'s variants and uploads `weights`.
    pub fn with_choice(
        ctx: Context, weights: &nst_weights::Vgg19Weights, choice: crate::tuning::Choice,
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
        &mut self, size: u32, progress: &mut dyn FnMut(&str),
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

    /// [`Engine::tune`] without blocking and without the cache file (a browser tunes this
    /// way): times the variants, uses the winners from now on and returns them, for the caller
    /// to keep and give back later ([`Engine::use_tuning`]).
    pub async fn tune_async(
        &mut self, size: u32, progress: &mut dyn FnMut(&str),
    ) -> Result<crate::tuning::Tuning> {
        if size < 16 {
            return Err(TransferError::invalid(Field::Size, "must be at least 16"));
        }
        let c_out = self.weights.c_out();
        let t = crate::tuning::measure(&self.ctx, &c_out, size, progress).await?;
        self.use_tuning(t.clone())?;
        Ok(t)
    }

    /// Uses the winners of `tuning`, kept from an earlier [`Engine::tune_async`] on this
    /// adapter. Returns false, and keeps the variants in use, when it was timed on another
    /// adapter, driver or nst version.
    pub fn use_tuning(&mut self, tuning: crate::tuning::Tuning) -> Result<bool> {
        let Some(choice) = crate::tuning::Choice::given(&self.ctx, tuning) else {
            return Ok(false);
        };
        self.k = Kernels::with_choice(&self.ctx, &choice.kernels)?;
        self.choice = choice;
        Ok(true)
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

    /// The network, device and kernels memory plans are made for.
    pub fn target(&self) -> Target {
        Target {
            c_out: self.weights.c_out(),
            weight_bytes: self.weights.bytes(),
            limits: nst_vgg::Limits::of(&self.ctx),
            max_workgroups_per_dim: self.ctx.max_workgroups_per_dim,
            max_chunk_bytes: self.max_chunk_bytes,
            gram: self.choice.kernels.gram.clone(),
        }
    }

    /// Plans `job` at `w × h` under `settings`' budget and tile size.
    pub fn memory_plan(
        &self, settings: &Settings, job: &Job, w: u32, h: u32,
    ) -> Result<MemoryPlan> {
        MemoryPlan::new(&self.target(), settings, job, w, h)
    }

    /// Plans one scale of `job` (an optimization or an evaluation) for an output of
    /// `width × height` and style images of `styles`' shapes: each style image's forward,
    /// then the problem. Nothing is allocated.
    pub fn scale_plan(
        &self, (width, height): (u32, u32), styles: &[StyleShape], settings: &Settings, job: &Job,
    ) -> Result<ScalePlan> {
        let problem = self.memory_plan(settings, job, width, height)?;
        let styles = styles
            .iter()
            .map(|s| {
                let forward = Job::Forward(target_job(&settings.loss.style_layer_ids(), s.region));
                self.memory_plan(settings, &forward, s.width, s.height)
            })
            .collect::<Result<_>>()?;
        Ok(ScalePlan { styles, problem })
    }

    /// Builds the (tiled) graph of `plan`.
    pub(crate) fn tiled_graph(
        &self, plan: &MemoryPlan, settings: &Settings, job: &Job,
    ) -> Result<TiledGraph> {
        let config = plan.graph_config(&self.target(), settings, job);
        let (ctx, k, w) = (&self.ctx, &self.k, &self.weights);
        TiledGraph::new(ctx, k, w, &config, plan.tiling.clone())
    }

    /// The Gram matrices of `image` at `layers`: the style targets of one style image.
    pub fn grams(
        &self, image: &Image, layers: &[LayerId], pooling: Pooling,
    ) -> Result<Vec<Vec<f32>>> {
        let settings = Settings::default().pooling(pooling);
        let job = ForwardJob {
            capture: Vec::new(),
            grams: layers.to_vec(),
            region: false,
        };
        let plan = self.forward_plan(&job, image, &settings)?;
        Ok(pollster::block_on(self.forward(image, &job, None, &plan, &settings))?.grams)
    }

    /// The plan of `job` over `image`.
    fn forward_plan(&self, job: &ForwardJob, image: &Image, s: &Settings) -> Result<MemoryPlan> {
        let (w, h) = (image.width, image.height);
        self.memory_plan(s, &Job::Forward(job.clone()), w, h)
    }

    /// Runs `job`'s forward over `image` tile by tile, as `plan` says: its Gram matrices
    /// (guided by `region`, at the image's size, when `job` has one) and its full-size
    /// captures, read back. `what` names the region in its errors.
    async fn forward(
        &self, image: &Image, job: &ForwardJob, region: Option<(&Mask, &str)>, plan: &MemoryPlan,
        settings: &Settings,
    ) -> Result<Forward> {
        let tg = self.tiled_graph(plan, settings, &Job::Forward(job.clone()))?;
        let (ctx, k) = (&self.ctx, &self.k);
        let mut masks = Masks::new(&tg);
        // Guided by a region: the Gram sums of F ∘ m, times κ (read back below).
        let mut guided = Vec::new();
        let sums = match region {
            None => GramSums::new(ctx, k, &tg, &mut masks, &job.grams)?,
            Some((region, what)) => {
                for &l in &job.grams {
                    let f = masks.at(ctx, k, &tg, l)?;
                    let label = format!("region {l}");
                    let m = region.at_layer(l);
                    let g = Guided::new(ctx, k, &tg, &mut masks, l, &f, &m, &label)?;
                    if g.share == 0.0 {
                        let reason = format!(
                            "{what} is too small to reach {l}, where the image is {}×{}: paint \
                             a larger region",
                            tg.full_layout(l)?.w,
                            tg.full_layout(l)?.h
                        );
                        return Err(TransferError::invalid(Field::StyleRegion, reason));
                    }
                    guided.push(g);
                }
                let features = job.grams.iter().zip(&guided);
                let features = features.map(|(&l, g)| (l, g.features.clone())).collect();
                GramSums::of(ctx, k, &tg, features)?
            }
        };
        let captures = Captures::new(ctx, k, &tg, &job.capture)?;
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
        for (i, g) in sums.grams.iter().enumerate() {
            let mut gram = ctx.read_async::<f32>(View::whole(g)).await?;
            if let Some(g) = guided.get(i) {
                gram.iter_mut()
                    .for_each(|v| *v = (*v as f64 * g.kappa) as f32);
            }
            grams.push(gram);
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
    pub(crate) async fn measure_with(
        &self, content: &Image, styles: &[Style], image: &Image, settings: &Settings,
    ) -> Result<Measure> {
        let blend = normalized_blend(styles)?;
        let (w, h) = (image.width, image.height);
        let style_layers = measure::style_layers();
        // The measure is defined on max pooling, whatever the run used.
        let s = settings.clone().pooling(Pooling::Max);
        let job = ForwardJob {
            capture: vec![measure::content_layer()],
            grams: style_layers.clone(),
            region: false,
        };
        // The image and the content at its size share one plan.
        let plan = self.forward_plan(&job, image, &s)?;
        let of_image = self.forward(image, &job, None, &plan, &s).await?;
        let of_content = self
            .forward(&resize(content, w, h), &job, None, &plan, &s)
            .await?;
        let targets = self
            .measure_targets(styles, (w, h), &style_layers, &s)
            .await?;
        let blended: Vec<Vec<f64>> = targets.iter().map(|t| t.blended(&blend)).collect();
        Ok(Measure::from_features(
            &of_image.grams,
            &of_content.grams,
            &blended,
            &of_image.captured[0],
            &of_content.captured[0],
        ))
    }

    /// How the region `mask` marks (over the image, any size of its shape) compares with the
    /// photo and each style: the content distance and the style distance at the measure's
    /// layers restricted to the region, for `image` and for `content` resized to it, against
    /// each style image's own Gram matrices ([`crate::measure::RegionMeasure`]). Used to check
    /// that masked styles stay in their regions and held regions stay near the photo
    /// (`nst score --mask`).
    pub fn region_measure(
        &self, content: &Image, styles: &[Style], image: &Image, mask: &Mask,
    ) -> Result<crate::measure::RegionMeasure> {
        let (w, h) = (image.width, image.height);
        crate::guide::check(mask, (w, h), "the region's mask", Field::Mask)?;
        let mask = mask.resize(w, h);
        let layers = measure::style_layers();
        let s = Settings::default().pooling(Pooling::Max);
        let mut capture = layers.clone();
        capture.push(measure::content_layer());
        let job = ForwardJob {
            capture,
            grams: Vec::new(),
            region: false,
        };
        let plan = self.forward_plan(&job, image, &s)?;
        let of_image = pollster::block_on(self.forward(image, &job, None, &plan, &s))?;
        let c = resize(content, w, h);
        let of_content = pollster::block_on(self.forward(&c, &job, None, &plan, &s))?;
        let masks: Vec<Vec<f32>> = layers.iter().map(|&l| mask.at_layer(l)).collect();
        let targets = pollster::block_on(self.measure_targets(styles, (w, h), &layers, &s))?;
        let n = layers.len();
        let (image_style, content_style) = (&of_image.captured[..n], &of_content.captured[..n]);
        let styles = (0..styles.len())
            .map(|k| {
                let t: Vec<&[f32]> = targets.iter().map(|t| t.grams[k].as_slice()).collect();
                crate::measure::RegionDistance::from_features(
                    k,
                    image_style,
                    content_style,
                    &masks,
                    &t,
                )
            })
            .collect();
        let m = mask.at_layer(measure::content_layer());
        let content_distance =
            measure::masked_content_distance(&of_image.captured[n], &of_content.captured[n], &m);
        Ok(crate::measure::RegionMeasure {
            content_distance,
            styles,
        })
    }

    /// The measure's style targets ([`Engine::measure_with`]): each style (its region
    /// included) at an image of `size`'s longest side, its Gram matrices at `layers`.
    async fn measure_targets(
        &self, styles: &[Style], (w, h): (u32, u32), layers: &[LayerId], s: &Settings,
    ) -> Result<Vec<StyleTarget>> {
        let images = scaled_styles(styles.iter().map(|s| &s.image), w.max(h), 1.0);
        let regions = regions(styles);
        let plans = (images.iter().zip(&regions))
            .map(|(i, r)| self.forward_plan(&target_job(layers, r.is_some()), i, s))
            .collect::<Result<Vec<_>>>()?;
        self.style_targets(&images, &regions, layers, &plans, s)
            .await
    }

    /// Each style image's Gram matrices at `layers`, guided by its region where `regions`
    /// has one (of the image's shape, any size; `regions` may be shorter than `styles`), each
    /// forward as its plan in `plans` ([`target_job`]) says.
    pub(crate) async fn style_targets(
        &self, styles: &[Image], regions: &[Option<Mask>], layers: &[LayerId],
        plans: &[MemoryPlan], settings: &Settings,
    ) -> Result<Vec<StyleTarget>> {
        let mut targets: Vec<StyleTarget> = layers
            .iter()
            .map(|&layer| StyleTarget {
                layer,
                grams: Vec::new(),
            })
            .collect();
        for (i, (s, plan)) in styles.iter().zip(plans).enumerate() {
            let region = regions.get(i).and_then(Option::as_ref);
            let what = crate::guide::style_region(i);
            let region = match region {
                None => None,
                Some(r) => {
                    crate::guide::check(r, (s.width, s.height), &what, Field::StyleRegion)?;
                    Some(r.resize(s.width, s.height))
                }
            };
            let job = target_job(layers, region.is_some());
            let region = region.as_ref().map(|r| (r, what.as_str()));
            let grams = self.forward(s, &job, region, plan, settings).await?.grams;
            for (t, g) in targets.iter_mut().zip(grams) {
                t.grams.push(g);
            }
        }
        Ok(targets)
    }

    /// The losses of `image`, their gradient with respect to its pixels, and its measure:
    /// exactly what [`Engine::stylize`] minimizes at the scale of `image` with `settings`
    /// (its loss, pooling and style scale). The content image is resized to `image`'s size
    /// and each style image to `style_scale` times its longest side, as `stylize` does.
    pub fn score(
        &self, content: &Image, styles: &[Style], image: &Image, settings: &Settings,
    ) -> Result<Score> {
        self.score_frame(content, styles, image, settings, None)
    }

    /// [`Engine::score`] of a video frame with its temporal loss (at `image`'s size).
    pub fn score_frame(
        &self, content: &Image, styles: &[Style], image: &Image, settings: &Settings,
        temporal: Option<&crate::Temporal>,
    ) -> Result<Score> {
        settings.validate()?;
        let blend = normalized_blend(styles)?;
        crate::guide::check_masks(styles, settings, (content.width, content.height))?;
        let (w, h) = (image.width, image.height);
        let c = resize(content, w, h);
        let longest = w.max(h);
        let style_images = scaled_styles(
            styles.iter().map(|s| &s.image),
            longest,
            settings.style_scale,
        );
        let sizes = style_shapes(&style_images, styles);
        let regions = regions(styles);
        let guides = crate::guide::guides(styles, (content.width, content.height), (w, h))?;
        let job = Job::Evaluate {
            styles: styles.len(),
            guided: guides.iter().any(Option::is_some),
            temporal: temporal.map_or(0, |t| t.frames.len()),
        };
        let plan = self.scale_plan((w, h), &sizes, settings, &job)?;
        let problem = pollster::block_on(self.planned_problem(
            &c,
            &style_images,
            &blend,
            (&guides, &regions),
            settings,
            plan,
            temporal,
        ))?;
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
            regions: Vec::new(),
            width: w,
            height: h,
        })
    }
}

/// What a forward job read back: Gram matrices (`c × c` each) and full-size captures.
pub(crate) struct Forward {
    grams: Vec<Vec<f32>>,
    captured: Vec<Vec<f32>>,
}

/// Each style's region ([`Style::region`]), at its size.
pub(crate) fn regions(styles: &[Style]) -> Vec<Option<Mask>> {
    styles.iter().map(|s| s.region.clone()).collect()
}

/// The shapes of `images`, each of `styles` at one scale, as a plan sees them.
pub(crate) fn style_shapes(images: &[Image], styles: &[Style]) -> Vec<StyleShape> {
    (images.iter().zip(styles))
        .map(|(i, s)| StyleShape {
            width: i.width,
            height: i.height,
            region: s.region.is_some(),
        })
        .collect()
}

/// The forward that takes one style image's targets at `layers`, guided when it has a
/// region.
pub(crate) fn target_job(layers: &[LayerId], region: bool) -> ForwardJob {
    ForwardJob {
        capture: Vec::new(),
        grams: layers.to_vec(),
        region,
    }
}

/// The size of a style image whose longest side is `style_scale` times `longest`.
pub(crate) fn style_size(s: &Image, longest: u32, style_scale: f64) -> (u32, u32) {
    let long = (longest as f64 * style_scale).round().max(1.0) as u32;
    fit_longest(s.width, s.height, long)
}

/// Style images resized by [`style_size`].
pub(crate) fn scaled_styles<'a>(
    styles: impl Iterator<Item = &'a Image>, longest: u32, style_scale: f64,
) -> Vec<Image> {
    styles
        .map(|s| {
            let (sw, sh) = style_size(s, longest, style_scale);
            resize(s, sw, sh)
        })
        .collect()
}

/// Uniform noise in [0, 1].
pub(crate) fn noise(w: u32, h: u32, seed: u64) -> Image {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = (0..3 * w as usize * h as usize)
        .map(|_| rng.random::<f32>())
        .collect();
    Image::from_parts(w, h, data)
}
