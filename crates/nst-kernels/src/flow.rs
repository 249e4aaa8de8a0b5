//! Optical flow: the kernels of TV-L1 coarse to fine and of Ruder et al.'s reliability weights.
//! See `shaders/flow.wgsl`; each method's CPU reference is the function of the same name in
//! `nst_reference::flow`. Planes are `h × w`; a flow is two planes (u, v) in pixels.

use crate::{entry, expect_len, expect_nonzero, per_element};
use nst_gpu::{Context, Dispatch, EntryPoint, Result, View, ViewMut};

nst_gpu::uniform! {
    struct Uniform {
        /// Height of the planes read (the coarse one for `flow_upsample`).
        h: u32,
        /// Width of the planes read.
        w: u32,
        /// Height written by `flow_upsample`.
        h2: u32,
        /// Width written by `flow_upsample`.
        w2: u32,
        /// Planes (`flow_downsample`, `flow_warp`).
        c: u32,
        /// λ·θ of TV-L1's thresholding.
        lambda_theta: f32,
        /// θ.
        theta: f32,
        /// τ/θ of the dual step.
        tau_theta: f32,
    }
}

nst_gpu::contracts! {
    "flow.wgsl", Uniform;
    /// `flow_gray`: grey levels in [0, 255] of RGB in [0, 1].
    GRAY = "flow_gray": read(1, "rgb"), read_write(4, "grey");
    /// `flow_downsample`: 2×2 means.
    DOWNSAMPLE = "flow_downsample": read(1, "src"), read_write(4, "dst");
    /// `flow_with_gradient`: a plane and its centered differences.
    WITH_GRADIENT = "flow_with_gradient": read(1, "src"), read_write(4, "planes");
    /// `flow_warp`: planes sampled along a flow.
    WARP = "flow_warp": read(1, "src"), read(2, "flow"), read_write(4, "dst");
    /// `flow_prepare`: the linearized data term.
    PREPARE = "flow_prepare": read(1, "i0"), read(2, "warped"), read(3, "flow"),
        read_write(4, "data");
    /// `flow_primal`: TV-L1's primal step.
    PRIMAL = "flow_primal": read(1, "flow"), read(2, "dual"), read(3, "data"),
        read_write(4, "next");
    /// `flow_dual`: TV-L1's dual step, in place.
    DUAL = "flow_dual": read(1, "flow"), read_write(4, "dual");
    /// `flow_upsample`: a flow brought to a finer size.
    UPSAMPLE = "flow_upsample": read(1, "coarse"), read_write(4, "fine");
    /// `flow_reliability`: Ruder et al.'s weights.
    RELIABILITY = "flow_reliability": read(1, "forward"), read(2, "backward"),
        read_write(4, "weights");
}

crate::shader!(
    /// `shaders/flow.wgsl`: TV-L1 optical flow and its reliability.
    SHADER = "flow.wgsl" after [Uniform::WGSL]
    with [GRAY, DOWNSAMPLE, WITH_GRADIENT, WARP, PREPARE, PRIMAL, DUAL, UPSAMPLE, RELIABILITY]
);

/// TV-L1's step parameters, as the kernels take them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tvl1Step {
    /// Weight of the data term (grey levels in [0, 255]).
    pub lambda: f32,
    /// Coupling of the two sub-problems.
    pub theta: f32,
    /// Time step of the dual update.
    pub tau: f32,
}

/// The optical-flow kernels.
pub struct Flow {
    gray: EntryPoint,
    downsample: EntryPoint,
    with_gradient: EntryPoint,
    warp: EntryPoint,
    prepare: EntryPoint,
    primal: EntryPoint,
    dual: EntryPoint,
    upsample: EntryPoint,
    reliability: EntryPoint,
}

/// A uniform for planes of `h × w`.
fn planes(h: u32, w: u32) -> Uniform {
    Uniform {
        h,
        w,
        h2: 0,
        w2: 0,
        c: 1,
        lambda_theta: 0.0,
        theta: 0.0,
        tau_theta: 0.0,
    }
}

impl Flow {
    /// Compiles `shaders/flow.wgsl`.
    pub fn new(ctx: &Context) -> Result<Self> {
        let module = SHADER.compile(ctx)?;
        let e = |c| entry(ctx, &module, c);
        Ok(Flow {
            gray: e(&GRAY)?,
            downsample: e(&DOWNSAMPLE)?,
            with_gradient: e(&WITH_GRADIENT)?,
            warp: e(&WARP)?,
            prepare: e(&PREPARE)?,
            primal: e(&PRIMAL)?,
            dual: e(&DUAL)?,
            upsample: e(&UPSAMPLE)?,
            reliability: e(&RELIABILITY)?,
        })
    }

    /// Grey levels in [0, 255] of an RGB image in [0, 1] (`3 × h × w`).
    pub fn gray(
        &self, ctx: &Context, (h, w): (u32, u32), rgb: View<'_>, grey: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_len("rgb", &rgb, 3 * n)?;
        expect_len("grey", &grey, n)?;
        let u = planes(h, w);
        self.gray
            .launch(ctx, &u, &[rgb.into(), grey.into()], per_element(n))
    }

