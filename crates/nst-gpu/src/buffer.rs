//! Buffers: creation with size checks, views for binding, readback.

use crate::context::Context;
use crate::error::{human_bytes, GpuError, Result};
use wgpu::util::DeviceExt;

/// A range of f32/u32 elements inside a storage buffer that a kernel reads
/// (`var<storage, read>`). Kernels take what they write as a [`ViewMut`], so passing an input
/// where an output belongs, or the reverse, does not compile.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// First element (4-byte units).
    pub offset: u64,
    /// Number of elements (4-byte units).
    pub len: u64,
}

/// A range of elements that a kernel writes (`var<storage, read_write>`): a [`View`] with
/// another type. It derefs to the [`View`] for its fields; [`ViewMut::read`] (or `into()`)
/// gives the range to a reader.
///
/// An input passed where an output belongs does not compile:
///
/// ```compile_fail
/// fn relu(x: nst_gpu::View<'_>, y: nst_gpu::ViewMut<'_>) {}
/// fn swapped(x: nst_gpu::View<'_>, y: nst_gpu::ViewMut<'_>) {
///     relu(y, x)
/// }
/// ```
///
/// ```
/// fn relu(x: nst_gpu::View<'_>, y: nst_gpu::ViewMut<'_>) {}
/// fn in_order(x: nst_gpu::View<'_>, y: nst_gpu::ViewMut<'_>) {
///     relu(x, y)
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ViewMut<'a>(View<'a>);

impl<'a> View<'a> {
    /// The whole buffer.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        View {
            buffer,
            offset: 0,
            len: buffer.size() / 4,
        }
    }

    /// `len` elements starting at element `offset`.
    pub fn range(buffer: &'a wgpu::Buffer, offset: u64, len: u64) -> Self {
        View {
            buffer,
            offset,
            len,
        }
    }

    /// This range as a binding resource, checked against the adapter's binding limit;
    /// `what` names it in errors.
    pub fn binding(&self, ctx: &Context, what: &str) -> Result<wgpu::BindingResource<'a>> {
        let bytes = self.len * 4;
        if bytes > ctx.max_binding_bytes {
            return Err(GpuError::TooLarge {
                what: format!("storage binding `{what}`"),
                bytes,
                limit: ctx.max_binding_bytes,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        if self.len == 0 {
            return Err(GpuError::BadShape(format!("`{what}` is empty")));
        }
        if (self.offset + self.len) * 4 > self.buffer.size() {
            return Err(GpuError::BadShape(format!(
                "`{what}`: elements {}..{} lie outside a buffer of {} elements",
                self.offset,
                self.offset + self.len,
                self.buffer.size() / 4
            )));
        }
        Ok(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset * 4,
            size: wgpu::BufferSize::new(bytes),
        }))
    }
}

impl<'a> ViewMut<'a> {
    /// The whole buffer.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        ViewMut(View::whole(buffer))
    }

    /// `len` elements starting at element `offset`.
    pub fn range(buffer: &'a wgpu::Buffer, offset: u64, len: u64) -> Self {
        ViewMut(View::range(buffer, offset, len))
    }

    /// The same range, for a kernel that reads it.
    pub fn read(self) -> View<'a> {
        self.0
    }
}

impl<'a> std::ops::Deref for ViewMut<'a> {
    type Target = View<'a>;
    fn deref(&self) -> &View<'a> {
        &self.0
    }
}

impl<'a> From<ViewMut<'a>> for View<'a> {
    fn from(v: ViewMut<'a>) -> Self {
        v.0
    }
}

impl<'a> From<&'a wgpu::Buffer> for View<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        View::whole(b)
    }
}

impl<'a> From<&'a wgpu::Buffer> for ViewMut<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        ViewMut::whole(b)
    }
}

