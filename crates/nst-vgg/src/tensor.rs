//! Feature maps split into chunks of whole channels, so that no storage binding exceeds the
//! adapter's `max_storage_buffer_binding_size`. A `C × H × W` tensor stored in chunks is the
//! concatenation of its chunks in order; most tensors have one.

use nst_gpu::{Context, Result, View, ViewMut};
use nst_kernels::Channels;

/// How a `c × h × w` tensor is split: consecutive channel ranges, each small enough to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Channels.
    pub c: u32,
    /// Height.
    pub h: u32,
    /// Width.
    pub w: u32,
    /// The chunks' channel ranges, in order, covering `0..c`.
    pub chunks: Vec<Channels>,
}

impl ChunkLayout {
    /// As many whole channels per chunk as fit in `max_bytes`, or `None` when one channel
    /// plane alone does not fit.
    pub fn split(c: u32, h: u32, w: u32, max_bytes: u64) -> Option<Self> {
        let plane_bytes = 4 * h as u64 * w as u64;
        let per = (max_bytes / plane_bytes).min(c as u64) as u32;
        if per == 0 {
            return None;
        }
        let chunks = (0..c)
            .step_by(per as usize)
            .map(|offset| Channels {
                offset,
                count: per.min(c - offset),
            })
            .collect();
        Some(ChunkLayout { c, h, w, chunks })
    }

    /// Elements in one channel plane.
    pub fn plane(&self) -> u64 {
        self.h as u64 * self.w as u64
    }

    /// Elements of the whole tensor.
    pub fn len(&self) -> u64 {
        self.c as u64 * self.plane()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of chunk `i`.
    pub fn chunk_len(&self, i: usize) -> u64 {
        self.chunks[i].count as u64 * self.plane()
    }

    /// Bytes of storage [`Tensor::zeros`] creates for this layout.
    pub fn bytes(&self) -> u64 {
        (0..self.chunks.len())
            .map(|i| nst_gpu::tensor_bytes(self.chunk_len(i)))
            .sum()
    }
}

/// A tensor in GPU memory, laid out as its [`ChunkLayout`] says: chunk `i` occupies the
/// first [`ChunkLayout::chunk_len`] elements of `buffers[i]` (which may be larger: gradient
/// scratch buffers are shared between tensors of different sizes).
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Shape and chunks.
    pub layout: ChunkLayout,
    /// One buffer per chunk.
    pub buffers: Vec<wgpu::Buffer>,
}

impl Tensor {
    /// A zeroed tensor of `layout`, one buffer per chunk.
    pub fn zeros(ctx: &Context, label: &str, layout: &ChunkLayout) -> Result<Tensor> {
        let buffers = (0..layout.chunks.len())
            .map(|i| ctx.tensor(label, layout.chunk_len(i)))
            .collect::<Result<_>>()?;
        Ok(Tensor {
            layout: layout.clone(),
            buffers,
        })
    }

    /// Chunk `i`, for a kernel that reads it.
    pub fn view(&self, i: usize) -> View<'_> {
        View::range(&self.buffers[i], 0, self.layout.chunk_len(i))
    }

    /// Chunk `i`, for a kernel that writes it.
    pub fn view_mut(&self, i: usize) -> ViewMut<'_> {
        ViewMut::range(&self.buffers[i], 0, self.layout.chunk_len(i))
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.layout.chunks.len()
    }

    /// Copies the whole tensor (`c × h × w`, row-major) back to the CPU. Waits for the GPU.
    pub fn read(&self, ctx: &Context) -> Result<Vec<f32>> {
        pollster::block_on(self.read_async(ctx))
    }

    /// [`Tensor::read`] without blocking (for a browser).
    pub async fn read_async(&self, ctx: &Context) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.layout.len() as usize);
        for i in 0..self.chunk_count() {
            out.extend(ctx.read_async::<f32>(self.view(i)).await?);
        }
        Ok(out)
    }

    /// Queues a write of the whole tensor from `data` (`c × h × w`, row-major).
    pub fn write(&self, ctx: &Context, data: &[f32]) -> Result<()> {
        if data.len() as u64 != self.layout.len() {
            return Err(nst_gpu::GpuError::BadShape(format!(
                "writing {} values into a {}×{}×{} tensor",
                data.len(),
                self.layout.c,
                self.layout.h,
                self.layout.w
            )));
        }
        let mut start = 0usize;
        for i in 0..self.chunk_count() {
            let n = self.layout.chunk_len(i) as usize;
            ctx.write(&self.buffers[i], 0, &data[start..start + n]);
            start += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_fills_chunks_with_whole_channels() {
        let l = ChunkLayout::split(64, 4, 5, 4 * 20 * 10).unwrap();
        let counts: Vec<u32> = l.chunks.iter().map(|c| c.count).collect();
        assert_eq!(counts, [10, 10, 10, 10, 10, 10, 4]);
        assert_eq!(l.chunks[6].offset, 60);
        assert_eq!(
            ChunkLayout::split(3, 4, 5, 1 << 20).unwrap().chunks.len(),
            1
        );
        assert!(ChunkLayout::split(3, 4, 5, 79).is_none());
    }
}
