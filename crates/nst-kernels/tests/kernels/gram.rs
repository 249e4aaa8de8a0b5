//! The Gram matrix and its backward: split K, symmetric blocks, channel chunks, other tiles.

use nst_gpu::View;
use nst_kernels::{Channels, Gram, GramChoice, GramClass, GramTiles};
use nst_reference as r;
use nst_tests::{
    as_f32_exact, assert_close, chunk_of, chunks, random, ro, rw, with_gpu, with_small_grid_gpu,
    Gpu,
};

/// A random `c × n` map, a Gram gradient and a prior feature gradient, and the references.
struct GramData {
    f: Vec<f64>,
    gg: Vec<f64>,
    prior: Vec<f64>,
    c: usize,
    n: usize,
}

impl GramData {
    fn new(c: u32, n: u32, seed: u64) -> Self {
        let (c, n) = (c as usize, n as usize);
        GramData {
            f: as_f32_exact(&random(seed, c * n, -1.0, 1.0)),
            gg: as_f32_exact(&random(seed + 1, c * c, -1.0, 1.0)),
            prior: as_f32_exact(&random(seed + 2, c * n, -1.0, 1.0)),
            c,
            n,
        }
    }

    fn forward(&self) -> Vec<f64> {
        r::gram::gram_forward(&self.f, self.c, self.n)
    }

    /// The feature gradient, added onto the prior one when `accumulate`.
    fn backward(&self, accumulate: bool) -> Vec<f64> {
        let mut want = r::gram::gram_backward(&self.f, &self.gg, self.c, self.n);
        if accumulate {
            want.iter_mut().zip(&self.prior).for_each(|(w, p)| *w += p);
        }
        want
    }
}

/// Runs the forward and the backward (onto a prior gradient when `accumulate`) of a `c × n`
/// map with `k` against the reference; returns the forward's (splits, pixels per slice).
/// The Gram forward's tolerances against the f64 reference: absolute, relative.
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

fn gram_case_with(g: &Gpu, k: &Gram, c: u32, n: u32, seed: u64, accumulate: bool) -> (u32, u32) {
    let d = GramData::new(c, n, seed);
    let (bf, bgg, bgf) = (
        g.upload("f", &d.f),
        g.upload("gg", &d.gg),
        g.upload("gf", &d.prior),
    );
    let bg = g.zeros("g", (c * c) as usize);
    let fw = k.forward(&g.ctx, c, n, ro(&bf), rw(&bg)).unwrap();
    let bw = k.backward(&g.ctx, c, n, ro(&bf), ro(&bgg), rw(&bgf), accumulate);
    g.run(&[&fw, &bw.unwrap()]);
    let tag = format!("gram {c}×{n} {}", k.choice().default);
    assert_close(
        &format!("{tag} forward"),
        &g.read(&bg),
        &d.forward(),
        ATOL,
        RTOL,
    );
    // dF shrinks as 1/n: keep the absolute tolerance below its size.
    assert_close(
        &format!("{tag} backward"),
        &g.read(&bgf),
        &d.backward(accumulate),
        1e-6f64.min(1e-3 / n as f64),
        1e-5,
    );
    (fw.splits(), fw.k_slice())
}

fn gram_case(g: &Gpu, c: u32, n: u32, seed: u64, accumulate: bool) -> (u32, u32) {
    gram_case_with(g, &g.k.gram, c, n, seed, accumulate)
}

#[test]
fn gram_matches_reference() {
    with_gpu(|g| {
        gram_case(g, 1, 1, 50, false);
        gram_case(g, 5, 63, 51, false);
        gram_case(g, 7, 1000, 52, true);
        gram_case(g, 67, 130, 53, true);
        // With 64×64 tiles: 70 channels are 3 tiles of the upper triangle (one of them a
        // diagonal tile of 6 rows), 130 channels 6 (the last diagonal tile of 2 rows); 4·4
        // register blocks straddle the edges.
        gram_case(g, 70, 333, 54, false);
        gram_case(g, 130, 37, 55, true);
        // n = 1: one partial K step; n = 2: pixel tiles of 2 backward.
        gram_case(g, 70, 1, 56, true);
        gram_case(g, 3, 2, 57, false);
    });
}

