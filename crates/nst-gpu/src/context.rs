//! The device context: adapter selection, limits, error scopes.

use crate::error::{GpuError, Result};
use crate::timer::GpuTimer;

/// The limits every nst kernel relies on. Anything below these is refused at start-up.
const NEED_INVOCATIONS: u32 = 256;
const NEED_WORKGROUP_STORAGE: u32 = 16 * 1024;
const NEED_STORAGE_BUFFERS: u32 = 8;

/// What to do about an adapter that lacks them.
const PICK_ANOTHER: &str = match cfg!(target_arch = "wasm32") {
    true => "Try another browser, or a computer with another GPU",
    false => "Pick another adapter with WGPU_ADAPTER_NAME",
};

/// Options for opening a [`Context`].
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Substring of the adapter name to pick; defaults to `WGPU_ADAPTER_NAME`.
    pub adapter_name: Option<String>,
    /// Cap on storage-binding size, below the adapter's: tests use it to force chunked paths.
    pub max_binding_bytes: Option<u64>,
    /// Cap on workgroups per grid dimension, below the adapter's: tests use it to send small
    /// launches through the 2-D grid path.
    pub max_workgroups_per_dim: Option<u32>,
}

/// What the kernels need to know about the adapter, read once.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// The adapter's name, e.g. "NVIDIA H100" or "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Vulkan, Metal, Dx12 or Gl.
    pub backend: String,
    /// Discrete, integrated, CPU…
    pub device_type: String,
    /// Driver name and version as the driver reports them.
    pub driver: String,
    /// Fewest invocations in a subgroup.
    pub subgroup_min_size: u32,
    /// Most invocations in a subgroup.
    pub subgroup_max_size: u32,
}

impl AdapterSummary {
    /// What `adapter` says about itself.
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
        }
    }
}

/// What the adapter nst would use offers, found without opening a device: what a web page
/// shows before it asks a visitor for anything ([`probe`]).
#[derive(Clone, Debug)]
pub struct Probe {
    /// Its name, backend, type and driver (in a browser, the name only when the browser tells
    /// it, and the type `Cpu` for the browser's fallback adapter, else `Other`).
    pub summary: AdapterSummary,
    /// Whether it is a CPU implementation (Mesa's lavapipe, SwiftShader): it runs nst, slowly.
    pub software: bool,
    /// Its largest storage binding, in bytes.
    pub max_binding_bytes: u64,
    /// Its largest buffer, in bytes.
    pub max_buffer_bytes: u64,
    /// Whether it has GPU timestamps inside compute passes.
    pub timestamps: bool,
    /// Whether it has subgroup operations.
    pub subgroups: bool,
    /// Why nst cannot run on it, when it cannot (a limit below what the kernels need).
    pub problem: Option<String>,
}

/// The adapter [`Context::open`] would pick with `opts`, and whether nst can run on it.
/// [`GpuError::NoAdapter`] (or [`GpuError::AdapterNotFound`]) when there is none.
pub async fn probe(opts: ContextOptions) -> Result<Probe> {
    let (instance, backends) = instance();
    let adapter = select_adapter(&instance, backends, opts.adapter_name).await?;
    let have = adapter.limits();
    let features = used_features(&adapter);
    Ok(Probe {
        summary: AdapterSummary::of(&adapter),
        software: adapter.get_info().device_type == wgpu::DeviceType::Cpu,
        max_binding_bytes: have.max_storage_buffer_binding_size,
        max_buffer_bytes: have.max_buffer_size,
        timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
        subgroups: features.contains(wgpu::Features::SUBGROUP),
        problem: needed_limits(&adapter).err().map(|e| e.to_string()),
    })
}

