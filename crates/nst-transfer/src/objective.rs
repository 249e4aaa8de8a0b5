//! The loss on the GPU: content, style and total-variation terms over a graph's taps. Their
//! values go to a small scalar buffer (read back only when asked), their gradients into the
//! graph's tap gradients and, for total variation, the image gradient.
//!
//! The formulas are in [`crate::loss`].

use crate::loss::{LossConfig, LossValues, Term, TermValue};
use nst_gpu::{Context, Dispatch, Record, View, ViewMut};
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

/// An error while preparing the objective.
pub type Result<T> = std::result::Result<T, nst_gpu::GpuError>;

impl Objective {
    /// Prepares the terms of `cfg` over `graph`'s taps. `styles` holds the Gram targets per
    /// style layer and `blend` the style images' weights (summing to 1); `content_ms` holds
    /// mean(F_l(c)²) for each content layer of `cfg`, in order, which scales the
    /// [`crate::Weight::Normalized`] ones. The content targets start empty: fill them with
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
