//! A full-size torchvision-layout VGG-19 file through the public API.

use std::collections::HashMap;

use nst_weights::{info, load, load_with, InputConvention, Layout, VGG19_LAYERS};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

#[test]
fn torchvision_file_loads_in_layer_order() {
    // Layer k's weights are all k, its biases all -k: the order is checked.
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (k, s) in VGG19_LAYERS.iter().enumerate() {
        let i = s.torchvision_index;
        let w = (k as f32).to_le_bytes().repeat(s.c_out * s.c_in * 9);
        let b = (-(k as f32)).to_le_bytes().repeat(s.c_out);
        bufs.push((
            format!("features.{i}.weight"),
            vec![s.c_out, s.c_in, 3, 3],
            w,
        ));
        bufs.push((format!("features.{i}.bias"), vec![s.c_out], b));
    }
    bufs.push(("classifier.6.bias".into(), vec![2], vec![0; 8]));
    let views: Vec<(String, TensorView<'_>)> = bufs
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg19-torchvision.safetensors");
    std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    drop(bufs);

    let w = load(&path).unwrap();
    assert_eq!(w.layout, Layout::Torchvision);
    assert_eq!(w.convention, InputConvention::TorchvisionRgb);
    for (k, l) in w.layers.iter().enumerate() {
        assert_eq!(l.name, VGG19_LAYERS[k].name);
        assert!(l.weight.iter().all(|&v| v == k as f32), "{}", l.name);
        assert!(l.bias.iter().all(|&v| v == -(k as f32)), "{}", l.name);
    }
    let w = load_with(&path, Some(InputConvention::CaffeBgr)).unwrap();
    assert_eq!(w.convention, InputConvention::CaffeBgr);

    let i = info(&path).unwrap();
    assert_eq!(i.tensors.len(), 32);
    assert_eq!(i.tensors[30].name, "features.34.weight");
    assert_eq!(i.tensors[30].sum, 15.0 * 512.0 * 512.0 * 9.0);
    assert_eq!(i.tensors[31].sum_of_squares, 225.0 * 512.0);
    assert_eq!(i.source, None);

    // Saved in our layout, it reads back the same.
    let ours = dir.path().join("ours.safetensors");
    w.save(&ours).unwrap();
    let back = load(&ours).unwrap();
    assert_eq!(back.layout, Layout::Nst);
    assert_eq!(back.convention, InputConvention::CaffeBgr);
    assert_eq!(back.layers, w.layers);
}

#[test]
fn missing_file_names_the_fix() {
    let e = load(std::path::Path::new("/nonexistent/vgg19.safetensors")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot read /nonexistent/vgg19.safetensors"),
        "{msg}"
    );
    assert!(msg.contains("or fetch the weights"), "{msg}");
    assert!(e.suggests_fetching());
}

#[test]
fn conventions_map_pixels() {
    let c = InputConvention::CaffeBgr.normalize([1.0, 0.5, 0.0]);
    assert_eq!(c, [-103.939, 127.5 - 116.779, 255.0 - 123.68]);
    for conv in [InputConvention::CaffeBgr, InputConvention::TorchvisionRgb] {
        let rgb = [0.2, 0.6, 0.9];
        let back = conv.denormalize(conv.normalize(rgb));
        for (a, b) in back.iter().zip(rgb) {
            assert!((a - b).abs() < 1e-6, "{conv}: {back:?}");
        }
        assert_eq!(InputConvention::from_name(conv.as_str()), Some(conv));
    }
}
