//! The loss on the GPU: content, style and total-variation terms over a graph's taps. Their
//! values go to a small scalar buffer (read back only when asked), their gradients into the
//! graph's tap gradients and, for total variation, the image gradient.
//!
//! The formulas are in [`crate::loss`].

use crate::error::{Field, Result, TransferError};
use crate::loss::{LossConfig, LossValues, Term, TermValue};
use nst_gpu::{Context, Dispatch, GpuError, Record, View, ViewMut};
use nst_kernels::{Channels, Kernels};
use nst_vgg::{Graph, LayerId, Tensor};

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

/// The mean of the squares, in f64.
pub fn mean_square(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64
}

/// The loss terms, prepared for one graph.
pub struct Objective {
    scalars: wgpu::Buffer,
    terms: Vec<(Term, f64)>,
    content_targets: Vec<(LayerId, Tensor)>,
    forward: Vec<Box<dyn Record>>,
    tap_backward: Vec<Dispatch>,
    image_backward: Vec<Dispatch>,
    _keep: Vec<wgpu::Buffer>,
}

impl Objective {
    /// Prepares the terms of `cfg` over `graph`'s taps. `styles` holds the Gram targets per
    /// style layer and `blend` the style images' weights (summing to 1); `content_ms` holds
    /// mean(F_l(c)²) for each content layer of `cfg`, in order, which scales the
    /// [`crate::Weight::Normalized`] ones. The content targets start empty: fill them with
    /// [`Objective::capture_content`] after a forward pass on the content image.
    pub fn new(
        ctx: &Context,
        k: &Kernels,
        graph: &Graph,
        cfg: &LossConfig,
        styles: &[StyleTarget],
        blend: &[f64],
        content_ms: &[f64],
    ) -> Result<Objective> {
        let factors = Factors::new(cfg, styles, blend, content_ms)?;
        let terms = factors.terms(cfg, blend);
        let scalars = ctx.tensor("loss values", terms.len() as u64)?;
        let mut b = Builder {
            ctx,
            k,
            graph,
            terms: &terms,
            slots: ViewMut::whole(&scalars),
            forward: Vec::new(),
            tap_backward: Vec::new(),
            keep: Vec::new(),
            written: Vec::new(),
        };
        let mut content_targets = Vec::new();
        for (lw, &w) in cfg.content_layers.iter().zip(&factors.content) {
            content_targets.push((lw.layer, b.content_term(lw.layer, w)?));
        }
        for (lw, (target, blended, factor)) in cfg.style_layers.iter().zip(&factors.style) {
            b.style_term(lw.layer, target, blended, *factor)?;
        }
        let image_backward = b.tv_term(cfg.tv_weight)?;
        let (forward, tap_backward, keep) = (b.forward, b.tap_backward, b.keep);
        Ok(Objective {
            scalars,
            terms,
            content_targets,
            forward,
            tap_backward,
            image_backward,
            _keep: keep,
        })
    }

    /// Copies the graph's current activations at the content layers into the content
    /// targets: submit it after a forward pass on the content image.
    pub fn capture_content(&self, ctx: &Context, graph: &Graph) -> Result<()> {
        let mut pairs = Vec::new();
        for (layer, target) in &self.content_targets {
            let act = graph.activation(*layer).expect("checked in new");
            pairs.extend(act.buffers.iter().zip(&target.buffers));
        }
        Ok(ctx.copy(&pairs)?)
    }

    /// Records every term's value (into the scalar buffer) and the Gram matrices the
    /// backward needs. After the graph's forward.
    pub fn record_forward(&self, pass: &mut wgpu::ComputePass<'_>) {
        for r in &self.forward {
            r.record(pass);
        }
    }

    /// Records the terms' gradients into the graph's tap gradients. After
    /// [`Objective::record_forward`], before the graph's backward.
    pub fn record_tap_gradients(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.tap_backward {
            d.record(pass);
        }
    }

    /// Records the total variation's gradient, added to the image gradient. After the
    /// graph's backward (which overwrites the image gradient).
    pub fn record_image_gradients(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.image_backward {
            d.record(pass);
        }
    }

