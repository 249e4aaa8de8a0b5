//! The loss on the GPU: content, style and total-variation terms over a graph's taps. Their
//! values go to a small scalar buffer (read back only when asked), their gradients into the
//! graph's tap gradients and, for total variation, the image gradient.
//!
//! For an image x in RGB [0, 1], content image c and style images s_k with blend weights b_k
//! (summing to 1):
//!
//! ```text
//! content_l   = mean over elements of (F_l(x) − F_l(c))²
//! G_l(y)      = F_l(y)·F_l(y)ᵀ / (H_l·W_l)
//! style_l,k   = mean over the C×C entries of (G_l(x) − G_l(s_k))²
//! tv          = mean |x[h+1] − x[h]| + mean |x[w+1] − x[w]|
//! total       = content_weight·Σ_l a_l·content_l + style_weight·Σ_k b_k Σ_l c_l·style_l,k
//!               + tv_weight·tv
//! ```
//!
//! A layer weight is either given ([`Weight::Raw`]) or scale-free ([`Weight::Normalized`]):
//! a_l = w / mean(F_l(c)²) and c_l = w / mean(S̄_l²), with S̄_l = Σ_k b_k·G_l(s_k) the blended
//! target. The normalised terms are then the squared relative distances
//! ‖F_l(x) − F_l(c)‖² / ‖F_l(c)‖² and ‖G_l(x) − S̄_l‖² / ‖S̄_l‖² (plus a constant with several
//! styles), the same size for any pair of images and any size.
//!
//! The style gradient uses the blended target S̄_l: since Σ_k b_k = 1,
//! ∂/∂G Σ_k b_k·mean((G − S_k)²) = 2(G − S̄)/C², so one backward serves every style.

use nst_gpu::{Context, Dispatch, Record, View, ViewMut};
use nst_kernels::{Channels, Kernels};
use nst_vgg::{Graph, LayerId, Tensor};

/// How one layer's term is weighted in its sum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Weight {
    /// This number divided by the mean square of the layer's target (F_l(c) for content,
    /// the blended style Gram for style), computed from the images at each run: a weight that
    /// means the same for any images, any size and any layer. The default, with 1.
    Normalized(f64),
    /// The raw term of `docs/loss.md` times this number.
    Raw(f64),
}

impl Weight {
    /// The number given, whichever the form.
    pub fn value(self) -> f64 {
        match self {
            Weight::Normalized(w) | Weight::Raw(w) => w,
        }
    }

    /// The factor of the raw term, given the mean square of the layer's target; `None` when
    /// a normalised weight meets a target that is all zero (or not finite).
    pub fn factor(self, target_mean_square: f64) -> Option<f64> {
        match self {
            Weight::Normalized(w) if target_mean_square > 0.0 && target_mean_square.is_finite() => {
                Some(w / target_mean_square)
            }
            Weight::Normalized(_) => None,
            Weight::Raw(w) => Some(w),
        }
    }
}

/// A layer and its weight in a sum of per-layer losses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerWeight {
    /// The layer.
    pub layer: LayerId,
    /// Its weight (a_l or c_l).
    pub weight: Weight,
}

impl LayerWeight {
    /// The layer with the scale-free weight 1: the default.
    pub fn normalized(layer: LayerId) -> Self {
        LayerWeight {
            layer,
            weight: Weight::Normalized(1.0),
        }
    }

    /// The layer with a raw weight.
    pub fn raw(layer: LayerId, weight: f64) -> Self {
        LayerWeight {
            layer,
            weight: Weight::Raw(weight),
        }
    }
}

/// What the loss is made of and how its terms are weighted.
#[derive(Clone, Debug, PartialEq)]
pub struct LossConfig {
    /// Weight of the content terms.
    pub content_weight: f64,
    /// Weight of the style terms.
    pub style_weight: f64,
    /// Weight of the total variation.
    pub tv_weight: f64,
    /// Content layers with their weights a_l.
    pub content_layers: Vec<LayerWeight>,
    /// Style layers with their weights c_l.
    pub style_layers: Vec<LayerWeight>,
}

impl Default for LossConfig {
    /// The defaults of [`crate::defaults`]: content at [`crate::CONTENT_LAYERS`], style at
    /// [`crate::STYLE_LAYERS`], every layer normalised with weight 1.
    fn default() -> Self {
        let layers = |names: &[&str]| {
            names
                .iter()
                .map(|n| LayerWeight::normalized(LayerId::parse(n).expect("a layer of the table")))
                .collect()
        };
        LossConfig {
            content_weight: crate::defaults::CONTENT_WEIGHT,
            style_weight: crate::defaults::STYLE_WEIGHT,
            tv_weight: crate::defaults::TV_WEIGHT,
            content_layers: layers(crate::CONTENT_LAYERS),
            style_layers: layers(crate::STYLE_LAYERS),
        }
    }
}

