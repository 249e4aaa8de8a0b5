//! Launches that cannot run are errors that say why, not panics or validation failures.

use nst_gpu::{EntryPoint, GpuError, Groups, View, ViewMut};
use nst_kernels::ConvShape;
use nst_tests::{ro, rw, with_gpu};

#[test]
fn shape_mismatches_are_errors_not_panics() {
    with_gpu(|g| {
        let (x, w, b, y) = (
            g.zeros("x", 10),
            g.zeros("w", 9),
            g.zeros("b", 1),
            g.zeros("y", 11),
        );
        let s = ConvShape {
            c_in: 1,
            c_out: 1,
            h: 2,
            w: 5,
        };
        let err =
            g.k.conv2d
                .forward(&g.ctx, s, ro(&x), ro(&w), ro(&b), rw(&y), false)
                .err()
                .unwrap();
        assert!(err.to_string().contains("conv2d output"), "{err}");
        let scalars = g.zeros("s", 2);
        let err =
            g.k.mse
                .forward(&g.ctx, ro(&x), ro(&x), rw(&scalars), 5)
                .err()
                .unwrap();
        assert!(err.to_string().contains("scalar slot 5"), "{err}");
    });
}

#[test]
fn a_binding_over_the_limit_is_a_clear_error() {
    with_gpu(|g| {
        let limit = g.ctx.max_binding_bytes;
        // A range one element larger than the limit (the buffer itself is never bound).
        let big = g.zeros("small", 4);
        let n = limit / 4 + 1;
        let (x, y) = (View::range(&big, 0, n), ViewMut::range(&big, 0, n));
        let err = g.k.relu.forward(&g.ctx, x, y).err().unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("max_storage_buffer_binding_size") && msg.contains("smaller image"),
            "{msg}"
        );
    });
}

/// A launch is checked against its entry point's contract: a read-write slot needs a
/// `ViewMut`, a read slot a `View`, and every slot one bind.
#[test]
fn a_launch_that_breaks_its_contract_is_an_error() {
    with_gpu(|g| {
        let module = nst_kernels::relu::SHADER
            .compile(&g.ctx)
            .expect("relu.wgsl");
        let relu = EntryPoint::new(&g.ctx, &module, &nst_kernels::relu::FORWARD, &[]).unwrap();
        let (x, y) = (g.zeros("x", 4), g.zeros("y", 4));
        let u = [4u32, 0];
        let groups = Groups::Exact([1, 1, 1]);
        let swapped = relu.launch(&g.ctx, &u, &[rw(&y).into(), ro(&x).into()], groups);
        let msg = swapped.err().unwrap().to_string();
        assert!(
            msg.contains("binding contract") && msg.contains("binding 1"),
            "{msg}"
        );
        let short = relu.launch(&g.ctx, &u, &[ro(&x).into()], groups);
        assert!(
            matches!(short, Err(GpuError::Contract(_))),
            "{:?}",
            short.err()
        );
        relu.launch(&g.ctx, &u, &[ro(&x).into(), rw(&y).into()], groups)
            .unwrap();
    });
}
