//! Gram matrix `G = F·Fᵀ / N` of a `C × N` feature map, and its backward
//! `dF = (dG + dGᵀ)·F / N`, whole or over channel chunks, as tiled GEMMs: the forward split
//! along K = N, symmetric when both operands are the same chunk. See `shaders/gram.wgsl`.

use crate::choice::{GramChoice, LaunchClass};
use crate::conv2d::Channels;
use crate::{expect_len, expect_nonzero, per_element};
use nst_gpu::{Context, Dispatch, EntryPoint, GpuError, Groups, Record, Result, View, ViewMut};

nst_gpu::uniform! {
    struct Uniform {
        /// Channels of the whole map (G's row stride).
        c: u32,
        /// H·W.
        n: u32,
        /// Channels in chunk a (rows of the G block, or of dFa).
        ca: u32,
        /// Channels in chunk b.
        cb: u32,
        /// First channel of chunk a.
        a_off: u32,
        /// First channel of chunk b.
        b_off: u32,
        /// FLAG_ACCUMULATE (backward) | FLAG_SYMMETRIC (forward).
        flags: u32,
        /// Forward: K-slices.
        splits: u32,
        /// Forward: K per slice, a multiple of TK (the last slice may be shorter).
        k_slice: u32,
        /// Forward: tiles per slice (upper-triangle ones only when symmetric).
        tiles: u32,
        inv_n: f32,
    }
}

nst_gpu::contracts! {
    "gram.wgsl", Uniform;
    /// `gram_forward`: one K-slice's partial sums of `fa·fbᵀ`, per split.
    FORWARD = "gram_forward": read(1, "fa"), read(2, "fb"), read_write(5, "partial sums");
    /// `gram_forward_finish`: the splits added into the block of G.
    FORWARD_FINISH = "gram_forward_finish": read(4, "partial sums"), read_write(5, "g");
    /// `gram_backward`: chunk b's contribution to `gfa`, from `fb` and `gg`.
    BACKWARD = "gram_backward": read(2, "fb"), read(3, "gg"), read_write(5, "gfa");
}

crate::shader!(
    /// `shaders/gram.wgsl`, on the GEMM of `gemm.wgsl`.
    SHADER = "gram.wgsl" after [Uniform::WGSL, crate::shader_file!("gemm.wgsl")]
    with [FORWARD, FORWARD_FINISH, BACKWARD]
);

const FLAG_ACCUMULATE: u32 = 1;
const FLAG_SYMMETRIC: u32 = 2;

/// Workgroups the forward's split-K aims for in all, by default: enough to fill a large GPU
/// (several per multiprocessor on ~100–150 of them). Also the most [`GramTiles::groups`] may
/// be.
pub const TARGET_WORKGROUPS: u64 = 1024;

/// Fewest staging steps (of `tk`) in one K-slice, so that a workgroup's products outweigh its
/// tile of partial sums written and read back (with 1, relu5_1's forward at 256² took twice
/// as long on a software adapter).
pub const MIN_SLICE_STEPS: u64 = 8;

/// Most bytes of split-K partial sums one forward launch allocates (fewer splits beyond this),
/// unless a single split needs more: a memory cap, not a speed knob (from 4 MiB to none, the
/// forwards at 512² took the same time on a software adapter), without which one launch
/// would take up to 29 MiB.
pub const MAX_PARTIALS_BYTES: u64 = 16 << 20;

