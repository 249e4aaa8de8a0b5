//! A summary of a weights file, for `nst weights info`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::{hex_sha256, load_bytes, read_file, tensors_sha256, META_TENSORS_SHA256};
use crate::{InputConvention, LayerSpec, Layout, WeightsError, TENSORS_SHA256, VGG19_LAYERS};

/// What `nst weights info` shows. [`Display`](fmt::Display) gives the
/// human-readable summary; serialize it (serde) for `--json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightsInfo {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_size: u64,
    /// Its SHA-256, lower-case hex.
    pub file_sha256: String,
    /// [`tensors_sha256`](crate::tensors_sha256) of its tensor data, computed now.
    pub tensors_sha256: String,
    /// The tensor hash recorded in its `tensors_sha256` metadata when it was written, `None`
    /// when it has none (files converted before it was recorded, other exporters' files).
    /// [`info`] fails when it differs from [`tensors_sha256`](Self::tensors_sha256).
    pub tensors_sha256_recorded: Option<String>,
    /// Whether its tensor data are the published weights' ([`TENSORS_SHA256`]).
    pub published: bool,
    /// How its tensors are named.
    pub layout: Layout,
    /// What input the weights expect.
    pub input_convention: InputConvention,
    /// [`InputConvention::description`] of it.
    pub input_convention_description: String,
    /// The `source` metadata, if any.
    pub source: Option<String>,
    /// The `license` metadata, if any.
    pub license: Option<String>,
    /// All of the file's metadata.
    pub metadata: BTreeMap<String, String>,
    /// The 16 convolution layers, in order.
    pub layers: Vec<LayerInfo>,
    /// Every tensor read, in layer order (weight, then bias).
    pub tensors: Vec<TensorStats>,
}

/// One convolution layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerInfo {
    /// `conv1_1` … `conv5_4`.
    pub name: String,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// The weight tensor's name in the file.
    pub weight: String,
    /// The bias tensor's name in the file.
    pub bias: String,
}

/// One tensor's shape and statistics of its (dequantized) values, summed in
/// `f64` in storage order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorStats {
    /// Its name in the file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The sum of its values.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_of_squares: f64,
}

/// Loads and validates the weights file at `path` (as [`load`](crate::load)
/// does), checks its tensor data against the hash recorded in it, if any
/// ([`WeightsError::TensorHashMismatch`] when they differ), and summarizes it.
pub fn info(path: &Path) -> Result<WeightsInfo, WeightsError> {
    info_with(path, &VGG19_LAYERS)
}

/// Whether `path` holds the published weights intact: a valid weights file
/// (as [`load`](crate::load) checks) that records the hash of its tensor data
/// ([`WeightsError::TensorHashNotRecorded`] if not), whose data still hash to
/// it ([`WeightsError::TensorHashMismatch`]), and whose data are the published
/// weights' ([`TENSORS_SHA256`]; [`WeightsError::NotPublished`] if not).
/// Fetching keeps a file already at its destination only if this passes.
pub fn check_published(path: &Path) -> Result<(), WeightsError> {
    check_published_with(path, &VGG19_LAYERS, TENSORS_SHA256)
}

pub(crate) fn check_published_with(
    path: &Path, arch: &[LayerSpec], published: &str,
) -> Result<(), WeightsError> {
    let bytes = read_file(path)?;
    let w = load_bytes(&bytes, path, arch, None)?;
    let actual = verified_tensors_sha256(path, &w)?;
    if !w.metadata.contains_key(META_TENSORS_SHA256) {
        return Err(WeightsError::TensorHashNotRecorded {
            path: path.to_path_buf(),
        });
    }
    if actual != published {
        return Err(WeightsError::NotPublished {
            path: path.to_path_buf(),
            actual,
        });
    }
    Ok(())
}

/// The tensor hash of `w`, read from `path`, if it matches the recorded one (or none is).
fn verified_tensors_sha256(path: &Path, w: &crate::Vgg19Weights) -> Result<String, WeightsError> {
    let actual = tensors_sha256(&w.layers);
    match w.metadata.get(META_TENSORS_SHA256) {
        Some(recorded) if !recorded.eq_ignore_ascii_case(&actual) => {
            Err(WeightsError::TensorHashMismatch {
                path: path.to_path_buf(),
                recorded: recorded.clone(),
                actual,
            })
        }
        _ => Ok(actual),
    }
}

