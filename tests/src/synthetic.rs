//! Synthetic frame pairs with known motion, for the optical flow's tests: a photo moved by an
//! affine camera motion (pan, zoom, rotation about the centre), with a textured patch moving
//! on its own in front of it. The ground-truth flow and where it holds are known exactly.

use nst_reference::flow::sample;
use nst_transfer::image::Image;

/// Two frames, the flow from the first to the second, and where it is defined.
pub struct Pair {
    /// The first frame.
    pub a: Image,
    /// The second frame.
    pub b: Image,
    /// The true flow from `a` to `b`: `u` then `v`, in pixels.
    pub truth: Vec<f64>,
    /// Where the truth holds: pixels of `a` still seen in `b`, inside it.
    pub valid: Vec<bool>,
}

/// The camera's motion from the first frame to the second, about the image's centre.
#[derive(Clone, Copy, Debug)]
pub struct Motion {
    /// Translation in pixels.
    pub shift: (f64, f64),
    /// Scale (1: none).
    pub zoom: f64,
    /// Rotation in degrees.
    pub degrees: f64,
    /// The patch's own translation in whole pixels.
    pub patch: (i64, i64),
}

impl Motion {
    /// Where the camera motion takes point `(x, y)` of the first frame in the second.
    fn apply(&self, (x, y): (f64, f64), (cx, cy): (f64, f64)) -> (f64, f64) {
        let (s, c) = self.degrees.to_radians().sin_cos();
        let (dx, dy) = (x - cx, y - cy);
        let rx = self.zoom * (c * dx - s * dy);
        let ry = self.zoom * (s * dx + c * dy);
        (cx + rx + self.shift.0, cy + ry + self.shift.1)
    }

    /// The inverse of [`Motion::apply`].
    fn invert(&self, (x, y): (f64, f64), (cx, cy): (f64, f64)) -> (f64, f64) {
        let (s, c) = self.degrees.to_radians().sin_cos();
        let (dx, dy) = (x - self.shift.0 - cx, y - self.shift.1 - cy);
        let (dx, dy) = (dx / self.zoom, dy / self.zoom);
        (cx + c * dx + s * dy, cy - s * dx + c * dy)
    }
}

/// A pair from `photo` (any size; its planes are sampled directly) at its size, under `motion`,
/// with a `side`-pixel patch at `(x0, y0)` in the first frame.
pub fn pair(photo: &Image, motion: Motion, side: usize, (x0, y0): (usize, usize)) -> Pair {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let n = w * h;
    let centre = ((w - 1) as f64 / 2.0, (h - 1) as f64 / 2.0);
    let planes: Vec<Vec<f64>> = (0..3)
        .map(|k| {
            photo.data()[k * n..(k + 1) * n]
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    // The patch: a colour checkerboard of 3-pixel squares with a diagonal ramp.
    let texture = |k: usize, i: usize, j: usize| -> f64 {
        let check = ((i / 3 + j / 3) % 2) as f64;
        0.15 + 0.5 * check + 0.3 * ((i + 2 * j + 5 * k) % side) as f64 / side as f64
    };
    let inside = |(x, y): (i64, i64), (px, py): (i64, i64)| {
        x >= px && x < px + side as i64 && y >= py && y < py + side as i64
    };
    let pa = (x0 as i64, y0 as i64);
    let pb = (pa.0 + motion.patch.0, pa.1 + motion.patch.1);
    let mut a = vec![0.0f32; 3 * n];
    let mut b = vec![0.0f32; 3 * n];
    let mut truth = vec![0.0; 2 * n];
    let mut valid = vec![false; n];
    for i in 0..h {
        for j in 0..w {
            let q = i * w + j;
            let p = (j as i64, i as i64);
            let back = motion.invert((j as f64, i as f64), centre);
            for k in 0..3 {
                a[k * n + q] = match inside(p, pa) {
                    true => texture(k, i - y0, j - x0),
                    false => planes[k][q],
                } as f32;
                b[k * n + q] = match inside(p, pb) {
                    true => texture(k, (p.1 - pb.1) as usize, (p.0 - pb.0) as usize),
                    false => sample(&planes[k], h, w, back.0, back.1),
                } as f32;
            }
            let (to, seen) = match inside(p, pa) {
                true => {
                    let to = ((p.0 + motion.patch.0) as f64, (p.1 + motion.patch.1) as f64);
                    (to, true)
                }
                false => {
                    let to = motion.apply((j as f64, i as f64), centre);
                    let cell = (to.0.round() as i64, to.1.round() as i64);
                    (to, !inside(cell, pb))
                }
            };
            truth[q] = to.0 - j as f64;
            truth[n + q] = to.1 - i as f64;
            let within =
                to.0 >= 1.0 && to.0 <= (w - 2) as f64 && to.1 >= 1.0 && to.1 <= (h - 2) as f64;
            // The camera's samples near the border came from outside the photo (clamped).
            let sampled = back.0 >= 0.0
                && back.0 <= (w - 1) as f64
                && back.1 >= 0.0
                && back.1 <= (h - 1) as f64;
            valid[q] = seen && within && (inside(p, pa) || sampled);
        }
    }
    let image = |d| Image::new(w as u32, h as u32, d).expect("sizes match");
    Pair {
        a: image(a),
        b: image(b),
        truth,
        valid,
    }
}