impl LossConfig {
    /// Sets the content and style weights from one strength in [0, 1]
    /// ([`crate::defaults::strength_weights`]).
    pub fn with_strength(mut self, strength: f64) -> std::result::Result<Self, String> {
        (self.content_weight, self.style_weight) = crate::defaults::strength_weights(strength)?;
        Ok(self)
    }

    /// Every layer a term reads, in network order, each once.
    pub fn taps(&self) -> Vec<LayerId> {
        let mut taps: Vec<LayerId> = self
            .content_layers
            .iter()
            .chain(&self.style_layers)
            .map(|l| l.layer)
            .collect();
        taps.sort();
        taps.dedup();
        taps
    }

    /// Checks that every weight is finite and not negative, and that some layer is tapped.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let globals = [
            ("--content-weight", self.content_weight),
            ("--style-weight", self.style_weight),
            ("--tv-weight", self.tv_weight),
        ];
        for (name, w) in globals {
            if !w.is_finite() || w < 0.0 {
                return Err(format!("{name} must be a finite number ≥ 0, got {w}"));
            }
        }
        for (what, layers) in [
            ("--content-layer-weights", &self.content_layers),
            ("--style-layer-weights", &self.style_layers),
        ] {
            if let Some(l) = layers
                .iter()
                .find(|l| !l.weight.value().is_finite() || l.weight.value() < 0.0)
            {
                return Err(format!(
                    "{what}: the weight of {} must be a finite number ≥ 0, got {}",
                    l.layer,
                    l.weight.value()
                ));
            }
        }
        for (what, layers) in [
            ("--content-layers", &self.content_layers),
            ("--style-layers", &self.style_layers),
        ] {
            // Each term has one value slot: a layer named twice would be counted once in the
            // reported loss but twice in the gradient.
            if let Some((_, l)) = layers
                .iter()
                .enumerate()
                .find(|(i, l)| layers[..*i].iter().any(|m| m.layer == l.layer))
            {
                return Err(format!(
                    "{what} names {} twice: name each layer once (raise its weight instead)",
                    l.layer
                ));
            }
        }
        if self.taps().is_empty() {
            return Err("no content or style layer is given: name at least one".into());
        }
        Ok(())
    }
}

/// One term of the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    /// Content loss at a layer.
    Content(LayerId),
    /// Style loss at a layer against style image `style`.
    Style(LayerId, usize),
    /// Total variation of the image.
    Tv,
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Term::Content(l) => write!(f, "content {l}"),
            Term::Style(l, k) => write!(f, "style {l} (style image {})", k + 1),
            Term::Tv => f.write_str("total variation"),
        }
    }
}

/// A term's value: `raw` as the formula defines it, and its weight in the total.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TermValue {
    /// Which term.
    pub term: Term,
    /// Its value, unweighted.
    pub raw: f64,
    /// Its factor in the total (content_weight·a_l, style_weight·b_k·c_l or tv_weight).
    pub weight: f64,
}

/// Every term's value and the total.
#[derive(Clone, Debug, PartialEq)]
pub struct LossValues {
    /// The terms.
    pub terms: Vec<TermValue>,
}

impl LossValues {
    /// `Σ weight·raw`.
    pub fn total(&self) -> f64 {
        self.terms.iter().map(|t| t.weight * t.raw).sum()
    }

    /// The weighted content part.
    pub fn content(&self) -> f64 {
        self.sum(|t| matches!(t, Term::Content(_)))
    }

    /// The weighted style part.
    pub fn style(&self) -> f64 {
        self.sum(|t| matches!(t, Term::Style(..)))
    }

    /// The weighted total variation.
    pub fn tv(&self) -> f64 {
        self.sum(|t| matches!(t, Term::Tv))
    }

    fn sum(&self, pick: impl Fn(&Term) -> bool) -> f64 {
        self.terms
            .iter()
            .filter(|t| pick(&t.term))
            .map(|t| t.weight * t.raw)
            .sum()
    }

    /// The first term whose value is NaN or infinite, if any.
    pub fn first_non_finite(&self) -> Option<&TermValue> {
        self.terms
            .iter()
            .find(|t| !t.raw.is_finite() || !(t.weight * t.raw).is_finite())
    }
}

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

/// An error while preparing the objective.
pub type Result<T> = std::result::Result<T, nst_gpu::GpuError>;

