//! L-BFGS without a line search, entirely on the GPU: the two-loop recursion is a fixed
//! sequence of [`VectorOps`] whose coefficients come from earlier dot products in a scalar
//! buffer, and the two scalar decisions (the first step's length, whether a pair has positive
//! curvature) are one-invocation kernels, so an iteration needs no readback. The semantics,
//! including how a pair without positive curvature is handled, are
//! `nst_reference::lbfgs`'s. See `shaders/lbfgs.wgsl`.
//!
//! A caller that evaluates the loss after each step can shrink a step that raised it, or take
//! it back ([`LbfgsRun::record_shrink_step`], [`LbfgsRun::record_undo_step`]): the safeguard
//! `nst-transfer` runs, which decides on the loss it reads back and on the step's slope gᵀs
//! ([`LbfgsRun::slope`]), which every step records.

use crate::expect_len;
use crate::reduce::Reduction;
use crate::vector::{Coef, VectorOps};
use nst_gpu::{Context, Dispatch, EntryPoint, GpuError, Groups, Record, Result, View, ViewMut};

/// L-BFGS's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsParams {
    /// Pairs (s, y) kept.
    pub history: u32,
    /// Step length after the first iteration (1 is the classic choice).
    pub lr: f64,
}

nst_gpu::uniform! {
    struct Uniform {
        /// `sᵀy` of the newest pair, from a dot.
        ys: u32,
        /// `yᵀy` of the newest pair, from a dot.
        yy: u32,
        /// H₀ = γ·I.
        gamma: u32,
        /// Step length.
        t: u32,
        /// ‖g‖₁, from an asum.
        asum: u32,
        /// The pair's kept sᵀy (1 when refused: a safe divisor).
        slot_ys: u32,
        /// The pair's mask, 1 or 0.
        slot_mask: u32,
        lr: f32,
    }
}

nst_gpu::contracts! {
    "lbfgs.wgsl", Uniform;
    /// `lbfgs_first_step`: the first step's length, from ‖g‖₁.
    FIRST_STEP = "lbfgs_first_step": read_write(1, "scalars");
    /// `lbfgs_accept`: keeps or refuses the newest pair.
    ACCEPT = "lbfgs_accept": read_write(1, "scalars");
}

crate::shader!(
    /// `shaders/lbfgs.wgsl`: L-BFGS's scalar steps.
    SHADER = "lbfgs.wgsl" after [Uniform::WGSL]
    with [FIRST_STEP, ACCEPT]
);

/// The scalar kernels.
pub struct Lbfgs {
    first_step: EntryPoint,
    accept: EntryPoint,
}

/// Where each scalar lives: per pair i its kept sᵀy, the two-loop's α and β, and its mask;
/// then the newest pair's raw sᵀy and yᵀy, γ, t and ‖g‖₁.
struct Slots {
    m: u32,
}

impl Slots {
    fn ys(&self, i: u32) -> u32 {
        i
    }
    fn alpha(&self, i: u32) -> u32 {
        self.m + i
    }
    fn beta(&self, i: u32) -> u32 {
        2 * self.m + i
    }
    fn mask(&self, i: u32) -> u32 {
        3 * self.m + i
    }
    fn raw_ys(&self) -> u32 {
        4 * self.m
    }
    fn yy(&self) -> u32 {
        4 * self.m + 1
    }
    fn gamma(&self) -> u32 {
        4 * self.m + 2
    }
    fn t(&self) -> u32 {
        4 * self.m + 3
    }
    fn asum(&self) -> u32 {
        4 * self.m + 4
    }
    /// gᵀs of the last step.
    fn slope(&self) -> u32 {
        4 * self.m + 5
    }
    /// τ, for shrinking the last step to τ of it (written by the caller).
    fn shrink(&self) -> u32 {
        4 * self.m + 6
    }
    fn count(&self) -> u32 {
        4 * self.m + 7
    }
}

/// The dispatches that touch pair slot i.
struct Pair {
    // The new pair entering slot i: y = g − g_prev, its curvature, accept or zero.
    y_from_grad: Dispatch,
    y_minus_prev: Dispatch,
    ys_dot: Reduction,
    yy_dot: Reduction,
    accept: Dispatch,
    mask_s: Dispatch,
    mask_y: Dispatch,
    // First loop: α = sᵀq / sᵀy, q −= α·y.
    alpha_dot: Reduction,
    q_update: Dispatch,
    // Second loop: β = yᵀr / sᵀy, r += (α − β)·s.
    beta_dot: Reduction,
    r_plus_alpha: Dispatch,
    r_minus_beta: Dispatch,
    // The step taken from here, kept as this slot's next s: s = t·d, x += s.
    s_from_d: Dispatch,
    x_plus_s: Dispatch,
    // Its slope gᵀs, and shrinking it to τ of itself (s ← τ·s, then x = x_prev + s by
    // restoring x_prev and `x_plus_s`).
    slope_dot: Reduction,
    s_shrink: Dispatch,
}

