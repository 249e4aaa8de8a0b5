//! The graph run over an image tile by tile (see [`nst_vgg::tiling`]), or whole.
//!
//! Tiled, the image and its gradient live at full size; the graph is built at the size of
//! one window. Each tile's forward cuts its window out of the image; its backward adds the
//! window's image gradient (halo included) into the full gradient. A loss reads a tap only at
//! the tile's own positions, through a masked copy (`Masks`) that is zero elsewhere, so
//! each position counts once and the gradients the losses put at the taps are zero in the
//! halo. Untiled, there is one tile, the graph's input is the image and nothing is copied.

use crate::error::{Result, TransferError};
use nst_gpu::{Context, Dispatch, GpuError, Record, View, ViewMut};
use nst_kernels::{Coef, GramChoice, Kernels, Plane, WindowMode, WindowShape};
use nst_vgg::tiling::halo_and_scale;
use nst_vgg::{
    ChunkLayout, Graph, GraphConfig, GraphLayout, LayerId, Rect, Tensor, Tiling, VggWeights,
};

/// A graph and the tiles it runs over.
pub struct TiledGraph {
    graph: Graph,
    tiling: Tiling,
    c_out: Vec<u32>,
    chunk_limit: u64,
    full: Option<Full>,
}

/// The full-size image and gradient of a tiled graph, and each tile's copies.
struct Full {
    image: wgpu::Buffer,
    grad: wgpu::Buffer,
    cut: Vec<Dispatch>,
    add_grad: Vec<Dispatch>,
}

impl TiledGraph {
    /// Builds the graph of `config` (whose size is the image's) at `tiling`'s window size.
    pub fn new(
        ctx: &Context, k: &Kernels, weights: &VggWeights, config: &GraphConfig, tiling: Tiling,
    ) -> Result<TiledGraph> {
        let (wh, ww) = tiling.window();
        let window = GraphConfig {
            height: wh,
            width: ww,
            ..config.clone()
        };
        let graph = Graph::new(ctx, k, weights, &window)?;
        let chunk_limit = nst_vgg::Limits::of(ctx).chunk_limit(config.max_chunk_bytes);
        let full = match tiling.is_tiled() {
            false => None,
            true => {
                let (h, w) = (tiling.height, tiling.width);
                let n = 3 * h as u64 * w as u64;
                let image = ctx.tensor("image (RGB)", n)?;
                let grad = ctx.tensor("image gradient (RGB)", n)?;
                let (mut cut, mut add_grad) = (Vec::new(), Vec::new());
                for (t, tile) in tiling.tiles.iter().enumerate() {
                    let win = tile.window;
                    let big = Plane::whole(3, h, w).at(0, win.y, win.x);
                    let small = Plane::whole(3, wh, ww);
                    let shape = |src, dst| WindowShape {
                        src,
                        dst,
                        channels: 3,
                        h: wh,
                        w: ww,
                    };
                    let (input, image_view) = (graph.input_mut(), View::whole(&image));
                    let c = shape(big, small);
                    cut.push(k.window.copy(ctx, c, WindowMode::Copy, image_view, input)?);
                    // The first tile writes the whole gradient; the others add their windows.
                    let mode = match t {
                        0 => WindowMode::CopyZeroRest,
                        _ => WindowMode::Add,
                    };
                    let (g, full_g) = (graph.input_grad(), ViewMut::whole(&grad));
                    add_grad.push(k.window.copy(ctx, shape(small, big), mode, g, full_g)?);
                }
                Some(Full {
                    image,
                    grad,
                    cut,
                    add_grad,
                })
            }
        };
        Ok(TiledGraph {
            graph,
            tiling,
            c_out: weights.c_out(),
            chunk_limit,
            full,
        })
    }

    /// The graph (at the window's size).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The tiles.
    pub fn tiling(&self) -> &Tiling {
        &self.tiling
    }

    /// Whether the image is split.
    pub fn is_tiled(&self) -> bool {
        self.full.is_some()
    }

    /// Number of tiles.
    pub fn tiles(&self) -> usize {
        self.tiling.tiles.len()
    }

    /// `(height, width)` of the image.
    pub fn size(&self) -> (u32, u32) {
        (self.tiling.height, self.tiling.width)
    }