/// Tile sizes of the Gram GEMMs (the shader's override constants), with the same constraints
/// as [`crate::ConvTiles`], and how far the forward splits K. Forward: each workgroup computes
/// `tm` rows (channels of chunk a) × `tn` columns (channels of chunk b) of G over one K-slice;
/// backward: `tm` channels × `tn` pixels of dF. Both stage `tk` of K at a time and give each
/// invocation `rm × 4` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GramTiles {
    /// Rows per workgroup tile (GEMM M: channels of chunk a).
    pub tm: u32,
    /// Columns per workgroup tile (GEMM N: channels of chunk b forward, pixels backward).
    pub tn: u32,
    /// Depth of one staging step (GEMM K: pixels forward, channels of chunk b backward).
    pub tk: u32,
    /// Rows per invocation: 4 or 8.
    pub rm: u32,
    /// Workgroups the forward's split-K aims for in all (1 to [`TARGET_WORKGROUPS`]): a
    /// large GPU wants many, a software adapter with a few cores fewer, since each split's
    /// partial sums are written and added back. Chosen on the host; the backward ignores it.
    pub groups: u32,
}

impl Default for GramTiles {
    /// Common fp32 SGEMM practice, as [`crate::ConvTiles::default`]: 64×64 tiles, 256
    /// invocations of 4×4 outputs, K steps of 16; split K for [`TARGET_WORKGROUPS`].
    fn default() -> Self {
        GramTiles {
            tm: 64,
            tn: 64,
            tk: 16,
            rm: 4,
            groups: TARGET_WORKGROUPS as u32,
        }
    }
}

impl GramTiles {
    /// Checks the constraints the shader relies on, and the context's limits.
    pub fn check(&self, ctx: &Context) -> Result<()> {
        let GramTiles { tm, tn, tk, rm, .. } = *self;
        if self.groups == 0 || self.groups as u64 > TARGET_WORKGROUPS {
            return Err(GpuError::BadShape(format!(
                "gram tiles {self}: groups must be 1 to {TARGET_WORKGROUPS}"
            )));
        }
        match crate::tile_problem(ctx, tm, tn, tk, rm) {
            None => Ok(()),
            Some(problem) => Err(GpuError::BadShape(format!("gram tiles {self}: {problem}"))),
        }
    }

    /// Whether `other` compiles to the same shader (it may split K otherwise).
    pub fn same_shader(&self, other: &GramTiles) -> bool {
        self.constants() == other.constants()
    }

    /// The override constants its entry points are compiled with (`groups` is chosen on the
    /// host: not one of them).
    pub fn constants(&self) -> [(&'static str, f64); 4] {
        [
            ("TM", self.tm as f64),
            ("TN", self.tn as f64),
            ("TK", self.tk as f64),
            ("RM", self.rm as f64),
        ]
    }

    /// Tiles of one K-slice of an `ca × cb` block: all of them, or when `symmetric` (ca = cb)
    /// those whose first row is at most their last column (tile row r starts at column tile
    /// `r·tm / tn`), as the shader enumerates them.
    fn forward_tiles(&self, ca: u32, cb: u32, symmetric: bool) -> u64 {
        let rows = ca.div_ceil(self.tm) as u64;
        let cols = cb.div_ceil(self.tn) as u64;
        if !symmetric {
            return rows * cols;
        }
        (0..rows)
            .map(|r| cols - r * self.tm as u64 / self.tn as u64)
            .sum()
    }
}

impl std::fmt::Display for GramTiles {
    /// `TMxTNxTKxRM/GROUPS`: the form the tuning cache stores, which [`str::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self;
        write!(f, "{}x{}x{}x{}/{}", t.tm, t.tn, t.tk, t.rm, t.groups)
    }
}

impl std::str::FromStr for GramTiles {
    type Err = String;

    /// `TMxTNxTKxRM/GROUPS`, or without `/GROUPS` for the default.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("`{s}` is not Gram tiles (TMxTNxTKxRM/GROUPS, e.g. 64x64x16x4/1024)");
        let (shape, groups) = match s.split_once('/') {
            Some((shape, g)) => (shape, g.parse().map_err(|_| bad())?),
            None => (s, TARGET_WORKGROUPS as u32),
        };
        let n = shape
            .split('x')
            .map(|v| v.parse().map_err(|_| bad()))
            .collect::<std::result::Result<Vec<u32>, String>>()?;
        match n.as_slice() {
            &[tm, tn, tk, rm] => Ok(GramTiles {
                tm,
                tn,
                tk,
                rm,
                groups,
            }),
            _ => Err(bad()),
        }
    }
}