    /// Reads the values written by the last recorded forward. Waits for the GPU.
    pub fn read(&self, ctx: &Context) -> Result<LossValues> {
        let raw = ctx.read::<f32>(View::whole(&self.scalars))?;
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

/// The factor of every raw term, and each style layer's target, checked against the config.
struct Factors<'a> {
    /// content_weight·a_l per content layer.
    content: Vec<f64>,
    /// Per style layer: its targets, the blended target and style_weight·c_l.
    style: Vec<(&'a StyleTarget, Vec<f64>, f64)>,
}

impl<'a> Factors<'a> {
    fn new(
        cfg: &LossConfig,
        styles: &'a [StyleTarget],
        blend: &[f64],
        content_ms: &[f64],
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
                "the {what} at {l} is all zero, so its term cannot be normalised: use another \
                 image or layer, or give raw layer weights"
            );
            TransferError::invalid(field, reason)
        };
        let content = cfg.content_layers.iter().zip(content_ms).map(|(l, &ms)| {
            let f = l.weight.factor(ms);
            let f =
                f.ok_or_else(|| flat(Field::ContentLayers, "content image's activation", l.layer))?;
            Ok(cfg.content_weight * f)
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
    /// per style image, then total variation.
    fn terms(&self, cfg: &LossConfig, blend: &[f64]) -> Vec<(Term, f64)> {
        let content = cfg.content_layers.iter().zip(&self.content);
        let mut terms: Vec<(Term, f64)> =
            content.map(|(l, f)| (Term::Content(l.layer), *f)).collect();
        for (l, (_, _, f)) in cfg.style_layers.iter().zip(&self.style) {
            for (s, b) in blend.iter().enumerate() {
                terms.push((Term::Style(l.layer, s), f * b));
            }
        }
        terms.push((Term::Tv, cfg.tv_weight));
        terms
    }
}

/// Wires the launches of each term over a graph.
struct Builder<'a> {
    ctx: &'a Context,
    k: &'a Kernels,
    graph: &'a Graph,
    terms: &'a [(Term, f64)],
    slots: ViewMut<'a>,
    forward: Vec<Box<dyn Record>>,
    tap_backward: Vec<Dispatch>,
    keep: Vec<wgpu::Buffer>,
    /// Taps whose gradient a term already wrote: the first term at a tap overwrites its
    /// gradient, the others add.
    written: Vec<LayerId>,
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

    /// The activation and gradient tensors at a tapped layer.
    fn tap(&self, l: LayerId, what: &str) -> Result<(&'a Tensor, &'a Tensor)> {
        let missing = || GpuError::BadShape(format!("{what}: layer {l} is not tapped"));
        Ok((
            self.graph.activation(l).ok_or_else(missing)?,
            self.graph.gradient(l).ok_or_else(missing)?,
        ))
    }

    /// The content term at `l` with factor `w`; returns its (empty) target.
    fn content_term(&mut self, l: LayerId, w: f64) -> Result<Tensor> {
        let (ctx, k) = (self.ctx, self.k);
        let (act, grad) = self.tap(l, "content loss")?;
        let chunk = |i| ctx.tensor(&format!("content target {l}"), act.layout.chunk_len(i));
        let buffers = (0..act.chunk_count())
            .map(chunk)
            .collect::<std::result::Result<_, _>>()?;
        let target = Tensor {
            layout: act.layout.clone(),
            buffers,
        };
        let n = act.layout.len() as f64;
        let (accumulate, slot) = (self.accumulate_at(l), self.slot(Term::Content(l)));
        for i in 0..act.chunk_count() {
            let pair = (act.view(i), target.view(i));
            let value =
                k.mse
                    .forward_scaled(ctx, pair, self.slots, slot, (1.0 / n) as f32, i > 0)?;
            self.forward.push(Box::new(value));
            let share = act.layout.chunk_len(i) as f64 / n;
            let (a, t, g) = (act.view(i), target.view(i), grad.view_mut(i));
            let backward = k
                .mse
                .backward(ctx, a, t, g, (w * share) as f32, accumulate)?;
            self.tap_backward.push(backward);
        }
        Ok(target)
    }

    /// The style terms at `l` (one per style image), with the backward through the blended
    /// target and factor `factor`.
    fn style_term(
        &mut self,
        l: LayerId,
        target: &StyleTarget,
        blended: &[f64],
        factor: f64,
    ) -> Result<()> {
        let (ctx, k) = (self.ctx, self.k);
        let (act, grad) = self.tap(l, "style loss")?;
        let (c, n) = (act.layout.c, act.layout.h * act.layout.w);
        let cc = c as usize * c as usize;
        if target.grams.iter().any(|g| g.len() != cc) {
            let m = format!("style targets at {l} are not {c} × {c}");
            return Err(GpuError::BadShape(m).into());
        }
        let gram = ctx.tensor(&format!("gram {l}"), cc as u64)?;
        let gram_grad = ctx.tensor(&format!("gram gradient {l}"), cc as u64)?;
        let chunks: Vec<(Channels, View<'_>)> = act
            .layout
            .chunks
            .iter()
            .enumerate()
            .map(|(i, ch)| (*ch, act.view(i)))
            .collect();
        for &a in &chunks {
            for &b in &chunks {
                let part = k
                    .gram
                    .forward_part(ctx, c, n, a, b, ViewMut::whole(&gram))?;
                self.forward.push(Box::new(part));
            }
        }
        for (s, g) in target.grams.iter().enumerate() {
            let t = ctx.tensor_from(&format!("style target {l} #{}", s + 1), g)?;
            let slot = self.slot(Term::Style(l, s));
            let value =
                k.mse
                    .forward(ctx, View::whole(&gram), View::whole(&t), self.slots, slot)?;
            self.forward.push(Box::new(value));
            self.keep.push(t);
        }
        let blended: Vec<f32> = blended.iter().map(|&v| v as f32).collect();
        let blended = ctx.tensor_from(&format!("blended style target {l}"), &blended)?;
        let (g, t, gg) = (
            View::whole(&gram),
            View::whole(&blended),
            ViewMut::whole(&gram_grad),
        );
        self.tap_backward
            .push(k.mse.backward(ctx, g, t, gg, factor as f32, false)?);
        let accumulate = self.accumulate_at(l);
        for (i, &ch) in grad.layout.chunks.iter().enumerate() {
            for (j, &b) in chunks.iter().enumerate() {
                let ga = (ch, grad.view_mut(i));
                let gg = View::whole(&gram_grad);
                let part = k
                    .gram
                    .backward_part(ctx, c, n, b, gg, ga, j > 0 || accumulate)?;
                self.tap_backward.push(part);
            }
        }
        self.keep.extend([gram, gram_grad, blended]);
        Ok(())
    }

    /// The total variation term with weight `weight`; returns its image-gradient launches.
    fn tv_term(&mut self, weight: f64) -> Result<Vec<Dispatch>> {
        let (ctx, k, graph) = (self.ctx, self.k, self.graph);
        let ((h, w), x, slot) = (graph.size(), graph.input(), self.slot(Term::Tv));
        let value = k.tv.forward(ctx, [3, h, w], x, self.slots, slot)?;
        self.forward.push(Box::new(value));
        let gx = graph.input_grad_mut();
        Ok(vec![k.tv.backward(
            ctx,
            [3, h, w],
            x,
            gx,
            weight as f32,
            true,
        )?])
    }
}
