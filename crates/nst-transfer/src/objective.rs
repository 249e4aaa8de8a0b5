//! The loss on the GPU: content, style and total-variation terms over a graph's taps. Their
//! values go to a small scalar buffer (read back only when asked), their gradients into the
//! graph's tap gradients and, for total variation, the image gradient.
//!
//! The formulas are in [`crate::terms`].

use crate::error::{Field, Result, TransferError};
use crate::guide::Mask;
use crate::terms::{LossConfig, LossValues, Term, TermValue};
use crate::tiled_graph::{copy_region, tap_layout, Captures, GramSums, Masks, TiledGraph};
use nst_gpu::{Context, Dispatch, GpuError, Record, View, ViewMut};
use nst_kernels::{Kernels, Reduction, WindowMode};
use nst_vgg::{ChunkLayout, GraphLayout, LayerId, Tensor};

/// The style targets at one layer: each style image's Gram matrix (C × C, row-major).
#[derive(Clone, Debug)]
pub struct StyleTarget {
    /// The layer.
    pub layer: LayerId,
    /// One Gram matrix per style image.
    pub grams: Vec<Vec<f32>>,
}

impl StyleTarget {
    /// The blended target Σ_k b_k·G_k, in f64.
    pub fn blended(&self, blend: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0f64; self.grams.first().map_or(0, Vec::len)];
        for (g, b) in self.grams.iter().zip(blend) {
            for (acc, &v) in out.iter_mut().zip(g) {
                *acc += b * v as f64;
            }
        }
        out
    }
}

/// The temporal loss of one video frame (Ruder, Dosovitskiy & Brox 2016): earlier stylized
/// frames warped to this one along the optical flow, each with per-pixel weights (1 where the
/// flow is reliable, 0 where not, [`crate::FramePair::reliability`]). Its terms are
/// `mean over 3·N of c·(x − ω)²` for each earlier frame ω with weights c ([`Term::Temporal`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Temporal {
    /// The terms' weight.
    pub weight: f64,
    /// The earlier frames, the previous one first, at the image's size.
    pub frames: Vec<TemporalFrame>,
}

/// One earlier frame of a [`Temporal`] loss.
#[derive(Clone, Debug, PartialEq)]
pub struct TemporalFrame {
    /// The earlier stylized frame warped to this one.
    pub warped: crate::image::Image,
    /// Per pixel, how much the term counts there (row-major, the image's size).
    pub weights: Vec<f32>,
}

/// The mean of the squares, in f64.
pub fn mean_square(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64
}

/// The loss terms, prepared for one (tiled) graph. Each tile's forward is followed by its
/// masks and its share of the values; after the last tile come the values of whole-image
/// terms. The gradient pass runs each tile forward again, puts the terms' gradients at its
/// taps (zero outside its own positions) and runs it backward.
pub struct Objective {
    scalars: wgpu::Buffer,
    terms: Vec<(Term, f64)>,
    masks: Masks,
    grams: GramSums,
    /// Content values: for the first tile (overwriting) and the others (adding).
    content_first: Vec<Reduction>,
    content_rest: Vec<Reduction>,
    /// After every tile: the style values and total variation's.
    after: Vec<Box<dyn Record>>,
    /// The gradients of the style terms with respect to the Gram matrices.
    gram_backward: Vec<Dispatch>,
    /// Per tile (the same launches for every tile): the terms' gradients at the taps.
    tap_backward: Vec<Dispatch>,
    image_backward: Vec<Dispatch>,
    _content: Captures,
    _keep: Vec<wgpu::Buffer>,
    _targets: Vec<Tensor>,
    _guidance: Option<Guidance>,
    _guided_content: Vec<(Guided, Tensor)>,
}