/// K = H·W split over several slices, the last one shorter (and ending in a partial K step),
/// summed in the finish pass; with the symmetric tiles of 70 channels too.
#[test]
fn gram_splits_k_with_a_partial_last_slice() {
    with_gpu(|g| {
        for (c, n, seed) in [(8, 1000, 300), (70, 1000, 310)] {
            let (splits, k_slice) = gram_case(g, c, n, seed, true);
            assert!(splits >= 4, "{c}×{n}: {splits} splits");
            assert!(
                n % k_slice != 0 && n % 16 != 0,
                "{c}×{n}: slices of {k_slice}"
            );
        }
    });
}

/// A block of one chunk with itself launches only the tiles reaching the upper triangle (6 of
/// 9 for 130 channels in 64×64 tiles); a block of two chunks launches all of its tiles.
#[test]
fn gram_forward_launches_only_the_upper_triangle_of_a_symmetric_block() {
    with_gpu(|g| {
        let (c, n) = (130u32, 64u32); // chunks start at multiples of 256 bytes
        let (f, gm) = (
            g.zeros("f", (c * n) as usize),
            g.zeros("g", (c * c) as usize),
        );
        let fw = g.k.gram.forward(&g.ctx, c, n, ro(&f), rw(&gm)).unwrap();
        assert_eq!((fw.splits(), fw.workgroups()), (1, [6, 1, 1]));
        let [a, b] = [(0, 70), (70, 60)].map(|(offset, count)| Channels { offset, count });
        let fa = View::range(&f, 0, 70 * n as u64);
        let fb = View::range(&f, 70 * n as u64, 60 * n as u64);
        let ab =
            g.k.gram
                .forward_part(&g.ctx, c, n, (a, fa), (b, fb), rw(&gm));
        assert_eq!(ab.unwrap().workgroups(), [2, 1, 1]);
        let aa =
            g.k.gram
                .forward_part(&g.ctx, c, n, (a, fa), (a, fa), rw(&gm));
        assert_eq!(aa.unwrap().workgroups(), [3, 1, 1]);
    });
}

/// A large H·W with few channels, as at relu1_1: hundreds of slices.
#[test]
fn gram_over_a_large_map_matches_reference() {
    with_gpu(|g| {
        let (splits, k_slice) = gram_case(g, 8, 70_000, 320, true);
        assert!(splits > 100, "{splits} splits of {k_slice}");
    });
}

/// On a grid capped at 16 workgroups per dimension: 70 channels in 7 slices are 21 forward
/// workgroups, a 11×2 grid whose last one lies past the end; 1,100 pixels are 18 backward
/// pixel tiles (9×2) × 2 channel tiles.
#[test]
fn gram_matches_reference_on_2d_grid() {
    with_small_grid_gpu(|g| {
        gram_case(g, 9, 600, 59, false);
        assert_eq!(gram_case(g, 70, 1000, 330, false).0, 7);
        gram_case(g, 70, 1100, 331, true);
    });
}

/// Other valid tile sizes, square and not (the symmetric tiles then start at column tile
/// r·tm / tn), every candidate autotuning times among them, give the same results.
#[test]
fn gram_with_other_tiles_matches_reference() {
    with_gpu(|g| {
        let mut all = GramTiles::CANDIDATES.to_vec();
        all.push(GramTiles {
            tm: 16,
            tn: 64,
            tk: 16,
            rm: 4,
            groups: 7,
        });
        let check = |t: &GramTiles| t.check(&g.ctx).map_err(|e| e.to_string());
        let all = nst_tests::runnable_variants(&g.ctx, "gram", &all, check);
        for (t, tiles) in all.into_iter().enumerate() {
            let k = Gram::with_tiles(&g.ctx, tiles).unwrap();
            for (i, &(c, n)) in [(1, 1), (5, 63), (70, 333), (130, 37)].iter().enumerate() {
                gram_case_with(g, &k, c, n, 400 + 10 * t as u64 + i as u64, i % 2 == 1);
            }
        }
    });
}

#[test]
fn gram_rejects_tiles_the_shader_cannot_run() {
    with_gpu(|g| {
        let d = GramTiles::default();
        for (tiles, what) in [
            (GramTiles { rm: 2, ..d }, "rm must be"),
            (GramTiles { tk: 12, ..d }, "divide evenly"),
            (GramTiles { groups: 0, ..d }, "groups must be"),
            (GramTiles { groups: 1025, ..d }, "groups must be"),
        ] {
            let err = Gram::with_tiles(&g.ctx, tiles).err().unwrap();
            let msg = err.to_string();
            assert!(msg.contains("gram tiles") && msg.contains(what), "{msg}");
        }
    });
}

