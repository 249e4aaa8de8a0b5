//! dot, asum, axpy, scale and copy, with coefficients from the scalar buffer.

use nst_gpu::View;
use nst_kernels::Coef;
use nst_reference as r;
use nst_tests::{as_f32_exact, assert_close, random, ro, rw, with_gpu};

#[test]
fn vector_ops_match_reference() {
    with_gpu(|g| {
        let n = 70_001;
        let a = as_f32_exact(&random(90, n, -1.0, 1.0));
        let b = as_f32_exact(&random(91, n, -1.0, 1.0));
        let (ba, bb) = (g.upload("a", &a), g.upload("b", &b));
        let scalars = g.upload_f32("scalars", &[0.0, 0.0, 0.0, 4.0]);
        let (s, sw) = (View::whole(&scalars), rw(&scalars));
        let (v, ctx) = (&g.k.vector, &g.ctx);
        let dot_ab = v.dot(ctx, ro(&ba), ro(&bb), sw, 0).unwrap();
        let dot_aa = v.dot(ctx, ro(&ba), ro(&ba), sw, 1).unwrap();
        // b ← b + (−0.5 · (a·b) / (a·a)) · a, then b ← (2 · s[3]) · b
        let ratio = Coef::ratio(-0.5, Some(0), Some(1));
        let axpy = v.axpy(ctx, ratio, ro(&ba), rw(&bb), s).unwrap();
        let twice = Coef::ratio(2.0, Some(3), None);
        let scale = v.scale(ctx, twice, rw(&bb), s).unwrap();
        let dot_after = v.dot(ctx, ro(&ba), ro(&bb), sw, 2).unwrap();
        g.run(&[&dot_ab, &dot_aa, &axpy, &scale, &dot_after]);
        let (ab, aa) = (r::vector::dot(&a, &b), r::vector::dot(&a, &a));
        let mut want = b.clone();
        r::vector::axpy(-0.5 * ab / aa, &a, &mut want);
        r::vector::scale(8.0, &mut want);
        assert_close("b after axpy and scale", &g.read(&bb), &want, 1e-5, 1e-5);
        let after = r::vector::dot(&a, &want);
        assert_close(
            "dot products",
            &g.read(&scalars),
            &[ab, aa, after, 4.0],
            1e-3,
            1e-5,
        );
    });
}

#[test]
fn asum_and_copy_match_reference() {
    with_gpu(|g| {
        let n = 70_001;
        let a = as_f32_exact(&random(92, n, -1.0, 1.0));
        let ba = g.upload("a", &a);
        let bb = g.zeros("b", n);
        let scalars = g.upload_f32("scalars", &[0.0, -3.0]);
        let v = &g.k.vector;
        let asum = v.asum(&g.ctx, ro(&ba), rw(&scalars), 0).unwrap();
        let half = Coef::ratio(0.5, Some(1), None);
        let copy = v.copy(&g.ctx, half, ro(&ba), rw(&bb), ro(&scalars));
        g.run(&[&asum, &copy.unwrap()]);
        let mut want = vec![0.0; n];
        r::vector::copy(-1.5, &a, &mut want);
        assert_close("b = -1.5 a", &g.read(&bb), &want, 1e-7, 1e-6);
        assert_close(
            "asum",
            &g.read(&scalars)[..1],
            &[r::vector::asum(&a)],
            1e-3,
            1e-5,
        );
    });
}
