//! `nst bench`: the timing of full iterations and of each kernel in one.

use crate::engine::{noise, Engine};
use crate::error::{Field, Result, TransferError};
use crate::optimize::Stepper;
use crate::settings::{Optimizer, Settings};
use nst_gpu::human_bytes;
use nst_kernels::ConvShape;
use nst_vgg::LayerId;
use serde::Serialize;
// std's Instant panics in a browser; this one reads the page's clock there.
use web_time::Instant;

/// The timing of full iterations (forward, losses, backward, Adam) at one size. Serialized
/// and displayed as `nst bench` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Bench {
    /// The adapter's name.
    pub adapter: String,
    /// Its backend.
    pub backend: String,
    /// Its driver.
    pub driver: String,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Untimed iterations before the timed ones.
    pub warmup: u32,
    /// What `ms` measures: `"GPU timestamps"` (the pass of each iteration, on the GPU's clock)
    /// where the adapter has them, else `"wall clock"` (submission to completion).
    pub timer: String,
    /// Time of each iteration by `timer`, in milliseconds.
    pub ms: Vec<f64>,
    /// Wall time of each iteration, submission to completion, in milliseconds.
    pub wall_ms: Vec<f64>,
    /// Floating-point operations of the convolutions in one iteration (forward and input
    /// gradient), the bulk of the work.
    pub conv_flops: f64,
    /// Bytes the graph's tensors take (planned; a window's graph when tiled).
    pub graph_bytes: u64,
    /// Bytes of every buffer the iteration allocates, weights included (planned).
    pub planned_bytes: u64,
    /// Tiles the image is evaluated in (1: untiled).
    pub tiles: usize,
    /// `(height, width)` of each tile's window (the image's when untiled).
    pub window: (u32, u32),
    /// The work of an iteration relative to the untiled graph's (1 untiled).
    pub cost: f64,
    /// Bytes the weights take.
    pub weight_bytes: u64,
    /// GPU memory the device's allocator held at its peak (sampled after building the
    /// problem and after the iterations), where the backend reports it: allocated and reserved
    /// bytes.
    pub gpu_memory: Option<GpuMemory>,
    /// The median of `ms`.
    pub median_ms: f64,
    /// Convolution throughput at the median time, GFLOP/s.
    pub conv_gflops: f64,
    /// GPU time per entry point in one more iteration, timestamped after every launch (most
    /// first); empty without timestamps.
    pub kernels: Vec<KernelTime>,
    /// Where the kernel variants come from: `"tuned"` (nst tune's cache) or `"built-in"`.
    pub variants: String,
}

/// GPU memory held by the device's allocator.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GpuMemory {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in the memory blocks holding them.
    pub reserved: u64,
}

/// One entry point's share of an iteration.
#[derive(Clone, Debug, Serialize)]
pub struct KernelTime {
    /// The WGSL entry point.
    pub entry: String,
    /// Its launches in one iteration.
    pub launches: u32,
    /// Their GPU time, ms.
    pub ms: f64,
}

impl std::fmt::Display for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (median, n) = (self.median_ms, self.ms.len());
        writeln!(
            f,
            "adapter:    {} ({}, driver {})",
            self.adapter, self.backend, self.driver
        )?;
        writeln!(
            f,
            "size:       {}×{}, {n} iterations after {} warm-up; kernels {}",
            self.width, self.height, self.warmup, self.variants
        )?;
        writeln!(
            f,
            "median:     {median:.1} ms per iteration by {} (forward, losses, backward, Adam); \
             wall clock {:.1} ms",
            self.timer,
            median_of(&self.wall_ms)
        )?;
        let per = self.conv_flops / 1e9;
        let rate = self.conv_gflops;
        writeln!(
            f,
            "throughput: {rate:.1} GFLOP/s in convolutions ({per:.1} GFLOP per iteration)"
        )?;
        if self.tiles > 1 {
            let (wh, ww) = self.window;
            writeln!(
                f,
                "tiles:      {} windows of {ww}×{wh}: {:.2}× the untiled work",
                self.tiles, self.cost
            )?;
        }
        let (p, g, w) = (
            human_bytes(self.planned_bytes),
            human_bytes(self.graph_bytes),
            human_bytes(self.weight_bytes),
        );
        match self.gpu_memory {
            Some(m) => writeln!(
                f,
                "memory:     planned {p} (graph {g}, weights {w}); GPU peak {} allocated \
                 ({} reserved)",
                human_bytes(m.allocated),
                human_bytes(m.reserved)
            )?,
            None => writeln!(
                f,
                "memory:     planned {p} (graph {g}, weights {w}); GPU peak not reported by \
                 this backend"
            )?,
        }
        let total: f64 = self.kernels.iter().map(|k| k.ms).sum();
        if total > 0.0 {
            writeln!(
                f,
                "kernels:    GPU time of one iteration by entry point ({total:.1} ms)"
            )?;
            for k in self.kernels.iter().take(8) {
                writeln!(
                    f,
                    "  {:<32} {:>4} launches {:>10.2} ms {:>5.1}%",
                    k.entry,
                    k.launches,
                    k.ms,
                    100.0 * k.ms / total
                )?;
            }
        }
        Ok(())
    }
}