    /// The image, RGB in [0, 1], `3 × h × w`.
    pub fn image(&self) -> View<'_> {
        match &self.full {
            Some(f) => View::whole(&f.image),
            None => self.graph.input(),
        }
    }

    /// The image, for a kernel that writes it.
    pub fn image_mut(&self) -> ViewMut<'_> {
        match &self.full {
            Some(f) => ViewMut::whole(&f.image),
            None => self.graph.input_mut(),
        }
    }

    /// The gradient with respect to the image, after the last tile's backward.
    pub fn image_grad(&self) -> View<'_> {
        match &self.full {
            Some(f) => View::whole(&f.grad),
            None => self.graph.input_grad(),
        }
    }

    /// The gradient with respect to the image, for a kernel that adds to it.
    pub fn image_grad_mut(&self) -> ViewMut<'_> {
        match &self.full {
            Some(f) => ViewMut::whole(&f.grad),
            None => self.graph.input_grad_mut(),
        }
    }

    /// Records tile `t`'s forward: its window cut out of the image, then the graph's.
    pub fn record_forward(&self, t: usize, pass: &mut wgpu::ComputePass<'_>) {
        if let Some(f) = &self.full {
            f.cut[t].record(pass);
        }
        self.graph.record_forward(pass);
    }

    /// Records tile `t`'s backward: the graph's, then the window's gradient added into the
    /// image's (the first tile overwrites it).
    pub fn record_backward(&self, t: usize, pass: &mut wgpu::ComputePass<'_>) {
        self.graph.record_backward(pass);
        if let Some(f) = &self.full {
            f.add_grad[t].record(pass);
        }
    }

    /// Tile `t`'s own positions at layer `l`: in the window's tensor and in the full-size one.
    pub fn own_at(&self, t: usize, l: LayerId) -> (Rect, Rect) {
        let tile = &self.tiling.tiles[t];
        let (_, scale) = halo_and_scale(l);
        let (h, w) = self.size();
        let (_, lh, lw) = nst_vgg::output_shape(l, &self.c_out, h, w);
        let full = tile.own.at_scale(scale, lh, lw);
        let window = Rect {
            y: full.y - tile.window.y / scale,
            x: full.x - tile.window.x / scale,
            ..full
        };
        (window, full)
    }

    /// Layer `l`'s output at the image's full size, in chunks that bind.
    pub fn full_layout(&self, l: LayerId) -> Result<ChunkLayout> {
        full_layout(&self.c_out, l, self.size(), self.chunk_limit)
    }

    /// Bytes of storage [`TiledGraph::new`] creates: the graph at the window's size, and the
    /// full-size image and gradient when tiled.
    pub fn bytes(layout: &GraphLayout, tiling: &Tiling) -> u64 {
        let image = nst_gpu::tensor_bytes(3 * tiling.height as u64 * tiling.width as u64);
        layout.bytes + 2 * image * tiling.is_tiled() as u64
    }

    /// The tensor at tapped layer `l`.
    pub fn tap(&self, l: LayerId) -> Result<&Tensor> {
        self.graph.activation(l).ok_or_else(|| {
            TransferError::Gpu(GpuError::BadShape(format!("layer {l} is not tapped")))
        })
    }
}

/// Layer `l`'s output for an `h × w` image, in chunks of at most `chunk_limit` bytes.
pub(crate) fn full_layout(
    c_out: &[u32], l: LayerId, (h, w): (u32, u32), chunk_limit: u64,
) -> Result<ChunkLayout> {
    let (c, lh, lw) = nst_vgg::output_shape(l, c_out, h, w);
    ChunkLayout::split(c, lh, lw, chunk_limit).ok_or_else(|| {
        let m = format!("one channel of {l} at {w}×{h} does not fit in a binding");
        TransferError::Gpu(GpuError::BadShape(m))
    })
}

/// The layout of tapped layer `l` in `layout`'s graph.
pub(crate) fn tap_layout(layout: &GraphLayout, l: LayerId) -> Result<&ChunkLayout> {
    layout
        .output(l)
        .filter(|_| layout.is_tap(l))
        .ok_or_else(|| TransferError::Gpu(GpuError::BadShape(format!("layer {l} is not tapped"))))
}

/// Copies an `r.h × r.w` region of every channel from `src` (at `from`) to `dst` (at
/// `to`), whose chunks may split the channels differently: one launch per overlapping pair.
pub(crate) fn copy_region(
    ctx: &Context, k: &Kernels, (src, from): (&Tensor, Rect), (dst, to): (&Tensor, Rect),
    mode: WindowMode,
) -> Result<Vec<Dispatch>> {
    let mut out = Vec::new();
    if from.area() == 0 {
        return Ok(out);
    }
    let (sl, dl) = (&src.layout, &dst.layout);
    for (i, a) in sl.chunks.iter().enumerate() {
        for (j, b) in dl.chunks.iter().enumerate() {
            let lo = a.offset.max(b.offset);
            let hi = (a.offset + a.count).min(b.offset + b.count);
            if lo >= hi {
                continue;
            }
            let s = WindowShape {
                src: Plane::whole(a.count, sl.h, sl.w).at(lo - a.offset, from.y, from.x),
                dst: Plane::whole(b.count, dl.h, dl.w).at(lo - b.offset, to.y, to.x),
                channels: hi - lo,
                h: from.h,
                w: from.w,
            };
            out.push(k.window.copy(ctx, s, mode, src.view(i), dst.view_mut(j))?);
        }
    }
    Ok(out)
}

