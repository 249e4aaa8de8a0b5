//! Exact tiled evaluation's plan: how an image too large for the GPU's memory is split into
//! windows that one smaller graph runs on in turn.
//!
//! Every loss term is a sum over positions (content and style) or over neighbor pairs of
//! the image (total variation, computed on the full image). So each tapped layer's positions
//! are shared among tiles: a tile *owns* a rectangle of the image, and at a layer `s` times
//! smaller it owns the positions whose `s × s` footprint lies in that rectangle. Its *window*
//! adds a halo as wide as the receptive-field radius of the deepest tap, so its own positions
//! are computed exactly as in the untiled graph. Window and own edges lie on the pooling grid
//! (multiples of the deepest tap's scale), and windows touching the image's edge end there,
//! so borders keep their true zero padding and odd sizes floor as they do untiled.

use crate::error::VggError;
use crate::layers::{layers, LayerId, LayerKind};
use serde::Serialize;

/// Rows `y .. y + h` and columns `x .. x + w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rect {
    /// First row.
    pub y: u32,
    /// First column.
    pub x: u32,
    /// Rows.
    pub h: u32,
    /// Columns.
    pub w: u32,
}

impl Rect {
    /// Positions of this rectangle of the image at a layer `scale` times smaller whose size
    /// is `lh × lw`: those whose footprint lies inside it (the rectangle's start is a multiple
    /// of `scale`; an end at the image's edge takes the layer's floored edge).
    pub fn at_scale(&self, scale: u32, lh: u32, lw: u32) -> Rect {
        let (y0, x0) = (self.y / scale, self.x / scale);
        let y1 = ((self.y + self.h) / scale).min(lh);
        let x1 = ((self.x + self.w) / scale).min(lw);
        Rect {
            y: y0,
            x: x0,
            h: y1.saturating_sub(y0),
            w: x1.saturating_sub(x0),
        }
    }

    /// Positions: `h · w`.
    pub fn area(&self) -> u64 {
        self.h as u64 * self.w as u64
    }
}

/// One tile: the window the graph runs on, and the part of it whose positions it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tile {
    /// The window, in image pixels; every tile's has the same size.
    pub window: Rect,
    /// Its own positions, in image pixels; the tiles' own rectangles partition the image.
    pub own: Rect,
}

/// How an image is split into tiles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tiling {
    /// Image height.
    pub height: u32,
    /// Image width.
    pub width: u32,
    /// Receptive-field radius of the deepest tap, in pixels: the least halo on every side of
    /// a tile's own rectangle that does not lie on the image's edge.
    pub halo: u32,
    /// The pooling grid: windows and own rectangles start on multiples of it.
    pub align: u32,
    /// The tiles, row by row.
    pub tiles: Vec<Tile>,
}

/// The receptive-field radius of `deepest` in image pixels (each 3×3 convolution widens it by
/// its layer's scale; a pooling's footprint is its output's) and the layer's scale.
pub fn halo_and_scale(deepest: LayerId) -> (u32, u32) {
    let (mut radius, mut scale) = (0, 1);
    for l in &layers()[..=deepest.index()] {
        match l.kind {
            LayerKind::Conv => radius += scale,
            LayerKind::Pool => scale *= 2,
            LayerKind::Relu => {}
        }
    }
    (radius, scale)
}

/// One axis of a tiling: each tile's window start and its own range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    own: (u32, u32),
}

impl Tiling {
    /// The whole image as one tile.
    pub fn whole(height: u32, width: u32) -> Tiling {
        let all = Rect {
            y: 0,
            x: 0,
            h: height,
            w: width,
        };
        Tiling {
            height,
            width,
            halo: 0,
            align: 1,
            tiles: vec![Tile {
                window: all,
                own: all,
            }],
        }
    }

