//! Optical flow: TV-L1 (Zach, Pock & Bischof 2007, in the form of Sánchez, Meinhardt-Llopis &
//! Facciolo, "TV-L1 Optical Flow Estimation", IPOL 2013), coarse to fine, and the reliability
//! weights of Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos" (2016).
//!
//! Images are single planes `h × w`, row-major, grey levels in [0, 255]. A flow is two planes,
//! `u` (x) then `v` (y), in pixels: the flow from frame A to frame B at pixel `p` says where
//! `p` of A is found in B, `A(p) ≈ B(p + w(p))`. The dual variable `p` of the TV term is four
//! planes, `p11 p12` (of `u`) then `p21 p22` (of `v`). Every function here is one GPU
//! kernel's reference (`shaders/flow.wgsl`), except [`tvl1`] and [`epe`], which compose them.

/// The grey level of RGB in [0, 1] (`3 × plane`), scaled to [0, 255]: ITU-R BT.601 weights.
pub fn gray(rgb: &[f64]) -> Vec<f64> {
    let n = rgb.len() / 3;
    (0..n)
        .map(|q| 255.0 * (0.299 * rgb[q] + 0.587 * rgb[n + q] + 0.114 * rgb[2 * n + q]))
        .collect()
}

/// Halves each of `c` planes of `h × w`: the mean of each 2×2 block, an odd last row or
/// column dropped. Returns the planes at `(h / 2, w / 2)`.
pub fn downsample(x: &[f64], c: usize, h: usize, w: usize) -> Vec<f64> {
    let (h2, w2) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(c * h2 * w2);
    for k in 0..c {
        let p = &x[k * h * w..(k + 1) * h * w];
        for i in 0..h2 {
            for j in 0..w2 {
                let at = |di: usize, dj: usize| p[(2 * i + di) * w + 2 * j + dj];
                out.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0);
            }
        }
    }
    out
}

