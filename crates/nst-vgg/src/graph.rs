//! The VGG-19 graph for one image size: forward from RGB pixels to the deepest tapped layer,
//! and the hand-written backward from gradients at the tapped layers to the RGB pixels.
//!
//! Everything is planned on the CPU first ([`GraphLayout`]: which tensors exist, how each is
//! chunked, how many bytes they take), then allocated once, and every kernel launch is
//! prepared once; recording an iteration allocates nothing.
//!
//! What the backward needs from the forward: each ReLU's output (its mask, and the next
//! layer's input anyway) and each max pool's arg-max. A convolution's input gradient needs
//! only its weights. Gradients that no caller reads live in two scratch sets that alternate
//! layer by layer; gradients at tapped layers have their own buffers.

use crate::error::VggError;
use crate::layers::{layers, output_shape, LayerId, LayerKind};
use crate::tensor::{ChunkLayout, Tensor};
use crate::weights::VggWeights;
use nst_gpu::human_bytes as bytes;
use nst_gpu::{Context, Dispatch, GpuError, Record, View, ViewMut};
use nst_kernels::{Channels, ConvPart, ConvShape, Kernels, PoolShape};
use std::collections::BTreeSet;

/// The pooling layers' kind. Written as its [`Pooling::name`], `max` or `avg`: in settings
/// files (serde), on command lines ([`std::str::FromStr`]) and by [`std::fmt::Display`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooling {
    /// 2×2 max pooling (VGG-19 as trained).
    #[default]
    Max,
    /// 2×2 average pooling (Gatys et al. found it gives smoother results).
    Avg,
}

impl Pooling {
    /// Every kind.
    pub const NAMED: [Pooling; 2] = [Pooling::Max, Pooling::Avg];

    /// Its name: the one spelling it is read and written with.
    pub fn name(&self) -> &'static str {
        match self {
            Pooling::Max => "max",
            Pooling::Avg => "avg",
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pooling {
    type Err = VggError;

    fn from_str(s: &str) -> Result<Pooling, VggError> {
        let found = Pooling::NAMED.into_iter().find(|p| p.name() == s);
        found.ok_or_else(|| VggError::UnknownPooling { name: s.into() })
    }
}

impl serde::Serialize for Pooling {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Pooling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pooling, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// Image height in pixels.
    pub height: u32,
    /// Image width in pixels.
    pub width: u32,
    /// The layers whose activations callers read and whose gradients they provide.
    pub taps: Vec<LayerId>,
    /// Max or average pooling.
    pub pooling: Pooling,
    /// Split tensors into chunks of at most this many bytes (never more than the adapter's
    /// binding limit). `None`: the adapter's limit. Tests set it small to force chunking.
    pub max_chunk_bytes: Option<u64>,
}

/// The adapter limits a plan must respect.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest storage binding, bytes.
    pub max_binding_bytes: u64,
    /// Largest buffer, bytes.
    pub max_buffer_bytes: u64,
}

impl Limits {
    /// The largest chunk a tensor may take: the binding limit (and the buffer limit), or
    /// `max_chunk_bytes` when smaller.
    pub fn chunk_limit(&self, max_chunk_bytes: Option<u64>) -> u64 {
        let bind = self.max_binding_bytes.min(self.max_buffer_bytes);
        max_chunk_bytes.map_or(bind, |m| m.min(bind))
    }

    /// The limits of `ctx`'s device.
    pub fn of(ctx: &Context) -> Self {
        Limits {
            max_binding_bytes: ctx.max_binding_bytes,
            max_buffer_bytes: ctx.limits.max_buffer_size,
        }
    }
}

/// Where a layer's output gradient lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GradHome {
    /// Its own buffers (tapped layers).
    Own,
    /// Scratch set 0 or 1.
    Scratch(usize),
}

