//! Spreading a 1-D launch over a 2-D grid of workgroups.
//!
//! Each dimension holds at most `max_compute_workgroups_per_dimension` (65,535 on most
//! adapters) workgroups; a ReLU over conv1 at 512×512 needs 65,536 groups of 256, so large
//! launches use a second dimension. Shaders rebuild the linear index as
//! `gid.x + gid.y * num_workgroups.x * WORKGROUP_SIZE` and return when it is past the end.

use crate::error::{GpuError, Result};

/// Workgroup counts `[x, y, 1]` covering `invocations` threads in groups of `workgroup_size`.
///
/// Errors when even a square grid of `max_per_dim × max_per_dim` groups is too small.
pub fn grid(invocations: u64, workgroup_size: u32, max_per_dim: u32) -> Result<[u32; 3]> {
    let groups = invocations.div_ceil(workgroup_size as u64).max(1);
    let max = max_per_dim as u64;
    if groups <= max {
        return Ok([groups as u32, 1, 1]);
    }
    let y = groups.div_ceil(max);
    if y > max {
        return Err(GpuError::GridTooLarge {
            groups,
            max: max * max,
        });
    }
    // Spread evenly so the wasted tail is less than one row.
    let x = groups.div_ceil(y);
    Ok([x as u32, y as u32, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_launch_is_one_row() {
        assert_eq!(grid(1, 256, 65535).unwrap(), [1, 1, 1]);
        assert_eq!(grid(257, 256, 65535).unwrap(), [2, 1, 1]);
        assert_eq!(grid(0, 256, 65535).unwrap(), [1, 1, 1]);
    }

    #[test]
    fn relu_over_conv1_at_512_needs_two_rows() {
        // 64 channels × 512 × 512 = 16,777,216 elements = 65,536 groups of 256.
        let [x, y, z] = grid(64 * 512 * 512, 256, 65535).unwrap();
        assert_eq!((y, z), (2, 1));
        assert!(x as u64 * y as u64 >= 65536 && x <= 65535);
    }

    #[test]
    fn too_many_groups_is_an_error() {
        let err = grid(65535u64 * 65535 * 256 + 1, 256, 65535).unwrap_err();
        assert!(matches!(err, GpuError::GridTooLarge { .. }));
        assert!(err.to_string().contains("smaller image"));
    }
}