/// Bilinear sample of plane `p` (`h × w`) at (x, y), the coordinates clamped to the image.
pub fn sample(p: &[f64], h: usize, w: usize, x: f64, y: f64) -> f64 {
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let top = p[y0 * w + x0] * (1.0 - fx) + p[y0 * w + x1] * fx;
    let bottom = p[y1 * w + x0] * (1.0 - fx) + p[y1 * w + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// `c` planes of `src` (`h × w`) warped by `flow`: `out(p) = src(p + flow(p))`, bilinear,
/// clamped at the border.
pub fn warp(src: &[f64], c: usize, h: usize, w: usize, flow: &[f64]) -> Vec<f64> {
    let n = h * w;
    let mut out = Vec::with_capacity(c * n);
    for k in 0..c {
        let p = &src[k * n..(k + 1) * n];
        for i in 0..h {
            for j in 0..w {
                let q = i * w + j;
                out.push(sample(p, h, w, j as f64 + flow[q], i as f64 + flow[n + q]));
            }
        }
    }
    out
}

/// The centered gradient of plane `x` (`h × w`): two planes, ∂x then ∂y, each half the
/// difference of the neighbours, the index clamped at the border.
pub fn gradient(x: &[f64], h: usize, w: usize) -> Vec<f64> {
    let mut out = vec![0.0; 2 * h * w];
    for i in 0..h {
        for j in 0..w {
            let (l, r) = (j.saturating_sub(1), (j + 1).min(w - 1));
            let (t, b) = (i.saturating_sub(1), (i + 1).min(h - 1));
            out[i * w + j] = 0.5 * (x[i * w + r] - x[i * w + l]);
            out[h * w + i * w + j] = 0.5 * (x[b * w + j] - x[t * w + j]);
        }
    }
    out
}

/// Plane `x` (`h × w`) with its [`gradient`]: three planes, `x`, ∂x, ∂y (what the warp
/// samples).
pub fn with_gradient(x: &[f64], h: usize, w: usize) -> Vec<f64> {
    [x, &gradient(x, h, w)].concat()
}

/// The linearized data term at one warp: from `i0`, and `i1` with its gradient warped by the
/// flow `u0` (three planes: I₁(p + u₀), ∂ₓI₁(…), ∂ᵧI₁(…)), four planes: ∂ₓ, ∂ᵧ, |∇|² and
/// ρ₀ = I₁w − ∇I₁w·u₀ − I₀, so that ρ(u) = ρ₀ + ∇I₁w·u.
pub fn prepare(i0: &[f64], warped: &[f64], u0: &[f64]) -> Vec<f64> {
    let n = i0.len();
    let mut out = vec![0.0; 4 * n];
    for q in 0..n {
        let (iw, gx, gy) = (warped[q], warped[n + q], warped[2 * n + q]);
        out[q] = gx;
        out[n + q] = gy;
        out[2 * n + q] = gx * gx + gy * gy;
        out[3 * n + q] = iw - gx * u0[q] - gy * u0[n + q] - i0[q];
    }
    out
}

/// TV-L1's parameters (IPOL's names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tvl1 {
    /// Weight of the data term (grey levels in [0, 255]).
    pub lambda: f64,
    /// Coupling of the two sub-problems.
    pub theta: f64,
    /// Time step of the dual update (≤ 0.25 for stability).
    pub tau: f64,
    /// Warps per scale.
    pub warps: usize,
    /// Primal-dual steps per warp.
    pub iterations: usize,
    /// The coarsest scale's shorter side is at least this.
    pub min_side: usize,
}

/// The divergence of the dual field (`a`, `b`) at (i, j), backward differences with IPOL's
/// boundary rule.
fn divergence(a: &[f64], b: &[f64], h: usize, w: usize, i: usize, j: usize) -> f64 {
    let q = i * w + j;
    let dx = if w == 1 {
        0.0
    } else if j == 0 {
        a[q]
    } else if j == w - 1 {
        -a[q - 1]
    } else {
        a[q] - a[q - 1]
    };
    let dy = if h == 1 {
        0.0
    } else if i == 0 {
        b[q]
    } else if i == h - 1 {
        -b[q - w]
    } else {
        b[q] - b[q - w]
    };
    dx + dy
}

/// The primal step at every pixel: the thresholding of the data term, then `u = v + θ·div p`.
/// `u` is two planes, `p` four, `prep` four ([`prepare`]). Returns the new `u`.
pub fn primal(u: &[f64], p: &[f64], prep: &[f64], h: usize, w: usize, t: &Tvl1) -> Vec<f64> {
    let n = h * w;
    let lt = t.lambda * t.theta;
    let mut out = vec![0.0; 2 * n];
    for i in 0..h {
        for j in 0..w {
            let q = i * w + j;
            let (gx, gy, g2) = (prep[q], prep[n + q], prep[2 * n + q]);
            let rho = prep[3 * n + q] + gx * u[q] + gy * u[n + q];
            let (dx, dy) = if rho < -lt * g2 {
                (lt * gx, lt * gy)
            } else if rho > lt * g2 {
                (-lt * gx, -lt * gy)
            } else if g2 > 1e-10 {
                (-rho * gx / g2, -rho * gy / g2)
            } else {
                (0.0, 0.0)
            };
            let d1 = divergence(&p[..n], &p[n..2 * n], h, w, i, j);
            let d2 = divergence(&p[2 * n..3 * n], &p[3 * n..], h, w, i, j);
            out[q] = u[q] + dx + t.theta * d1;
            out[n + q] = u[n + q] + dy + t.theta * d2;
        }
    }
    out
}

/// The dual step at every pixel: `p ← (p + τ/θ·∇u) / (1 + τ/θ·|∇u|)` with forward
/// differences (0 at the last row or column), for each of `u`'s two planes.
pub fn dual(u: &[f64], p: &[f64], h: usize, w: usize, t: &Tvl1) -> Vec<f64> {
    let n = h * w;
    let s = t.tau / t.theta;
    let mut out = vec![0.0; 4 * n];
    for k in 0..2 {
        let uk = &u[k * n..(k + 1) * n];
        for i in 0..h {
            for j in 0..w {
                let q = i * w + j;
                let ux = if j + 1 < w { uk[q + 1] - uk[q] } else { 0.0 };
                let uy = if i + 1 < h { uk[q + w] - uk[q] } else { 0.0 };
                let norm = 1.0 + s * (ux * ux + uy * uy).sqrt();
                out[2 * k * n + q] = (p[2 * k * n + q] + s * ux) / norm;
                out[(2 * k + 1) * n + q] = (p[(2 * k + 1) * n + q] + s * uy) / norm;
            }
        }
    }
    out
}

/// A flow at `(h2, w2)` brought to `(h, w)`: bilinear, each pixel's centre mapped to the
/// coarse grid, the vectors scaled by the sides' ratios.
pub fn upsample_flow(f: &[f64], (h2, w2): (usize, usize), (h, w): (usize, usize)) -> Vec<f64> {
    let (sx, sy) = (w2 as f64 / w as f64, h2 as f64 / h as f64);
    let n2 = h2 * w2;
    let mut out = Vec::with_capacity(2 * h * w);
    for (k, scale) in [(0, 1.0 / sx), (1, 1.0 / sy)] {
        let plane = &f[k * n2..(k + 1) * n2];
        for i in 0..h {
            for j in 0..w {
                let x = (j as f64 + 0.5) * sx - 0.5;
                let y = (i as f64 + 0.5) * sy - 0.5;
                out.push(scale * sample(plane, h2, w2, x, y));
            }
        }
    }
    out
}

/// TV-L1 flow from `i0` to `i1` (grey planes of `h × w`): a pyramid of 2×2 means down to
/// `min_side`, at each scale from the coarsest `warps` linearizations of `iterations`
/// primal-dual steps each, the flow carried up by [`upsample_flow`] and the dual variable
/// started at 0.
pub fn tvl1(i0: &[f64], i1: &[f64], h: usize, w: usize, t: &Tvl1) -> Vec<f64> {
    let mut levels = vec![(i0.to_vec(), i1.to_vec(), h, w)];
    while {
        let (_, _, lh, lw) = levels[levels.len() - 1];
        lh.min(lw) / 2 >= t.min_side
    } {
        let (a, b, lh, lw) = &levels[levels.len() - 1];
        let (a, b) = (downsample(a, 1, *lh, *lw), downsample(b, 1, *lh, *lw));
        levels.push((a, b, lh / 2, lw / 2));
    }
    let mut flow: Option<(Vec<f64>, usize, usize)> = None;
    for (a, b, lh, lw) in levels.iter().rev() {
        let (lh, lw) = (*lh, *lw);
        let mut u = match &flow {
            None => vec![0.0; 2 * lh * lw],
            Some((f, fh, fw)) => upsample_flow(f, (*fh, *fw), (lh, lw)),
        };
        let image = with_gradient(b, lh, lw);
        let mut p = vec![0.0; 4 * lh * lw];
        for _ in 0..t.warps {
            let prep = prepare(a, &warp(&image, 3, lh, lw, &u), &u);
            for _ in 0..t.iterations {
                u = primal(&u, &p, &prep, lh, lw, t);
                p = dual(&u, &p, lh, lw, t);
            }
        }
        flow = Some((u, lh, lw));
    }
    flow.expect("one level at least").0
}

/// Ruder et al.'s reliability of `backward` (from frame B to frame A, `h × w`) given
/// `forward` (A to B): 0 where the two disagree, |w + ŵ|² > 0.01·(|w|² + |ŵ|²) + 0.5 with
/// ŵ = `forward`(p + w(p)) (occluded or disoccluded), or at motion boundaries,
/// |∇u|² + |∇v|² > 0.01·|w|² + 0.002 (centered gradient of `backward`); 1 elsewhere.
pub fn reliability(backward: &[f64], forward: &[f64], h: usize, w: usize) -> Vec<f64> {
    let n = h * w;
    let gu = gradient(&backward[..n], h, w);
    let gv = gradient(&backward[n..], h, w);
    (0..n)
        .map(|q| {
            let (i, j) = (q / w, q % w);
            let (u, v) = (backward[q], backward[n + q]);
            let (x, y) = (j as f64 + u, i as f64 + v);
            let fu = sample(&forward[..n], h, w, x, y);
            let fv = sample(&forward[n..], h, w, x, y);
            let sum = (u + fu).powi(2) + (v + fv).powi(2);
            let sizes = u * u + v * v + fu * fu + fv * fv;
            let grad = gu[q].powi(2) + gu[n + q].powi(2) + gv[q].powi(2) + gv[n + q].powi(2);
            let inconsistent = sum > 0.01 * sizes + 0.5;
            let boundary = grad > 0.01 * (u * u + v * v) + 0.002;
            if inconsistent || boundary {
                0.0
            } else {
                1.0
            }
        })
        .collect()
}

/// The mean endpoint error of `flow` against `truth` where `valid` (all where `None`).
pub fn epe(flow: &[f64], truth: &[f64], valid: Option<&[bool]>) -> f64 {
    let n = flow.len() / 2;
    let (mut sum, mut count) = (0.0, 0usize);
    for q in 0..n {
        if valid.is_some_and(|v| !v[q]) {
            continue;
        }
        sum += ((flow[q] - truth[q]).powi(2) + (flow[n + q] - truth[n + q]).powi(2)).sqrt();
        count += 1;
    }
    sum / count.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth textured plane: sums of sines.
    fn texture(h: usize, w: usize, x0: f64, y0: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(h * w);
        for i in 0..h {
            for j in 0..w {
                let (x, y) = (j as f64 + x0, i as f64 + y0);
                let v = (x * 0.31).sin() * (y * 0.23).cos() + 0.5 * (x * 0.11 + y * 0.17).sin();
                out.push(128.0 + 60.0 * v);
            }
        }
        out
    }

    const PARAMS: Tvl1 = Tvl1 {
        lambda: 0.15,
        theta: 0.3,
        tau: 0.25,
        warps: 5,
        iterations: 30,
        min_side: 8,
    };

    #[test]
    fn a_known_translation_is_found() {
        // Frame B is frame A moved by (1.5, −0.75): A(p) = B(p + (1.5, −0.75)).
        let (h, w) = (40, 48);
        let a = texture(h, w, 0.0, 0.0);
        let b = texture(h, w, -1.5, 0.75);
        let f = tvl1(&a, &b, h, w, &PARAMS);
        let n = h * w;
        let mut truth = vec![1.5; n];
        truth.extend(vec![-0.75; n]);
        // Away from the border, where the clamped samples do not hold the motion.
        let inner: Vec<bool> = (0..n)
            .map(|q| (4..h - 4).contains(&(q / w)) && (4..w - 4).contains(&(q % w)))
            .collect();
        let e = epe(&f, &truth, Some(&inner));
        assert!(e < 0.05, "EPE {e}");
    }

    #[test]
    fn ops_on_known_values() {
        // 2×2 means, an odd column dropped.
        assert_eq!(downsample(&[1.0, 3.0, 9.0, 5.0, 7.0, 9.0], 1, 2, 3), [4.0]);
        // Bilinear between four pixels, and clamped.
        let p = [0.0, 10.0, 20.0, 30.0];
        assert_eq!(sample(&p, 2, 2, 0.5, 0.5), 15.0);
        assert_eq!(sample(&p, 2, 2, -3.0, 7.0), 20.0);
        // A ramp's centered gradient is its slope, halved at the borders.
        let g = gradient(&[0.0, 2.0, 4.0, 6.0], 1, 4);
        assert_eq!(&g[..4], [1.0, 2.0, 2.0, 1.0]);
        // Flow doubled in size and length.
        let up = upsample_flow(&[1.0, 2.0], (1, 1), (2, 2));
        assert_eq!(up, [2.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 4.0]);
    }

    #[test]
    fn consistent_flows_are_reliable_and_occlusions_not() {
        let (h, w) = (6, 8);
        let n = h * w;
        let mut fwd = vec![2.0; n];
        fwd.extend(vec![0.0; n]);
        let mut bwd = vec![-2.0; n];
        bwd.extend(vec![0.0; n]);
        assert!(reliability(&bwd, &fwd, h, w).iter().all(|&c| c == 1.0));
        // The forward flow disagrees on a patch: unreliable where the backward flow lands
        // in it.
        for (q, f) in fwd.iter_mut().enumerate().take(n) {
            if q % w >= 4 {
                *f = 0.0;
            }
        }
        let r = reliability(&bwd, &fwd, h, w);
        assert_eq!(r[w + 7], 0.0, "{r:?}");
        assert_eq!(r[w + 3], 1.0, "{r:?}");
    }
}