/// A prepared L-BFGS optimizer of one parameter vector: its history, scratch vectors and
/// every dispatch of an iteration.
pub struct LbfgsRun {
    m: u32,
    scalars: wgpu::Buffer,
    pairs: Vec<Pair>,
    asum: Reduction,
    first_step: Dispatch,
    save_grad: Dispatch,
    // The point a step is taken from, kept so that a step can be shrunk or taken back exactly
    // even when it is huge or not finite: x_prev ← x, and x ← x_prev.
    save_x: Dispatch,
    restore_x: Dispatch,
    d_from_grad: Dispatch,
    scale_gamma: Dispatch,
    bytes: u64,
    _buffers: Vec<wgpu::Buffer>,
}

impl Lbfgs {
    /// Compiles `shaders/lbfgs.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        Ok(Lbfgs {
            first_step: EntryPoint::new(ctx, &module, &FIRST_STEP, &[])?,
            accept: EntryPoint::new(ctx, &module, &ACCEPT, &[])?,
        })
    }

    /// Prepares L-BFGS over `x` with its gradient in `grad`: allocates 2·history + 3 vectors
    /// the size of `x`.
    pub fn prepare(
        &self, ctx: &Context, vector: &VectorOps, params: LbfgsParams, x: ViewMut<'_>,
        grad: View<'_>,
    ) -> Result<LbfgsRun> {
        if params.history == 0 {
            return Err(GpuError::BadShape(
                "L-BFGS needs a history of at least 1 pair".into(),
            ));
        }
        if !(params.lr.is_finite() && params.lr > 0.0) {
            return Err(GpuError::BadShape(format!(
                "L-BFGS step length must be finite and > 0, got {}",
                params.lr
            )));
        }
        expect_len("L-BFGS gradient", &grad, x.len)?;
        let m = params.history;
        let n = x.len;
        let at = Slots { m };
        let mut init = vec![0.0f32; at.count() as usize];
        for i in 0..m {
            init[at.ys(i) as usize] = 1.0;
        }
        init[at.gamma() as usize] = 1.0;
        let scalars = ctx.tensor_from("lbfgs scalars", &init)?;
        // The scalars as the vector ops' coefficients (read) and as results (written).
        let (sv, sw) = (View::whole(&scalars), ViewMut::whole(&scalars));
        let g_prev = ctx.tensor("lbfgs previous gradient", n)?;
        let x_prev = ctx.tensor("lbfgs previous point", n)?;
        let d = ctx.tensor("lbfgs direction", n)?;
        let (gp, gpw) = (View::whole(&g_prev), ViewMut::whole(&g_prev));
        let (dv, dw) = (View::whole(&d), ViewMut::whole(&d));
        let mut s = Vec::with_capacity(m as usize);
        let mut y = Vec::with_capacity(m as usize);
        for _ in 0..m {
            s.push(ctx.tensor("lbfgs s", n)?);
            y.push(ctx.tensor("lbfgs y", n)?);
        }
        let scalar = |entry: &EntryPoint, slot_ys: u32, slot_mask: u32| -> Result<Dispatch> {
            let u = Uniform {
                ys: at.raw_ys(),
                yy: at.yy(),
                gamma: at.gamma(),
                t: at.t(),
                asum: at.asum(),
                slot_ys,
                slot_mask,
                lr: params.lr as f32,
            };
            entry.launch(ctx, &u, &[sw.into()], Groups::Exact([1, 1, 1]))
        };
        let c = Coef::constant;
        let mut pairs = Vec::with_capacity(m as usize);
        for i in 0..m {
            let (si, yi) = (View::whole(&s[i as usize]), View::whole(&y[i as usize]));
            let (si_w, yi_w) = (
                ViewMut::whole(&s[i as usize]),
                ViewMut::whole(&y[i as usize]),
            );
            let r = |c: f32, num: u32| Coef::ratio(c, Some(num), Some(at.ys(i)));
            let mask = Coef::ratio(1.0, Some(at.mask(i)), None);
            pairs.push(Pair {
                y_from_grad: vector.copy(ctx, c(1.0), grad, yi_w, sv)?,
                y_minus_prev: vector.axpy(ctx, c(-1.0), gp, yi_w, sv)?,
                ys_dot: vector.dot(ctx, yi, si, sw, at.raw_ys())?,
                yy_dot: vector.dot(ctx, yi, yi, sw, at.yy())?,
                accept: scalar(&self.accept, at.ys(i), at.mask(i))?,
                mask_s: vector.scale(ctx, mask, si_w, sv)?,
                mask_y: vector.scale(ctx, mask, yi_w, sv)?,
                alpha_dot: vector.dot(ctx, si, dv, sw, at.alpha(i))?,
                q_update: vector.axpy(ctx, r(-1.0, at.alpha(i)), yi, dw, sv)?,
                beta_dot: vector.dot(ctx, yi, dv, sw, at.beta(i))?,
                r_plus_alpha: vector.axpy(ctx, r(1.0, at.alpha(i)), si, dw, sv)?,
                r_minus_beta: vector.axpy(ctx, r(-1.0, at.beta(i)), si, dw, sv)?,
                s_from_d: vector.copy(ctx, Coef::ratio(1.0, Some(at.t()), None), dv, si_w, sv)?,
                x_plus_s: vector.axpy(ctx, c(1.0), si, x, sv)?,
                slope_dot: vector.dot(ctx, grad, si, sw, at.slope())?,
                s_shrink: vector.scale(ctx, Coef::ratio(1.0, Some(at.shrink()), None), si_w, sv)?,
            });
        }
        let run = LbfgsRun {
            m,
            asum: vector.asum(ctx, grad, sw, at.asum())?,
            first_step: scalar(&self.first_step, at.ys(0), at.mask(0))?,
            save_grad: vector.copy(ctx, c(1.0), grad, gpw, sv)?,
            save_x: vector.copy(ctx, c(1.0), x.read(), ViewMut::whole(&x_prev), sv)?,
            restore_x: vector.copy(ctx, c(1.0), View::whole(&x_prev), x, sv)?,
            d_from_grad: vector.copy(ctx, c(-1.0), grad, dw, sv)?,
            scale_gamma: vector.scale(ctx, Coef::ratio(1.0, Some(at.gamma()), None), dw, sv)?,
            pairs,
            bytes: LbfgsRun::bytes_for(n, m),
            scalars,
            _buffers: [g_prev, x_prev, d].into_iter().chain(s).chain(y).collect(),
        };
        Ok(run)
    }
}