    /// Tiles of `height × width` with windows of at most `max_window = (h, w)` for a graph to
    /// `deepest`. An axis that fits takes the whole image. Errors when a window cannot hold
    /// its halo on both sides plus a step of the pooling grid.
    pub fn new(
        height: u32, width: u32, max_window: (u32, u32), deepest: LayerId,
    ) -> Result<Tiling, VggError> {
        let (halo, align) = halo_and_scale(deepest);
        let rows = spans(height, max_window.0, halo, align);
        let cols = spans(width, max_window.1, halo, align);
        let (Some((wh, rows)), Some((ww, cols))) = (rows, cols) else {
            return Err(VggError::TileTooSmall {
                window: max_window,
                least: Self::least_window(deepest),
                layer: deepest.name().to_string(),
            });
        };
        let mut tiles = Vec::with_capacity(rows.len() * cols.len());
        for r in &rows {
            for c in &cols {
                tiles.push(Tile {
                    window: Rect {
                        y: r.start,
                        x: c.start,
                        h: wh,
                        w: ww,
                    },
                    own: Rect {
                        y: r.own.0,
                        x: c.own.0,
                        h: r.own.1 - r.own.0,
                        w: c.own.1 - c.own.0,
                    },
                });
            }
        }
        Ok(Tiling {
            height,
            width,
            halo,
            align,
            tiles,
        })
    }

    /// The smallest largest-window side that tiles any axis for a graph to `deepest`.
    pub fn least_window(deepest: LayerId) -> u32 {
        let (halo, align) = halo_and_scale(deepest);
        // A window is the axis less a multiple of the grid, so up to a step below the largest.
        needed_window(halo, align) + align
    }

    /// Whether there is more than one tile.
    pub fn is_tiled(&self) -> bool {
        self.tiles.len() > 1
    }

    /// `(height, width)` of every window.
    pub fn window(&self) -> (u32, u32) {
        let w = self.tiles[0].window;
        (w.h, w.w)
    }

    /// The work of one iteration relative to the untiled graph's: each window runs forward
    /// twice and backward once, where the untiled graph runs each once (and a backward costs
    /// about a forward).
    pub fn cost(&self) -> f64 {
        if !self.is_tiled() {
            return 1.0;
        }
        let (h, w) = self.window();
        let windows = self.tiles.len() as f64 * h as f64 * w as f64;
        3.0 * windows / (2.0 * self.height as f64 * self.width as f64)
    }
}

/// The shortest window that tiles: a halo on each side, rounded up to the grid, and two
/// steps of the grid (one own step, one for the rounding of window starts).
fn needed_window(halo: u32, align: u32) -> u32 {
    (2 * halo).div_ceil(align) * align + 2 * align
}

