//! A summary of a weights file, for `nst weights info`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::{hex_sha256, load_bytes, read_file};
use crate::{InputConvention, LayerSpec, Layout, WeightsError, VGG19_LAYERS};

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
/// does) and summarizes it.
pub fn info(path: &Path) -> Result<WeightsInfo, WeightsError> {
    info_with(path, &VGG19_LAYERS)
}

pub(crate) fn info_with(path: &Path, arch: &[LayerSpec]) -> Result<WeightsInfo, WeightsError> {
    let bytes = read_file(path)?;
    let w = load_bytes(&bytes, path, arch, None)?;
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
    use crate::model::tests::TINY;

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
}
