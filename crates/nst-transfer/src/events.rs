//! What the engine tells its caller as it runs ([`Event`], answered by [`Flow`]) and what its
//! runs return ([`Outcome`], [`Score`]).

use crate::error::{Result, TransferError};
use crate::image::Image;
use crate::measure::Measure;
use crate::schedule::{RunPlan, ScaleEnd};
use crate::terms::LossValues;
use serde::Serialize;
use std::time::Duration;

/// What the engine tells its caller as it runs.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The run's plan, before anything runs: its scales and the most work.
    Plan {
        /// The plan.
        #[serde(flatten)]
        plan: &'a RunPlan,
    },
    /// A scale begins.
    Scale {
        /// 0-based.
        index: usize,
        /// Number of scales.
        count: usize,
        /// Its size.
        width: u32,
        /// Its size.
        height: u32,
        /// Tiles it is evaluated in (1: whole), as the memory budget needs.
        tiles: usize,
    },
    /// Losses were read back after `iteration` (1-based, within the scale).
    Iteration {
        /// Scale index, 0-based.
        scale: usize,
        /// Iteration within the scale, 1-based: the values are the loss of the current image
        /// (with L-BFGS, where its last accepted step left it) before that iteration's step.
        iteration: u32,
        /// The most iterations in the scale.
        of: u32,
        /// The losses.
        values: &'a LossValues,
        /// Mean wall time per iteration since the last report.
        #[serde(serialize_with = "seconds")]
        per_iteration: Duration,
        /// The most time the run has left, estimated from this scale's mean time per
        /// iteration, later scales taken to cost in proportion to their pixels.
        #[serde(serialize_with = "seconds")]
        left: Duration,
    },
    /// A scale ended: after how many iterations, why, and its image's loss.
    ScaleEnd {
        /// Scale index, 0-based.
        scale: usize,
        /// Iterations it ran.
        iterations: u32,
        /// Iterations whose L-BFGS step raised the loss and was shrunk.
        shrunk: u32,
        /// Why it ended.
        #[serde(flatten)]
        end: ScaleEnd,
        /// Its final image's losses.
        values: &'a LossValues,
    },
    /// The current image (whose loss the iteration's report gives), every `snapshot_every`
    /// iterations; one due at an iteration whose L-BFGS step was shrunk comes with the next
    /// step kept, or at the scale's end.
    Snapshot {
        /// Scale index, 0-based.
        scale: usize,
        /// Iteration within the scale.
        iteration: u32,
        /// The image.
        #[serde(skip)]
        image: &'a Image,
    },
    /// The loss of the final image of the last scale (what `score` reports for it).
    Final {
        /// The losses.
        values: &'a LossValues,
    },
}

impl std::fmt::Display for Event<'_> {
    /// One line for people, as `nst stylize` prints progress.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Plan { plan } => write!(f, "plan: {plan}"),
            Event::Scale {
                index,
                count,
                width,
                height,
                tiles,
            } => {
                write!(f, "scale {}/{count}: {width}×{height}", index + 1)?;
                match tiles {
                    1 => Ok(()),
                    n => write!(f, " in {n} tiles"),
                }
            }
            Event::Iteration {
                scale,
                iteration,
                of,
                values,
                per_iteration,
                left,
            } => {
                let ms = per_iteration.as_secs_f64() * 1e3;
                let s = scale + 1;
                write!(
                    f,
                    "scale {s} iteration {iteration}/{of}: loss {values} {ms:.0} ms/it, at most \
                     {} left",
                    minutes(*left)
                )
            }
            Event::ScaleEnd {
                scale,
                iterations,
                shrunk,
                end,
                ..
            } => {
                match end {
                    ScaleEnd::Iterations => {
                        write!(f, "scale {} ended after {iterations} iterations", scale + 1)?
                    }
                    _ => write!(
                        f,
                        "scale {} stopped at iteration {iterations}: {end}",
                        scale + 1
                    )?,
                }
                match shrunk {
                    0 => Ok(()),
                    1 => write!(f, " (1 step raised the loss and was shrunk)"),
                    n => write!(f, " ({n} steps raised the loss and were shrunk)"),
                }
            }
            Event::Snapshot {
                scale, iteration, ..
            } => write!(f, "scale {} iteration {iteration}: snapshot", scale + 1),
            Event::Final { values } => write!(f, "final loss {values}"),
        }
    }
}

