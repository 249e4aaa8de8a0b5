//! Shared harness for the GPU tests: one context per process (the software driver is slow and
//! single-queue, so GPU tests run one at a time), one engine per weight set, a tuning cache of
//! the tests' own, comparisons that name the worst element, and random inputs.

pub mod synthetic;

use nst_gpu::{Context, ContextOptions, View, ViewMut};
use nst_kernels::Kernels;
use nst_transfer::Engine;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// A context with every kernel compiled.
pub struct Gpu {
    /// The device.
    pub ctx: Context,
    /// Every kernel.
    pub k: Kernels,
}

static LOCK: Mutex<()> = Mutex::new(());

fn open(opts: ContextOptions) -> Option<Gpu> {
    let ctx = context(opts)?;
    let k = Kernels::new(&ctx).unwrap_or_else(|e| panic!("building kernels: {e}"));
    Some(Gpu { ctx, k })
}

/// A GPU context for a test, or `None` (with a note) when there is no adapter; under `CI` a
/// missing adapter is a failure, since the software driver must be installed there. The
/// process's tuning cache is [`isolate_tuning_cache`]'s from then on.
pub fn context(opts: ContextOptions) -> Option<Context> {
    isolate_tuning_cache();
    match Context::with_options(opts) {
        Ok(ctx) => {
            eprintln!(
                "GPU tests on {} ({})",
                ctx.summary.name, ctx.summary.backend
            );
            Some(ctx)
        }
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI is set and {e}"),
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// Points `NST_TUNING_CACHE` at a file of this process's own that does not exist, so that a
/// user's `nst tune` never changes what a test runs: every engine uses the built-in kernel
/// variants. Runs once, before this process opens a GPU ([`context`] calls it), since setting
/// the environment while another thread's driver reads it would be a data race. Returns the
/// path, for tests that start `nst` themselves.
pub fn isolate_tuning_cache() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir()
            .join(format!("nst-tests-{}", std::process::id()))
            .join("tuning.json");
        std::env::set_var(nst_transfer::tuning::ENV_VAR, &path);
        path
    })
}

/// The engine with the real weights, shared by every test of the process (building one
/// compiles every kernel and uploads the weights), locked for the caller; `None` (the test
/// skips) without the weights or a GPU, as [`real_weights`] and [`context`] say.
pub fn real_engine() -> Option<MutexGuard<'static, Engine>> {
    static ENGINE: OnceLock<Option<Mutex<Engine>>> = OnceLock::new();
    shared_engine(&ENGINE, real_weights)
}

/// The engine with [`vgg_tiny_weights`], shared and locked like [`real_engine`]; `None`
/// without a GPU.
pub fn tiny_engine() -> Option<MutexGuard<'static, Engine>> {
    static ENGINE: OnceLock<Option<Mutex<Engine>>> = OnceLock::new();
    shared_engine(&ENGINE, || Some(vgg_tiny_weights()))
}