/// The tensors of a graph for one size, before anything is allocated.
#[derive(Clone, Debug)]
pub struct GraphLayout {
    /// Image height.
    pub height: u32,
    /// Image width.
    pub width: u32,
    /// The deepest tapped layer: nothing after it is built.
    pub deepest: LayerId,
    taps: BTreeSet<usize>,
    /// Output layout of every layer up to the deepest tap.
    outputs: Vec<ChunkLayout>,
    /// Whether the forward keeps each layer's output.
    stored: Vec<bool>,
    grad_home: Vec<GradHome>,
    /// Scratch buffer sizes (elements) per set and chunk.
    scratch: [Vec<u64>; 2],
    pooling: Pooling,
    /// Bytes of every tensor the graph holds.
    pub bytes: u64,
}

/// Why a size does not fit, before the largest size that does is worked out.
struct DoesNotFit(String);

impl GraphLayout {
    /// Plans the graph of `config` for a network whose convolutions output `c_out[k]`
    /// channels, under `limits`.
    pub fn new(
        c_out: &[u32], config: &GraphConfig, limits: Limits,
    ) -> Result<GraphLayout, VggError> {
        let deepest = *config.taps.iter().max().ok_or(VggError::NoTaps)?;
        let (h, w) = (config.height, config.width);
        let halvings = {
            let l = deepest.layer();
            l.block - 1 + (l.kind == LayerKind::Pool) as u32
        };
        let min_side = 1u32 << halvings;
        if h < min_side || w < min_side {
            return Err(VggError::TooSmall {
                height: h,
                width: w,
                min_side,
                layer: deepest.name().to_string(),
            });
        }
        Self::build(c_out, config, limits, h, w).map_err(|DoesNotFit(why)| {
            VggError::too_large(h, w, why, |h2, w2| {
                Self::build(c_out, config, limits, h2, w2).is_ok()
            })
        })
    }

    fn build(
        c_out: &[u32], config: &GraphConfig, limits: Limits, h: u32, w: u32,
    ) -> Result<GraphLayout, DoesNotFit> {
        let deepest = *config.taps.iter().max().expect("checked by new");
        let taps: BTreeSet<usize> = config.taps.iter().map(|t| t.0).collect();
        let bind = limits.max_binding_bytes.min(limits.max_buffer_bytes);
        let image_bytes = 12 * h as u64 * w as u64;
        if image_bytes > bind {
            return Err(DoesNotFit(format!(
                "the image takes {} in one binding, more than the adapter's limit of {}",
                bytes(image_bytes),
                bytes(bind)
            )));
        }
        let chunk_limit = limits.chunk_limit(config.max_chunk_bytes);
        let n = deepest.0 + 1;
        let mut outputs: Vec<ChunkLayout> = Vec::with_capacity(n);
        for idx in 0..n {
            let (c, lh, lw) = output_shape(LayerId(idx), c_out, h, w);
            let layout = if layers()[idx].kind == LayerKind::Pool {
                // Same channel ranges as the pool's input, so each chunk pools on its own.
                ChunkLayout {
                    c,
                    h: lh,
                    w: lw,
                    chunks: outputs[idx - 1].chunks.clone(),
                }
            } else {
                ChunkLayout::split(c, lh, lw, chunk_limit).ok_or_else(|| {
                    DoesNotFit(format!(
                        "one channel of {} takes {}, more than a binding may hold ({})",
                        layers()[idx].name,
                        bytes(4 * lh as u64 * lw as u64),
                        bytes(chunk_limit)
                    ))
                })?
            };
            outputs.push(layout);
        }
        let stored: Vec<bool> = (0..n)
            .map(|idx| layers()[idx].kind != LayerKind::Conv || taps.contains(&idx))
            .collect();
        let grad_home: Vec<GradHome> = (0..n)
            .map(|idx| {
                if taps.contains(&idx) {
                    GradHome::Own
                } else {
                    GradHome::Scratch((deepest.0 - idx) % 2)
                }
            })
            .collect();
        let mut scratch: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for idx in 0..n {
            if let GradHome::Scratch(set) = grad_home[idx] {
                let l = &outputs[idx];
                let s = &mut scratch[set];
                for i in 0..l.chunks.len() {
                    if s.len() <= i {
                        s.push(0);
                    }
                    s[i] = s[i].max(l.chunk_len(i));
                }
            }
        }
        let mut elems = 4 * 3 * h as u64 * w as u64; // image, network input, both gradients
        for idx in 0..n {
            let len = outputs[idx].len();
            elems += len * stored[idx] as u64; // activation
            elems += len * (grad_home[idx] == GradHome::Own) as u64; // its gradient
            if layers()[idx].kind == LayerKind::Pool && config.pooling == Pooling::Max {
                elems += len; // arg-max
            }
        }
        elems += scratch.iter().flatten().sum::<u64>();
        Ok(GraphLayout {
            height: h,
            width: w,
            deepest,
            taps,
            outputs,
            stored,
            grad_home,
            scratch,
            pooling: config.pooling,
            bytes: 4 * elems,
        })
    }