/// The Gram matrix and its backward over a feature map split into channel chunks: one launch
/// per pair of chunks, as the engine records it for tensors above the binding limit.
#[test]
fn gram_in_channel_chunks_matches_reference() {
    with_gpu(|g| {
        // The default tiles, and a tuned choice that gives each chunk size other tiles (the
        // nearest tuned class for the rest), as a tuning cache may.
        let t = |tm, tn, tk, rm| GramTiles {
            tm,
            tn,
            tk,
            rm,
            ..GramTiles::default()
        };
        let class = |backward, c| GramClass {
            backward,
            c,
            pixels_log2: 10,
        };
        let mixed = GramChoice {
            default: GramTiles::default(),
            tuned: vec![
                (class(false, 70), t(32, 32, 8, 8)),
                (class(false, 4), t(128, 32, 16, 8)),
                (class(true, 64), t(64, 128, 8, 8)),
                (class(true, 1), t(32, 32, 8, 8)),
            ],
        };
        let mixed = Gram::with_choice(&g.ctx, mixed).unwrap();
        for k in [&g.k.gram, &mixed] {
            gram_chunks_case(g, k, 30, &[3, 4], 80, false);
            // 70 + 64 channels: the diagonal blocks symmetric (3 tiles and 1), the
            // off-diagonal ones general (2×1 and 1×2 tiles); 600 pixels in 4 slices, the last
            // shorter; the backward adds onto a prior gradient.
            gram_chunks_case(g, k, 600, &[70, 64], 82, true);
            // Three chunks, one of a single channel.
            gram_chunks_case(g, k, 45, &[5, 1, 6], 84, true);
        }
    });
}

/// Splits `counts.iter().sum()` channels of `n` pixels into chunks of `counts`; records every
/// (a, b) pair forward, then backward with each chunk's first part overwriting (or, with
/// `accumulate`, adding to a prior gradient).
fn gram_chunks_case(g: &Gpu, k: &Gram, n: u32, counts: &[u32], seed: u64, accumulate: bool) {
    let c: u32 = counts.iter().sum();
    let chunks = chunks(counts);
    let d = GramData::new(c, n, seed);
    let upload = |label, v: &[f64]| -> Vec<_> {
        chunks
            .iter()
            .map(|&ch| g.upload(label, &chunk_of(v, ch, n as usize)))
            .collect()
    };
    let (bf, bgf) = (upload("f", &d.f), upload("gf", &d.prior));
    let (bgg, bg) = (g.upload("gg", &d.gg), g.zeros("g", (c * c) as usize));
    let mut launches: Vec<Box<dyn nst_gpu::Record>> = Vec::new();
    for (i, &a) in chunks.iter().enumerate() {
        for (j, &b) in chunks.iter().enumerate() {
            let (fa, fb) = ((a, ro(&bf[i])), (b, ro(&bf[j])));
            let part = k.forward_part(&g.ctx, c, n, fa, fb, rw(&bg));
            launches.push(Box::new(part.unwrap()));
        }
    }
    for (i, &a) in chunks.iter().enumerate() {
        for (j, &b) in chunks.iter().enumerate() {
            let (fb, gfa) = ((b, ro(&bf[j])), (a, rw(&bgf[i])));
            let part = k.backward_part(&g.ctx, c, n, fb, ro(&bgg), gfa, j > 0 || accumulate);
            launches.push(Box::new(part.unwrap()));
        }
    }
    let refs: Vec<&dyn nst_gpu::Record> = launches.iter().map(|d| d.as_ref()).collect();
    g.run(&refs);
    let tag = format!("gram {counts:?}×{n} in chunks");
    assert_close(
        &format!("{tag} forward"),
        &g.read(&bg),
        &d.forward(),
        ATOL,
        RTOL,
    );
    let gf: Vec<f32> = bgf.iter().flat_map(|b| g.read(b)).collect();
    let want = d.backward(accumulate);
    assert_close(&format!("{tag} backward"), &gf, &want, 1e-6, 1e-5);
}