impl Objective {
    /// Prepares the terms of `cfg` over `tg`'s taps. `styles` holds the Gram targets per
    /// style layer and `blend` the style images' weights (summing to 1); `content` holds the
    /// content image's activations at the content layers of `cfg` (see
    /// [`content_mean_squares`]), and `content_ms` mean(F_l(c)²) at each, which scales the
    /// [`crate::Weight::Normalized`] ones. `guides` holds each style image's mask over the
    /// image, at its size, or `None` where the style applies everywhere: with any mask, each
    /// style image gets its own guided Gram matrices ([`crate::terms`]). `content_mask`: the
    /// content mask at the image's size ([`crate::Settings::content_mask`]); with it, `content`
    /// holds the activations already weighted by the square root of its weights
    /// ([`weigh_content`]). `temporal`: a video frame's temporal loss, at the image's size.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ctx: &Context, k: &Kernels, tg: &TiledGraph, cfg: &LossConfig, styles: &[StyleTarget],
        blend: &[f64], (guides, content_mask): (&[Option<Mask>], Option<&Mask>), content: Captures,
        content_ms: &[f64], temporal: Option<&Temporal>,
    ) -> Result<Objective> {
        let factors = Factors::new(cfg, styles, blend, content_ms, content_mask.is_some())?;
        let mut masks = Masks::new(tg);
        let style_layers = cfg.style_layer_ids();
        let (grams, guidance) = match guides.iter().any(Option::is_some) {
            false => (GramSums::new(ctx, k, tg, &mut masks, &style_layers)?, None),
            true => {
                let g = Guidance::new(ctx, k, tg, &mut masks, &style_layers, guides)?;
                (GramSums::of(ctx, k, tg, g.features())?, Some(g))
            }
        };
        let weights = match &guidance {
            None => vec![blend.to_vec(); style_layers.len()],
            Some(g) => g.weights(blend),
        };
        let mut terms = factors.terms(cfg, &weights);
        if let Some(t) = temporal {
            terms.extend((1..=t.frames.len()).map(|j| (Term::Temporal(j), t.weight)));
        }
        let scalars = ctx.tensor("loss values", terms.len() as u64)?;
        let mut b = Builder {
            ctx,
            k,
            tg,
            terms: &terms,
            slots: ViewMut::whole(&scalars),
            masks,
            content_first: Vec::new(),
            content_rest: Vec::new(),
            after: Vec::new(),
            gram_backward: Vec::new(),
            tap_backward: Vec::new(),
            keep: Vec::new(),
            targets: Vec::new(),
            written: Vec::new(),
            guided_content: Vec::new(),
        };
        for ((lw, &w), (_, full)) in cfg
            .content_layers
            .iter()
            .zip(&factors.content)
            .zip(&content.tensors)
        {
            let weights = content_mask.map(|m| root_weights(m, lw.layer));
            b.content_term(lw.layer, full, w, weights.as_deref())?;
        }
        for (i, (lw, (target, blended, factor))) in
            cfg.style_layers.iter().zip(&factors.style).enumerate()
        {
            match &guidance {
                None => b.style_term(lw.layer, &grams, i, target, blended, *factor)?,
                Some(g) => {
                    let w = &weights[i];
                    b.guided_style_terms(lw.layer, &grams, g, i, target, w, *factor)?
                }
            }
        }
        let mut image_backward = b.tv_term(cfg.tv_weight)?;
        image_backward.push(b.out_of_range_term(cfg.out_of_range_weight)?);
        if let Some(t) = temporal {
            for (j, frame) in t.frames.iter().enumerate() {
                image_backward.extend(b.temporal_term(j + 1, frame, t.weight)?);
            }
        }
        let Builder {
            masks,
            content_first,
            content_rest,
            after,
            gram_backward,
            tap_backward,
            keep,
            targets,
            guided_content,
            ..
        } = b;
        Ok(Objective {
            scalars,
            terms,
            masks,
            grams,
            content_first,
            content_rest,
            after,
            gram_backward,
            tap_backward,
            image_backward,
            _content: content,
            _keep: keep,
            _targets: targets,
            _guidance: guidance,
            _guided_content: guided_content,
        })
    }

    /// Bytes of storage [`Objective::new`] creates for `cfg` with `styles` style images over
    /// `layout`'s graph, besides the masked taps and Gram sums it shares with forward jobs
    /// ([`Masks::bytes`], [`GramSums::bytes`]): the value slots, the content targets at a
    /// tile's positions (tiled), each style target, the blended targets and the Gram
    /// gradients, and the partial sums of every value's reduction.
    ///
    /// With `guided` styles ([`Guidance`]), per style layer and style image: the guidance
    /// over the whole layer (and at a tile's positions, tiled), the guided features, the
    /// target over κ and the Gram gradient; per style layer the gradient of the guided
    /// features; no blended target. The image is `(height, width)`.
    ///
    /// With a `content_mask`, per content layer: its weighting ([`Guided::bytes`]) and the
    /// gradient of the weighted activations.
    ///
    /// Per earlier frame of a temporal loss ([`Temporal`]): its weights' square roots, the
    /// weighted target, the weighted image and its gradient, and the value's reduction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn bytes(
        layout: &GraphLayout, cfg: &LossConfig, (styles, guided): (usize, bool),
        content_mask: bool, temporal: usize, (height, width): (u32, u32), tiled: bool,
    ) -> Result<u64> {
        let image_terms = (image_terms(cfg).len() + temporal) as u64;
        let terms = (cfg.content_layers.len() + cfg.style_layers.len() * styles) as u64;
        let mut bytes = nst_gpu::tensor_bytes(terms + image_terms);
        let mut reductions = image_terms;
        for l in &cfg.content_layers {
            let at = tap_layout(layout, l.layer)?;
            bytes += at.bytes() * tiled as u64;
            reductions += 2 * at.chunks.len() as u64; // for the first tile and the others
            if content_mask {
                bytes += Guided::bytes(layout, l.layer, (height, width), tiled)? + at.bytes();
            }
        }
        for l in &cfg.style_layers {
            let at = tap_layout(layout, l.layer)?;
            let (c, s) = (at.c as u64, styles as u64);
            reductions += s;
            if !guided {
                // Each style's target, the blended target and the gradient.
                bytes += (s + 2) * nst_gpu::tensor_bytes(c * c);
                continue;
            }
            let guided = Guided::bytes(layout, l.layer, (height, width), tiled)?;
            bytes += s * (guided + 2 * nst_gpu::tensor_bytes(c * c));
            bytes += at.bytes();
        }
        let n = height as u64 * width as u64;
        bytes += temporal as u64 * (nst_gpu::tensor_bytes(n) + 3 * nst_gpu::tensor_bytes(3 * n));
        Ok(bytes + reductions * Reduction::BYTES)
    }

    /// Records tile `t`'s masks and its share of every value. After the tile's forward.
    pub fn record_tile_values(&self, t: usize, pass: &mut wgpu::ComputePass<'_>) {
        self.masks.record(t, pass);
        self.grams.record(t, pass);
        let content = if t == 0 {
            &self.content_first
        } else {
            &self.content_rest
        };
        for r in content {
            r.record(pass);
        }
    }

    /// Records the values that need every tile's share (style) or the whole image (total
    /// variation). After the last tile's values.
    pub fn record_values(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.after.record(pass);
    }

    /// Records the style terms' gradients with respect to the Gram matrices. After
    /// [`Objective::record_values`].
    pub fn record_gram_gradients(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.gram_backward.record(pass);
    }

    /// Records tile `t`'s masks again (tiled graphs: after the tile's second forward).
    pub fn record_tile_masks(&self, t: usize, pass: &mut wgpu::ComputePass<'_>) {
        self.masks.record(t, pass);
    }

    /// Records the terms' gradients into the graph's tap gradients, for the tile whose
    /// forward and masks were recorded last. Before the graph's backward.
    pub fn record_tap_gradients(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.tap_backward.record(pass);
    }

    /// Records the total variation's gradient, added to the image gradient. After every
    /// tile's backward (the first overwrites the image gradient).
    pub fn record_image_gradients(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.image_backward.record(pass);
    }

    /// Reads the values written by the last recorded forward. Waits for the GPU.
    pub async fn read(&self, ctx: &Context) -> Result<LossValues> {
        let raw = ctx.read_async::<f32>(View::whole(&self.scalars)).await?;
        Ok(LossValues {
            terms: self
                .terms
                .iter()
                .zip(raw)
                .map(|(&(term, weight), raw)| TermValue {
                    term,
                    raw: raw as f64,
                    weight,
                })
                .collect(),
        })
    }
}