impl Objective {
    /// Prepares the terms of `cfg` over `graph`'s taps. `styles` holds the Gram targets per
    /// style layer and `blend` the style images' weights (summing to 1); `content_ms` holds
    /// mean(F_l(c)²) for each content layer of `cfg`, in order, which scales the
    /// [`Weight::Normalized`] ones. The content targets start empty: fill them with
    /// [`Objective::record_capture_content`] after a forward pass on the content image.
    pub fn new(
        ctx: &Context,
        k: &Kernels,
        graph: &Graph,
        cfg: &LossConfig,
        styles: &[StyleTarget],
        blend: &[f64],
        content_ms: &[f64],
    ) -> Result<Objective> {
        if content_ms.len() != cfg.content_layers.len() {
            return Err(nst_gpu::GpuError::BadShape(format!(
                "{} content target norms for {} content layers",
                content_ms.len(),
                cfg.content_layers.len()
            )));
        }
        // The factor of each raw term, content layers then style layers.
        let flat = |what: &str, l: LayerId| {
            nst_gpu::GpuError::BadShape(format!(
                "the {what} at {l} is all zero, so its term cannot be normalised: use another \
                 image or layer, or give raw layer weights"
            ))
        };
        let content_factors: Vec<f64> = cfg
            .content_layers
            .iter()
            .zip(content_ms)
            .map(|(l, &ms)| {
                let f = l
                    .weight
                    .factor(ms)
                    .ok_or_else(|| flat("content image's activation", l.layer))?;
                Ok(cfg.content_weight * f)
            })
            .collect::<Result<_>>()?;
        let mut style_targets = Vec::new();
        let mut blended_targets = Vec::new();
        let mut style_factors = Vec::new();
        for lw in &cfg.style_layers {
            let target = styles.iter().find(|t| t.layer == lw.layer).ok_or_else(|| {
                nst_gpu::GpuError::BadShape(format!("no style target at {}", lw.layer))
            })?;
            if target.grams.len() != blend.len() {
                return Err(nst_gpu::GpuError::BadShape(format!(
                    "style targets at {} do not match {} style images",
                    lw.layer,
                    blend.len()
                )));
            }
            let b = target.blended(blend);
            let f = lw
                .weight
                .factor(mean_square(&b))
                .ok_or_else(|| flat("style Gram matrix", lw.layer))?;
            style_factors.push(cfg.style_weight * f);
            style_targets.push(target);
            blended_targets.push(b);
        }
        let mut terms = Vec::new();
        for (l, f) in cfg.content_layers.iter().zip(&content_factors) {
            terms.push((Term::Content(l.layer), *f));
        }
        for (l, f) in cfg.style_layers.iter().zip(&style_factors) {
            for (s, b) in blend.iter().enumerate() {
                terms.push((Term::Style(l.layer, s), f * b));
            }
        }
        terms.push((Term::Tv, cfg.tv_weight));
        let scalars = ctx.tensor("loss values", terms.len() as u64)?;
        let slot = |t: Term| terms.iter().position(|(x, _)| *x == t).unwrap() as u32;
        let slots = ViewMut::whole(&scalars);
        let tap = |l: LayerId, what: &str| {
            let missing =
                || nst_gpu::GpuError::BadShape(format!("{what}: layer {l} is not tapped"));
            Ok::<_, nst_gpu::GpuError>((
                graph.activation(l).ok_or_else(missing)?,
                graph.gradient(l).ok_or_else(missing)?,
            ))
        };
        let mut forward: Vec<Box<dyn Record>> = Vec::new();
        let mut tap_backward = Vec::new();
        let mut keep = Vec::new();
        // The first term at a tap overwrites its gradient, the others add.
        let mut written: Vec<LayerId> = Vec::new();
        let mut accumulate_at = |l: LayerId| {
            let seen = written.contains(&l);
            written.push(l);
            seen
        };

        let mut content_targets = Vec::new();
        for (lw, &w) in cfg.content_layers.iter().zip(&content_factors) {
            let (act, grad) = tap(lw.layer, "content loss")?;
            let target = Tensor {
                layout: act.layout.clone(),
                buffers: (0..act.chunk_count())
                    .map(|i| {
                        ctx.tensor(
                            &format!("content target {}", lw.layer),
                            act.layout.chunk_len(i),
                        )
                    })
                    .collect::<Result<_>>()?,
            };
            let n = act.layout.len() as f64;
            let accumulate = accumulate_at(lw.layer);
            for i in 0..act.chunk_count() {
                forward.push(Box::new(k.mse.forward_scaled(
                    ctx,
                    (act.view(i), target.view(i)),
                    slots,
                    slot(Term::Content(lw.layer)),
                    (1.0 / n) as f32,
                    i > 0,
                )?));
                let share = act.layout.chunk_len(i) as f64 / n;
                tap_backward.push(k.mse.backward(
                    ctx,
                    act.view(i),
                    target.view(i),
                    grad.view_mut(i),
                    (w * share) as f32,
                    accumulate,
                )?);
            }
            content_targets.push((lw.layer, target));
        }

        for (((lw, target), blended), &factor) in cfg
            .style_layers
            .iter()
            .zip(&style_targets)
            .zip(&blended_targets)
            .zip(&style_factors)
        {
            let (act, grad) = tap(lw.layer, "style loss")?;
            let c = act.layout.c;
            let n = act.layout.h * act.layout.w;
            let cc = c as usize * c as usize;
            if target.grams.iter().any(|g| g.len() != cc) {
                return Err(nst_gpu::GpuError::BadShape(format!(
                    "style targets at {} are not {c} × {c}",
                    lw.layer
                )));
            }
            let gram = ctx.tensor(&format!("gram {}", lw.layer), cc as u64)?;
            let gram_grad = ctx.tensor(&format!("gram gradient {}", lw.layer), cc as u64)?;
            let chunks: Vec<(Channels, View<'_>)> = act
                .layout
                .chunks
                .iter()
                .enumerate()
                .map(|(i, ch)| (*ch, act.view(i)))
                .collect();
            for &a in &chunks {
                for &b in &chunks {
                    forward.push(Box::new(k.gram.forward_part(
                        ctx,
                        c,
                        n,
                        a,
                        b,
                        ViewMut::whole(&gram),
                    )?));
                }
            }
            for (s, g) in target.grams.iter().enumerate() {
                let t = ctx.tensor_from(&format!("style target {} #{}", lw.layer, s + 1), g)?;
                forward.push(Box::new(k.mse.forward(
                    ctx,
                    View::whole(&gram),
                    View::whole(&t),
                    slots,
                    slot(Term::Style(lw.layer, s)),
                )?));
                keep.push(t);
            }
            let blended: Vec<f32> = blended.iter().map(|&v| v as f32).collect();
            let blended =
                ctx.tensor_from(&format!("blended style target {}", lw.layer), &blended)?;
            tap_backward.push(k.mse.backward(
                ctx,
                View::whole(&gram),
                View::whole(&blended),
                ViewMut::whole(&gram_grad),
                factor as f32,
                false,
            )?);
            let accumulate = accumulate_at(lw.layer);
            let grads: Vec<(Channels, ViewMut<'_>)> = grad
                .layout
                .chunks
                .iter()
                .enumerate()
                .map(|(i, ch)| (*ch, grad.view_mut(i)))
                .collect();
            for &ga in &grads {
                for (j, &b) in chunks.iter().enumerate() {
                    tap_backward.push(k.gram.backward_part(
                        ctx,
                        c,
                        n,
                        b,
                        View::whole(&gram_grad),
                        ga,
                        j > 0 || accumulate,
                    )?);
                }
            }
            keep.extend([gram, gram_grad, blended]);
        }

        let (h, w) = graph.size();
        forward.push(Box::new(k.tv.forward(
            ctx,
            3,
            h,
            w,
            graph.input(),
            slots,
            slot(Term::Tv),
        )?));
        let image_backward = vec![k.tv.backward(
            ctx,
            3,
            h,
            w,
            graph.input(),
            graph.input_grad_mut(),
            cfg.tv_weight as f32,
            true,
        )?];
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

    /// Records a copy of the graph's current activations at the content layers into the
    /// content targets (after a forward pass on the content image, in a separate pass).
    pub fn record_capture_content(&self, graph: &Graph, encoder: &mut wgpu::CommandEncoder) {
        for (layer, target) in &self.content_targets {
            let act = graph.activation(*layer).expect("checked in new");
            for i in 0..act.chunk_count() {
                let bytes = act.layout.chunk_len(i) * 4;
                encoder.copy_buffer_to_buffer(&act.buffers[i], 0, &target.buffers[i], 0, bytes);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_weights_divide_by_the_target_and_refuse_a_flat_one() {
        assert_eq!(Weight::Normalized(2.0).factor(4.0), Some(0.5));
        assert_eq!(Weight::Raw(2.0).factor(4.0), Some(2.0));
        assert_eq!(Weight::Normalized(1.0).factor(0.0), None);
        assert_eq!(Weight::Raw(1.0).factor(0.0), Some(1.0));
        let cfg = LossConfig::default();
        assert!(cfg
            .style_layers
            .iter()
            .all(|l| l.weight == Weight::Normalized(1.0)));
        assert_eq!(cfg.clone().with_strength(0.25).unwrap().style_weight, 0.5);
        let mut twice = cfg;
        twice.style_layers.push(twice.style_layers[0]);
        let e = twice.validate().unwrap_err();
        assert!(e.contains("relu1_1 twice"), "{e}");
    }
}