    /// The output shape and chunks of a layer built by this plan.
    pub fn output(&self, id: LayerId) -> Option<&ChunkLayout> {
        self.outputs.get(id.0)
    }

    /// Whether `id` is tapped.
    pub fn is_tap(&self, id: LayerId) -> bool {
        self.taps.contains(&id.0)
    }
}

/// The graph for one image size, allocated and ready to record.
pub struct Graph {
    plan: GraphLayout,
    input: wgpu::Buffer,
    input_grad: wgpu::Buffer,
    activations: Vec<Option<Tensor>>,
    gradients: Vec<Option<Tensor>>,
    forward: Vec<Dispatch>,
    backward: Vec<Dispatch>,
}

impl Graph {
    /// Plans, allocates and prepares the graph of `config` on `weights`' network.
    pub fn new(
        ctx: &Context, k: &Kernels, weights: &VggWeights, config: &GraphConfig,
    ) -> Result<Graph, VggError> {
        let c_out = weights.c_out();
        let plan = GraphLayout::new(&c_out, config, Limits::of(ctx))?;
        let before = ctx.created_bytes();
        match Self::build(ctx, k, weights, plan.clone()) {
            Ok(g) => Ok(g),
            Err(GpuError::OutOfMemory(msg)) => {
                let fit = ctx.created_bytes() - before;
                let why = format!(
                    "the device ran out of memory ({msg}) after {} of the {} the graph needs",
                    bytes(fit),
                    bytes(plan.bytes)
                );
                Err(VggError::too_large(plan.height, plan.width, why, |h, w| {
                    let c = GraphConfig {
                        height: h,
                        width: w,
                        ..config.clone()
                    };
                    GraphLayout::new(&c_out, &c, Limits::of(ctx)).is_ok_and(|p| p.bytes <= fit)
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Allocates the graph's tensors, then wires its forward and backward launches.
    fn build(
        ctx: &Context, k: &Kernels, weights: &VggWeights, plan: GraphLayout,
    ) -> Result<Graph, GpuError> {
        let b = Buffers::allocate(ctx, &plan)?;
        let wire = Wire {
            ctx,
            k,
            weights,
            plan: &plan,
            b: &b,
        };
        let (forward, backward) = (wire.forward()?, wire.backward()?);
        Ok(Graph {
            plan,
            input: b.input,
            input_grad: b.input_grad,
            activations: b.activations,
            gradients: b.gradients,
            forward,
            backward,
        })
    }

    /// The plan it was built from.
    pub fn layout(&self) -> &GraphLayout {
        &self.plan
    }

    /// `(height, width)` of the image.
    pub fn size(&self) -> (u32, u32) {
        (self.plan.height, self.plan.width)
    }

    /// Bytes of GPU memory the graph's tensors take (not counting the weights).
    pub fn bytes(&self) -> u64 {
        self.plan.bytes
    }

    /// The input image, RGB in [0, 1], `3 × h × w`, for a kernel that reads it.
    pub fn input(&self) -> View<'_> {
        View::whole(&self.input)
    }

    /// The input image, for a kernel that writes it (an optimizer's update, the clamp).
    pub fn input_mut(&self) -> ViewMut<'_> {
        ViewMut::whole(&self.input)
    }

    /// The gradient with respect to the input image, written by [`Graph::record_backward`].
    pub fn input_grad(&self) -> View<'_> {
        View::whole(&self.input_grad)
    }

    /// The gradient with respect to the input image, for a kernel that adds to it.
    pub fn input_grad_mut(&self) -> ViewMut<'_> {
        ViewMut::whole(&self.input_grad)
    }

    /// The activation at tapped layer `tap` (a convolution's before its ReLU), written by
    /// [`Graph::record_forward`]; `None` when `tap` is not tapped.
    pub fn activation(&self, tap: LayerId) -> Option<&Tensor> {
        if !self.plan.is_tap(tap) {
            return None;
        }
        self.activations.get(tap.0)?.as_ref()
    }

    /// The gradient at tapped layer `tap`. Before [`Graph::record_backward`], the caller's
    /// losses must write it in full (the first loss at a layer overwrites, the others add).
    pub fn gradient(&self, tap: LayerId) -> Option<&Tensor> {
        self.gradients.get(tap.0)?.as_ref()
    }

    /// Records the forward pass: the pixel transform and every layer up to the deepest tap.
    pub fn record_forward(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.forward.record(pass);
    }

    /// Records the backward pass from the tapped layers' gradients to
    /// [`Graph::input_grad`] (which it overwrites).
    pub fn record_backward(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.backward.record(pass);
    }

    /// Kernel launches per iteration (forward, backward).
    pub fn launches(&self) -> (usize, usize) {
        (self.forward.len(), self.backward.len())
    }
}

/// The pooling kernel of `plan`'s kind.
fn pool_kernel<'k>(k: &'k Kernels, plan: &GraphLayout) -> &'k nst_kernels::Pool2d {
    match plan.pooling {
        Pooling::Max => &k.max_pool2d,
        Pooling::Avg => &k.avg_pool2d,
    }
}