/// mean(F²) of each captured activation, one f32 sum per chunk, added here in f64.
pub(crate) async fn content_mean_squares(
    ctx: &Context, k: &Kernels, content: &Captures,
) -> Result<Vec<f64>> {
    let acts: Vec<&Tensor> = content.tensors.iter().map(|(_, t)| t).collect();
    let slots: usize = acts.iter().map(|a| a.chunk_count()).sum();
    if slots == 0 {
        return Ok(Vec::new());
    }
    let sums = ctx.tensor("content sums of squares", slots as u64)?;
    let mut reductions = Vec::new();
    for a in &acts {
        for c in 0..a.chunk_count() {
            let (v, slot) = (a.view(c), reductions.len() as u32);
            reductions.push(k.vector.dot(ctx, v, v, ViewMut::whole(&sums), slot)?);
        }
    }
    ctx.submit(|pass| reductions.iter().for_each(|r| r.record(pass)))?;
    let sums = ctx.read_async::<f32>(View::whole(&sums)).await?;
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

/// Bytes of storage [`content_mean_squares`] creates (and frees) for captures laid out as
/// `content`: one sum per chunk, and each sum's reduction.
pub(crate) fn content_mean_squares_bytes(content: &[ChunkLayout]) -> u64 {
    let slots: u64 = content.iter().map(|l| l.chunks.len() as u64).sum();
    match slots {
        0 => 0,
        n => nst_gpu::tensor_bytes(n) + n * Reduction::BYTES,
    }
}

/// √ of the content mask's weights at `l` ([`crate::guide::content_weights_at`]): the
/// content term compares √m ∘ F with √m ∘ P, so that it weighs each position's squared
/// difference by m.
pub(crate) fn root_weights(content_mask: &Mask, l: LayerId) -> Vec<f32> {
    let m = crate::guide::content_weights_at(content_mask, l);
    m.into_iter().map(f32::sqrt).collect()
}

/// Weighs each captured content activation by [`root_weights`] of `content_mask` (at the
/// image's size) at its layer, in place (through the CPU, once per scale).
pub(crate) async fn weigh_content(
    ctx: &Context, content: &Captures, content_mask: &Mask,
) -> Result<()> {
    for (l, t) in &content.tensors {
        let m = root_weights(content_mask, *l);
        let mut data = t.read_async(ctx).await?;
        for plane in data.chunks_mut(m.len()) {
            plane.iter_mut().zip(&m).for_each(|(v, w)| *v *= w);
        }
        t.write(ctx, &data)?;
    }
    Ok(())
}

/// One guidance map at one layer ([`crate::guide`]): the map, and the features it weights.
pub(crate) struct Guided {
    /// The guidance as the features are read: at the tile's own positions (tiled), else the
    /// whole layer's.
    guide: Tensor,
    /// N / Σ m² over the whole layer: turns the Gram sums (divided by N) into the guided Gram
    /// (divided by Σ m²); 1 where the guidance is empty.
    pub(crate) kappa: f64,
    /// Σ m² / N: the guidance's share of the layer (0 where it is empty).
    pub(crate) share: f64,
    /// The guided features F ∘ m, filled after each tile's masked copies.
    pub(crate) features: Tensor,
    _whole: Tensor,
}

impl Guided {
    /// The guidance `m` (row-major over the whole of layer `l`) and the features `f` it
    /// weights (the tap as losses read it, [`Masks::at`]): its copies to each tile's own
    /// positions and the product F ∘ m go to `masks`, so they run after each tile's forward.
    pub(crate) fn new(
        ctx: &Context, k: &Kernels, tg: &TiledGraph, masks: &mut Masks, l: LayerId, f: &Tensor,
        m: &[f32], label: &str,
    ) -> Result<Guided> {
        let one = |h, w| ChunkLayout::split(1, h, w, u64::MAX).expect("no limit");
        let full = tg.full_layout(l)?;
        let energy: f64 = m.iter().map(|&v| v as f64 * v as f64).sum();
        let kappa = match energy > 0.0 {
            true => full.plane() as f64 / energy,
            false => 1.0,
        };
        let share = energy / full.plane() as f64;
        let whole = Tensor::zeros(ctx, label, &one(full.h, full.w))?;
        whole.write(ctx, m)?;
        let guide = match tg.is_tiled() {
            false => whole.clone(),
            true => {
                let at_own = format!("{label} at own positions");
                let w = Tensor::zeros(ctx, &at_own, &one(f.layout.h, f.layout.w))?;
                for t in 0..tg.tiles() {
                    let (own, at) = tg.own_at(t, l);
                    let copies =
                        copy_region(ctx, k, (&whole, at), (&w, own), WindowMode::CopyZeroRest)?;
                    masks.per_tile[t].extend(copies);
                }
                w
            }
        };
        let features = Tensor::zeros(ctx, &format!("{label}: features"), &f.layout)?;
        for t in 0..tg.tiles() {
            for j in 0..f.chunk_count() {
                let (src, m, dst) = (f.view(j), guide.view(0), features.view_mut(j));
                masks.per_tile[t].push(k.guide.apply(ctx, src, m, dst, false)?);
            }
        }
        Ok(Guided {
            guide,
            kappa,
            share,
            features,
            _whole: whole,
        })
    }

    /// Bytes of storage [`Guided::new`] creates at `l` of `layout`'s graph over a
    /// `(height, width)` image: the guidance over the whole layer (and at a tile's positions,
    /// tiled) and the guided features.
    pub(crate) fn bytes(
        layout: &GraphLayout, l: LayerId, (height, width): (u32, u32), tiled: bool,
    ) -> Result<u64> {
        let at = tap_layout(layout, l)?;
        let (lh, lw) = nst_vgg::output_size(l, height, width);
        let whole = nst_gpu::tensor_bytes(lh as u64 * lw as u64);
        let own = nst_gpu::tensor_bytes(at.plane()) * tiled as u64;
        Ok(whole + own + at.bytes())
    }

    /// Bytes wgpu stages while [`Guided::new`] uploads the guidance at `l` over a
    /// `(height, width)` image.
    pub(crate) fn upload_bytes(l: LayerId, (height, width): (u32, u32)) -> u64 {
        let (lh, lw) = nst_vgg::output_size(l, height, width);
        nst_gpu::tensor_bytes(lh as u64 * lw as u64)
    }
}

/// The guidance of every style image at every style layer ([`crate::guide`]), and per layer
/// the gradient with respect to the guided features, which the guidance weights again into
/// the tap's gradient.
struct Guidance {
    /// The style layers.
    layers: Vec<LayerId>,
    /// Per style layer, per style image.
    per: Vec<Vec<Guided>>,
    /// Per style layer: ∂/∂(F ∘ m), laid out as the tap's gradient.
    grad: Vec<Tensor>,
}

impl Guidance {
    fn new(
        ctx: &Context, k: &Kernels, tg: &TiledGraph, masks: &mut Masks, layers: &[LayerId],
        guides: &[Option<Mask>],
    ) -> Result<Guidance> {
        let mut g = Guidance {
            layers: layers.to_vec(),
            per: Vec::new(),
            grad: Vec::new(),
        };
        for &l in layers {
            let f = masks.at(ctx, k, tg, l)?;
            let plane = tg.full_layout(l)?.plane() as usize;
            let mut per = Vec::new();
            for (s, mask) in guides.iter().enumerate() {
                let m = match mask {
                    Some(mask) => mask.at_layer(l),
                    None => vec![1.0; plane],
                };
                let label = format!("guide {l} #{}", s + 1);
                per.push(Guided::new(ctx, k, tg, masks, l, &f, &m, &label)?);
            }
            let grad = tg.graph().gradient(l).ok_or_else(|| {
                TransferError::Gpu(GpuError::BadShape(format!("layer {l} is not tapped")))
            })?;
            g.grad.push(Tensor::zeros(
                ctx,
                &format!("guided gradient {l}"),
                &grad.layout,
            )?);
            g.per.push(per);
        }
        Ok(g)
    }

    /// Per style layer, each style image's weight in its sum: its blend weight relative to the
    /// largest, times its guidance's share of the layer. So a region pulls on its positions
    /// as hard as one style over the whole image would (the guided Gram divides by Σ m², the
    /// plain one by N), and styles of equal weights each style their region fully.
    fn weights(&self, blend: &[f64]) -> Vec<Vec<f64>> {
        let most = blend.iter().copied().fold(0.0, f64::max);
        let per_layer = self.per.iter();
        per_layer
            .map(|per| {
                (per.iter().zip(blend))
                    .map(|(g, b)| b / most * g.share)
                    .collect()
            })
            .collect()
    }

    /// The guided features in the order of the Gram sums: per layer, per style image.
    fn features(&self) -> Vec<(LayerId, Tensor)> {
        let per_layer = self.layers.iter().zip(&self.per);
        per_layer
            .flat_map(|(&l, per)| per.iter().map(move |g| (l, g.features.clone())))
            .collect()
    }
}

/// The factor of every raw term, and each style layer's target, checked against the config.
struct Factors<'a> {
    /// content_weight·a_l per content layer.
    content: Vec<f64>,
    /// Per style layer: its targets, the blended target and style_weight·c_l.
    style: Vec<(&'a StyleTarget, Vec<f64>, f64)>,
}

impl<'a> Factors<'a> {
    /// `content_mask`: whether a content mask sets the content weight
    /// ([`crate::defaults::mask_content_weight`]).
    fn new(
        cfg: &LossConfig, styles: &'a [StyleTarget], blend: &[f64], content_ms: &[f64],
        content_mask: bool,
    ) -> Result<Factors<'a>> {
        let bad_shape = |m: String| TransferError::Gpu(GpuError::BadShape(m));
        if content_ms.len() != cfg.content_layers.len() {
            let (n, m) = (content_ms.len(), cfg.content_layers.len());
            return Err(bad_shape(format!(
                "{n} content target norms for {m} content layers"
            )));
        }
        let flat = |field, what: &str, l: LayerId| {
            let reason = format!(
                "the {what} at {l} is all zero, so its term cannot be normalized: use another \
                 image or layer, or give raw layer weights"
            );
            TransferError::invalid(field, reason)
        };
        let content_weight = match content_mask {
            false => cfg.content_weight,
            true => crate::defaults::mask_content_weight(cfg.style_weight),
        };
        let content = cfg.content_layers.iter().zip(content_ms).map(|(l, &ms)| {
            let f = l.weight.factor(ms);
            let f =
                f.ok_or_else(|| flat(Field::ContentLayers, "content image's activation", l.layer))?;
            Ok(content_weight * f)
        });
        let content = content.collect::<Result<_>>()?;
        let mut style = Vec::new();
        for lw in &cfg.style_layers {
            let target = styles.iter().find(|t| t.layer == lw.layer);
            let target =
                target.ok_or_else(|| bad_shape(format!("no style target at {}", lw.layer)))?;
            if target.grams.len() != blend.len() {
                let (l, n) = (lw.layer, blend.len());
                return Err(bad_shape(format!(
                    "style targets at {l} do not match {n} style images"
                )));
            }
            let b = target.blended(blend);
            let f = lw.weight.factor(mean_square(&b));
            let f = f.ok_or_else(|| flat(Field::StyleLayers, "style Gram matrix", lw.layer))?;
            style.push((target, b, cfg.style_weight * f));
        }
        Ok(Factors { content, style })
    }

    /// Every term with its weight in the total: content layers, then each style layer once
    /// per style image, then total variation and the out-of-range penalty.
    /// `weights`: per style layer, each style image's weight in its sum (the blend, or for
    /// guided styles [`Guidance::weights`]).
    fn terms(&self, cfg: &LossConfig, weights: &[Vec<f64>]) -> Vec<(Term, f64)> {
        let content = cfg.content_layers.iter().zip(&self.content);
        let mut terms: Vec<(Term, f64)> =
            content.map(|(l, f)| (Term::Content(l.layer), *f)).collect();
        for ((l, (_, _, f)), w) in cfg.style_layers.iter().zip(&self.style).zip(weights) {
            for (s, b) in w.iter().enumerate() {
                terms.push((Term::Style(l.layer, s), f * b));
            }
        }
        terms.extend(image_terms(cfg));
        terms
    }
}