/// The taps losses read, each kept at a tile's own positions only (tiled), or the taps
/// themselves (untiled).
pub(crate) struct Masks {
    tensors: Vec<(LayerId, Tensor)>,
    /// Per tile: the copies that fill the masked tensors after its forward.
    pub per_tile: Vec<Vec<Dispatch>>,
}

impl Masks {
    pub(crate) fn new(tg: &TiledGraph) -> Masks {
        Masks {
            tensors: Vec::new(),
            per_tile: (0..tg.tiles()).map(|_| Vec::new()).collect(),
        }
    }

    /// What a loss reads at tap `l`.
    pub(crate) fn at(
        &mut self, ctx: &Context, k: &Kernels, tg: &TiledGraph, l: LayerId,
    ) -> Result<Tensor> {
        let tap = tg.tap(l)?;
        if !tg.is_tiled() {
            return Ok(tap.clone());
        }
        if let Some((_, t)) = self.tensors.iter().find(|(x, _)| *x == l) {
            return Ok(t.clone());
        }
        let masked = Tensor::zeros(ctx, &format!("{l} at own positions"), &tap.layout)?;
        for t in 0..tg.tiles() {
            let (own, _) = tg.own_at(t, l);
            let copies = copy_region(ctx, k, (tap, own), (&masked, own), WindowMode::CopyZeroRest)?;
            self.per_tile[t].extend(copies);
        }
        self.tensors.push((l, masked.clone()));
        Ok(masked)
    }

    /// Records tile `t`'s copies.
    pub(crate) fn record(&self, t: usize, pass: &mut wgpu::ComputePass<'_>) {
        self.per_tile[t].record(pass);
    }

    /// Bytes of storage the masked copies of `layers` (each counted once) take in `layout`'s
    /// graph: none untiled, where losses read the taps themselves.
    pub(crate) fn bytes(layout: &GraphLayout, layers: &[LayerId], tiled: bool) -> Result<u64> {
        let mut distinct = layers.to_vec();
        distinct.sort();
        distinct.dedup();
        let mut bytes = 0;
        for l in distinct.into_iter().filter(|_| tiled) {
            bytes += tap_layout(layout, l)?.bytes();
        }
        Ok(bytes)
    }
}

/// Gram matrices over every tile's own positions: `G = Σ_q f_q·f_qᵀ / N` over the image's
/// `N` positions at the layer. Tiled, each tile's masked map gives `G_t` normalized by the
/// window's positions `n`, added into `G` with weight `n / N`.
pub(crate) struct GramSums {
    /// `G` per layer, `c × c`.
    pub grams: Vec<wgpu::Buffer>,
    /// Per layer: `n / N` (1 untiled).
    pub ratios: Vec<f64>,
    /// Per layer: the features the Gram matrix is taken of (masked when tiled).
    pub features: Vec<Tensor>,
    /// Recorded for every tile, after its masks: each tile's Gram matrices.
    shared: Vec<Box<dyn Record>>,
    /// After `shared`, for the first tile and for the others: `G` set from or added to.
    first: Vec<Dispatch>,
    rest: Vec<Dispatch>,
    _keep: Vec<wgpu::Buffer>,
}

impl GramSums {
    /// The Gram matrices of the taps at `layers`, as losses read them ([`Masks::at`]).
    pub(crate) fn new(
        ctx: &Context, k: &Kernels, tg: &TiledGraph, masks: &mut Masks, layers: &[LayerId],
    ) -> Result<GramSums> {
        let mut features = Vec::new();
        for &l in layers {
            features.push((l, masks.at(ctx, k, tg, l)?));
        }
        Self::of(ctx, k, tg, features)
    }