impl GramTiles {
    /// Every tiling autotuning may time: the default and three other shapes, and the default
    /// shape splitting K for fewer workgroups (16 was 20 % faster than 1,024 over the forwards
    /// on a 2-core software adapter). [`GramTiles::candidates`] keeps those an adapter accepts.
    pub const CANDIDATES: &'static [GramTiles] = &[
        GramTiles::new(64, 64, 16, 4, 1024),
        GramTiles::new(32, 32, 8, 8, 1024),
        GramTiles::new(128, 32, 16, 8, 1024),
        GramTiles::new(64, 128, 8, 8, 1024),
        GramTiles::new(64, 64, 16, 4, 128),
        GramTiles::new(64, 64, 16, 4, 16),
    ];

    const fn new(tm: u32, tn: u32, tk: u32, rm: u32, groups: u32) -> GramTiles {
        GramTiles {
            tm,
            tn,
            tk,
            rm,
            groups,
        }
    }

    /// The tiles autotuning times on this adapter: the [`GramTiles::CANDIDATES`]
    /// [`GramTiles::check`] accepts.
    pub fn candidates(ctx: &Context) -> Vec<GramTiles> {
        Self::CANDIDATES
            .iter()
            .copied()
            .filter(|t| t.check(ctx).is_ok())
            .collect()
    }
}

/// What a Gram launch is tuned by: forward or backward, the channels of its chunk (of the
/// rows it computes) and ⌈log₂⌉ of the pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GramClass {
    /// The backward rather than the forward.
    pub backward: bool,
    /// Channels of the chunk.
    pub c: u32,
    /// ⌈log₂ n⌉.
    pub pixels_log2: u32,
}

impl LaunchClass for GramClass {
    fn backward(&self) -> bool {
        self.backward
    }

    /// The log₂ ratio of the channels and the difference of the pixels' log₂.
    fn distance(&self, other: &GramClass) -> f64 {
        (self.c.max(1) as f64 / other.c.max(1) as f64).log2().abs()
            + (self.pixels_log2 as f64 - other.pixels_log2 as f64).abs()
    }
}

/// Bytes of split-K partial sums [`Gram::forward_part`] allocates, with `choice`'s tiles, for
/// an `ca × cb` block over `n` pixels (`symmetric`: a diagonal block, the same chunk twice) on
/// a device whose largest binding and most workgroups per grid dimension are `device`: what
/// a memory plan counts for it.
pub fn forward_partials_bytes(
    choice: &GramChoice, (ca, cb, n): (u32, u32, u32), symmetric: bool, device: (u64, u32),
) -> Result<u64> {
    let class = GramClass {
        backward: false,
        c: ca,
        pixels_log2: crate::log2_ceil(n as u64),
    };
    let (_, split) = forward_split(choice.pick(&class), (ca, cb, n), symmetric, device)?;
    Ok(nst_gpu::tensor_bytes(
        split.splits as u64 * ca as u64 * cb as u64,
    ))
}

/// The workgroup tiles of a forward launch with `tiles` and how it splits K.
fn forward_split(
    tiles: GramTiles, (ca, cb, n): (u32, u32, u32), symmetric: bool,
    (max_binding, max_per_dim): (u64, u32),
) -> Result<(u64, SplitK)> {
    let count = tiles.forward_tiles(ca, cb, symmetric);
    let max_per_dim = max_per_dim as u64;
    let split = split_k(
        count,
        (ca, cb, n),
        (tiles.tk, tiles.groups),
        max_binding,
        max_per_dim * max_per_dim,
    )?;
    Ok((count, split))
}

/// How a forward launch splits K: `splits` slices of `k_slice` (the last one may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SplitK {
    splits: u32,
    k_slice: u32,
}