/// The terms on the whole image, each reduced once, with their weights.
fn image_terms(cfg: &LossConfig) -> [(Term, f64); 2] {
    [
        (Term::Tv, cfg.tv_weight),
        (Term::OutOfRange, cfg.out_of_range_weight),
    ]
}

/// Wires the launches of each term over a (tiled) graph.
struct Builder<'a> {
    ctx: &'a Context,
    k: &'a Kernels,
    tg: &'a TiledGraph,
    terms: &'a [(Term, f64)],
    slots: ViewMut<'a>,
    masks: Masks,
    content_first: Vec<Reduction>,
    content_rest: Vec<Reduction>,
    after: Vec<Box<dyn Record>>,
    gram_backward: Vec<Dispatch>,
    tap_backward: Vec<Dispatch>,
    keep: Vec<wgpu::Buffer>,
    targets: Vec<Tensor>,
    /// Taps whose gradient a term already wrote: the first term at a tap overwrites its
    /// gradient, the others add.
    written: Vec<LayerId>,
    /// Per content layer under a content mask: its weighting and the gradient with respect to
    /// the weighted activations.
    guided_content: Vec<(Guided, Tensor)>,
}

impl<'a> Builder<'a> {
    /// The value slot of `t`.
    fn slot(&self, t: Term) -> u32 {
        self.terms
            .iter()
            .position(|(x, _)| *x == t)
            .expect("every term has a slot") as u32
    }

