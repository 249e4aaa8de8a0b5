//! Kernel variants per adapter: which classes of launch a run has, timing their candidates
//! (`nst tune`), and the winners kept in the user cache folder, keyed by adapter name, driver
//! and nst version. A normal run uses the cached winners, or the built-in choice when this
//! adapter was never tuned; it never tunes by itself.

use crate::error::{Result, TransferError};
use nst_gpu::Context;
use nst_kernels::candidate_timing;
use nst_kernels::{ConvClass, ConvKernel, ConvShape, GramClass, GramTiles, KernelChoice};
use nst_vgg::{LayerId, LayerKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The cache file's name in the user cache folder's `nst` folder.
const FILE: &str = "tuning.json";

/// Overrides where the cache file is (scripts and tests keep the user's cache untouched).
pub const ENV_VAR: &str = "NST_TUNING_CACHE";

/// The cache file: `NST_TUNING_CACHE`, else `nst/tuning.json` in the user cache folder.
pub fn cache_path() -> Option<PathBuf> {
    match std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => nst_weights::SearchPlaces::from_process()
            .cache_dir
            .map(|d| d.join("nst").join(FILE)),
    }
}

/// What the winners are kept for: one adapter, driver and nst version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuningKey {
    /// The adapter's name.
    pub adapter: String,
    /// Its backend.
    pub backend: String,
    /// Its driver.
    pub driver: String,
    /// nst's version: kernels change between versions.
    pub nst: String,
}

impl TuningKey {
    /// The key of the adapter in use.
    pub fn of(ctx: &Context) -> Self {
        let s = &ctx.summary;
        TuningKey {
            adapter: s.name.clone(),
            backend: s.backend.clone(),
            driver: s.driver.clone(),
            nst: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// One tuned class of launch: which kernel won and every candidate's time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tuned {
    /// `conv2d forward`, `conv2d backward`, `gram forward` or `gram backward`.
    pub op: String,
    /// Source channels (the Gram's channels).
    pub c_src: u32,
    /// Destination channels (the Gram's channels).
    pub c_dst: u32,
    /// ⌈log₂⌉ of the pixels.
    pub pixels_log2: u32,
    /// The image side the class was timed at, and its layer, for people.
    pub timed_at: String,
    /// The winner, as the kernel's `Display` writes it.
    pub winner: String,
    /// Each candidate's milliseconds per launch, fastest first.
    pub ms: Vec<(String, f64)>,
}

/// The winners for one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// What they were timed on.
    #[serde(flatten)]
    pub key: TuningKey,
    /// Image sides tuned at.
    pub sizes: Vec<u32>,
    /// The classes.
    pub classes: Vec<Tuned>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    tunings: Vec<Tuning>,
}

fn read_cache(path: &PathBuf) -> CacheFile {
    // A missing or unreadable cache is an untuned adapter, never an error: runs go on with the
    // built-in choice, and `nst tune` writes a fresh file.
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Where a run's kernel variants come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Built in (this adapter was never tuned, or the cache could not be read).
    BuiltIn,
    /// Tuned with `nst tune`, kept in this file.
    Cached(PathBuf),
    /// Tuned winners the caller kept and gave back ([`Choice::given`]): the web page keeps
    /// them in the browser's storage.
    Given,
}

/// The kernel variants a run uses, and where they come from.
#[derive(Clone, Debug)]
pub struct Choice {
    /// The variants.
    pub kernels: KernelChoice,
    /// Where from.
    pub source: Source,
    /// The cached tuning, when there is one.
    pub tuning: Option<Tuning>,
}

impl Choice {
    /// The cached winners for this adapter, driver and nst version, or the built-in choice.
    pub fn load(ctx: &Context) -> Choice {
        let key = TuningKey::of(ctx);
        let found = cache_path().and_then(|path| {
            let t = read_cache(&path)
                .tunings
                .into_iter()
                .find(|t| t.key == key)?;
            Some((path, t))
        });
        match found {
            Some((path, t)) => Choice {
                kernels: kernel_choice(ctx, &t),
                source: Source::Cached(path),
                tuning: Some(t),
            },
            None => Choice::builtin(ctx),
        }
    }

    /// The winners of `tuning` where this adapter can run them, the built-in choice
    /// elsewhere; `None` when `tuning` was timed on another adapter, driver or nst version.
    pub fn given(ctx: &Context, tuning: Tuning) -> Option<Choice> {
        (tuning.key == TuningKey::of(ctx)).then(|| Choice {
            kernels: kernel_choice(ctx, &tuning),
            source: Source::Given,
            tuning: Some(tuning),
        })
    }