/// One GPU device and queue, with the limits it was opened with.
pub struct Context {
    /// The adapter in use.
    pub adapter: wgpu::Adapter,
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The limits the device was opened with (never above the adapter's).
    pub limits: wgpu::Limits,
    /// Largest storage binding we allow ourselves: the device limit, or a smaller test cap.
    pub max_binding_bytes: u64,
    /// Most workgroups per grid dimension we launch: the device limit, or a smaller test cap.
    pub max_workgroups_per_dim: u32,
    /// Whether GPU timestamps inside compute passes are available.
    pub timestamps: bool,
    /// Whether subgroup operations are enabled (WGSL `enable subgroups;`).
    pub subgroups: bool,
    /// Adapter name, backend, type and driver.
    pub summary: AdapterSummary,
    /// Bytes of every storage buffer created so far ([`Context::created_bytes`]).
    pub(crate) created: std::sync::atomic::AtomicU64,
    /// A test's cap on the bytes of storage buffers ([`Context::cap_memory`]); `u64::MAX`
    /// when none.
    pub(crate) memory_cap: std::sync::atomic::AtomicU64,
    /// Why the device was lost, once it was ([`Context::lost`]).
    lost: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// In a browser, the first error the device reported since the last read (WebGPU's error
    /// scopes resolve asynchronously, so launches there go unscoped and reads check this).
    #[cfg(target_arch = "wasm32")]
    uncaptured: std::sync::Arc<std::sync::Mutex<Option<GpuError>>>,
}

impl Context {
    /// Opens the adapter chosen by `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` (or the best one).
    pub fn new() -> Result<Self> {
        Self::with_options(ContextOptions::default())
    }

    /// Opens an adapter with explicit options.
    pub fn with_options(opts: ContextOptions) -> Result<Self> {
        pollster::block_on(Self::open(opts))
    }

    /// [`Context::with_options`] without blocking: the only way to open one in a browser.
    pub async fn open(opts: ContextOptions) -> Result<Self> {
        let (instance, backends) = instance();
        let adapter = select_adapter(&instance, backends, opts.adapter_name).await?;
        let limits = needed_limits(&adapter)?;

        let features = used_features(&adapter);
        let timestamps = features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);
        let subgroups = features.contains(wgpu::Features::SUBGROUP);

        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("nst"),
                required_features: features,
                required_limits: limits.clone(),
                memory_hints: wgpu::MemoryHints::Performance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;

