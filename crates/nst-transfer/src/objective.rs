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
//! The style gradient uses the blended target S̄_l = Σ_k b_k·G_l(s_k): since Σ_k b_k = 1,
//! ∂/∂G Σ_k b_k·mean((G − S_k)²) = 2(G − S̄)/C², so one backward serves every style.

use nst_gpu::{Context, Dispatch, Record, View};
use nst_kernels::{Channels, Kernels};
use nst_vgg::{Graph, LayerId, Tensor};

/// A layer and its weight in a sum of per-layer losses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerWeight {
    /// The layer.
    pub layer: LayerId,
    /// Its weight (a_l or c_l).
    pub weight: f64,
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

impl LossConfig {
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
                .find(|l| !l.weight.is_finite() || l.weight < 0.0)
            {
                return Err(format!(
                    "{what}: the weight of {} must be a finite number ≥ 0, got {}",
                    l.layer, l.weight
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
    /// style layer and `blend` the style images' weights (summing to 1). The content targets
    /// start empty: fill them with [`Objective::record_capture_content`] after a forward pass
    /// on the content image.
    pub fn new(
        ctx: &Context,
        k: &Kernels,
        graph: &Graph,
        cfg: &LossConfig,
        styles: &[StyleTarget],
        blend: &[f64],
    ) -> Result<Objective> {
        let mut terms = Vec::new();
        for l in &cfg.content_layers {
            terms.push((Term::Content(l.layer), cfg.content_weight * l.weight));
        }
        for l in &cfg.style_layers {
            for (s, b) in blend.iter().enumerate() {
                terms.push((Term::Style(l.layer, s), cfg.style_weight * b * l.weight));
            }
        }
        terms.push((Term::Tv, cfg.tv_weight));
        let scalars = ctx.tensor("loss values", terms.len() as u64)?;
        let slot = |t: Term| terms.iter().position(|(x, _)| *x == t).unwrap() as u32;
        let slots = View::whole(&scalars);
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
        for lw in &cfg.content_layers {
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
            let w = cfg.content_weight * lw.weight;
            let accumulate = accumulate_at(lw.layer);
            for i in 0..act.chunk_count() {
                forward.push(Box::new(k.mse.forward_scaled(
                    ctx,
                    act.view(i),
                    target.view(i),
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
                    grad.view(i),
                    (w * share) as f32,
                    accumulate,
                )?);
            }
            content_targets.push((lw.layer, target));
        }

        for lw in &cfg.style_layers {
            let (act, grad) = tap(lw.layer, "style loss")?;
            let target = styles.iter().find(|t| t.layer == lw.layer).ok_or_else(|| {
                nst_gpu::GpuError::BadShape(format!("no style target at {}", lw.layer))
            })?;
            let c = act.layout.c;
            let n = act.layout.h * act.layout.w;
            let cc = c as usize * c as usize;
            if target.grams.len() != blend.len() || target.grams.iter().any(|g| g.len() != cc) {
                return Err(nst_gpu::GpuError::BadShape(format!(
                    "style targets at {} do not match {} style images of {c} channels",
                    lw.layer,
                    blend.len()
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
                        View::whole(&gram),
                    )?));
                }
            }
            let mut blended = vec![0.0f64; cc];
            for (s, g) in target.grams.iter().enumerate() {
                let t = ctx.tensor_from(&format!("style target {} #{}", lw.layer, s + 1), g)?;
                forward.push(Box::new(k.mse.forward(
                    ctx,
                    View::whole(&gram),
                    View::whole(&t),
                    slots,
                    slot(Term::Style(lw.layer, s)),
                )?));
                for (acc, &v) in blended.iter_mut().zip(g) {
                    *acc += blend[s] * v as f64;
                }
                keep.push(t);
            }
            let blended: Vec<f32> = blended.iter().map(|&v| v as f32).collect();
            let blended =
                ctx.tensor_from(&format!("blended style target {}", lw.layer), &blended)?;
            tap_backward.push(k.mse.backward(
                ctx,
                View::whole(&gram),
                View::whole(&blended),
                View::whole(&gram_grad),
                (cfg.style_weight * lw.weight) as f32,
                false,
            )?);
            let accumulate = accumulate_at(lw.layer);
            let grads: Vec<(Channels, View<'_>)> = grad
                .layout
                .chunks
                .iter()
                .enumerate()
                .map(|(i, ch)| (*ch, grad.view(i)))
                .collect();
            for &ga in &grads {
                for (j, &b) in chunks.iter().enumerate() {
                    tap_backward.push(k.gram.backward_part(
                        ctx,
                        c,
                        n,
                        ga,
                        b,
                        View::whole(&gram_grad),
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
            graph.input_grad(),
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