    /// The built-in choice for this adapter.
    pub fn builtin(ctx: &Context) -> Choice {
        Choice {
            kernels: KernelChoice::builtin(ctx),
            source: Source::BuiltIn,
            tuning: None,
        }
    }

    /// One line on the variants in use: built in, or tuned (where, and how many classes).
    pub fn summary(&self) -> String {
        match (&self.source, &self.tuning) {
            (Source::BuiltIn, _) | (_, None) => {
                format!("built-in kernels ({})", builtin_summary(&self.kernels))
            }
            (source, Some(t)) => {
                let sizes: Vec<String> = t.sizes.iter().map(|s| format!("{s}²")).collect();
                let r#where = match source {
                    Source::Cached(path) => format!(", from {}", path.display()),
                    _ => String::new(),
                };
                format!(
                    "kernels tuned for this GPU at {} ({} classes of launch){where}",
                    sizes.join(", "),
                    t.classes.len()
                )
            }
        }
    }

    /// The one-line hint a run prints when nothing was tuned for this adapter.
    pub fn hint(&self) -> Option<String> {
        match self.source {
            Source::BuiltIn => Some(format!(
                "note: kernels not tuned for this GPU; using the built-in choice ({}). `nst tune` \
                 times the variants here and keeps the fastest",
                builtin_summary(&self.kernels)
            )),
            Source::Cached(_) | Source::Given => None,
        }
    }
}

fn builtin_summary(k: &KernelChoice) -> String {
    format!("conv2d {}, gram {}", k.conv.default, k.gram.default)
}