fn shared_engine(
    slot: &'static OnceLock<Option<Mutex<Engine>>>,
    weights: impl FnOnce() -> Option<nst_weights::Vgg19Weights>,
) -> Option<MutexGuard<'static, Engine>> {
    let engine = slot.get_or_init(|| {
        let weights = weights()?;
        let ctx = context(ContextOptions::default())?;
        let engine = Engine::new(ctx, &weights).unwrap_or_else(|e| panic!("{e}"));
        Some(Mutex::new(engine))
    });
    // A test that panicked holding the lock poisons the lock, not the engine (its calls take
    // `&self`): the other tests go on.
    let engine = engine.as_ref()?;
    Some(engine.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The real VGG-19 weights from `weights/vgg19.safetensors`, or `None` (with a note) when
/// they have not been fetched; under `CI` missing weights are a failure (`.ci/run` fetches
/// them first).
pub fn real_weights() -> Option<nst_weights::Vgg19Weights> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../weights/vgg19.safetensors");
    if !path.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and {} is missing",
            path.display()
        );
        eprintln!(
            "skipping: {} is missing (run `nst weights fetch`)",
            path.display()
        );
        return None;
    }
    Some(nst_weights::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

/// Runs `f` with the shared default context, serialized with every other GPU test. Skips
/// (returns) when there is no adapter, unless `CI` is set, where it fails.
pub fn with_gpu(f: impl FnOnce(&Gpu)) {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    let _guard = lock();
    if let Some(gpu) = GPU.get_or_init(|| open(ContextOptions::default())) {
        f(gpu);
    }
}

/// Like [`with_gpu`], but the context launches at most 16 workgroups per grid dimension, so
/// every kernel takes its 2-D grid path on small shapes.
pub fn with_small_grid_gpu(f: impl FnOnce(&Gpu)) {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    let _guard = lock();
    let opts = ContextOptions {
        max_workgroups_per_dim: Some(16),
        ..Default::default()
    };
    if let Some(gpu) = GPU.get_or_init(|| open(opts)) {
        f(gpu);
    }
}

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gpu {
    /// Uploads f64 values as f32.
    pub fn upload(&self, label: &str, data: &[f64]) -> wgpu::Buffer {
        let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        self.ctx.tensor_from(label, &v).expect("upload")
    }

    /// Uploads f32 values.
    pub fn upload_f32(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.ctx.tensor_from(label, data).expect("upload")
    }

    /// An element-wise op's four buffers: its input `x` and output gradient `gy` uploaded,
    /// and its output `y` and input gradient `gx` zeroed, all of `x`'s length.
    pub fn elementwise(&self, x: &[f64], gy: &[f64]) -> [wgpu::Buffer; 4] {
        let n = x.len();
        let y = self.zeros("y", n);
        [
            self.upload("x", x),
            self.upload("gy", gy),
            y,
            self.zeros("gx", n),
        ]
    }

    /// A zeroed tensor of `len` elements.
    pub fn zeros(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.ctx.tensor(label, len as u64).expect("alloc")
    }

    /// Reads a whole buffer back as f32.
    pub fn read(&self, b: &wgpu::Buffer) -> Vec<f32> {
        self.ctx.read(View::whole(b)).expect("readback")
    }

    /// Reads a whole buffer back as u32.
    pub fn read_u32(&self, b: &wgpu::Buffer) -> Vec<u32> {
        self.ctx.read(View::whole(b)).expect("readback")
    }

    /// Records the launches into one pass, submits and waits.
    pub fn run(&self, launches: &[&dyn nst_gpu::Record]) {
        self.ctx
            .submit(|pass| launches.iter().for_each(|l| l.record(pass)))
            .expect("submit");
        self.ctx.wait().expect("wait");
    }
}

/// A whole buffer for a kernel to read.
pub fn ro(b: &wgpu::Buffer) -> View<'_> {
    View::whole(b)
}

/// A whole buffer for a kernel to write.
pub fn rw(b: &wgpu::Buffer) -> ViewMut<'_> {
    ViewMut::whole(b)
}

/// `a + b`, element-wise: a reference gradient added onto a prior one.
pub fn plus(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Consecutive channel chunks of `counts` channels each.
pub fn chunks(counts: &[u32]) -> Vec<nst_kernels::Channels> {
    counts
        .iter()
        .scan(0, |offset, &count| {
            let c = nst_kernels::Channels {
                offset: *offset,
                count,
            };
            *offset += count;
            Some(c)
        })
        .collect()
}

/// Rows `ch` of a `c × plane` tensor.
pub fn chunk_of(v: &[f64], ch: nst_kernels::Channels, plane: usize) -> Vec<f64> {
    v[ch.offset as usize * plane..][..ch.count as usize * plane].to_vec()
}

/// Asserts `|got − want| ≤ atol + rtol·|want|` everywhere; the failure names the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let allowed = atol + rtol * w.abs();
        if err <= allowed {
            continue;
        }
        // NaN compares false above and lands here; rank it first.
        let excess = if err.is_nan() {
            f64::INFINITY
        } else {
            err / allowed
        };
        if worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} of {} is {} but the reference is {} (|err| = {:e}, allowed {:e})",
            got.len(),
            got[i],
            want[i],
            (got[i] as f64 - want[i]).abs(),
            atol + rtol * want[i].abs()
        );
    }
}

/// Deterministic random values in `[lo, hi)`.
pub fn random(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Random values away from zero (|x| ≥ 0.05), so ReLU's kink and sign flips under f32
/// rounding do not matter.
pub fn random_away_from_zero(seed: u64, n: usize) -> Vec<f64> {
    random(seed, n, 0.05, 1.0)
        .into_iter()
        .zip(random(seed ^ 0x9e37, n, 0.0, 1.0))
        .map(|(m, s)| if s < 0.5 { -m } else { m })
        .collect()
}

/// f32 values rounded from f64 and back, so a reference sees exactly what the GPU sees.
pub fn as_f32_exact(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| x as f32 as f64).collect()
}

/// A safetensors fixture file from `tests/fixtures/`, read once.
pub struct Fixture {
    name: &'static str,
    bytes: Vec<u8>,
}