    /// `c` planes of `h × w` halved (2×2 means, an odd last row or column dropped).
    pub fn downsample(
        &self, ctx: &Context, (c, h, w): (u32, u32, u32), src: View<'_>, dst: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_nonzero("downsampled planes", &[c, h / 2, w / 2])?;
        expect_len("src", &src, c as u64 * n)?;
        let half = (h / 2) as u64 * (w / 2) as u64;
        expect_len("dst", &dst, c as u64 * half)?;
        let u = Uniform { c, ..planes(h, w) };
        let groups = per_element(half);
        self.downsample
            .launch(ctx, &u, &[src.into(), dst.into()], groups)
    }

    /// One plane with its centered gradient: three planes, the plane, ∂x and ∂y.
    pub fn with_gradient(
        &self, ctx: &Context, (h, w): (u32, u32), src: View<'_>, dst: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_len("src", &src, n)?;
        expect_len("planes", &dst, 3 * n)?;
        let u = planes(h, w);
        let bind = [src.into(), dst.into()];
        self.with_gradient.launch(ctx, &u, &bind, per_element(n))
    }

    /// `c` planes of `src` warped by `flow`: `dst(p) = src(p + flow(p))`, bilinear, clamped.
    pub fn warp(
        &self, ctx: &Context, (c, h, w): (u32, u32, u32), src: View<'_>, flow: View<'_>,
        dst: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_nonzero("warped planes", &[c])?;
        expect_len("src", &src, c as u64 * n)?;
        expect_len("flow", &flow, 2 * n)?;
        expect_len("dst", &dst, c as u64 * n)?;
        let u = Uniform { c, ..planes(h, w) };
        let bind = [src.into(), flow.into(), dst.into()];
        self.warp.launch(ctx, &u, &bind, per_element(n))
    }

    /// The data term linearized at `flow`: `warped` holds I₁, ∂ₓI₁, ∂ᵧI₁ warped by it;
    /// `data` gets ∂ₓ, ∂ᵧ, |∇|², ρ₀.
    pub fn prepare(
        &self, ctx: &Context, (h, w): (u32, u32), i0: View<'_>, warped: View<'_>, flow: View<'_>,
        data: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_len("i0", &i0, n)?;
        expect_len("warped", &warped, 3 * n)?;
        expect_len("flow", &flow, 2 * n)?;
        expect_len("data", &data, 4 * n)?;
        let u = planes(h, w);
        let bind = [i0.into(), warped.into(), flow.into(), data.into()];
        self.prepare.launch(ctx, &u, &bind, per_element(n))
    }

    /// TV-L1's primal step: `next` from `flow`, the dual variable and the data term.
    #[allow(clippy::too_many_arguments)]
    pub fn primal(
        &self, ctx: &Context, (h, w): (u32, u32), t: Tvl1Step, flow: View<'_>, dual: View<'_>,
        data: View<'_>, next: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_len("flow", &flow, 2 * n)?;
        expect_len("dual", &dual, 4 * n)?;
        expect_len("data", &data, 4 * n)?;
        expect_len("next", &next, 2 * n)?;
        let u = Uniform {
            lambda_theta: t.lambda * t.theta,
            theta: t.theta,
            ..planes(h, w)
        };
        let bind = [flow.into(), dual.into(), data.into(), next.into()];
        self.primal.launch(ctx, &u, &bind, per_element(n))
    }

    /// TV-L1's dual step, updating `dual` in place from `flow`.
    pub fn dual(
        &self, ctx: &Context, (h, w): (u32, u32), t: Tvl1Step, flow: View<'_>, dual: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_len("flow", &flow, 2 * n)?;
        expect_len("dual", &dual, 4 * n)?;
        let u = Uniform {
            tau_theta: t.tau / t.theta,
            ..planes(h, w)
        };
        self.dual
            .launch(ctx, &u, &[flow.into(), dual.into()], per_element(n))
    }

    /// A flow at `coarse` (h, w) brought to `fine`: bilinear, vectors scaled.
    pub fn upsample(
        &self, ctx: &Context, coarse: (u32, u32), fine: (u32, u32), src: View<'_>, dst: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(coarse.0, coarse.1)?;
        let m = check(fine.0, fine.1)?;
        expect_len("coarse", &src, 2 * n)?;
        expect_len("fine", &dst, 2 * m)?;
        let u = Uniform {
            h2: fine.0,
            w2: fine.1,
            ..planes(coarse.0, coarse.1)
        };
        self.upsample
            .launch(ctx, &u, &[src.into(), dst.into()], per_element(m))
    }

    /// Ruder et al.'s reliability of `backward` (frame B to A) given `forward` (A to B): 0
    /// where they disagree or at motion boundaries, 1 elsewhere.
    pub fn reliability(
        &self, ctx: &Context, (h, w): (u32, u32), forward: View<'_>, backward: View<'_>,
        weights: ViewMut<'_>,
    ) -> Result<Dispatch> {
        let n = check(h, w)?;
        expect_len("forward", &forward, 2 * n)?;
        expect_len("backward", &backward, 2 * n)?;
        expect_len("weights", &weights, n)?;
        let u = planes(h, w);
        let bind = [forward.into(), backward.into(), weights.into()];
        self.reliability.launch(ctx, &u, &bind, per_element(n))
    }
}

/// Pixels of an `h × w` plane, which must not be empty.
fn check(h: u32, w: u32) -> Result<u64> {
    expect_nonzero("planes", &[h, w])?;
    Ok(h as u64 * w as u64)
}