/// The shape of chunk `i` of a pooling layer's input.
fn pool_shape(input: &ChunkLayout, i: usize) -> PoolShape {
    PoolShape {
        c: input.chunks[i].count,
        h: input.h,
        w: input.w,
    }
}

/// Every tensor of a graph, before any launch is wired.
struct Buffers {
    input: wgpu::Buffer,
    input_grad: wgpu::Buffer,
    net_input: Tensor,
    net_input_grad: Tensor,
    activations: Vec<Option<Tensor>>,
    argmax: Vec<Option<Tensor>>,
    gradients: Vec<Option<Tensor>>,
    scratch: [Vec<wgpu::Buffer>; 2],
}

impl Buffers {
    /// Allocates what `plan` keeps: the image and its gradient, the network input, each
    /// stored output, max pooling's arg-max, the tapped layers' gradients and two scratch
    /// sets that the other gradients alternate between.
    fn allocate(ctx: &Context, plan: &GraphLayout) -> Result<Buffers, GpuError> {
        let n = plan.deepest.0 + 1;
        let image = ChunkLayout {
            c: 3,
            h: plan.height,
            w: plan.width,
            chunks: vec![Channels::all(3)],
        };
        let optional = |keep: bool, label: String, layout: &ChunkLayout| match keep {
            true => Tensor::zeros(ctx, &label, layout).map(Some),
            false => Ok(None),
        };
        let (mut activations, mut argmax, mut gradients) = (vec![], vec![], vec![]);
        for idx in 0..n {
            let (name, layout) = (&layers()[idx].name, &plan.outputs[idx]);
            let is_max_pool = layers()[idx].kind == LayerKind::Pool && plan.pooling == Pooling::Max;
            let own_grad = plan.grad_home[idx] == GradHome::Own;
            activations.push(optional(plan.stored[idx], name.clone(), layout)?);
            argmax.push(optional(is_max_pool, format!("{name} arg-max"), layout)?);
            gradients.push(optional(own_grad, format!("{name} gradient"), layout)?);
        }
        let mut scratch: [Vec<wgpu::Buffer>; 2] = [Vec::new(), Vec::new()];
        for (set, sizes) in plan.scratch.iter().enumerate() {
            for &len in sizes {
                scratch[set].push(ctx.tensor("gradient scratch", len)?);
            }
        }
        Ok(Buffers {
            input: ctx.tensor("image (RGB)", image.len())?,
            input_grad: ctx.tensor("image gradient (RGB)", image.len())?,
            net_input: Tensor::zeros(ctx, "network input", &image)?,
            net_input_grad: Tensor::zeros(ctx, "network input gradient", &image)?,
            activations,
            argmax,
            gradients,
            scratch,
        })
    }