impl Fixture {
    /// Reads `tests/fixtures/<name>`, or `None` when it does not exist.
    pub fn open(name: &'static str) -> Option<Fixture> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        let bytes = std::fs::read(path).ok()?;
        safetensors::SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("{name} is not valid safetensors: {e}"));
        Some(Fixture { name, bytes })
    }

    /// Reads `tests/fixtures/<name>`, which must exist.
    pub fn load(name: &'static str) -> Fixture {
        Self::open(name).unwrap_or_else(|| {
            panic!("tests/fixtures/{name} is missing (see tests/fixtures/README.md)")
        })
    }

    fn view(&self, tensor: &str) -> safetensors::tensor::TensorView<'_> {
        safetensors::SafeTensors::deserialize(&self.bytes)
            .expect("checked when opened")
            .tensor(tensor)
            .unwrap_or_else(|_| panic!("{}: tensor {tensor} missing", self.name))
    }

    /// A float32 tensor as f64, with its shape.
    pub fn f64s(&self, tensor: &str) -> (Vec<f64>, Vec<usize>) {
        let v = self.view(tensor);
        assert_eq!(v.dtype(), safetensors::Dtype::F32, "{tensor}");
        let data = v
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect();
        (data, v.shape().to_vec())
    }

    /// A float32 tensor.
    pub fn f32s(&self, tensor: &str) -> Vec<f32> {
        self.f64s(tensor).0.into_iter().map(|v| v as f32).collect()
    }

    /// A uint32 tensor.
    pub fn u32s(&self, tensor: &str) -> Vec<u32> {
        let v = self.view(tensor);
        assert_eq!(v.dtype(), safetensors::Dtype::U32, "{tensor}");
        v.data()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

/// The "VGG-tiny" of `tests/fixtures/vgg_tiny.safetensors`: VGG-19's topology with channels
/// divided by 8 and random weights, in the Caffe input convention.
pub fn vgg_tiny_weights() -> nst_weights::Vgg19Weights {
    let f = Fixture::load("vgg_tiny.safetensors");
    let layers = nst_weights::VGG19_LAYERS
        .iter()
        .map(|spec| {
            let (weight, shape) = f.f64s(&format!("weight.{}", spec.name));
            nst_weights::ConvLayer {
                name: spec.name.to_string(),
                c_out: shape[0],
                c_in: shape[1],
                weight: weight.into_iter().map(|v| v as f32).collect(),
                bias: f.f32s(&format!("bias.{}", spec.name)),
            }
        })
        .collect();
    nst_weights::Vgg19Weights {
        convention: nst_weights::InputConvention::CaffeBgr,
        layout: nst_weights::Layout::Nst,
        layers,
        metadata: Default::default(),
    }
}

/// Splits kernel variants into those this adapter can run and those it cannot (with `check`'s
/// reason), and says so: printed once per `kind` and process (`--nocapture` shows it), and
/// appended to the file `NST_VARIANT_LOG` names, one line per variant, `backend`, `adapter`,
/// `kind`, `variant` and `ran` or `cannot: <reason>`, tab-separated. `.ci/run` reads that file
/// to check that some driver of its matrix ran a subgroup kernel.
pub fn runnable_variants<T: Clone + std::fmt::Display>(
    ctx: &Context, kind: &str, all: &[T], check: impl Fn(&T) -> Result<(), String>,
) -> Vec<T> {
    static TOLD: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let (mut ran, mut cannot) = (Vec::new(), Vec::new());
    for v in all {
        match check(v) {
            Ok(()) => ran.push(v.clone()),
            Err(why) => cannot.push((v.to_string(), why)),
        }
    }
    let mut told = TOLD.lock().unwrap_or_else(|p| p.into_inner());
    if !told.iter().any(|k| k == kind) {
        told.push(kind.to_string());
        let adapter = &ctx.summary;
        let names: Vec<String> = ran.iter().map(|v| v.to_string()).collect();
        eprintln!(
            "{kind} variants on {} ({}): ran {}",
            adapter.name,
            adapter.backend,
            names.join(", ")
        );
        for (v, why) in &cannot {
            eprintln!("{kind} variant {v}: this adapter cannot run it: {why}");
        }
        if let Some(path) = std::env::var_os("NST_VARIANT_LOG") {
            let line = |v: &str, what: &str| {
                let one_line = what.replace(['\t', '\n'], " ");
                format!(
                    "{}\t{}\t{kind}\t{v}\t{one_line}\n",
                    adapter.backend, adapter.name
                )
            };
            let mut text: String = names.iter().map(|v| line(v, "ran")).collect();
            for (v, why) in &cannot {
                text += &line(v, &format!("cannot: {why}"));
            }
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("NST_VARIANT_LOG {path:?}: {e}"));
            f.write_all(text.as_bytes()).unwrap();
        }
    }
    ran
}
