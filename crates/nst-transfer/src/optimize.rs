//! The optimization loop: coarse-to-fine scales, one GPU submission per iteration, color
//! preservation, and the update step ([`Stepper`]).

use crate::color;
use crate::defaults;
use crate::engine::{noise, scaled_styles, style_size, Engine};
use crate::error::{Field, Result, TransferError};
use crate::events::{Event, Flow, Outcome};
use crate::image::{fit_longest, resize, Image};
use crate::memory::{Job, StyleShape};
use crate::objective::Temporal;
use crate::problem::Problem;
use crate::schedule::{RunPlan, ScaleEnd, StoppingRule};
use crate::settings::{normalized_blend, Init, Optimizer, PreserveColors, Settings, Style};
use crate::terms::{LossValues, Term};
use nst_gpu::{human_bytes, GpuError};
use nst_gpu::{Context, ViewMut};
use nst_kernels::{AdamParams, LbfgsParams};
// std's Instant panics in a browser; this one reads the page's clock there.
use web_time::Instant;

impl Engine {
    /// Runs style transfer: returns the output image (the current one if the caller
    /// stopped early). `on_event` hears of each scale, each reported iteration and each
    /// snapshot, and may stop the run.
    pub fn stylize(
        &self, content: &Image, styles: &[Style], settings: &Settings,
        on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<Outcome> {
        pollster::block_on(self.stylize_async(content, styles, settings, on_event))
    }

    /// [`Engine::stylize`] without blocking: in a browser, each reported iteration and
    /// snapshot lets the page run (set [`Settings::report_every`] low to keep it lively).
    pub async fn stylize_async(
        &self, content: &Image, styles: &[Style], settings: &Settings,
        on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<Outcome> {
        self.run_async(content, styles, settings, None, on_event)
            .await
    }

    /// [`Engine::stylize_async`] with a video frame's temporal loss, which the last scale
    /// (the output's size, which it must have) adds.
    pub(crate) async fn run_async(
        &self, content: &Image, styles: &[Style], settings: &Settings, temporal: Option<&Temporal>,
        mut on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<Outcome> {
        settings.validate()?;
        let blend = normalized_blend(styles)?;
        let init = match &settings.init {
            Init::File(path) => Init::Image(
                crate::image::load(path)
                    .map_err(|source| TransferError::Image {
                        field: Field::Init,
                        source,
                    })?
                    .image,
            ),
            other => other.clone(),
        };
        let (content_in, style_in) = match settings.preserve_colors {
            PreserveColors::None => (
                content.clone(),
                styles.iter().map(|s| s.image.clone()).collect::<Vec<_>>(),
            ),
            PreserveColors::Histogram => (
                content.clone(),
                styles
                    .iter()
                    .map(|s| color::match_color(&s.image, content))
                    .collect(),
            ),
            PreserveColors::Luminance => (
                gray(content),
                styles
                    .iter()
                    .map(|s| color::luminance_only_style(&s.image, content))
                    .collect(),
            ),
        };
        // Every scale is planned before anything runs, the largest first: a scale that cannot
        // fit fails now, and the error names the size asked for.
        let sides = settings.scale_sizes();
        // Masks are checked before anything runs, and resized to each scale.
        let content_size = (content.width, content.height);
        crate::guide::check_masks(styles, settings, content_size)?;
        // The last scale's job adds the temporal terms.
        let job_at = |last: bool| Job::Optimize {
            styles: style_in.len(),
            guided: styles.iter().any(|s| s.mask.is_some()),
            temporal: temporal.filter(|_| last).map_or(0, |t| t.frames.len()),
        };
        // Each style's shape at a scale whose longest side is `longest`.
        let shapes_at = |longest: u32| -> Vec<StyleShape> {
            (style_in.iter().zip(styles))
                .map(|(i, s)| {
                    let (width, height) = style_size(i, longest, settings.style_scale);
                    let region = s.region.is_some();
                    StyleShape {
                        width,
                        height,
                        region,
                    }
                })
                .collect()
        };
        let regions = crate::engine::regions(styles);
        let mut plans = Vec::new();
        for (k, &side) in sides.iter().rev().enumerate() {
            let (w, h) = fit_longest(content_in.width, content_in.height, side);
            let sizes = shapes_at(w.max(h));
            plans.push(self.scale_plan((w, h), &sizes, settings, &job_at(k == 0))?);
        }
        plans.reverse();
        // The image as the caller gets it, whether the run finished, stopped or hit a
        // non-finite loss: at the output's size, in the colors asked for.
        let (out_w, out_h) = plans.last().map_or((content.width, content.height), |p| {
            (p.problem.width, p.problem.height)
        });
        let finish = |image: Image| -> Image {
            let image = match (image.width, image.height) == (out_w, out_h) {
                true => image,
                false => resize(&image, out_w, out_h),
            };
            match settings.preserve_colors {
                PreserveColors::Luminance => {
                    let c = resize(content, out_w, out_h);
                    color::with_luminance(&c, &color::luminance(&image))
                }
                _ => image,
            }
        };
        let run_plan = RunPlan {
            scales: (plans.iter())
                .map(|p| (p.problem.width, p.problem.height))
                .collect(),
            iterations: settings.iterations,
        };
        // A caller that stops at the plan gets the content image back, as at any scale's start.
        let mut stopped = on_event(Event::Plan { plan: &run_plan }) == Flow::Stop;
        let mut current: Option<Image> = None;
        let mut last_iterations = 0;
        let mut final_values = None;
        let count = sides.len();
        let mut begun = 0;
        for (index, plan) in plans.into_iter().enumerate() {
            if stopped {
                break;
            }
            let (w, h) = (plan.problem.width, plan.problem.height);
            let c = resize(&content_in, w, h);
            let styles_here = scaled_styles(style_in.iter(), w.max(h), settings.style_scale);
            let event = Event::Scale {
                index,
                count,
                width: w,
                height: h,
                tiles: plan.problem.tiling.tiles.len(),
            };
            if on_event(event) == Flow::Stop {
                stopped = true;
                break;
            }
            begun += 1;
            let before = self.ctx.created_bytes();
            let need = plan.job_bytes();
            // Running out of memory names what fit and the largest size whose plan fits in it.
            let out_of_memory = |e: TransferError| match e {
                TransferError::Gpu(GpuError::OutOfMemory(msg)) => {
                    let fit = self.ctx.created_bytes() - before;
                    let fits = |ph: u32, pw: u32| {
                        let sizes = shapes_at(pw.max(ph));
                        let job = job_at(index + 1 == count);
                        (self.scale_plan((pw, ph), &sizes, settings, &job))
                            .is_ok_and(|p| p.job_bytes() <= fit)
                    };
                    let why = format!(
                        "the device ran out of memory ({msg}) after {} of the {} this scale \
                         needs",
                        human_bytes(fit),
                        human_bytes(need)
                    );
                    nst_vgg::VggError::too_large(h, w, why, fits).into()
                }
                e => e,
            };
            let guides = crate::guide::guides(styles, content_size, (w, h))?;
            let problem = (self.planned_problem(
                &c,
                &styles_here,
                &blend,
                (&guides, &regions),
                settings,
                plan,
                temporal.filter(|_| index + 1 == count),
            ))
            .await
            .map_err(out_of_memory)?;
            let start = match (&current, &init) {
                (Some(prev), _) => resize(prev, w, h),
                (None, Init::Random) => noise(w, h, settings.seed),
                (None, Init::Image(img)) => match settings.preserve_colors {
                    PreserveColors::Luminance => resize(&gray(img), w, h),
                    _ => resize(img, w, h),
                },
                (None, _) => c.clone(),
            };
            let run = ScaleRun {
                problem: &problem,
                index,
                last: index + 1 == count,
                plan: &run_plan,
            };
            // The last image read back on this scale: what a lost device leaves.
            let mut good = start.data.clone();
            let result = self
                .optimize(&run, &start, &mut good, settings, &mut on_event)
                .await;
            let done = match result {
                Err(TransferError::Gpu(source @ GpuError::DeviceLost(_))) => {
                    return Err(TransferError::DeviceLost {
                        source,
                        last_good: Box::new(finish(Image::from_parts(w, h, good))),
                    })
                }
                Err(TransferError::NonFinite {
                    term,
                    iteration,
                    last_good,
                }) => {
                    return Err(TransferError::NonFinite {
                        term,
                        iteration,
                        last_good: Box::new(finish(*last_good)),
                    })
                }
                done => done.map_err(out_of_memory)?,
            };
            current = Some(done.image);
            last_iterations = done.iterations;
            if done.stopped {
                stopped = true;
                break;
            }
            final_values = done.values;
        }
        let image = finish(current.unwrap_or_else(|| content_in.clone()));
        let measure = match stopped {
            true => None,
            false => Some(self.measure_with(content, styles, &image, settings).await?),
        };
        Ok(Outcome {
            image,
            stopped,
            values: if stopped { None } else { final_values },
            measure,
            scales: begun,
            iterations: last_iterations,
        })
    }

    /// One scale's optimization: one submission and one readback of the loss per iteration.
    /// L-BFGS never accepts a step that raises the loss (or makes it NaN): it shrinks the step
    /// ([`shrink_factor`]) and evaluates again. The scale ends after
    /// [`Settings::iterations`], when the stopping rule says it converged, or when no step
    /// lowers the loss.
    /// `good` holds the last image read back whose loss was finite (the start until then).
    async fn optimize(
        &self, run: &ScaleRun<'_>, start: &Image, good: &mut Vec<f32>, settings: &Settings,
        on_event: &mut impl FnMut(Event<'_>) -> Flow,
    ) -> Result<ScaleDone> {
        let ctx = &self.ctx;
        let tg = &run.problem.tg;
        let (h, w) = tg.size();
        ctx.write(tg.image().buffer, 0, &start.data);
        // The last image whose loss was finite, `good`, is kept on the CPU: a reporting
        // iteration reads its image back once its values prove finite, so no image-sized GPU
        // buffer is spent on it.
        let clamp = self.k.pixel.clamp(ctx, h, w, tg.image_mut())?;
        let stepper = Stepper::new(self, run.problem, settings.optimizer, settings.step_size())?;
        let read_image = || async {
            let data = ctx.read_async::<f32>(tg.image()).await?;
            Ok::<Image, TransferError>(Image::from_parts(w, h, data))
        };
        let last_good = |good: Vec<f32>, term: Term, iteration: u32| -> Result<ScaleDone> {
            Err(TransferError::NonFinite {
                term,
                iteration,
                last_good: Box::new(Image::from_parts(w, h, good)),
            })
        };
        let stopped = |image: Image| ScaleDone {
            image,
            values: None,
            stopped: true,
            iterations: 0,
        };
        let iterations = settings.iterations;
        let mut rule = StoppingRule::new(settings.tolerance, defaults::STOP_WINDOW);
        // The loss of the current image; with L-BFGS, of the last step accepted.
        let mut current: Option<LossValues> = None;
        // L-BFGS steps taken, shrinks in a row of the last one, and its slope gᵀs once read.
        let (mut steps, mut shrinks, mut shrunk) = (0u32, 0u32, 0u32);
        let mut slope: Option<f64> = None;
        let mut end = ScaleEnd::Iterations;
        let mut snapshot_due = false;
        let scale_start = Instant::now();
        let mut since = Instant::now();
        let mut since_iter = 0;
        let mut done = 0;
        for t in 1..=iterations {
            done = t;
            stepper.set_step(ctx, t);
            ctx.submit(|pass| run.problem.record_value_and_grad(pass))?;
            let values = run.problem.values_async(ctx).await?;
            let bad = values.first_non_finite().map(|b| b.term);
            if let Some(term) = bad {
                // Adam cannot take a step back, and the start has nothing to go back to.
                if current.is_none() || !stepper.safeguarded() {
                    return last_good(good.clone(), term, t);
                }
            }
            let accepted = bad.is_none()
                && match (&current, stepper.safeguarded()) {
                    (Some(now), true) => values.total() <= now.total(),
                    _ => true,
                };
            let tried = values.total();
            if accepted {
                current = Some(values);
                (shrinks, slope) = (0, None);
            } else {
                shrinks += 1;
                shrunk += 1;
            }
            let now = current.as_ref().expect("the start's loss is finite");
            let report = t % settings.report_every.max(1) == 0 || t == iterations || t == 1;
            if report {
                if accepted {
                    *good = ctx.read_async::<f32>(tg.image()).await?;
                }
                let per = since.elapsed() / (t - since_iter).max(1);
                since = Instant::now();
                since_iter = t;
                let mean = scale_start.elapsed() / t;
                let flow = on_event(Event::Iteration {
                    scale: run.index,
                    iteration: t,
                    of: iterations,
                    values: now,
                    per_iteration: per,
                    left: run.plan.time_left(run.index, t, mean),
                });
                if flow == Flow::Stop {
                    if !accepted {
                        ctx.submit(|pass| stepper.record_undo(pass))?;
                    }
                    return Ok(stopped(read_image().await?));
                }
            }
            if let Some(converged) = rule.push(now.total()) {
                end = converged;
            } else if shrinks > defaults::MAX_SHRINKS {
                end = ScaleEnd::NoDescent { shrinks };
            }
            let finishing = end != ScaleEnd::Iterations || t == iterations;
            if finishing && !accepted {
                // The image ends where the last accepted step left it.
                ctx.submit(|pass| stepper.record_undo(pass))?;
            }
            // A snapshot shows the current image, whose loss was just reported: one due at a
            // step that was shrunk waits for the next step kept (or the scale's end).
            snapshot_due |= settings.snapshot_every > 0 && t % settings.snapshot_every == 0;
            if snapshot_due && (accepted || finishing) {
                snapshot_due = false;
                let image = read_image().await?;
                let event = Event::Snapshot {
                    scale: run.index,
                    iteration: t,
                    image: &image,
                };
                if on_event(event) == Flow::Stop {
                    return Ok(stopped(image));
                }
            }
            if finishing {
                break;
            }
            if accepted {
                steps += 1;
                ctx.submit(|pass| {
                    stepper.record(pass, steps);
                    if stepper.clamps_each_step() {
                        clamp.record(pass);
                    }
                })?;
            } else {
                let full = match slope {
                    Some(s) => s,
                    None => stepper.slope(ctx).await?,
                };
                let tau = shrink_factor(now.total(), full, tried);
                slope = Some(tau * full);
                stepper.set_shrink(ctx, tau);
                ctx.submit(|pass| stepper.record_shrink(pass, steps))?;
            }
        }
        if !stepper.clamps_each_step() {
            self.ctx.submit(|pass| clamp.record(pass))?;
        }
        // The loss of the image returned, as `score` computes it: clamping may have changed
        // it (or its pixels, which clamping need not clean: lavapipe's makes NaN 0).
        self.ctx.submit(|pass| run.problem.record_value(pass))?;
        let values = run.problem.values_async(ctx).await?;
        if let Some(bad) = values.first_non_finite() {
            return last_good(good.clone(), bad.term, done);
        }
        let image = read_image().await?;
        on_event(Event::ScaleEnd {
            scale: run.index,
            iterations: done,
            shrunk,
            end,
            values: &values,
        });
        let mut kept = None;
        if run.last {
            on_event(Event::Final { values: &values });
            kept = Some(values);
        }
        Ok(ScaleDone {
            image,
            values: kept,
            stopped: false,
            iterations: done,
        })
    }
}

/// One scale of a run, as [`Engine::optimize`] needs it.
struct ScaleRun<'a> {
    problem: &'a Problem,
    index: usize,
    last: bool,
    /// The whole run's plan, for the estimate of the time left.
    plan: &'a RunPlan,
}

/// What one scale's optimization ends with.
struct ScaleDone {
    image: Image,
    /// The final image's losses (on the last scale).
    values: Option<LossValues>,
    stopped: bool,
    /// Iterations run.
    iterations: u32,
}

/// The update step of one scale: the optimizer's state for a [`Problem`]'s image, and the
/// launches of one step, recorded after the problem's value and gradient.
pub struct Stepper(Step);

enum Step {
    Adam {
        step: nst_kernels::AdamStep,
        /// Its moment buffers, kept with it.
        _moments: [wgpu::Buffer; 2],
    },
    Lbfgs(Box<nst_kernels::LbfgsRun>),
}

impl Stepper {
    /// `optimizer`'s state for `problem`'s image, stepping `lr` (see [`Settings::step_size`]).
    pub fn new(engine: &Engine, problem: &Problem, optimizer: Optimizer, lr: f64) -> Result<Self> {
        let (ctx, k, tg) = (&engine.ctx, &engine.k, &problem.tg);
        let n = tg.image().len;
        Ok(Stepper(match optimizer {
            Optimizer::Adam => {
                let m = ctx.tensor("adam m", n)?;
                let v = ctx.tensor("adam v", n)?;
                let step = k.adam.prepare(
                    ctx,
                    AdamParams::new(lr),
                    tg.image_grad(),
                    tg.image_mut(),
                    ViewMut::whole(&m),
                    ViewMut::whole(&v),
                )?;
                Step::Adam {
                    step,
                    _moments: [m, v],
                }
            }
            Optimizer::Lbfgs { history } => Step::Lbfgs(Box::new(k.lbfgs.prepare(
                ctx,
                &k.vector,
                LbfgsParams { history, lr },
                tg.image_mut(),
                tg.image_grad(),
            )?)),
        }))
    }

    /// Bytes of storage [`Stepper::new`] creates for an image of `n` values.
    pub(crate) fn bytes(optimizer: Optimizer, n: u64) -> u64 {
        match optimizer {
            Optimizer::Adam => 2 * nst_gpu::tensor_bytes(n), // the moments
            Optimizer::Lbfgs { history } => nst_kernels::LbfgsRun::bytes_for(n, history),
        }
    }

    /// Sets the step number before iteration `t` (1-based) is recorded.
    pub fn set_step(&self, ctx: &Context, t: u32) {
        if let Step::Adam { step, .. } = &self.0 {
            step.set_step(ctx, t);
        }
    }

    /// Records iteration `t`'s step, after the problem's value and gradient.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, t: u32) {
        match &self.0 {
            Step::Adam { step, .. } => nst_gpu::Record::record(step, pass),
            Step::Lbfgs(run) => run.record(pass, t),
        }
    }

    /// The slope gᵀs of L-BFGS's last step s (0 for Adam).
    pub async fn slope(&self, ctx: &Context) -> Result<f64> {
        match &self.0 {
            Step::Lbfgs(run) => Ok(f64::from(run.slope(ctx).await?)),
            Step::Adam { .. } => Ok(0.0),
        }
    }

    /// Sets the fraction τ the next [`Stepper::record_shrink`] shrinks the step to.
    pub fn set_shrink(&self, ctx: &Context, tau: f64) {
        if let Step::Lbfgs(run) = &self.0 {
            run.set_shrink(ctx, tau as f32);
        }
    }

    /// Records shrinking L-BFGS's step `k` to τ of itself (see [`Stepper::safeguarded`]).
    pub fn record_shrink(&self, pass: &mut wgpu::ComputePass<'_>, k: u32) {
        if let Step::Lbfgs(run) = &self.0 {
            run.record_shrink_step(pass, k);
        }
    }

    /// Records taking back L-BFGS's last step entirely.
    pub fn record_undo(&self, pass: &mut wgpu::ComputePass<'_>) {
        if let Step::Lbfgs(run) = &self.0 {
            run.record_undo_step(pass);
        }
    }

    /// Whether a step that raised the loss is taken back (L-BFGS's, which shrinks it until the
    /// loss falls), rather than kept (Adam's, whose moments assume every step is taken).
    pub fn safeguarded(&self) -> bool {
        matches!(self.0, Step::Lbfgs(_))
    }

    /// Whether the image is clamped to [0, 1] after every step (Adam's), rather than once
    /// at the end (L-BFGS's, whose history would not hold for a clamped step).
    pub fn clamps_each_step(&self) -> bool {
        matches!(self.0, Step::Adam { .. })
    }
}

/// The image's luminance in all three channels.
fn gray(img: &Image) -> Image {
    let y = color::luminance(img);
    let mut data = Vec::with_capacity(y.len() * 3);
    for _ in 0..3 {
        data.extend_from_slice(&y);
    }
    Image::from_parts(img.width, img.height, data)
}

/// The fraction τ to shrink a step to when it raised the loss from `f0` to `f1` (or made it
/// NaN), given its slope gᵀs: the minimizer of the parabola through f0 with that slope and
/// through f1 at the full step, kept within [0.1, 0.5] so that a step shrinks at least by half
/// and a wild one fast (the bounds of Dennis and Schnabel's backtracking line search).
pub fn shrink_factor(f0: f64, slope: f64, f1: f64) -> f64 {
    let tau = -slope / (2.0 * (f1 - f0 - slope));
    match tau.is_finite() {
        true => tau.clamp(0.1, 0.5),
        false => 0.1,
    }
}

#[cfg(test)]
mod tests {
    use super::shrink_factor;

    #[test]
    fn a_step_shrinks_to_the_parabolas_minimum_within_bounds() {
        // f(τ) = 1 − 2τ + 5τ²: slope −2, f(1) = 4, minimum at τ = 0.2.
        assert!((shrink_factor(1.0, -2.0, 4.0) - 0.2).abs() < 1e-12);
        // Barely higher: the parabola's minimum lies just short of 0.5; lower (which the
        // safeguard keeps, but the bound holds anyway): at most 0.5.
        assert!((shrink_factor(1.0, -1.0, 1.0 + 1e-9) - 0.5).abs() < 1e-6);
        assert_eq!(shrink_factor(1.0, -1.0, 0.9), 0.5);
        // Far higher, a step uphill, or NaN: a tenth.
        assert_eq!(shrink_factor(1.0, -1.0, 1e6), 0.1);
        assert_eq!(shrink_factor(1.0, 0.5, 2.0), 0.1);
        assert_eq!(shrink_factor(1.0, -1.0, f64::NAN), 0.1);
        assert_eq!(shrink_factor(1.0, -1.0, f64::INFINITY), 0.1);
    }
}