/// The median of `v` (NaN when empty).
fn median_of(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

impl Engine {
    /// Times `iterations` iterations of `settings`' loss (Adam steps) on noise images of
    /// `width × height` (after `warmup` untimed ones), waiting for the GPU after each, by GPU
    /// timestamps where the adapter has them; then, untiled, times each kernel in one more.
    pub fn bench(
        &self, width: u32, height: u32, warmup: u32, iterations: u32, settings: &Settings,
    ) -> Result<Bench> {
        settings.validate()?;
        if iterations == 0 {
            return Err(TransferError::invalid(
                Field::Iterations,
                "must be at least 1",
            ));
        }
        let content = noise(width, height, 1);
        let style = noise(width, height, 2);
        // Its iterations are Adam steps, whatever optimizer `settings` names.
        let settings = &settings.clone().optimizer(Optimizer::Adam);
        let problem = self.problem(&content, &[style], &[1.0], (&[], &[]), settings)?;
        let adam = Stepper::new(self, &problem, Optimizer::Adam, crate::defaults::LR)?;
        let iteration = |pass: &mut wgpu::ComputePass<'_>| {
            problem.record_value_and_grad(pass);
            adam.record(pass, 1);
        };
        let mut memory = self.gpu_memory();
        for _ in 0..warmup {
            self.ctx.submit(iteration)?;
            self.ctx.wait()?;
        }
        let timer = nst_gpu::GpuTimer::new(&self.ctx, 1);
        let (mut ms, mut wall_ms) = (Vec::new(), Vec::new());
        for t in 0..iterations {
            adam.set_step(&self.ctx, t + 2);
            let start = Instant::now();
            self.ctx.submit_timed(timer.as_ref(), iteration)?;
            self.ctx.wait()?;
            let wall = start.elapsed().as_secs_f64() * 1e3;
            wall_ms.push(wall);
            ms.push(match &timer {
                Some(timer) => timer.read_ms(&self.ctx, 1)?[0],
                None => wall,
            });
        }
        adam.set_step(&self.ctx, iterations + 2);
        // A tiled iteration repeats the graph's launches for every tile: not profiled.
        let profile = match problem.tg.is_tiled() {
            false => nst_gpu::profile(&self.ctx, iteration)?,
            true => None,
        };
        let mut kernels: Vec<KernelTime> = profile
            .unwrap_or_default()
            .into_iter()
            .map(|(entry, launches, ms)| KernelTime {
                entry: entry.into(),
                launches,
                ms,
            })
            .collect();
        kernels.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        if let (Some(m), Some(now)) = (&mut memory, self.gpu_memory()) {
            m.allocated = m.allocated.max(now.allocated);
            m.reserved = m.reserved.max(now.reserved);
        }
        let c_out = self.weights.c_out();
        let deepest = problem.graph().layout().deepest;
        // Each convolution runs forward and backward (its input gradient) once.
        let conv_flops = LayerId::all()
            .take_while(|&id| id <= deepest)
            .filter(|id| id.layer().kind == nst_vgg::LayerKind::Conv)
            .map(|id| {
                let (c_out, h, w) = nst_vgg::output_shape(id, &c_out, height, width);
                let c_in = self.weights.convs[id.layer().conv].c_in;
                2.0 * ConvShape { c_in, c_out, h, w }.flops()
            })
            .sum();
        let summary = &self.ctx.summary;
        let median_ms = median_of(&ms);
        Ok(Bench {
            adapter: summary.name.clone(),
            backend: summary.backend.clone(),
            driver: summary.driver.clone(),
            width,
            height,
            warmup,
            timer: match timer {
                Some(_) => "GPU timestamps",
                None => "wall clock",
            }
            .into(),
            ms,
            wall_ms,
            conv_flops,
            graph_bytes: problem.graph().bytes(),
            planned_bytes: problem.memory.bytes,
            tiles: problem.tg.tiles(),
            window: problem.tg.tiling().window(),
            cost: problem.tg.tiling().cost(),
            weight_bytes: self.weights.bytes(),
            gpu_memory: memory,
            median_ms,
            conv_gflops: conv_flops / (median_ms * 1e-3) / 1e9,
            kernels,
            variants: match self.choice.source {
                crate::tuning::Source::BuiltIn => "built-in (not tuned)",
                crate::tuning::Source::Cached(_) => "tuned (nst tune)",
                crate::tuning::Source::Given => "tuned (given by the caller)",
            }
            .into(),
        })
    }

    /// What the device's allocator holds now, where the backend reports it.
    fn gpu_memory(&self) -> Option<GpuMemory> {
        self.ctx
            .device
            .generate_allocator_report()
            .map(|r| GpuMemory {
                allocated: r.total_allocated_bytes,
                reserved: r.total_reserved_bytes,
            })
    }
}