    /// Whether a gradient was already written at `l` (and, from now on, that it was).
    fn accumulate_at(&mut self, l: LayerId) -> bool {
        let seen = self.written.contains(&l);
        self.written.push(l);
        seen
    }

    /// The gradient tensor at a tapped layer.
    fn gradient(&self, l: LayerId) -> Result<&'a Tensor> {
        let missing = || GpuError::BadShape(format!("layer {l} is not tapped"));
        Ok(self.tg.graph().gradient(l).ok_or_else(missing)?)
    }

    /// The content term at `l` with factor `w`, against `full`, the content image's
    /// activations there: mean over the image's positions, each tile adding its own. With
    /// `root_weights` (over the whole layer, [`root_weights`]), it compares the activations
    /// weighted by them with `full`, weighted alike ([`weigh_content`]), and its gradient goes
    /// back through the weighting.
    fn content_term(
        &mut self, l: LayerId, full: &Tensor, w: f64, root_weights: Option<&[f32]>,
    ) -> Result<()> {
        let (ctx, k, tg) = (self.ctx, self.k, self.tg);
        let tap = self.masks.at(ctx, k, tg, l)?;
        let grad = self.gradient(l)?;
        let weighted = match root_weights {
            None => None,
            Some(m) => {
                let label = format!("content weights {l}");
                let g = Guided::new(ctx, k, tg, &mut self.masks, l, &tap, m, &label)?;
                let dweighted =
                    Tensor::zeros(ctx, &format!("weighted gradient {l}"), &grad.layout)?;
                Some((g, dweighted))
            }
        };
        let act = weighted.as_ref().map_or(&tap, |(g, _)| &g.features).clone();
        // The target as the features are read: the content activations at the tile's own
        // positions (tiled), or the captured tensor itself.
        let target = match tg.is_tiled() {
            false => full.clone(),
            true => {
                let t = Tensor::zeros(ctx, &format!("content target {l}"), &act.layout)?;
                for tile in 0..tg.tiles() {
                    let (own, at) = tg.own_at(tile, l);
                    let copies =
                        copy_region(ctx, k, (full, at), (&t, own), WindowMode::CopyZeroRest)?;
                    self.masks.per_tile[tile].extend(copies);
                }
                self.targets.push(t.clone());
                t
            }
        };
        let n = full.layout.len() as f64;
        let (accumulate, slot) = (self.accumulate_at(l), self.slot(Term::Content(l)));
        for i in 0..act.chunk_count() {
            let pair = (act.view(i), target.view(i));
            let scale = (1.0 / n) as f32;
            let (first, rest) = (i > 0, true);
            let mse = &k.mse;
            let v = mse.forward_scaled(ctx, pair, self.slots, slot, scale, first)?;
            self.content_first.push(v);
            let v = mse.forward_scaled(ctx, pair, self.slots, slot, scale, rest)?;
            self.content_rest.push(v);
            let share = act.layout.chunk_len(i) as f64 / n;
            let (a, t) = (act.view(i), target.view(i));
            let scale = (w * share) as f32;
            match &weighted {
                None => {
                    let g = grad.view_mut(i);
                    let backward = mse.backward(ctx, a, t, g, scale, accumulate)?;
                    self.tap_backward.push(backward);
                }
                Some((m, dweighted)) => {
                    let g = dweighted.view_mut(i);
                    self.tap_backward
                        .push(mse.backward(ctx, a, t, g, scale, false)?);
                    let (src, m, dst) = (dweighted.view(i), m.guide.view(0), grad.view_mut(i));
                    self.tap_backward
                        .push(k.guide.apply(ctx, src, m, dst, accumulate)?);
                }
            }
        }
        self.guided_content.extend(weighted);
        Ok(())
    }

    /// The style terms at `l`, the `i`-th of `grams`' layers (one per style image), with the
    /// backward through the blended target and factor `factor`.
    fn style_term(
        &mut self, l: LayerId, grams: &GramSums, i: usize, target: &StyleTarget, blended: &[f64],
        factor: f64,
    ) -> Result<()> {
        let (ctx, k) = (self.ctx, self.k);
        let (f, gram) = (&grams.features[i], &grams.grams[i]);
        let grad = self.gradient(l)?;
        let (c, n) = (f.layout.c, f.layout.h * f.layout.w);
        let cc = c as usize * c as usize;
        if target.grams.iter().any(|g| g.len() != cc) {
            let m = format!("style targets at {l} are not {c} × {c}");
            return Err(GpuError::BadShape(m).into());
        }
        let gram_grad = ctx.tensor(&format!("gram gradient {l}"), cc as u64)?;
        for (s, g) in target.grams.iter().enumerate() {
            let t = ctx.tensor_from(&format!("style target {l} #{}", s + 1), g)?;
            let slot = self.slot(Term::Style(l, s));
            let value = k
                .mse
                .forward(ctx, View::whole(gram), View::whole(&t), self.slots, slot)?;
            self.after.push(Box::new(value));
            self.keep.push(t);
        }
        let blended: Vec<f32> = blended.iter().map(|&v| v as f32).collect();
        let blended = ctx.tensor_from(&format!("blended style target {l}"), &blended)?;
        let (g, t, gg) = (
            View::whole(gram),
            View::whole(&blended),
            ViewMut::whole(&gram_grad),
        );
        // Each tile's features enter G with weight n / N (see GramSums): so does their
        // gradient.
        let scale = (factor * grams.ratios[i]) as f32;
        self.gram_backward
            .push(k.mse.backward(ctx, g, t, gg, scale, false)?);
        let accumulate = self.accumulate_at(l);
        for (a, &ch) in grad.layout.chunks.iter().enumerate() {
            for (j, &b) in f.layout.chunks.iter().enumerate() {
                let ga = (ch, grad.view_mut(a));
                let gg = View::whole(&gram_grad);
                let part =
                    k.gram
                        .backward_part(ctx, c, n, (b, f.view(j)), gg, ga, j > 0 || accumulate)?;
                self.tap_backward.push(part);
            }
        }
        self.keep.extend([gram_grad, blended]);
        Ok(())
    }

    /// The guided style terms at `l`, the `i`-th style layer of `guidance`: each style image
    /// `s` compares its own guided Gram matrix κ·G_s (`grams` holds G_s, the Gram sum of
    /// F ∘ m_s over N positions) with its target, weighted by `factor · weights[s]`, and its
    /// gradient goes back through the Gram matrix to F ∘ m_s, then through the guidance to
    /// the tap.
    #[allow(clippy::too_many_arguments)]
    fn guided_style_terms(
        &mut self, l: LayerId, grams: &GramSums, guidance: &Guidance, i: usize,
        target: &StyleTarget, weights: &[f64], factor: f64,
    ) -> Result<()> {
        let (ctx, k) = (self.ctx, self.k);
        let grad = self.gradient(l)?;
        let styles = guidance.per[i].len();
        let dguided = &guidance.grad[i];
        let seen = self.accumulate_at(l);
        for (s, g) in guidance.per[i].iter().enumerate() {
            let at = i * styles + s;
            let (f, gram, ratio) = (&grams.features[at], &grams.grams[at], grams.ratios[at]);
            let (c, n) = (f.layout.c, f.layout.h * f.layout.w);
            let cc = c as usize * c as usize;
            let target = target
                .grams
                .get(s)
                .filter(|t| t.len() == cc)
                .ok_or_else(|| {
                    GpuError::BadShape(format!("style target {} at {l} is not {c} × {c}", s + 1))
                })?;
            // mean((κG − S)²) = κ²·mean((G − S/κ)²): the target divided by κ, the value and
            // gradient scaled by κ².
            let scaled: Vec<f32> = target
                .iter()
                .map(|&v| (v as f64 / g.kappa) as f32)
                .collect();
            let t = ctx.tensor_from(&format!("style target {l} #{} / κ", s + 1), &scaled)?;
            let kappa2 = g.kappa * g.kappa;
            let slot = self.slot(Term::Style(l, s));
            let pair = (View::whole(gram), View::whole(&t));
            let scale = (kappa2 / cc as f64) as f32;
            let value = k
                .mse
                .forward_scaled(ctx, pair, self.slots, slot, scale, false)?;
            self.after.push(Box::new(value));
            let gram_grad = ctx.tensor(&format!("gram gradient {l} #{}", s + 1), cc as u64)?;
            let scale = (factor * weights[s] * kappa2 * ratio) as f32;
            let (gv, tv, gg) = (
                View::whole(gram),
                View::whole(&t),
                ViewMut::whole(&gram_grad),
            );
            self.gram_backward
                .push(k.mse.backward(ctx, gv, tv, gg, scale, false)?);
            for (a, &ch) in dguided.layout.chunks.iter().enumerate() {
                for (j, &b) in f.layout.chunks.iter().enumerate() {
                    let ga = (ch, dguided.view_mut(a));
                    let gg = View::whole(&gram_grad);
                    let part = k
                        .gram
                        .backward_part(ctx, c, n, (b, f.view(j)), gg, ga, j > 0)?;
                    self.tap_backward.push(part);
                }
                let (src, m, dst) = (dguided.view(a), g.guide.view(0), grad.view_mut(a));
                let apply = k.guide.apply(ctx, src, m, dst, seen || s > 0)?;
                self.tap_backward.push(apply);
            }
            self.keep.extend([t, gram_grad]);
        }
        Ok(())
    }

    /// The total variation term with weight `weight`, on the whole image; returns its
    /// image-gradient launches.
    fn tv_term(&mut self, weight: f64) -> Result<Vec<Dispatch>> {
        let (ctx, k, tg) = (self.ctx, self.k, self.tg);
        let ((h, w), x, slot) = (tg.size(), tg.image(), self.slot(Term::Tv));
        let value = k.tv.forward(ctx, [3, h, w], x, self.slots, slot)?;
        self.after.push(Box::new(value));
        let gx = tg.image_grad_mut();
        Ok(vec![k.tv.backward(
            ctx,
            [3, h, w],
            x,
            gx,
            weight as f32,
            true,
        )?])
    }

    /// The temporal term against earlier frame `j` (`frame`, at the image's size) with weight
    /// `weight`: `mean(c·(x − ω)²)` as `mean((√c∘x − √c∘ω)²)`, its value after every tile, its
    /// gradient `√c ∘ ∂/∂(√c∘x)` added to the image gradient (the launches returned).
    fn temporal_term(
        &mut self, j: usize, frame: &TemporalFrame, weight: f64,
    ) -> Result<Vec<Dispatch>> {
        let (ctx, k, tg) = (self.ctx, self.k, self.tg);
        let (h, w) = tg.size();
        let n = h as usize * w as usize;
        let img = &frame.warped;
        if (img.width, img.height) != (w, h) || frame.weights.len() != n {
            let m = format!("temporal frame {j} is not {w}×{h}");
            return Err(GpuError::BadShape(m).into());
        }
        let root: Vec<f32> = frame.weights.iter().map(|c| c.max(0.0).sqrt()).collect();
        let target: Vec<f32> = (img.data.iter().enumerate())
            .map(|(i, v)| v * root[i % n])
            .collect();
        let m = ctx.tensor_from(&format!("temporal {j}: √weights"), &root)?;
        let t = ctx.tensor_from(&format!("temporal {j}: target"), &target)?;
        let xw = ctx.tensor(&format!("temporal {j}: weighted image"), 3 * n as u64)?;
        let g = ctx.tensor(&format!("temporal {j}: gradient"), 3 * n as u64)?;
        let (mv, tv, xv) = (View::whole(&m), View::whole(&t), View::whole(&xw));
        let slot = self.slot(Term::Temporal(j));
        let weigh = k
            .guide
            .apply(ctx, tg.image(), mv, ViewMut::whole(&xw), false)?;
        self.after.push(Box::new(weigh));
        let scale = 1.0 / (3 * n) as f32;
        let value = k
            .mse
            .forward_scaled(ctx, (xv, tv), self.slots, slot, scale, false)?;
        self.after.push(Box::new(value));
        let launches = vec![
            k.mse
                .backward(ctx, xv, tv, ViewMut::whole(&g), weight as f32, false)?,
            k.guide
                .apply(ctx, View::whole(&g), mv, tg.image_grad_mut(), true)?,
        ];
        self.keep.extend([m, t, xw, g]);
        Ok(launches)
    }

    /// The out-of-range penalty with weight `weight`, on the whole image; returns its
    /// image-gradient launch, which adds to the total variation's.
    fn out_of_range_term(&mut self, weight: f64) -> Result<Dispatch> {
        let (ctx, k, tg) = (self.ctx, self.k, self.tg);
        let slot = self.slot(Term::OutOfRange);
        let value = k.out_of_range.forward(ctx, tg.image(), self.slots, slot)?;
        self.after.push(Box::new(value));
        Ok(k.out_of_range
            .backward(ctx, tg.image(), tg.image_grad_mut(), weight as f32, true)?)
    }
}