pub(crate) fn info_with(path: &Path, arch: &[LayerSpec]) -> Result<WeightsInfo, WeightsError> {
    let bytes = read_file(path)?;
    let w = load_bytes(&bytes, path, arch, None)?;
    let tensors_sha256 = verified_tensors_sha256(path, &w)?;
    let mut layers = Vec::with_capacity(arch.len());
    let mut tensors = Vec::with_capacity(2 * arch.len());
    for (spec, layer) in arch.iter().zip(&w.layers) {
        let (weight, bias) = w.layout.tensor_names(spec);
        tensors.push(stats(
            &weight,
            vec![layer.c_out, layer.c_in, 3, 3],
            &layer.weight,
        ));
        tensors.push(stats(&bias, vec![layer.c_out], &layer.bias));
        layers.push(LayerInfo {
            name: layer.name.clone(),
            c_in: layer.c_in,
            c_out: layer.c_out,
            weight,
            bias,
        });
    }
    Ok(WeightsInfo {
        path: path.to_path_buf(),
        file_size: bytes.len() as u64,
        file_sha256: hex_sha256(&bytes),
        tensors_sha256_recorded: w.metadata.get(META_TENSORS_SHA256).cloned(),
        published: tensors_sha256 == TENSORS_SHA256,
        tensors_sha256,
        layout: w.layout,
        input_convention: w.convention,
        input_convention_description: w.convention.description().into(),
        source: w.metadata.get("source").cloned(),
        license: w.metadata.get("license").cloned(),
        metadata: w.metadata,
        layers,
        tensors,
    })
}

fn stats(name: &str, shape: Vec<usize>, values: &[f32]) -> TensorStats {
    let (sum, sum_of_squares) = values.iter().fold((0.0f64, 0.0f64), |(s, q), &v| {
        let v = f64::from(v);
        (s + v, q + v * v)
    });
    TensorStats {
        name: name.into(),
        shape,
        sum,
        sum_of_squares,
    }
}