    /// The gradient at layer `idx`'s output, wherever it lives.
    fn grad(&self, plan: &GraphLayout, idx: usize) -> Tensor {
        match plan.grad_home[idx] {
            GradHome::Own => self.gradients[idx]
                .clone()
                .expect("tapped layers own a gradient"),
            GradHome::Scratch(set) => Tensor {
                layout: plan.outputs[idx].clone(),
                buffers: self.scratch[set][..plan.outputs[idx].chunks.len()].to_vec(),
            },
        }
    }
}

/// What wiring a graph's launches reads: the kernels, the weights, the plan and the tensors.
#[derive(Clone, Copy)]
struct Wire<'a> {
    ctx: &'a Context,
    k: &'a Kernels,
    weights: &'a VggWeights,
    plan: &'a GraphLayout,
    b: &'a Buffers,
}

impl Wire<'_> {
    /// The forward launches: the pixel transform, then each layer to the deepest tap (a ReLU
    /// fused into its convolution when the convolution's own output is not kept).
    fn forward(self) -> Result<Vec<Dispatch>, GpuError> {
        let (ctx, k, weights, plan, b) = (self.ctx, self.k, self.weights, self.plan, self.b);
        let (h, w, n) = (plan.height, plan.width, plan.deepest.0 + 1);
        let (activations, argmax) = (&b.activations, &b.argmax);
        let (t, net_input) = (&weights.transform, &b.net_input);
        let image = View::whole(&b.input);
        let mut forward = vec![k
            .pixel
            .forward(ctx, t, h, w, image, net_input.view_mut(0))?];
        let mut src = net_input.clone();
        for idx in 0..n {
            let layer = &layers()[idx];
            match layer.kind {
                LayerKind::Conv => {
                    let cw = &weights.convs[layer.conv];
                    let shape = ConvShape {
                        c_in: cw.c_in,
                        c_out: cw.c_out,
                        h: plan.outputs[idx].h,
                        w: plan.outputs[idx].w,
                    };
                    let relu_built = idx + 1 < n;
                    let (dst, fused) = match &activations[idx] {
                        Some(pre) => (pre.clone(), false),
                        None => (
                            activations[idx + 1].clone().expect("ReLUs are stored"),
                            true,
                        ),
                    };
                    for (o, &dch) in dst.layout.chunks.iter().enumerate() {
                        let last = src.chunk_count() - 1;
                        for (i, &sch) in src.layout.chunks.iter().enumerate() {
                            let part = ConvPart {
                                src: sch,
                                dst: dch,
                                accumulate: i > 0,
                            };
                            forward.push(k.conv2d.forward_part(
                                ctx,
                                shape,
                                part,
                                src.view(i),
                                cw.weight_view(),
                                cw.bias_view(),
                                dst.view_mut(o),
                                fused && i == last,
                            )?);
                        }
                    }
                    if !fused && relu_built {
                        let out = activations[idx + 1].as_ref().expect("ReLUs are stored");
                        for i in 0..dst.chunk_count() {
                            forward.push(k.relu.forward(ctx, dst.view(i), out.view_mut(i))?);
                        }
                    }
                    src = if relu_built {
                        activations[idx + 1].clone().expect("ReLUs are stored")
                    } else {
                        dst
                    };
                }
                LayerKind::Relu => {} // recorded with its convolution
                LayerKind::Pool => {
                    let out = activations[idx].as_ref().expect("pools are stored");
                    let x = activations[idx - 1].as_ref().expect("ReLUs are stored");
                    let pool = pool_kernel(k, plan);
                    for i in 0..x.chunk_count() {
                        let (s, am) = (pool_shape(&x.layout, i), argmax[idx].as_ref());
                        let am = am.map(|a| a.view_mut(i));
                        forward.push(pool.forward(ctx, s, x.view(i), out.view_mut(i), am)?);
                    }
                    src = out.clone();
                }
            }
        }
        Ok(forward)
    }

    /// The backward launches, from the deepest tap down to the image. A gradient at a tapped
    /// layer already holds what the caller's losses put there, so the layer above adds to it.
    fn backward(self) -> Result<Vec<Dispatch>, GpuError> {
        let (plan, b, t) = (self.plan, self.b, &self.weights.transform);
        let (ctx, k, n) = (self.ctx, self.k, plan.deepest.0 + 1);
        let (activations, argmax, net_input_grad) = (&b.activations, &b.argmax, &b.net_input_grad);
        let grad = |idx: usize| b.grad(plan, idx);
        let mut backward = Vec::new();
        for idx in (0..n).rev() {
            let layer = &layers()[idx];
            let g_out = grad(idx);
            let (g_in, accumulate) = if idx == 0 {
                (net_input_grad.clone(), false)
            } else {
                (grad(idx - 1), plan.grad_home[idx - 1] == GradHome::Own)
            };
            match layer.kind {
                LayerKind::Relu => {
                    let mask = activations[idx].as_ref().expect("ReLUs are stored");
                    for i in 0..g_out.chunk_count() {
                        backward.push(k.relu.backward(
                            ctx,
                            mask.view(i),
                            g_out.view(i),
                            g_in.view_mut(i),
                            accumulate,
                        )?);
                    }
                }
                LayerKind::Conv => {
                    let cw = &self.weights.convs[layer.conv];
                    let shape = ConvShape {
                        c_in: cw.c_in,
                        c_out: cw.c_out,
                        h: g_out.layout.h,
                        w: g_out.layout.w,
                    };
                    for (j, &dch) in g_in.layout.chunks.iter().enumerate() {
                        for (i, &sch) in g_out.layout.chunks.iter().enumerate() {
                            let part = ConvPart {
                                src: sch,
                                dst: dch,
                                accumulate: i > 0 || accumulate,
                            };
                            backward.push(k.conv2d.backward_input_part(
                                ctx,
                                shape,
                                part,
                                g_out.view(i),
                                cw.weight_view(),
                                g_in.view_mut(j),
                            )?);
                        }
                    }
                }
                LayerKind::Pool => {
                    let pool = pool_kernel(k, plan);
                    for i in 0..g_in.chunk_count() {
                        let (s, am) = (pool_shape(&g_in.layout, i), argmax[idx].as_ref());
                        let (gy, gx) = (g_out.view(i), g_in.view_mut(i));
                        let am = am.map(|a| a.view(i));
                        backward.push(pool.backward(ctx, s, gy, am, gx, accumulate)?);
                    }
                }
            }
        }
        let (h, w) = (plan.height, plan.width);
        backward.push(k.pixel.backward(
            ctx,
            t,
            h,
            w,
            net_input_grad.view(0),
            ViewMut::whole(&b.input_grad),
            false,
        )?);
        Ok(backward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vgg19_c_out() -> Vec<u32> {
        nst_weights::VGG19_LAYERS
            .iter()
            .map(|s| s.c_out as u32)
            .collect()
    }

    fn config(h: u32, w: u32, taps: &str) -> GraphConfig {
        GraphConfig {
            height: h,
            width: w,
            taps: LayerId::parse_list(taps).unwrap(),
            pooling: Pooling::Max,
            max_chunk_bytes: None,
        }
    }

    /// The software driver's limits.
    const LAVAPIPE: Limits = Limits {
        max_binding_bytes: 128 << 20,
        max_buffer_bytes: 2 << 30,
    };

    const STYLE_TAPS: &str = "relu1_1,relu2_1,relu3_1,relu4_1,relu4_2,relu5_1";

    #[test]
    fn builds_only_to_the_deepest_tap() {
        let p = GraphLayout::new(&vgg19_c_out(), &config(64, 64, STYLE_TAPS), LAVAPIPE).unwrap();
        assert_eq!(p.deepest.name(), "relu5_1");
        assert!(p.output(LayerId::parse("relu5_1").unwrap()).is_some());
        assert!(p.output(LayerId::parse("conv5_2").unwrap()).is_none());
    }

    #[test]
    fn large_images_are_chunked_under_the_binding_limit() {
        let p =
            GraphLayout::new(&vgg19_c_out(), &config(2048, 2048, STYLE_TAPS), LAVAPIPE).unwrap();
        // conv1_1's output at 2048² is 1 GiB: eight chunks of 8 channels (128 MiB each).
        let l = p.output(LayerId::parse("relu1_1").unwrap()).unwrap();
        assert_eq!(l.chunks.len(), 8);
        for (i, _) in l.chunks.iter().enumerate() {
            assert!(l.chunk_len(i) * 4 <= LAVAPIPE.max_binding_bytes);
        }
        // Pooling keeps its input's channel ranges.
        let pool = p.output(LayerId::parse("pool1").unwrap()).unwrap();
        assert_eq!(pool.chunks, l.chunks);
    }

    #[test]
    fn an_image_too_large_to_bind_names_the_largest_that_fits() {
        let e = GraphLayout::new(&vgg19_c_out(), &config(4000, 3000, STYLE_TAPS), LAVAPIPE)
            .unwrap_err();
        let VggError::TooLarge {
            largest: Some((h, w)),
            ..
        } = e
        else {
            panic!("expected TooLarge, got {e}");
        };
        // 3·h·w·4 bytes must fit in 128 MiB: about 3862×2896 for a 4:3 image.
        assert!(12 * h as u64 * w as u64 <= 128 << 20, "{h}×{w}");
        assert!(
            12 * (h as u64 + 4) * (w as u64 + 3) > 128 << 20,
            "{h}×{w} is not the largest"
        );
        assert!(e.to_string().contains("largest size"), "{e}");
    }

    #[test]
    fn an_image_too_small_for_the_deepest_tap_is_an_error() {
        let e =
            GraphLayout::new(&vgg19_c_out(), &config(15, 64, STYLE_TAPS), LAVAPIPE).unwrap_err();
        assert!(matches!(e, VggError::TooSmall { min_side: 16, .. }), "{e}");
        assert!(GraphLayout::new(&vgg19_c_out(), &config(16, 16, STYLE_TAPS), LAVAPIPE).is_ok());
        let none = GraphConfig {
            taps: Vec::new(),
            ..config(16, 16, STYLE_TAPS)
        };
        assert!(matches!(
            GraphLayout::new(&vgg19_c_out(), &none, LAVAPIPE),
            Err(VggError::NoTaps)
        ));
    }

    #[test]
    fn bytes_grow_with_the_image_area() {
        let c = vgg19_c_out();
        let b512 = GraphLayout::new(&c, &config(512, 512, STYLE_TAPS), LAVAPIPE)
            .unwrap()
            .bytes;
        let b1024 = GraphLayout::new(&c, &config(1024, 1024, STYLE_TAPS), LAVAPIPE)
            .unwrap()
            .bytes;
        assert_eq!(b1024, 4 * b512);
        // Stored ReLU outputs to relu5_1 at 512²: 2·64·512² + 2·128·256² + 4·256·128² +
        // 4·512·64² + 512·32² floats; this is the bulk of it.
        let relus = 4
            * (2 * 64 * 512 * 512
                + 2 * 128 * 256 * 256
                + 4 * 256 * 128 * 128
                + 4 * 512 * 64 * 64
                + 512 * 32 * 32);
        assert!(b512 > relus && b512 < 3 * relus, "{b512} vs {relus}");
    }
}