/// The split for `tiles` tiles of an `ca × cb` block over K = `n`: about `target`
/// workgroups in all (at most `max_groups`), at least
/// [`MIN_SLICE_STEPS`] steps of `tk` per slice, at most [`MAX_PARTIALS_BYTES`] (and one
/// binding) of partial sums; no slice is empty.
fn split_k(
    tiles: u64, (ca, cb, n): (u32, u32, u32), (tk, target): (u32, u32), max_binding: u64,
    max_groups: u64,
) -> Result<SplitK> {
    let block = ca as u64 * cb as u64 * 4;
    if block > max_binding {
        return Err(GpuError::TooLarge {
            what: "storage binding `gram partial sums`".into(),
            bytes: block,
            limit: max_binding,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    let steps = (n as u64).div_ceil(tk as u64);
    let fit = (MAX_PARTIALS_BYTES.min(max_binding) / block).max(1);
    let tiles = tiles.max(1);
    let wanted = (target as u64).div_ceil(tiles);
    let splits = wanted
        .min(steps / MIN_SLICE_STEPS)
        .min(fit)
        .min(max_groups / tiles)
        .max(1);
    let per_slice = steps.div_ceil(splits);
    Ok(SplitK {
        splits: steps.div_ceil(per_slice) as u32,
        k_slice: (per_slice * tk as u64) as u32,
    })
}

/// One shader's entry points (tilings that differ only in `groups` share them).
struct Compiled {
    tiles: GramTiles,
    forward: EntryPoint,
    finish: EntryPoint,
    backward: EntryPoint,
}

/// The Gram kernels: each tiling a [`GramChoice`] may pick, compiled once.
pub struct Gram {
    compiled: Vec<Compiled>,
    choice: GramChoice,
}

/// A prepared forward launch (one block of G): the split-K products, the pass that adds the
/// splits into G, and the buffer of partial sums they share.
pub struct GramForward {
    partial: Dispatch,
    finish: Dispatch,
    split: SplitK,
    _partials: wgpu::Buffer,
}

impl Record for GramForward {
    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.partial.record(pass);
        self.finish.record(pass);
    }
}

impl GramForward {
    /// Slices K = H·W is split into.
    pub fn splits(&self) -> u32 {
        self.split.splits
    }

    /// Pixels per K-slice (the last slice may hold fewer).
    pub fn k_slice(&self) -> u32 {
        self.split.k_slice
    }

    /// Workgroup counts of the split-K pass.
    pub fn workgroups(&self) -> [u32; 3] {
        self.partial.workgroups()
    }
}

impl Gram {
    /// Compiles `shaders/gram.wgsl` with the default tiles.
    pub fn new(ctx: &Context) -> Result<Self> {
        Self::with_tiles(ctx, GramTiles::default())
    }

    /// Compiles `shaders/gram.wgsl` with the given tiles for every launch.
    pub fn with_tiles(ctx: &Context, tiles: GramTiles) -> Result<Self> {
        Self::with_choice(ctx, GramChoice::all(tiles))
    }

    /// Compiles every tiling `choice` may pick.
    pub fn with_choice(ctx: &Context, choice: GramChoice) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        let mut shaders: Vec<GramTiles> = Vec::new();
        for t in choice.variants() {
            if !shaders.iter().any(|s| s.same_shader(&t)) {
                shaders.push(t);
            }
        }
        let compiled = shaders
            .into_iter()
            .map(|tiles| {
                tiles.check(ctx)?;
                let constants = tiles.constants();
                Ok(Compiled {
                    tiles,
                    forward: EntryPoint::new(ctx, &module, &FORWARD, &constants)?,
                    finish: EntryPoint::new(ctx, &module, &FORWARD_FINISH, &constants)?,
                    backward: EntryPoint::new(ctx, &module, &BACKWARD, &constants)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Gram { compiled, choice })
    }

    /// Which tiles each class of launch uses.
    pub fn choice(&self) -> &GramChoice {
        &self.choice
    }

    /// The tiles for a launch and the entry points that run them.
    fn pick(&self, backward: bool, c: u32, n: u32) -> (GramTiles, &Compiled) {
        let class = GramClass {
            backward,
            c,
            pixels_log2: crate::log2_ceil(n as u64),
        };
        let tiles = self.choice.pick(&class);
        let k = self
            .compiled
            .iter()
            .find(|k| k.tiles.same_shader(&tiles))
            .expect("every tiling the choice picks is compiled");
        (tiles, k)
    }

    fn check(c: u32, n: u32, a: Channels, b: Channels) -> Result<()> {
        expect_nonzero("gram shape", &[c, n, a.count, b.count])?;
        for ch in [a, b] {
            if ch.offset as u64 + ch.count as u64 > c as u64 {
                return Err(GpuError::BadShape(format!(
                    "gram chunk: channels {}..{} lie outside {c} channels",
                    ch.offset,
                    ch.offset + ch.count
                )));
            }
        }
        Ok(())
    }

    /// `g` (c × c) = Gram matrix of `f` (c × n).
    pub fn forward(
        &self, ctx: &Context, c: u32, n: u32, f: View<'_>, g: ViewMut<'_>,
    ) -> Result<GramForward> {
        let all = Channels::all(c);
        self.forward_part(ctx, c, n, (all, f), (all, f), g)
    }

    /// One block of a chunked Gram matrix: `g[a rows, b columns] = fa·fbᵀ / n`, where `fa`
    /// and `fb` are chunks `a` and `b` (channel ranges) of a `c × n` feature map and `g` is
    /// the whole `c × c` matrix. Every block is computed whole: record (a, b) and (b, a) both.
    pub fn forward_part(
        &self, ctx: &Context, c: u32, n: u32, (a, fa): (Channels, View<'_>),
        (b, fb): (Channels, View<'_>), g: ViewMut<'_>,
    ) -> Result<GramForward> {
        Self::check(c, n, a, b)?;
        expect_len("gram features", &fa, a.count as u64 * n as u64)?;
        expect_len("gram features", &fb, b.count as u64 * n as u64)?;
        expect_len("gram matrix", &g, c as u64 * c as u64)?;
        // The same channels of the same map: a symmetric block.
        let symmetric =
            a == b && fa.buffer == fb.buffer && fa.offset == fb.offset && fa.len == fb.len;
        let (chosen, k) = self.pick(false, a.count, n);
        let device = (ctx.max_binding_bytes, ctx.max_workgroups_per_dim);
        let (tiles, split) = forward_split(chosen, (a.count, b.count, n), symmetric, device)?;
        let groups = nst_gpu::grid(tiles * split.splits as u64, 1, ctx.max_workgroups_per_dim)?;
        let block = a.count as u64 * b.count as u64;
        let partials = ctx.tensor("gram partial sums", split.splits as u64 * block)?;
        let u = Uniform {
            c,
            n,
            ca: a.count,
            cb: b.count,
            a_off: a.offset,
            b_off: b.offset,
            flags: symmetric as u32 * FLAG_SYMMETRIC,
            splits: split.splits,
            k_slice: split.k_slice,
            tiles: tiles as u32,
            inv_n: 1.0 / n as f32,
        };
        let partial = k.forward.launch(
            ctx,
            &u,
            &[fa.into(), fb.into(), ViewMut::whole(&partials).into()],
            Groups::Exact(groups),
        )?;
        let finish = k.finish.launch(
            ctx,
            &u,
            &[View::whole(&partials).into(), g.into()],
            per_element(block),
        )?;
        Ok(GramForward {
            partial,
            finish,
            split,
            _partials: partials,
        })
    }

    /// `gf` (c × n) = gradient through the Gram matrix of `gg` (c × c); adds into `gf` when
    /// `accumulate`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self, ctx: &Context, c: u32, n: u32, f: View<'_>, gg: View<'_>, gf: ViewMut<'_>,
        accumulate: bool,
    ) -> Result<Dispatch> {
        let all = Channels::all(c);
        self.backward_part(ctx, c, n, (all, f), gg, (all, gf), accumulate)
    }

    /// One part of a chunked Gram backward: chunk `b`'s contribution to the gradient of
    /// chunk `a`, `gfa (+)= Σ_j (gg[a_i, b_j] + gg[b_j, a_i]) · fb[j] / n` (arguments in
    /// binding order: what it reads, then what it writes). Record the parts of
    /// one `a` in order, the first with `accumulate` false unless `gfa` already holds a
    /// gradient.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_part(
        &self, ctx: &Context, c: u32, n: u32, (b, fb): (Channels, View<'_>), gg: View<'_>,
        (a, gfa): (Channels, ViewMut<'_>), accumulate: bool,
    ) -> Result<Dispatch> {
        Self::check(c, n, a, b)?;
        expect_len("gram features gradient", &gfa, a.count as u64 * n as u64)?;
        expect_len("gram features", &fb, b.count as u64 * n as u64)?;
        expect_len("gram matrix gradient", &gg, c as u64 * c as u64)?;
        // Pixel tiles along x (folded into y past the limit), channel tiles along z.
        let (_, k) = self.pick(true, a.count, n);
        let pixel_tiles = (n as u64).div_ceil(k.tiles.tn as u64);
        let [x, y, _] = nst_gpu::grid(pixel_tiles, 1, ctx.max_workgroups_per_dim)?;
        let channel_tiles = a.count.div_ceil(k.tiles.tm);
        if channel_tiles > ctx.max_workgroups_per_dim {
            return Err(GpuError::GridTooLarge {
                groups: channel_tiles as u64,
                max: ctx.max_workgroups_per_dim as u64,
            });
        }
        let u = Uniform {
            c,
            n,
            ca: a.count,
            cb: b.count,
            a_off: a.offset,
            b_off: b.offset,
            flags: accumulate as u32 * FLAG_ACCUMULATE,
            splits: 0,
            k_slice: 0,
            tiles: 0,
            inv_n: 1.0 / n as f32,
        };
        k.backward.launch(
            ctx,
            &u,
            &[fb.into(), gg.into(), gfa.into()],
            Groups::Exact([x, y, channel_tiles]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 1 << 30;

    #[test]
    fn symmetric_tiles_are_those_reaching_the_upper_triangle() {
        let t = GramTiles::default();
        assert_eq!(t.forward_tiles(64, 64, true), 1);
        assert_eq!(t.forward_tiles(70, 70, true), 3);
        assert_eq!(t.forward_tiles(130, 130, true), 6);
        assert_eq!(t.forward_tiles(512, 512, true), 36);
        assert_eq!(t.forward_tiles(130, 70, false), 6);
        // Tall tiles: row tiles 0..3 of 32 rows start at column tiles 0, 0, 1, 1 of 64.
        let tall = GramTiles { tm: 32, ..t };
        assert_eq!(tall.forward_tiles(128, 128, true), 2 + 2 + 1 + 1);
        // By brute force over elements: a tile is listed iff it holds some (i, j) with i ≤ j.
        for (tm, tn, c) in [
            (32, 64, 100u32),
            (64, 32, 100),
            (64, 64, 130),
            (128, 32, 257),
        ] {
            let t = GramTiles { tm, tn, ..t };
            let (rows, cols) = (c.div_ceil(tm), c.div_ceil(tn));
            let brute = (0..rows)
                .flat_map(|r| (0..cols).map(move |q| (r, q)))
                .filter(|&(r, q)| r * tm < ((q + 1) * tn).min(c))
                .count() as u64;
            assert_eq!(t.forward_tiles(c, c, true), brute, "{tm}×{tn}, c = {c}");
        }
    }

    #[test]
    fn tiles_read_back_what_they_write() {
        let t = GramTiles {
            groups: 16,
            ..GramTiles::default()
        };
        assert_eq!(t.to_string(), "64x64x16x4/16");
        assert_eq!("64x64x16x4/16".parse::<GramTiles>(), Ok(t));
        // A cache written before the split was tuned: the default target.
        assert_eq!("64x64x16x4".parse::<GramTiles>(), Ok(GramTiles::default()));
        for bad in [
            "64x64x16",
            "64x64x16x4/",
            "64x64x16x4/x",
            "tiled:64x64x16x4",
        ] {
            let err = bad.parse::<GramTiles>().unwrap_err();
            assert!(err.contains("TMxTNxTKxRM/GROUPS"), "{bad}: {err}");
        }
        assert!(t.same_shader(&GramTiles::default()));
        assert!(!t.same_shader(&GramTiles { tk: 8, ..t }));
    }

    #[test]
    fn split_k_follows_the_tiles_target() {
        // relu1_1 at 256²: one tile, 4,096 steps; 16 workgroups rather than 1,024.
        let s = split_k(1, (64, 64, 256 * 256), (16, 16), BIG, BIG).unwrap();
        assert_eq!((s.splits, s.k_slice), (16, 4096));
    }

    #[test]
    fn split_k_fills_the_gpu_within_its_caps() {
        // relu1_1 at 512²: one tile, 16,384 steps, 16 KiB per split: 1,024 splits of 16 steps.
        let s = split_k(1, (64, 64, 512 * 512), (16, 1024), BIG, BIG).unwrap();
        assert_eq!((s.splits, s.k_slice), (1024, 256));
        // relu4_1 at 512²: 36 tiles want 29 splits; 1 MiB per split caps them at 16.
        let s = split_k(36, (512, 512, 64 * 64), (16, 1024), BIG, BIG).unwrap();
        assert_eq!((s.splits, s.k_slice), (16, 256));
        // relu5_1 at 512²: 64 steps allow 8 slices of at least 8 steps.
        let s = split_k(36, (512, 512, 32 * 32), (16, 1024), BIG, BIG).unwrap();
        assert_eq!((s.splits, s.k_slice), (8, 128));
        // Few steps: one slice.
        let s = split_k(1, (5, 5, 63), (16, 1024), BIG, BIG).unwrap();
        assert_eq!((s.splits, s.k_slice), (1, 64));
        // A small binding limit caps the splits: 10 blocks of 8×8 fit in 2,560 bytes.
        let s = split_k(1, (8, 8, 70_000), (16, 1024), 2_560, BIG).unwrap();
        assert_eq!(s.splits, 10);
        // A grid capped at 16 × 16 workgroups: 3 tiles allow 85 splits.
        let s = split_k(3, (70, 70, 70_000), (16, 1024), BIG, 256).unwrap();
        assert_eq!(s.splits, 85);
        // Even one block over the binding limit is an error.
        let err = split_k(1, (8, 8, 70_000), (16, 1024), 255, BIG).unwrap_err();
        assert!(matches!(err, GpuError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn split_k_covers_k_without_empty_slices() {
        for n in [
            1, 15, 16, 17, 127, 128, 129, 1000, 4097, 70_000, 262_144, 1_000_003,
        ] {
            for tiles in [1, 3, 36, 2000] {
                let s = split_k(tiles, (64, 64, n), (16, 1024), BIG, BIG).unwrap();
                let (splits, k) = (s.splits as u64, s.k_slice as u64);
                assert!(splits >= 1 && k.is_multiple_of(16), "n = {n}: {s:?}");
                assert!(
                    (splits - 1) * k < n as u64 && splits * k >= n as u64,
                    "n = {n}: {s:?}"
                );
                assert!(splits * 64 * 64 * 4 <= MAX_PARTIALS_BYTES, "n = {n}: {s:?}");
            }
        }
    }
}