/// Splits an axis of `len` pixels into windows of one length (at most `max`, and `len` less
/// a multiple of `align`, so that the last one ends at the edge) starting on multiples of
/// `align`, and own ranges on multiples of `align` that lie `halo` inside their window's
/// sides unless those are the image's. `None` when a window that short cannot tile.
fn spans(len: u32, max: u32, halo: u32, align: u32) -> Option<(u32, Vec<Span>)> {
    if max >= len {
        let all = Span {
            start: 0,
            own: (0, len),
        };
        return Some((len, vec![all]));
    }
    let window = len - (len - max).div_ceil(align) * align;
    if window < needed_window(halo, align) {
        return None;
    }
    let down = |v: u32| v / align * align;
    let last_start = len - window;
    // Greedy: each own range reaches as far as its window allows. That fixes how many tiles
    // there are; then the cuts are spread evenly, where the windows allow it.
    let mut greedy = vec![0];
    let mut start = 0;
    while start + window < len {
        let cut = down(start + window - halo);
        greedy.push(cut);
        start = down(cut - halo).min(last_start);
    }
    greedy.push(len);
    let count = greedy.len() - 1;
    let even: Vec<u32> = (0..=count)
        .map(|i| match i {
            0 => 0,
            i if i == count => len,
            i => {
                let at = (i as u64 * len as u64 / count as u64) as u32;
                (at + align / 2) / align * align
            }
        })
        .collect();
    let from_cuts = |cuts: &[u32]| -> Option<Vec<Span>> {
        let mut out = Vec::with_capacity(count);
        for pair in cuts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let start = if a == 0 {
                0
            } else {
                down(a.checked_sub(halo)?).min(last_start)
            };
            let starts_ok = a == 0 || a >= start + halo;
            let ends_ok = b <= start + window - halo || (b == len && start + window == len);
            if a >= b || !starts_ok || !ends_ok {
                return None;
            }
            out.push(Span { start, own: (a, b) });
        }
        Some(out)
    };
    let spans = from_cuts(&even).or_else(|| from_cuts(&greedy))?;
    Some((window, spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relu5_1() -> LayerId {
        LayerId::parse("relu5_1").unwrap()
    }

    #[test]
    fn the_deepest_style_layer_sees_70_pixels_each_way() {
        // 2·1 + 2·2 + 4·4 + 4·8 + 1·16 (conv5_1 at 1/16).
        assert_eq!(halo_and_scale(relu5_1()), (70, 16));
        assert_eq!(halo_and_scale(LayerId::parse("relu1_1").unwrap()), (1, 1));
        assert_eq!(halo_and_scale(LayerId::parse("pool1").unwrap()), (2, 2));
    }

    /// Own rectangles partition the image; every window has one size, lies inside the image,
    /// starts on the grid, and holds its own rectangle with a halo except at the image's edge.
    fn check(t: &Tiling) {
        let mut covered = vec![0u8; t.height as usize * t.width as usize];
        let (wh, ww) = t.window();
        for tile in &t.tiles {
            let (win, own) = (tile.window, tile.own);
            assert_eq!((win.h, win.w), (wh, ww));
            assert!(
                win.y + win.h <= t.height && win.x + win.w <= t.width,
                "{t:?}"
            );
            assert_eq!(win.y % t.align, 0);
            assert_eq!(win.x % t.align, 0);
            for (o, n, wo, wn, len) in [
                (own.y, own.h, win.y, win.h, t.height),
                (own.x, own.w, win.x, win.w, t.width),
            ] {
                assert!(o == 0 || o >= wo + t.halo, "{tile:?}");
                assert!(o + n == len || o + n + t.halo <= wo + wn, "{tile:?}");
                assert!(o.is_multiple_of(t.align));
                assert!(n > 0);
            }
            for y in own.y..own.y + own.h {
                for x in own.x..own.x + own.w {
                    covered[(y * t.width + x) as usize] += 1;
                }
            }
        }
        assert!(
            covered.iter().all(|&c| c == 1),
            "own rectangles overlap or leave gaps"
        );
    }

    #[test]
    fn tilings_partition_the_image() {
        for (h, w, m) in [
            (1536, 2048, 600),
            (1537, 2051, 600),
            (96, 250, 192),
            (300, 301, 193),
            (1000, 1000, 192),
            (4000, 3000, 1000),
            (512, 512, 512),
        ] {
            let t = Tiling::new(h, w, (m, m), relu5_1()).unwrap();
            check(&t);
            assert_eq!(t.is_tiled(), m < h.max(w), "{h}×{w} in {m}");
            assert!(t.window().0 <= m && t.window().1 <= m);
        }
    }

    #[test]
    fn windows_too_small_for_the_halo_are_an_error() {
        let least = Tiling::least_window(relu5_1());
        assert_eq!(least, 192);
        assert!(Tiling::new(1000, 1000, (least, least), relu5_1()).is_ok());
        let e = Tiling::new(1000, 1000, (least - 16, least - 16), relu5_1()).unwrap_err();
        assert!(e.to_string().contains("192"), "{e}");
    }

    #[test]
    fn own_rectangles_map_onto_each_layer() {
        // A 1537-row image: pool4's output has ⌊1537/16⌋ = 96 rows; a tile owning rows
        // 1024..1537 owns rows 64..96 there.
        let r = Rect {
            y: 1024,
            x: 0,
            h: 513,
            w: 32,
        };
        assert_eq!(
            r.at_scale(16, 96, 2),
            Rect {
                y: 64,
                x: 0,
                h: 32,
                w: 2
            }
        );
        assert_eq!(r.at_scale(1, 1537, 32), r);
    }

    #[test]
    fn the_cost_counts_two_forwards_and_a_backward_per_window() {
        assert_eq!(Tiling::whole(100, 100).cost(), 1.0);
        let t = Tiling::new(1536, 2048, (600, 600), relu5_1()).unwrap();
        let (h, w) = t.window();
        let want = 3.0 * (t.tiles.len() as f64 * (h * w) as f64) / (2.0 * 1536.0 * 2048.0);
        assert!((t.cost() - want).abs() < 1e-12);
        assert!(t.cost() > 1.5);
    }
}