/// "45 s", "3 min 05 s", "2 h 10 min".
pub fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The caller's answer to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop now and return the current image (Ctrl-C).
    Stop,
}

/// A run's result.
#[derive(Debug)]
pub struct Outcome {
    /// The output image.
    pub image: Image,
    /// Whether the caller stopped it early.
    pub stopped: bool,
    /// The final image's losses, if the run finished.
    pub values: Option<LossValues>,
    /// The final image's [`Measure`], if the run finished.
    pub measure: Option<Measure>,
    /// Scales begun.
    pub scales: usize,
    /// Iterations the last scale begun ran.
    pub iterations: u32,
}

/// The losses of one image, their gradient, and its [`Measure`]. Serialized (without the
/// gradient) and displayed as `nst score` prints them.
#[derive(Debug, Serialize)]
pub struct Score {
    /// The image's width.
    pub width: u32,
    /// The image's height.
    pub height: u32,
    /// The terms and total.
    #[serde(flatten)]
    pub values: LossValues,
    /// The image's measure against the content and styles.
    #[serde(flatten)]
    pub measure: Measure,
    /// Regions measured apart, each against every style (`nst score --mask`; empty
    /// unless the caller adds them with [`Engine::region_measure`](crate::Engine::region_measure)).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
    /// ∂total/∂image over RGB [0, 1] pixels, 3 × height × width.
    #[serde(skip)]
    pub grad: Vec<f32>,
}

/// A region of a scored image and its distance from each style.
#[derive(Clone, Debug, Serialize)]
pub struct Region {
    /// What marks it (the mask's file, for people).
    pub mask: String,
    /// How near the photo it stayed and its distance from each style image.
    #[serde(flatten)]
    pub measure: crate::measure::RegionMeasure,
}

impl std::fmt::Display for Score {
    /// One line per term (value × weight = weighted value), the total, then the measure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for t in &self.values.terms {
            let (key, raw, w) = (t.term.key(), t.raw, t.weight);
            writeln!(f, "{key:<24} {raw:>14.6e} × {w:<10.4e} = {:.6e}", raw * w)?;
        }
        let m = &self.measure;
        writeln!(f, "{:<24} {:>14.6e}", "total", self.values.total())?;
        writeln!(f, "{:<24} {:>14.6}", "style distance", m.style_distance)?;
        writeln!(f, "{:<24} {:>14.6}", "content distance", m.content_distance)?;
        writeln!(
            f,
            "{:<24} {:>14.6}",
            "style gap closed",
            m.style_gap_closed()
        )?;
        for r in &self.regions {
            writeln!(f, "in the region of {}:", r.mask)?;
            let c = r.measure.content_distance;
            writeln!(f, "  content distance {c:.4}")?;
            for d in &r.measure.styles {
                writeln!(
                    f,
                    "  style {}: style distance {:.4} (the photo's {:.4}), gap closed {:.1} %",
                    d.style + 1,
                    d.style_distance,
                    d.content_style_distance,
                    100.0 * d.style_gap_closed()
                )?;
            }
        }
        Ok(())
    }
}

impl Score {
    /// Writes [`Score::grad`] to a `.safetensors` file as the float32 tensor `grad` of shape
    /// 3 × height × width, atomically.
    pub fn write_grad(&self, path: &std::path::Path) -> Result<()> {
        let shape = vec![3, self.height as usize, self.width as usize];
        write_f32s(path, &[("grad", shape, &self.grad)])
    }
}

/// Writes float32 `tensors` (name, shape, values) to a `.safetensors` file, atomically.
pub(crate) fn write_f32s(
    path: &std::path::Path, tensors: &[(&str, Vec<usize>, &[f32])],
) -> Result<()> {
    let fail = |reason: String| TransferError::Write {
        path: path.to_owned(),
        reason,
    };
    let ok = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if !ok {
        return Err(fail("use a .safetensors file name".into()));
    }
    let bytes: Vec<Vec<u8>> = (tensors.iter())
        .map(|(_, _, v)| bytemuck::cast_slice(v).to_vec())
        .collect();
    let mut views = Vec::new();
    for ((name, shape, _), b) in tensors.iter().zip(&bytes) {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
            .map_err(|e| fail(e.to_string()))?;
        views.push((*name, view));
    }
    let data = safetensors::serialize(views, None).map_err(|e| fail(e.to_string()))?;
    crate::image::write_atomic(path, |out| out.write_all(&data))
        .map_err(|e: std::io::Error| fail(e.to_string()))
}