    /// The Gram matrices of `features`, each laid out as the tap at its layer as losses read
    /// it (guided features, [`crate::objective`]).
    pub(crate) fn of(
        ctx: &Context, k: &Kernels, tg: &TiledGraph, features: Vec<(LayerId, Tensor)>,
    ) -> Result<GramSums> {
        let mut s = GramSums {
            grams: Vec::new(),
            ratios: Vec::new(),
            features: Vec::new(),
            shared: Vec::new(),
            first: Vec::new(),
            rest: Vec::new(),
            _keep: Vec::new(),
        };
        for (l, f) in features {
            let (c, n) = (f.layout.c, f.layout.h * f.layout.w);
            let g = ctx.tensor(&format!("gram {l}"), c as u64 * c as u64)?;
            let full = tg.full_layout(l)?;
            let ratio = n as f64 / full.plane() as f64;
            let into = match tg.is_tiled() {
                true => {
                    let gt = ctx.tensor(&format!("tile gram {l}"), c as u64 * c as u64)?;
                    let (x, y) = (View::whole(&gt), ViewMut::whole(&g));
                    let coef = Coef::constant(ratio as f32);
                    s.first.push(k.vector.copy(ctx, coef, x, y, x)?);
                    s.rest.push(k.vector.axpy(ctx, coef, x, y, x)?);
                    gt
                }
                false => g.clone(),
            };
            for (i, &a) in f.layout.chunks.iter().enumerate() {
                for (j, &b) in f.layout.chunks.iter().enumerate() {
                    let (fa, fb) = ((a, f.view(i)), (b, f.view(j)));
                    let part = k
                        .gram
                        .forward_part(ctx, c, n, fa, fb, ViewMut::whole(&into))?;
                    s.shared.push(Box::new(part));
                }
            }
            if tg.is_tiled() {
                s._keep.push(into);
            }
            s.grams.push(g);
            s.ratios.push(ratio);
            s.features.push(f);
        }
        Ok(s)
    }

    /// Bytes of storage [`GramSums::new`] creates for `layers` of `layout`'s graph: per
    /// layer `G`, a tile's `G` when tiled, and the split-K partial sums of every pair of
    /// chunks, with `gram`'s tiles on a device of `device` (largest binding, most workgroups
    /// per grid dimension).
    pub(crate) fn bytes(
        layout: &GraphLayout, layers: &[LayerId], tiled: bool, gram: &GramChoice,
        device: (u64, u32),
    ) -> Result<u64> {
        let mut bytes = 0;
        for &l in layers {
            let f = tap_layout(layout, l)?;
            let (c, n) = (f.c as u64, f.h * f.w);
            bytes += (1 + tiled as u64) * nst_gpu::tensor_bytes(c * c);
            for (i, a) in f.chunks.iter().enumerate() {
                for (j, b) in f.chunks.iter().enumerate() {
                    let block = (a.count, b.count, n);
                    bytes +=
                        nst_kernels::gram::forward_partials_bytes(gram, block, i == j, device)?;
                }
            }
        }
        Ok(bytes)
    }

    /// Records tile `t`'s share (after its forward and masks).
    pub(crate) fn record(&self, t: usize, pass: &mut wgpu::ComputePass<'_>) {
        self.shared.record(pass);
        let fold = if t == 0 { &self.first } else { &self.rest };
        fold.record(pass);
    }
}

/// Activations at full size, assembled from every tile's own positions.
pub(crate) struct Captures {
    /// Per layer, in the order asked.
    pub tensors: Vec<(LayerId, Tensor)>,
    per_tile: Vec<Vec<Dispatch>>,
}

impl Captures {
    pub(crate) fn new(
        ctx: &Context, k: &Kernels, tg: &TiledGraph, layers: &[LayerId],
    ) -> Result<Captures> {
        let mut per_tile: Vec<Vec<Dispatch>> = (0..tg.tiles()).map(|_| Vec::new()).collect();
        let mut tensors = Vec::new();
        for &l in layers {
            let full = Tensor::zeros(ctx, &format!("{l} (full size)"), &tg.full_layout(l)?)?;
            for (t, copies) in per_tile.iter_mut().enumerate() {
                let (own, at) = tg.own_at(t, l);
                let region = (tg.tap(l)?, own);
                copies.extend(copy_region(ctx, k, region, (&full, at), WindowMode::Copy)?);
            }
            tensors.push((l, full));
        }
        Ok(Captures { tensors, per_tile })
    }

    /// Bytes of storage [`Captures::new`] creates: each layer at full size, as laid out in
    /// `full`.
    pub(crate) fn bytes(full: &[ChunkLayout]) -> u64 {
        full.iter().map(ChunkLayout::bytes).sum()
    }

    /// Records tile `t`'s copies (after its forward).
    pub(crate) fn record(&self, t: usize, pass: &mut wgpu::ComputePass<'_>) {
        self.per_tile[t].record(pass);
    }
}