        let summary = AdapterSummary::of(&adapter);
        let max_binding_bytes = match opts.max_binding_bytes {
            Some(cap) => cap.min(limits.max_storage_buffer_binding_size),
            None => limits.max_storage_buffer_binding_size,
        };
        let max_workgroups_per_dim = opts
            .max_workgroups_per_dim
            .unwrap_or(u32::MAX)
            .clamp(1, limits.max_compute_workgroups_per_dimension);
        #[cfg(target_arch = "wasm32")]
        let uncaptured = {
            let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
            let keep = slot.clone();
            device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
                let err = match e {
                    wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory(e.to_string()),
                    _ => GpuError::Validation(e.to_string()),
                };
                let mut first = keep.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert(err);
            }));
            slot
        };
        let lost = std::sync::Arc::new(std::sync::Mutex::new(None));
        let keep = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let why = match reason {
                wgpu::DeviceLostReason::Destroyed => format!("destroyed: {message}"),
                wgpu::DeviceLostReason::Unknown => message,
            };
            keep.lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(why);
        });
        Ok(Context {
            adapter,
            device,
            queue,
            limits,
            max_binding_bytes,
            max_workgroups_per_dim,
            timestamps,
            subgroups,
            summary,
            created: std::sync::atomic::AtomicU64::new(0),
            memory_cap: std::sync::atomic::AtomicU64::new(u64::MAX),
            lost,
            #[cfg(target_arch = "wasm32")]
            uncaptured,
        })
    }

    /// Runs `f` inside out-of-memory and validation error scopes, returning what they caught
    /// as an error instead of letting wgpu panic in its default handler.
    /// On a lost device, [`GpuError::DeviceLost`] and nothing is run.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        if oom.is_some() || validation.is_some() {
            // Whatever failed on a lost device failed because of it; driving the device
            // delivers a loss still pending (a destroyed device's).
            let _ = self.device.poll(wgpu::PollType::Poll);
            self.lost()?;
        }
        if let Some(e) = oom {
            return Err(GpuError::OutOfMemory(e.to_string()));
        }
        if let Some(e) = validation {
            return Err(GpuError::Validation(e.to_string()));
        }
        out
    }

    /// In a browser, runs `f` unscoped: the device's error handler keeps the first error,
    /// which the next read returns ([`Context::read_async`]).
    #[cfg(target_arch = "wasm32")]
    pub fn scoped<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        f()
    }

    /// [`GpuError::DeviceLost`] once the device was lost (wgpu's device-lost callback, which
    /// a driver reset or [`wgpu::Device::destroy`] triggers), and every call after.
    pub fn lost(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(why) => Err(GpuError::DeviceLost(why.clone())),
            None => Ok(()),
        }
    }

    /// `e`, or [`GpuError::DeviceLost`] when the device was lost: the reason `e` happened.
    pub(crate) fn or_lost(&self, e: GpuError) -> GpuError {
        self.lost().err().unwrap_or(e)
    }

    /// The first error the device reported since the last call (in a browser; elsewhere
    /// errors are returned where they happen).
    pub(crate) fn take_uncaptured(&self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        if let Some(e) = self
            .uncaptured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        Ok(())
    }

    /// Records `f` into one compute pass of one command buffer and submits it, inside error
    /// scopes. Does not wait: queue order keeps later submits and reads behind it, and
    /// [`Context::read`] waits; call [`Context::wait`] to time it.
    pub fn submit(&self, f: impl FnOnce(&mut wgpu::ComputePass<'_>)) -> Result<()> {
        self.submit_timed(None, f)
    }

    /// [`Context::submit`], with GPU timestamps around the pass written to pair 0 of `timer`
    /// and resolved for [`GpuTimer::read_ms`].
    pub fn submit_timed(
        &self, timer: Option<&GpuTimer>, f: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> Result<()> {
        self.scoped(|| {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("nst") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("nst"),
                    timestamp_writes: timer.map(|t| t.pass_writes(0)),
                });
                f(&mut pass);
            }
            if let Some(t) = timer {
                t.resolve(&mut enc, 1);
            }
            self.queue.submit([enc.finish()]);
            Ok(())
        })
    }

    /// Submits copies of whole buffers, `(from, to)` in order, inside error scopes (a copy is
    /// not a compute pass). Queue order puts them between the submits before and after.
    pub fn copy(&self, pairs: &[(&wgpu::Buffer, &wgpu::Buffer)]) -> Result<()> {
        self.scoped(|| {
            let mut enc = self.device.create_command_encoder(&Default::default());
            for (from, to) in pairs {
                enc.copy_buffer_to_buffer(from, 0, to, 0, from.size().min(to.size()));
            }
            self.queue.submit([enc.finish()]);
            Ok(())
        })
    }

    /// Blocks until all submitted work has finished. In a browser, where nothing may block,
    /// this is an error: use [`Context::wait_async`].
    pub fn wait(&self) -> Result<()> {
        if cfg!(target_arch = "wasm32") {
            return Err(GpuError::Readback(
                "a browser cannot block on the GPU: use the async entry points".into(),
            ));
        }
        self.lost()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| self.or_lost(GpuError::Readback(e.to_string())))
    }

    /// Waits until all submitted work has finished, without blocking a browser's thread.
    pub async fn wait_async(&self) -> Result<()> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        self.poll()?;
        rx.await
            .map_err(|e| self.or_lost(GpuError::Readback(e.to_string())))?;
        self.take_uncaptured()
    }

    /// Natively, drives the device until the submitted work and its callbacks are done; a
    /// browser does that by itself.
    pub(crate) fn poll(&self) -> Result<()> {
        self.lost()?;
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.or_lost(GpuError::Readback(e.to_string())))?;
        self.lost()
    }

    /// What `nst devices` prints about this context: the adapter, its limits, and whether
    /// the shaders are bounds-checked.
    pub fn describe(&self) -> String {
        let s = &self.summary;
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "using: {} ({}, {}), driver {}\n  largest storage binding {}, largest buffer {}, {} \
             workgroups per dimension, GPU timestamps: {}\n  shader bounds checks: {} (on in \
             debug builds, off in release builds)\n",
            s.name,
            s.backend,
            s.device_type,
            s.driver,
            crate::human_bytes(self.max_binding_bytes),
            crate::human_bytes(self.limits.max_buffer_size),
            self.limits.max_compute_workgroups_per_dimension,
            yes(self.timestamps),
            yes(crate::BOUNDS_CHECKS),
        )
    }

    /// True when this is a CPU implementation such as Mesa's lavapipe.
    pub fn is_software(&self) -> bool {
        self.adapter.get_info().device_type == wgpu::DeviceType::Cpu
    }
}

