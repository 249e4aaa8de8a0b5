//! [`Problem`]: the graph for one image size and the loss over it, with its targets.

use crate::engine::Engine;
use crate::error::Result;
use crate::guide::Mask;
use crate::image::Image;
use crate::memory::{Job, MemoryPlan, ScalePlan, StyleShape};
use crate::objective::{content_mean_squares, weigh_content, Objective, Temporal};
use crate::settings::Settings;
use crate::terms::LossValues;
use crate::tiled_graph::{Captures, TiledGraph};
use nst_gpu::{Context, View};
use nst_vgg::Graph;

/// The graph for one image size and the loss over it: what one iteration evaluates, whole
/// or tile by tile (the same values and gradient either way, up to float32 rounding).
pub struct Problem {
    pub(crate) tg: TiledGraph,
    objective: Objective,
    pub(crate) memory: MemoryPlan,
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

impl Engine {
    /// The problem for an output of `content`'s size under `settings` (its loss, pooling,
    /// memory budget and tile size), with the style and content targets captured. Its plan
    /// ([`Problem::memory`]) counts the state of `settings`' optimizer ([`crate::Stepper`]) too.
    /// `guides`: each style's mask at `content`'s size, `None` where it applies everywhere
    /// (an empty slice: every style everywhere); `regions`: each style's region
    /// ([`crate::Style::region`]) of its image's shape, `None` for the whole image (an empty
    /// slice: every style whole).
    pub fn problem(
        &self, content: &Image, styles: &[Image], blend: &[f64],
        (guides, regions): (&[Option<Mask>], &[Option<Mask>]), settings: &Settings,
    ) -> Result<Problem> {
        let masks = (guides, regions);
        pollster::block_on(self.problem_async(content, styles, blend, masks, settings))
    }

    /// [`Engine::problem`] without blocking (for a browser).
    pub async fn problem_async(
        &self, content: &Image, styles: &[Image], blend: &[f64],
        masks: (&[Option<Mask>], &[Option<Mask>]), settings: &Settings,
    ) -> Result<Problem> {
        (self.frame_problem_async(content, styles, blend, masks, settings, None)).await
    }

    /// [`Engine::problem`] for a video frame, with its temporal loss (at `content`'s size).
    pub fn frame_problem(
        &self, content: &Image, styles: &[Image], blend: &[f64],
        masks: (&[Option<Mask>], &[Option<Mask>]), settings: &Settings,
        temporal: Option<&Temporal>,
    ) -> Result<Problem> {
        pollster::block_on(
            self.frame_problem_async(content, styles, blend, masks, settings, temporal),
        )
    }

    async fn frame_problem_async(
        &self, content: &Image, styles: &[Image], blend: &[f64],
        (guides, regions): (&[Option<Mask>], &[Option<Mask>]), settings: &Settings,
        temporal: Option<&Temporal>,
    ) -> Result<Problem> {
        let size = (content.width, content.height);
        let (mut guides, mut regions) = (guides.to_vec(), regions.to_vec());
        guides.resize(styles.len(), None);
        regions.resize(styles.len(), None);
        let sizes: Vec<StyleShape> = (styles.iter().zip(&regions))
            .map(|(s, r)| StyleShape {
                width: s.width,
                height: s.height,
                region: r.is_some(),
            })
            .collect();
        let job = Job::Optimize {
            styles: styles.len(),
            guided: guides.iter().any(Option::is_some),
            temporal: temporal.map_or(0, |t| t.frames.len()),
        };
        let plan = self.scale_plan(size, &sizes, settings, &job)?;
        let masks = (&guides[..], &regions[..]);
        self.planned_problem(content, styles, blend, masks, settings, plan, temporal)
            .await
    }

    /// The problem as `plan` (from [`Engine::scale_plan`]) says: its style targets, then its
    /// graph, content targets and loss. `guides`: each style's mask at the content's size,
    /// or `None` where it applies everywhere; `regions`: each style's region, or `None`;
    /// `temporal`: a video frame's temporal loss (planned in `plan`'s job).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn planned_problem(
        &self, content: &Image, styles: &[Image], blend: &[f64],
        (guides, regions): (&[Option<Mask>], &[Option<Mask>]), settings: &Settings,
        plan: ScalePlan, temporal: Option<&Temporal>,
    ) -> Result<Problem> {
        let cfg = &settings.loss;
        let size = (content.width, content.height);
        let layers = cfg.style_layer_ids();
        let targets =
            (self.style_targets(styles, regions, &layers, &plan.styles, settings)).await?;
        let job = Job::Evaluate {
            styles: styles.len(),
            guided: guides.iter().any(Option::is_some),
            temporal: 0,
        };
        let memory = plan.problem;
        let tg = self.tiled_graph(&memory, settings, &job)?;
        let (ctx, k) = (&self.ctx, &self.k);
        let captures = Captures::new(ctx, k, &tg, &cfg.content_layer_ids())?;
        self.ctx.write(tg.image().buffer, 0, &content.data);
        for t in 0..tg.tiles() {
            self.ctx.submit(|pass| {
                tg.record_forward(t, pass);
                captures.record(t, pass);
            })?;
        }
        let content_ms = content_mean_squares(ctx, k, &captures).await?;
        // A content mask, at this scale.
        let content_mask = (settings.content_mask.as_ref()).map(|m| m.resize(size.0, size.1));
        if let Some(m) = &content_mask {
            weigh_content(ctx, &captures, m).await?;
        }
        let objective = Objective::new(
            ctx,
            k,
            &tg,
            cfg,
            &targets,
            blend,
            (guides, content_mask.as_ref()),
            captures,
            &content_ms,
            temporal,
        )?;
        Ok(Problem {
            tg,
            objective,
            memory,
        })
    }
}