impl std::fmt::Display for Tuning {
    /// Each tuned class's winner, with its time and the runner-up's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<String> = self.sizes.iter().map(|s| format!("{s}²")).collect();
        writeln!(
            f,
            "kernels tuned at {} on {} ({}, driver {}), nst {}:",
            sizes.join(", "),
            self.key.adapter,
            self.key.backend,
            self.key.driver,
            self.key.nst
        )?;
        for c in &self.classes {
            let runner_up =
                c.ms.get(1)
                    .map_or(String::new(), |(k, ms)| format!("; next {k} {ms:.2} ms"));
            writeln!(
                f,
                "  {:<15} {:>4}→{:<4} 2^{:<2} ({:<13}) {} {:.2} ms{runner_up}",
                c.op,
                c.c_src,
                c.c_dst,
                c.pixels_log2,
                c.timed_at,
                c.winner,
                c.ms.first().map_or(f64::NAN, |m| m.1),
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Choice {
    /// What `nst devices` prints: where the variants come from, and the tuned winners.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.source, &self.tuning) {
            (Source::Cached(path), Some(t)) => {
                writeln!(f, "kernel variants: from {}", path.display())?;
                write!(f, "{t}")
            }
            _ => writeln!(
                f,
                "kernel variants: built-in, {} (not tuned for this adapter: run `nst tune`)",
                builtin_summary(&self.kernels)
            ),
        }
    }
}

/// The kernel choice a tuning gives: its winners per class, the built-in choice as default.
fn kernel_choice(ctx: &Context, t: &Tuning) -> KernelChoice {
    let mut k = KernelChoice::builtin(ctx);
    for c in &t.classes {
        let backward = c.op.ends_with("backward");
        if c.op.starts_with("conv2d") {
            if let Ok(kernel) = c.winner.parse::<ConvKernel>() {
                if kernel.check(ctx).is_ok() {
                    let class = ConvClass {
                        backward,
                        c_src: c.c_src,
                        c_dst: c.c_dst,
                        pixels_log2: c.pixels_log2,
                    };
                    k.conv.tuned.push((class, kernel));
                }
            }
        } else if let Ok(tiles) = c.winner.parse::<GramTiles>() {
            if tiles.check(ctx).is_ok() {
                let class = GramClass {
                    backward,
                    c: c.c_src,
                    pixels_log2: c.pixels_log2,
                };
                k.gram.tuned.push((class, tiles));
            }
        }
    }
    k
}

/// One class to time: a convolution (forward or input gradient) or a Gram matrix (forward or
/// backward) at a layer of VGG-19.
enum Launch {
    Conv {
        class: ConvClass,
        hw: (u32, u32),
        layer: LayerId,
    },
    Gram {
        backward: bool,
        c: u32,
        n: u32,
        layer: LayerId,
    },
}

/// The distinct classes of launch of one iteration at `width × height` with the default
/// layers: every convolution up to the deepest tap both ways (in channel chunks that fit one
/// binding, as the graph splits them), and the Gram matrices of the style layers.
fn launches(ctx: &Context, c_out: &[u32], width: u32, height: u32) -> Vec<Launch> {
    let config = crate::LossConfig::default();
    let taps = config.taps();
    let deepest = taps.iter().copied().max().expect("default taps");
    let style = config.style_layer_ids();
    let fit = |c: u32, plane: u64| -> u32 {
        let most = (ctx.max_binding_bytes / (4 * plane.max(1))).max(1);
        c.min(most.min(u32::MAX as u64) as u32)
    };
    let mut out = Vec::new();
    let mut seen_conv = Vec::new();
    let mut c_in = 3;
    for id in LayerId::all().take_while(|&id| id <= deepest) {
        let (c, h, w) = nst_vgg::output_shape(id, c_out, height, width);
        let plane = h as u64 * w as u64;
        if id.layer().kind == LayerKind::Conv {
            let s = ConvShape {
                c_in: fit(c_in, plane),
                c_out: fit(c, plane),
                h,
                w,
            };
            for backward in [false, true] {
                let class = candidate_timing::conv_class(s, backward);
                if !seen_conv.contains(&class) {
                    seen_conv.push(class);
                    out.push(Launch::Conv {
                        class,
                        hw: (h, w),
                        layer: id,
                    });
                }
            }
            c_in = c;
        }
        if style.contains(&id) {
            for backward in [false, true] {
                out.push(Launch::Gram {
                    backward,
                    c: fit(c, plane),
                    n: h * w,
                    layer: id,
                });
            }
        }
    }
    out
}

/// Times every class of launch of an iteration at `size × size` with each candidate variant,
/// and keeps the winners for this adapter in the cache (merged with those of other sizes).
/// `progress` hears one line per class. Returns the updated tuning.
pub fn tune(
    ctx: &Context, c_out: &[u32], size: u32, progress: &mut dyn FnMut(&str),
) -> Result<Tuning> {
    let measured = pollster::block_on(measure(ctx, c_out, size, progress))?;
    let path = cache_path().ok_or_else(|| TransferError::Write {
        path: PathBuf::from(FILE),
        reason: format!("this platform has no user cache folder: set {ENV_VAR} to a file"),
    })?;
    let mut file = read_cache(&path);
    let tuning = merge(&mut file, measured.key, size, measured.classes);
    write_cache(&path, &file)?;
    Ok(tuning)
}

/// Times every class of launch of an iteration at `size × size` with each candidate variant,
/// without blocking (a browser tunes this way), and returns the winners for this adapter;
/// keeping them is the caller's business ([`tune`] keeps them in the cache file, the web page
/// in the browser's storage). `progress` hears one line per class.
pub async fn measure(
    ctx: &Context, c_out: &[u32], size: u32, progress: &mut dyn FnMut(&str),
) -> Result<Tuning> {
    let conv_candidates = candidate_timing::conv_candidates(ctx, &ConvKernel::candidates(ctx))?;
    let gram_candidates = candidate_timing::gram_candidates(ctx, &GramTiles::candidates(ctx))?;
    let mut classes = Vec::new();
    for launch in launches(ctx, c_out, size, size) {
        let tuned = match launch {
            Launch::Conv { class, hw, layer } => {
                let ms = candidate_timing::conv(ctx, class, hw, &conv_candidates).await?;
                let op = match class.backward {
                    false => "conv2d forward",
                    true => "conv2d backward",
                };
                tuned(
                    op,
                    (class.c_src, class.c_dst, class.pixels_log2),
                    size,
                    layer,
                    ms,
                )
            }
            Launch::Gram {
                backward,
                c,
                n,
                layer,
            } => {
                let ms = candidate_timing::gram(ctx, backward, (c, n), &gram_candidates).await?;
                let op = match backward {
                    false => "gram forward",
                    true => "gram backward",
                };
                let class = candidate_timing::gram_class(backward, c, n);
                tuned(op, (c, c, class.pixels_log2), size, layer, ms)
            }
        };
        progress(&format!(
            "{:<15} {:>4}→{:<4} at {:<8} {} ({:.2} ms of {} candidates)",
            tuned.op,
            tuned.c_src,
            tuned.c_dst,
            tuned.timed_at,
            tuned.winner,
            tuned.ms.first().map_or(f64::NAN, |m| m.1),
            tuned.ms.len()
        ));
        classes.push(tuned);
    }
    Ok(Tuning {
        key: TuningKey::of(ctx),
        sizes: vec![size],
        classes,
    })
}

/// Adds `classes` timed at `size` to `key`'s tuning in `file` (a class timed again replaces
/// its old entry), and returns that tuning.
fn merge(file: &mut CacheFile, key: TuningKey, size: u32, classes: Vec<Tuned>) -> Tuning {
    let same = |a: &Tuned, b: &Tuned| {
        (&a.op, a.c_src, a.c_dst, a.pixels_log2) == (&b.op, b.c_src, b.c_dst, b.pixels_log2)
    };
    match file.tunings.iter_mut().find(|t| t.key == key) {
        Some(t) => {
            t.classes
                .retain(|old| !classes.iter().any(|new| same(new, old)));
            t.classes.extend(classes);
            if !t.sizes.contains(&size) {
                t.sizes.push(size);
            }
            t.clone()
        }
        None => {
            let t = Tuning {
                key,
                sizes: vec![size],
                classes,
            };
            file.tunings.push(t.clone());
            t
        }
    }
}

fn tuned<K: std::fmt::Display>(
    op: &str, (c_src, c_dst, pixels_log2): (u32, u32, u32), size: u32, layer: LayerId,
    ms: Vec<(K, f64)>,
) -> Tuned {
    Tuned {
        op: op.into(),
        c_src,
        c_dst,
        pixels_log2,
        timed_at: format!("{size}² {layer}"),
        winner: ms.first().map_or(String::new(), |m| m.0.to_string()),
        ms: ms.into_iter().map(|(k, t)| (k.to_string(), t)).collect(),
    }
}

fn write_cache(path: &Path, file: &CacheFile) -> Result<()> {
    let io = |e: std::io::Error| TransferError::Write {
        path: path.to_path_buf(),
        reason: format!("{e} (set {ENV_VAR} to keep the tuning elsewhere)"),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(file).expect("serializable") + "\n";
    // Whole or not at all, so that a run reading it never sees half a file.
    crate::image::write_atomic(path, |out| out.write_all(text.as_bytes())).map_err(io)
}

/// The adapters wgpu finds, then the one nst would use with its limits and the kernel
/// variants it would run (`nst devices`).
pub fn devices() -> Result<String> {
    let all = nst_gpu::list_adapters();
    let none = match all.is_empty() {
        true => " none on the backends searched",
        false => "",
    };
    let mut out = format!("adapters:{none}\n");
    all.iter().for_each(|a| out.push_str(&format!("  {a}\n")));
    let ctx = Context::new()?;
    let choice = Choice::load(&ctx);
    Ok(format!("{out}{}{choice}", ctx.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(adapter: &str) -> TuningKey {
        TuningKey {
            adapter: adapter.into(),
            backend: "Vulkan".into(),
            driver: "d 1".into(),
            nst: "0.1.0".into(),
        }
    }

    fn class(op: &str, c: u32, pixels_log2: u32, winner: &str) -> Tuned {
        Tuned {
            op: op.into(),
            c_src: c,
            c_dst: c,
            pixels_log2,
            timed_at: String::new(),
            winner: winner.into(),
            ms: vec![(winner.into(), 1.0)],
        }
    }

    #[test]
    fn a_class_timed_again_replaces_its_entry_and_others_are_kept() {
        let mut file = CacheFile::default();
        merge(
            &mut file,
            key("a"),
            64,
            vec![class("conv2d forward", 64, 12, "direct:8x64")],
        );
        merge(
            &mut file,
            key("b"),
            64,
            vec![class("conv2d forward", 64, 12, "tiled:64x64x16x4")],
        );
        let t = merge(
            &mut file,
            key("a"),
            128,
            vec![
                class("conv2d forward", 64, 12, "subgroup:8x8"),
                class("conv2d forward", 64, 14, "subgroup:8x64"),
            ],
        );
        assert_eq!(t.sizes, [64, 128]);
        let winners: Vec<&str> = t.classes.iter().map(|c| c.winner.as_str()).collect();
        assert_eq!(winners, ["subgroup:8x8", "subgroup:8x64"]);
        assert_eq!(file.tunings.len(), 2);
        assert_eq!(file.tunings[1].classes[0].winner, "tiled:64x64x16x4");
    }

    #[test]
    fn the_cache_round_trips_and_a_damaged_one_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nst").join(FILE);
        let mut file = CacheFile::default();
        merge(
            &mut file,
            key("a"),
            64,
            vec![class("gram backward", 512, 6, "64x128x8x8")],
        );
        write_cache(&path, &file).unwrap();
        let back = read_cache(&path);
        assert_eq!(back.tunings, file.tunings);
        std::fs::write(&path, "{ not json").unwrap();
        assert!(read_cache(&path).tunings.is_empty());
        assert!(read_cache(&dir.path().join("missing.json"))
            .tunings
            .is_empty());
    }
}