/// The optional features nst uses that `adapter` has: timestamps inside passes (both
/// timestamp features, or neither) and subgroups.
fn used_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let have = adapter.features();
    let timestamps =
        wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
    let mut out = wgpu::Features::empty();
    if have.contains(timestamps) {
        out |= timestamps;
    }
    out | (have & wgpu::Features::SUBGROUP)
}

/// The limits nst asks of `adapter`'s device: what its kernels use, and the adapter's full
/// buffer and binding sizes. An error names what the adapter lacks.
fn needed_limits(adapter: &wgpu::Adapter) -> Result<wgpu::Limits> {
    let have = adapter.limits();

    if have.max_compute_invocations_per_workgroup < NEED_INVOCATIONS
        || have.max_compute_workgroup_size_x < NEED_INVOCATIONS
        || have.max_compute_workgroup_storage_size < NEED_WORKGROUP_STORAGE
        || have.max_storage_buffers_per_shader_stage < NEED_STORAGE_BUFFERS
    {
        return Err(GpuError::Unsupported(format!(
            "nst needs {NEED_INVOCATIONS} invocations per workgroup, \
             {NEED_WORKGROUP_STORAGE} bytes of workgroup storage and \
             {NEED_STORAGE_BUFFERS} storage buffers per stage; this adapter offers {}, {} \
             and {}. {PICK_ANOTHER}",
            have.max_compute_invocations_per_workgroup,
            have.max_compute_workgroup_storage_size,
            have.max_storage_buffers_per_shader_stage
        )));
    }

    // Ask for what we use, at most what the adapter has. Big buffers matter: take the
    // adapter's full buffer and binding sizes.
    let mut limits = wgpu::Limits::downlevel_defaults();
    limits.max_storage_buffers_per_shader_stage = NEED_STORAGE_BUFFERS;
    limits.max_compute_invocations_per_workgroup = NEED_INVOCATIONS;
    limits.max_compute_workgroup_size_x = NEED_INVOCATIONS;
    limits.max_compute_workgroup_size_y = have.max_compute_workgroup_size_y.min(256);
    limits.max_compute_workgroup_storage_size =
        have.max_compute_workgroup_storage_size.min(32 * 1024);
    limits.max_compute_workgroups_per_dimension = have.max_compute_workgroups_per_dimension;
    limits.max_storage_buffer_binding_size = have.max_storage_buffer_binding_size;
    limits.max_buffer_size = have.max_buffer_size;
    limits.max_bind_groups = have.max_bind_groups.min(4);
    let mut short = Vec::new();
    limits.check_limits_with_fail_fn(&have, false, |name, want, got| {
        short.push(format!("{name} (nst needs {want}, the adapter has {got})"))
    });
    if !short.is_empty() {
        return Err(GpuError::Unsupported(format!(
            "{}. {PICK_ANOTHER}",
            short.join(", ")
        )));
    }
    Ok(limits)
}

/// Lists every adapter on the backends the environment allows, as `name (backend, type)`.
pub fn list_adapters() -> Vec<String> {
    let (instance, backends) = instance();
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(describe)
        .collect()
}

/// An instance on the backends `WGPU_BACKEND` names, or else the primary ones (Vulkan, Metal,
/// DX12): OpenGL's compute support is too limited for these kernels.
fn instance() -> (wgpu::Instance, wgpu::Backends) {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let backends = desc.backends;
    (wgpu::Instance::new(desc), backends)
}

fn describe(a: &wgpu::Adapter) -> String {
    let i = a.get_info();
    format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
}

async fn select_adapter(
    instance: &wgpu::Instance, backends: wgpu::Backends, wanted: Option<String>,
) -> Result<wgpu::Adapter> {
    let wanted = wanted.or_else(|| {
        std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .filter(|s| !s.is_empty())
    });
    if let Some(wanted) = wanted {
        let adapters = instance.enumerate_adapters(backends).await;
        let needle = wanted.to_lowercase();
        let available: Vec<String> = adapters.iter().map(describe).collect();
        return adapters
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&needle))
            .ok_or(GpuError::AdapterNotFound { wanted, available });
    }
    let power_preference =
        wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
    match instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference,
            force_fallback_adapter: false,
            ..Default::default()
        })
        .await
    {
        Ok(a) => Ok(a),
        Err(_) => Err(GpuError::NoAdapter {
            backends: format!("{backends:?}"),
        }),
    }
}