impl LbfgsRun {
    /// Records iteration `k` (1-based; one call per k, in order): the gradient at the current
    /// `x` must be in `grad` by then; `x` takes the step.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, k: u32) {
        let k = k.max(1);
        let m = self.m;
        if k == 1 {
            self.asum.record(pass);
            self.first_step.record(pass);
        } else {
            let p = &self.pairs[((k - 2) % m) as usize];
            for d in [&p.y_from_grad, &p.y_minus_prev] {
                d.record(pass);
            }
            p.ys_dot.record(pass);
            p.yy_dot.record(pass);
            for d in [&p.accept, &p.mask_s, &p.mask_y] {
                d.record(pass);
            }
        }
        self.save_grad.record(pass);
        self.d_from_grad.record(pass);
        // The pairs present: the i-th newest is in slot (k − 2 − i) mod m.
        let present = (k - 1).min(m);
        let nth_newest = |i: u32| &self.pairs[((k + 2 * m - 2 - i) % m) as usize];
        for p in (0..present).map(nth_newest) {
            p.alpha_dot.record(pass);
            p.q_update.record(pass);
        }
        self.scale_gamma.record(pass);
        for p in (0..present).rev().map(nth_newest) {
            p.beta_dot.record(pass);
            p.r_plus_alpha.record(pass);
            p.r_minus_beta.record(pass);
        }
        let next = self.last_pair(k);
        next.s_from_d.record(pass);
        next.slope_dot.record(pass);
        self.save_x.record(pass);
        next.x_plus_s.record(pass);
    }

    /// The slope gᵀs of the last step s, taken from where the gradient g was: negative for a
    /// step downhill. Read back from the GPU.
    pub async fn slope(&self, ctx: &Context) -> Result<f32> {
        let at = Slots { m: self.m };
        let view = View::range(&self.scalars, at.slope() as u64, 1);
        Ok(ctx.read_async::<f32>(view).await?[0])
    }

    /// Sets τ for the next [`LbfgsRun::record_shrink_step`]: written to the GPU before the
    /// next submission runs.
    pub fn set_shrink(&self, ctx: &Context, tau: f32) {
        ctx.write(&self.scalars, Slots { m: self.m }.shrink() as u64, &[tau]);
    }

    /// Records shrinking iteration `k`'s step to τ of itself (s ← τ·s, x ← x_prev + s, from
    /// the point the step was taken from; τ from [`LbfgsRun::set_shrink`]), for a step whose
    /// loss was higher: iteration k + 1 then makes its pair of what remains of it.
    pub fn record_shrink_step(&self, pass: &mut wgpu::ComputePass<'_>, k: u32) {
        let p = self.last_pair(k);
        p.s_shrink.record(pass);
        self.restore_x.record(pass);
        p.x_plus_s.record(pass);
    }

    /// Records taking back the last step: x ← the point it was taken from, exactly.
    pub fn record_undo_step(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.restore_x.record(pass);
    }

    /// The slot iteration `k`'s step is kept in.
    fn last_pair(&self, k: u32) -> &Pair {
        &self.pairs[((k.max(1) - 1) % self.m) as usize]
    }

    /// Bytes of GPU memory the history and scratch vectors take.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes of storage [`Lbfgs::prepare`] creates for `n` parameters and `history` pairs:
    /// the scalars, the previous gradient and point, the direction, the pairs, and the partial
    /// sums of the five dot products per pair and the gradient's ℓ1 norm.
    pub fn bytes_for(n: u64, history: u32) -> u64 {
        let vectors = (2 * history as u64 + 3) * nst_gpu::tensor_bytes(n);
        let scalars = nst_gpu::tensor_bytes(Slots { m: history }.count() as u64);
        let reductions = (5 * history as u64 + 1) * Reduction::BYTES;
        vectors + scalars + reductions
    }
}
