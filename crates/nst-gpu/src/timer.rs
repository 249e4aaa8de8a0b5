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
        pollster::block_on(self.read_ms_async(ctx, pairs))
    }

    /// [`GpuTimer::read_ms`] without blocking.
    pub async fn read_ms_async(&self, ctx: &Context, pairs: u32) -> Result<Vec<f64>> {
        let ticks = self.read_ticks(ctx, 2 * pairs).await?;
        Ok(ticks.chunks_exact(2).map(|t| self.ms(t[0], t[1])).collect())
    }

    /// The first `count` timestamps, once resolved and submitted.
    async fn read_ticks(&self, ctx: &Context, count: u32) -> Result<Vec<u64>> {
        let view = View::range(&self.resolve, 0, 2 * count as u64);
        let raw: Vec<u32> = ctx.read_async(view).await?;
        Ok(raw
            .chunks_exact(2)
            .map(|t| t[0] as u64 | ((t[1] as u64) << 32))
            .collect())
    }

    /// Milliseconds from timestamp `begin` to `end`.
    fn ms(&self, begin: u64, end: u64) -> f64 {
        end.saturating_sub(begin) as f64 * self.period_ns / 1e6
    }
}

/// The timestamps of one [`profile`], in a [`GpuTimer`]'s pairs: wgpu's cap on queries in a set.
const PROFILE_PAIRS: u32 = 2048;

/// Most dispatches one [`profile`] times: one timestamp after each, and one before the first.
const PROFILE_CAPACITY: u32 = 2 * PROFILE_PAIRS - 1;

/// The query set [`profile`] is writing to on this thread, and the entry point of each
/// timestamp written so far after the first.
struct Marks {
    query_set: wgpu::QuerySet,
    entries: Vec<&'static str>,
}

thread_local! {
    static MARKS: std::cell::RefCell<Option<Marks>> = const { std::cell::RefCell::new(None) };
}

/// Called by every [`crate::Dispatch`] after it records its launch: writes a timestamp when a
/// [`profile`] is running on this thread.
pub(crate) fn mark(pass: &mut wgpu::ComputePass<'_>, entry: &'static str) {
    MARKS.with_borrow_mut(|m| {
        if let Some(m) = m {
            let index = m.entries.len() as u32 + 1;
            if index <= PROFILE_CAPACITY {
                pass.write_timestamp(&m.query_set, index);
                m.entries.push(entry);
            }
        }
    })
}

/// One entry point's launches in a [`profile`]: its name, how many, and their GPU time in ms.
pub type EntryTime = (&'static str, u32, f64);

/// GPU time per entry point of the launches `f` records into one compute pass, submitted and
/// waited for: a timestamp before the first launch and after each, the differences summed per
/// entry point as `(entry point, launches, milliseconds)` in order of first appearance.
/// `None` when the adapter has no timestamps inside passes. Launches past the first 4,095
/// are not timed.
pub fn profile(
    ctx: &Context, f: impl FnOnce(&mut wgpu::ComputePass<'_>),
) -> Result<Option<Vec<EntryTime>>> {
    let Some(timer) = GpuTimer::new(ctx, PROFILE_PAIRS) else {
        return Ok(None);
    };
    let entries = ctx.scoped(|| {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.write_timestamp(&timer.query_set, 0);
            MARKS.set(Some(Marks {
                query_set: timer.query_set.clone(),
                entries: Vec::new(),
            }));
            f(&mut pass);
        }
        let entries = MARKS.take().map(|m| m.entries).unwrap_or_default();
        let written = entries.len() as u32 + 1;
        enc.resolve_query_set(&timer.query_set, 0..written, &timer.resolve, 0);
        ctx.queue.submit([enc.finish()]);
        Ok(entries)
    })?;
    ctx.wait()?;
    let ticks = pollster::block_on(timer.read_ticks(ctx, entries.len() as u32 + 1))?;
    let mut out: Vec<EntryTime> = Vec::new();
    for (i, &entry) in entries.iter().enumerate() {
        let ms = timer.ms(ticks[i], ticks[i + 1]);
        match out.iter_mut().find(|e| e.0 == entry) {
            Some(e) => {
                e.1 += 1;
                e.2 += ms;
            }
            None => out.push((entry, 1, ms)),
        }
    }
    Ok(Some(out))
}