/// Usage for tensors: bound as storage, filled by the queue, read back by copy.
pub const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Bytes of a storage buffer of `len` 4-byte elements as [`Context::tensor`] creates it (an
/// empty one still takes one element): what memory plans count.
pub const fn tensor_bytes(len: u64) -> u64 {
    4 * if len == 0 { 1 } else { len }
}

impl Context {
    fn check_buffer_size(&self, label: &str, bytes: u64) -> Result<()> {
        if bytes > self.limits.max_buffer_size {
            return Err(GpuError::TooLarge {
                what: format!("buffer `{label}`"),
                bytes,
                limit: self.limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        Ok(())
    }

    /// A test hook for the out-of-memory paths, which a real device reaches only by running
    /// out: once storage buffers of `bytes` in all ([`Context::created_bytes`]) exist, the
    /// next one fails with [`GpuError::OutOfMemory`], as on a device with that much memory.
    /// `None` lifts the cap.
    pub fn cap_memory(&self, bytes: Option<u64>) {
        let cap = bytes.unwrap_or(u64::MAX);
        self.memory_cap
            .store(cap, std::sync::atomic::Ordering::Relaxed);
    }

    /// Checks a new buffer of `bytes` against [`Context::cap_memory`]'s cap, and names it in
    /// an out-of-memory error of the device.
    fn allocate<T>(&self, label: &str, bytes: u64, f: impl FnOnce() -> T) -> Result<T> {
        let oom = |why: String| {
            GpuError::OutOfMemory(format!(
                "allocating `{label}`, {}, with {} of storage already allocated: {why}",
                human_bytes(bytes),
                human_bytes(self.created_bytes())
            ))
        };
        let cap = self.memory_cap.load(std::sync::atomic::Ordering::Relaxed);
        if self.created_bytes().saturating_add(bytes) > cap {
            return Err(oom(format!("the cap is {}", human_bytes(cap))));
        }
        match self.scoped(|| Ok(f())) {
            Err(GpuError::OutOfMemory(why)) => Err(oom(why)),
            other => other,
        }
    }

    /// A zero-filled storage buffer of `len` 4-byte elements ([`tensor_bytes`] of them).
    pub fn tensor(&self, label: &str, len: u64) -> Result<wgpu::Buffer> {
        let bytes = tensor_bytes(len);
        self.check_buffer_size(label, bytes)?;
        let b = self.allocate(label, bytes, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: TENSOR_USAGE,
                mapped_at_creation: false,
            })
        })?;
        self.count_created(bytes);
        Ok(b)
    }

    /// Bytes of every storage buffer ([`Context::tensor`], [`Context::tensor_from`]) created
    /// on this context so far, freed or not: what memory plans are checked against. Uniforms
    /// and read-back staging buffers are not counted.
    pub fn created_bytes(&self) -> u64 {
        self.created.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_created(&self, bytes: u64) {
        self.created
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// A storage buffer holding `data`.
    pub fn tensor_from<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes = std::mem::size_of_val(data) as u64;
        if bytes == 0 {
            return self.tensor(label, 1);
        }
        self.check_buffer_size(label, bytes)?;
        let b = self.allocate(label, bytes, || {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytemuck::cast_slice(data),
                    usage: TENSOR_USAGE,
                })
        })?;
        self.count_created(bytes);
        Ok(b)
    }

    /// A uniform buffer holding one value (shapes and scalars for a kernel), zero-padded to
    /// a multiple of 16 bytes: a WGSL struct's size is its members' extent rounded up to its
    /// alignment (at most 16), so the Rust struct needs no trailing padding fields. The shader
    /// test checks each uniform struct's field offsets against the WGSL struct's.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(value);
        let mut contents = vec![0u8; bytes.len().next_multiple_of(16).max(16)];
        contents[..bytes.len()].copy_from_slice(bytes);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &contents,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// Overwrites the start of `buffer` with `data` (queued; takes effect at the next submit).
    pub fn write<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, offset_elems: u64, data: &[T]) {
        self.queue
            .write_buffer(buffer, offset_elems * 4, bytemuck::cast_slice(data));
    }

    /// Copies `view` (a [`View`], [`ViewMut`] or whole buffer) back to the CPU. Blocks until
    /// all submitted work is done, which a browser cannot: there use [`Context::read_async`].
    pub fn read<'a, T: bytemuck::Pod>(&self, view: impl Into<View<'a>>) -> Result<Vec<T>> {
        if cfg!(target_arch = "wasm32") {
            self.wait()?; // the error that says to use the async entry points
        }
        pollster::block_on(self.read_async(view))
    }

    /// [`Context::read`] without blocking: what a browser needs, and what the async entry
    /// points above use everywhere.
    pub async fn read_async<'a, T: bytemuck::Pod>(
        &self, view: impl Into<View<'a>>,
    ) -> Result<Vec<T>> {
        let view = view.into();
        assert_eq!(std::mem::size_of::<T>(), 4, "read() is for 4-byte elements");
        let bytes = view.len * 4;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        self.lost()?;
        let (staging, rx) = self.scoped(|| {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("nst readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("nst readback"),
                });
            enc.copy_buffer_to_buffer(view.buffer, view.offset * 4, &staging, 0, bytes);
            self.queue.submit([enc.finish()]);
            let (tx, rx) = futures_channel::oneshot::channel();
            staging
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |r| drop(tx.send(r)));
            Ok((staging, rx))
        })?;
        self.poll()?;
        let mapped = rx
            .await
            .map_err(|e| self.or_lost(GpuError::Readback(e.to_string())))?;
        self.take_uncaptured()?;
        mapped.map_err(|e| self.or_lost(GpuError::Readback(e.to_string())))?;
        let out = {
            let mapped = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            bytemuck::cast_slice(&mapped).to_vec()
        };
        staging.unmap();
        Ok(out)
    }
}
