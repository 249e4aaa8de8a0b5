//! Region copies between `c × h × w` tensors (tiled evaluation's windows).

/// What happens to the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The region is overwritten; the rest is kept.
    Copy,
    /// The region is overwritten and the rest of its channels' planes set to zero.
    CopyZeroRest,
    /// The region is added onto; the rest is kept.
    Add,
}

/// Copies a `region = [channels, h, w]` block of `src` (of shape `src_dims = [c, h, w]`),
/// whose first element is at `src_at = [channel, row, column]`, into `dst` (of shape
/// `dst_dims`) at `dst_at`, as `mode` says.
pub fn window(
    (src, src_dims, src_at): (&[f64], [usize; 3], [usize; 3]),
    (dst, dst_dims, dst_at): (&mut [f64], [usize; 3], [usize; 3]), region: [usize; 3], mode: Mode,
) {
    assert_eq!(src.len(), src_dims.iter().product(), "window: source shape");
    assert_eq!(
        dst.len(),
        dst_dims.iter().product(),
        "window: destination shape"
    );
    for k in 0..3 {
        assert!(
            src_at[k] + region[k] <= src_dims[k],
            "window: source region"
        );
        assert!(
            dst_at[k] + region[k] <= dst_dims[k],
            "window: destination region"
        );
    }
    let [_, sh, sw] = src_dims;
    let [_, dh, dw] = dst_dims;
    for c in 0..region[0] {
        let (sc, dc) = (src_at[0] + c, dst_at[0] + c);
        if mode == Mode::CopyZeroRest {
            dst[dc * dh * dw..(dc + 1) * dh * dw].fill(0.0);
        }
        for y in 0..region[1] {
            for x in 0..region[2] {
                let v = src[(sc * sh + src_at[1] + y) * sw + src_at[2] + x];
                let d = &mut dst[(dc * dh + dst_at[1] + y) * dw + dst_at[2] + x];
                match mode {
                    Mode::Add => *d += v,
                    _ => *d = v,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_region_and_zeroes_or_keeps_the_rest() {
        // src 1×2×3: 0 1 2 / 3 4 5; its right 2×2 column block into a 1×3×3 of 9s at (1, 0).
        let src: Vec<f64> = (0..6).map(f64::from).collect();
        let run = |init: f64, mode| {
            let mut dst = vec![init; 9];
            let s = (&src[..], [1, 2, 3], [0, 0, 1]);
            window(s, (&mut dst[..], [1, 3, 3], [0, 1, 0]), [1, 2, 2], mode);
            dst
        };
        assert_eq!(
            run(9.0, Mode::Copy),
            vec![9., 9., 9., 1., 2., 9., 4., 5., 9.]
        );
        let zero = run(9.0, Mode::CopyZeroRest);
        assert_eq!(zero, vec![0., 0., 0., 1., 2., 0., 4., 5., 0.]);
        let add = run(1.0, Mode::Add);
        assert_eq!(add, vec![1., 1., 1., 2., 3., 1., 5., 6., 1.]);
    }
}
