//! GPU timestamps around compute passes, where the adapter supports them.

use crate::buffer::View;
use crate::context::Context;
use crate::error::Result;

/// A set of `capacity` begin/end timestamp pairs.
pub struct GpuTimer {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    capacity: u32,
    period_ns: f64,
}

impl GpuTimer {
    /// `None` when the adapter has no timestamp queries inside passes; callers then fall back
    /// to wall-clock time around a blocking wait.
    pub fn new(ctx: &Context, capacity: u32) -> Option<Self> {
        if !ctx.timestamps {
            return None;
        }
        let count = capacity * 2;
        let query_set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("nst timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("nst timestamps resolve"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(GpuTimer {
            query_set,
            resolve,
            capacity,
            period_ns: ctx.queue.get_timestamp_period() as f64,
        })
    }

    /// Number of begin/end pairs.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Timestamp writes for pair `i`, to pass in a `ComputePassDescriptor`.
    pub fn pass_writes(&self, i: u32) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        }
    }

    /// Records the resolve of the first `pairs` pairs; call before `finish()` of the encoder.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder, pairs: u32) {
        encoder.resolve_query_set(&self.query_set, 0..pairs * 2, &self.resolve, 0);
    }

    /// Reads back the durations in milliseconds of the first `pairs` pairs.
    pub fn read_ms(&self, ctx: &Context, pairs: u32) -> Result<Vec<f64>> {
        let raw: Vec<u32> = ctx.read(View::range(&self.resolve, 0, pairs as u64 * 4))?;
        Ok((0..pairs as usize)
            .map(|i| {
                let t = |k: usize| raw[2 * k] as u64 | ((raw[2 * k + 1] as u64) << 32);
                let (b, e) = (t(2 * i), t(2 * i + 1));
                e.saturating_sub(b) as f64 * self.period_ns / 1e6
            })
            .collect())
    }
}