impl fmt::Display for WeightsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown = "(not recorded)";
        writeln!(f, "File:    {}", self.path.display())?;
        writeln!(f, "Size:    {:.1} MB", self.file_size as f64 / 1e6)?;
        writeln!(f, "SHA-256: {}", self.file_sha256)?;
        // `info` has already refused a recorded hash that differs.
        let check = match (&self.tensors_sha256_recorded, self.published) {
            (Some(_), true) => "matches the hash recorded at conversion; the published weights",
            (Some(_), false) => {
                "matches the hash recorded at conversion; not the published weights"
            }
            (None, true) => "not recorded in the file; the published weights",
            (None, false) => "not recorded in the file, so unchecked; not the published weights",
        };
        writeln!(f, "Tensors: SHA-256 {} ({check})", self.tensors_sha256)?;
        writeln!(f, "Layout:  {}", self.layout)?;
        writeln!(f, "Source:  {}", self.source.as_deref().unwrap_or(unknown))?;
        writeln!(f, "License: {}", self.license.as_deref().unwrap_or(unknown))?;
        writeln!(
            f,
            "Input:   {} ({})",
            self.input_convention, self.input_convention_description
        )?;
        for key in ["wheel_sha256", "bin_sha256"] {
            if let Some(v) = self.metadata.get(key) {
                writeln!(f, "{key}: {v}")?;
            }
        }
        writeln!(f, "Layers:  {} 3×3 convolutions", self.layers.len())?;
        for l in &self.layers {
            writeln!(
                f,
                "  {:<8} {:>3} → {:<3}  ({}, {})",
                l.name, l.c_in, l.c_out, l.weight, l.bias
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{serialize, tensors, tiny_weights, TINY};

    #[test]
    fn stats_of_a_saved_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.safetensors");
        let bin = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/weights_fixtures/tiny_ok.bin"),
        )
        .unwrap();
        let w = crate::model::convert_legacy_with(&bin, &TINY, "tiny_ok.bin").unwrap();
        crate::model::save_with(&w, &dest, &TINY).unwrap();
        let i = info_with(&dest, &TINY).unwrap();
        assert_eq!(i.tensors.len(), 4);
        assert_eq!(i.tensors[0].name, "block1_conv1.weight");
        assert_eq!(i.tensors[0].shape, vec![4, 3, 3, 3]);
        let expect: f64 = w.layers[0].weight.iter().map(|&v| f64::from(v)).sum();
        assert_eq!(i.tensors[0].sum, expect);
        assert_eq!(i.file_sha256, hex_sha256(&std::fs::read(&dest).unwrap()));
        let text = i.to_string();
        assert!(text.contains("Input:   caffe-bgr"), "{text}");
        assert!(text.contains("conv1_2"), "{text}");
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(json["input_convention"], "caffe-bgr");
        assert_eq!(json["layout"], "nst");
        assert_eq!(json["tensors"][3]["name"], "block1_conv2.bias");
    }

    /// A saved file records its tensor hash; `info` and `check_published` accept it intact and
    /// refuse it once a value changes. Before the hash was recorded, such a changed file
    /// passed both (any file that loaded was valid).
    #[test]
    fn the_tensor_hash_is_recorded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.safetensors");
        let w = tiny_weights();
        crate::model::save_with(&w, &dest, &TINY).unwrap();
        let hash = tensors_sha256(&w.layers);
        let i = info_with(&dest, &TINY).unwrap();
        assert_eq!(i.tensors_sha256, hash);
        assert_eq!(i.tensors_sha256_recorded.as_deref(), Some(hash.as_str()));
        assert!(!i.published);
        assert!(
            i.to_string().contains(&format!(
                "Tensors: SHA-256 {hash} (matches the hash recorded at conversion"
            )),
            "{i}"
        );
        check_published_with(&dest, &TINY, &hash).unwrap();
        let e = check_published_with(&dest, &TINY, TENSORS_SHA256).unwrap_err();
        assert!(matches!(e, WeightsError::NotPublished { .. }), "{e}");

        // One value changed in place (the last bias's low mantissa byte: still finite, still
        // loads).
        let mut bytes = std::fs::read(&dest).unwrap();
        let at = bytes.len() - 4;
        bytes[at] ^= 1;
        std::fs::write(&dest, &bytes).unwrap();
        crate::model::load_bytes(&bytes, &dest, &TINY, None).unwrap();
        for e in [
            info_with(&dest, &TINY).unwrap_err(),
            check_published_with(&dest, &TINY, &hash).unwrap_err(),
        ] {
            let WeightsError::TensorHashMismatch {
                ref recorded,
                ref actual,
                ..
            } = e
            else {
                panic!("{e}")
            };
            assert_eq!(recorded, &hash);
            assert_ne!(actual, &hash);
            assert!(e.to_string().contains("Fetch the weights again"), "{e}");
            assert!(e.suggests_fetching());
        }
    }

    /// A file without the hash (converted before it was recorded): `info` says so,
    /// `check_published` refuses it, so fetching converts it again.
    #[test]
    fn a_file_without_the_tensor_hash() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.safetensors");
        let meta = [("input_convention", "caffe-bgr")];
        std::fs::write(&dest, serialize(tensors(Layout::Nst), &meta)).unwrap();
        let i = info_with(&dest, &TINY).unwrap();
        assert_eq!(i.tensors_sha256_recorded, None);
        assert_eq!(i.tensors_sha256, tensors_sha256(&tiny_weights().layers));
        assert!(i.to_string().contains("not recorded in the file"), "{i}");
        let json = serde_json::to_value(&i).unwrap();
        assert_eq!(json["tensors_sha256_recorded"], serde_json::Value::Null);
        let e = check_published_with(&dest, &TINY, &i.tensors_sha256).unwrap_err();
        assert!(
            matches!(e, WeightsError::TensorHashNotRecorded { .. }),
            "{e}"
        );
    }

    /// The hash covers every tensor, in order: changing any one value, or swapping two
    /// layers, changes it.
    #[test]
    fn the_tensor_hash_covers_every_value_in_order() {
        let w = tiny_weights();
        let base = tensors_sha256(&w.layers);
        assert_eq!(base.len(), 64);
        for (l, bias) in [(0, false), (0, true), (1, false), (1, true)] {
            let mut v = w.layers.clone();
            let t = if bias {
                &mut v[l].bias
            } else {
                &mut v[l].weight
            };
            let last = t.len() - 1;
            t[last] += 1.0;
            assert_ne!(tensors_sha256(&v), base, "layer {l}, bias {bias}");
        }
        let mut swapped = w.layers.clone();
        swapped.swap(0, 1);
        assert_ne!(tensors_sha256(&swapped), base);
    }
}
