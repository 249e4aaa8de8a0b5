//! The image module's tests.

use super::decode::*;
use super::encode::*;
use super::error::*;
use super::*;
use ::image::{ImageEncoder, Luma, LumaA, Rgba};
use std::fs::{self, File};
use std::path::PathBuf;

use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;

#[test]
fn png_in_memory_decodes_to_the_same_pixels() {
    let data: Vec<f32> = (0..3 * 5 * 4).map(|i| (i % 256) as f32 / 255.0).collect();
    let img = Image::new(5, 4, data).unwrap();
    let png = encode_png(&img).unwrap();
    let back = decode(&png, "in memory").unwrap().image;
    assert_eq!((back.width(), back.height()), (5, 4));
    assert_eq!(back.data(), img.data());
    let rgba = img.to_rgba8();
    assert_eq!(rgba.len(), 4 * 20);
    // Pixel 1: samples 1, 21 and 41 of the planes, opaque.
    assert_eq!(&rgba[4..8], &[1, 21, 41, 255]);
    let err = decode(b"not an image", "x.png").unwrap_err();
    assert!(err.to_string().contains("x.png"), "{err}");
}

/// A fresh folder, removed when dropped.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new(name: &str) -> Self {
        Self(tempfile::Builder::new().prefix(name).tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// The entries, so tests can check that no temporary was left behind.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// A deterministic test picture with smooth gradients and some edges.
fn test_image(width: u32, height: u32) -> Image {
    let n = (width * height) as usize;
    let mut data = vec![0.0; 3 * n];
    for y in 0..height {
        for x in 0..width {
            let i = (y * width + x) as usize;
            let fx = x as f32 / (width - 1).max(1) as f32;
            let fy = y as f32 / (height - 1).max(1) as f32;
            data[i] = fx;
            data[n + i] = fy;
            data[2 * n + i] = if (x / 4 + y / 4) % 2 == 0 { 0.2 } else { 0.8 };
        }
    }
    Image::new(width, height, data).unwrap()
}

fn max_diff(a: &Image, b: &Image) -> f32 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn pixel(img: &Image, x: u32, y: u32) -> [f32; 3] {
    let n = img.pixel_count();
    let i = (y * img.width + x) as usize;
    [img.data[i], img.data[n + i], img.data[2 * n + i]]
}

/// A big-endian EXIF (TIFF) block holding only an orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut exif = b"MM\0\x2a".to_vec();
    exif.extend_from_slice(&8u32.to_be_bytes()); // first IFD right after the header
    exif.extend_from_slice(&1u16.to_be_bytes()); // one entry
    exif.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    exif.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    exif.extend_from_slice(&1u32.to_be_bytes()); // count
    exif.extend_from_slice(&value.to_be_bytes());
    exif.extend_from_slice(&[0, 0]); // value padding
    exif.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    exif
}

#[test]
fn png_8_bit_round_trip_is_exact_to_one_level() {
    let dir = TempDir::new("png8");
    let img = test_image(17, 9);
    let path = dir.path("out.png");
    save(&img, &path, false).unwrap();
    let loaded = load(&path).unwrap();
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    assert!(max_diff(&img, &loaded.image) <= 0.5 / 255.0 + 1e-6);
    assert_eq!(dir.entries(), ["out.png"]);
}

#[test]
fn png_16_bit_round_trip_is_exact_to_one_level() {
    let dir = TempDir::new("png16");
    let img = test_image(13, 11);
    let path = dir.path("out16.PNG");
    save(&img, &path, true).unwrap();
    let loaded = load(&path).unwrap();
    assert!(
        loaded.notes.iter().any(|n| n.contains("16 bits")),
        "{:?}",
        loaded.notes
    );
    assert!(max_diff(&img, &loaded.image) <= 0.5 / 65535.0 + 1e-7);
    // Saving what was loaded gives back the same 16-bit levels exactly.
    let again = dir.path("again.png");
    save(&loaded.image, &again, true).unwrap();
    assert_eq!(load(&again).unwrap().image, loaded.image);
}

#[test]
fn jpeg_round_trip_is_close() {
    let dir = TempDir::new("jpeg");
    // Smooth content: JPEG's error on hard edges says nothing about our code.
    let n = 32 * 24;
    let mut data = vec![0.0; 3 * n];
    for i in 0..n {
        let (x, y) = ((i % 32) as f32 / 31.0, (i / 32) as f32 / 23.0);
        data[i] = 0.2 + 0.6 * x;
        data[n + i] = 0.3 + 0.4 * y;
        data[2 * n + i] = 0.5;
    }
    let img = Image::new(32, 24, data).unwrap();
    for name in ["out.jpg", "out.JPEG"] {
        let path = dir.path(name);
        save(&img, &path, false).unwrap();
        let loaded = load(&path).unwrap();
        let mean_err: f32 = img
            .data
            .iter()
            .zip(&loaded.image.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / img.data.len() as f32;
        assert!(mean_err < 0.02, "{name}: mean error {mean_err}");
    }
}

#[test]
fn webp_round_trip_is_lossless() {
    let dir = TempDir::new("webp");
    let img = test_image(10, 7);
    let path = dir.path("out.webp");
    save(&img, &path, false).unwrap();
    let loaded = load(&path).unwrap();
    assert!(max_diff(&img, &loaded.image) <= 0.5 / 255.0 + 1e-6);
}

#[test]
fn gray_is_replicated_to_rgb() {
    let dir = TempDir::new("gray");
    let path = dir.path("gray.png");
    let gray = ImageBuffer::from_fn(4, 3, |x, y| Luma([(x * 60 + y * 5) as u8]));
    gray.save(&path).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.notes, ["is gray-scale: replicated to RGB"]);
    let p = pixel(&loaded.image, 3, 2);
    assert_eq!(p, [190.0 / 255.0; 3]);
}

#[test]
fn gray_alpha_is_composited_over_white() {
    let dir = TempDir::new("grayalpha");
    let path = dir.path("la.png");
    let img = ImageBuffer::from_fn(2, 1, |x, _| LumaA([0u8, if x == 0 { 255 } else { 0 }]));
    img.save(&path).unwrap();
    let loaded = load(&path).unwrap();
    assert!(loaded.notes.iter().any(|n| n.contains("gray-scale")));
    assert!(loaded.notes.iter().any(|n| n.contains("alpha")));
    assert_eq!(pixel(&loaded.image, 0, 0), [0.0; 3]);
    assert_eq!(pixel(&loaded.image, 1, 0), [1.0; 3]);
}

#[test]
fn rgba_is_composited_over_white() {
    let dir = TempDir::new("rgba");
    let path = dir.path("rgba.png");
    let img = ImageBuffer::from_fn(3, 1, |x, _| match x {
        0 => Rgba([255u8, 0, 0, 255]),
        1 => Rgba([0, 0, 255, 0]),
        _ => Rgba([0, 0, 0, 51]), // 20 % black over white
    });
    img.save(&path).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(
        loaded.notes,
        ["has an alpha channel: transparent areas are composited over white"]
    );
    assert_eq!(pixel(&loaded.image, 0, 0), [1.0, 0.0, 0.0]);
    assert_eq!(pixel(&loaded.image, 1, 0), [1.0; 3]);
    for c in pixel(&loaded.image, 2, 0) {
        assert!((c - 0.8).abs() < 1e-6);
    }
}

#[test]
fn opaque_rgba_has_no_alpha_note() {
    let dir = TempDir::new("opaque");
    let path = dir.path("opaque.png");
    ImageBuffer::from_pixel(2, 2, Rgba([10u8, 20, 30, 255]))
        .save(&path)
        .unwrap();
    assert!(load(&path).unwrap().notes.is_empty());
}

/// A palette PNG (the `image` crate's encoder cannot write one).
fn palette_png(palette: &[[u8; 3]], indices: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(palette.concat());
    let mut w = enc.write_header().unwrap();
    w.write_image_data(indices).unwrap();
    w.finish().unwrap();
    out
}

#[test]
fn palette_png_is_expanded_with_a_note() {
    let dir = TempDir::new("palette");
    let path = dir.path("palette.png");
    let bytes = palette_png(&[[255, 0, 0], [0, 255, 0]], &[0, 1, 1, 0], 2, 2);
    fs::write(&path, bytes).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(
        loaded.notes,
        ["is a palette (indexed-color) PNG: expanded to RGB"]
    );
    assert_eq!(pixel(&loaded.image, 0, 0), [1.0, 0.0, 0.0]);
    assert_eq!(pixel(&loaded.image, 1, 0), [0.0, 1.0, 0.0]);
    assert_eq!(pixel(&loaded.image, 0, 1), [0.0, 1.0, 0.0]);
}

#[test]
fn absurd_size_is_refused_before_decoding() {
    let dir = TempDir::new("huge");
    let path = dir.path("huge.png");
    // Only the header is real: the check must come before any pixel is decoded.
    let mut bytes = palette_png(&[[0, 0, 0]], &[0], 1, 1);
    bytes[16..20].copy_from_slice(&16_385u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&16_385u32.to_be_bytes());
    // The IHDR checksum must match the new size or the decoder stops first.
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    fs::write(&path, bytes).unwrap();
    let err = load(&path).unwrap_err();
    assert!(matches!(err, ImageError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("16385×16385"), "{err}");
}

#[test]
fn image_new_checks_its_samples() {
    let ok = Image::new(2, 1, vec![0.5; 6]).unwrap();
    assert_eq!((ok.width(), ok.height(), ok.data().len()), (2, 1, 6));
    for (w, h, len) in [
        (2, 1, 5),
        (2, 1, 7),
        (0, 4, 0),
        (4, 0, 0),
        (1 << 15, 1 << 14, 3),
    ] {
        let e = Image::new(w, h, vec![0.0; len]).unwrap_err();
        assert!(
            matches!(e, ImageError::BadData { .. }),
            "{w}×{h}, {len}: {e}"
        );
        assert!(e.to_string().contains(&format!("{w}×{h}")), "{e}");
    }
}

#[test]
fn zero_size_is_refused() {
    let dir = TempDir::new("zero");
    let path = dir.path("zero.ppm");
    fs::write(&path, b"P6\n0 0\n255\n").unwrap();
    let err = load(&path).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Empty { .. } | ImageError::Undecodable { .. }
        ),
        "{err}"
    );
}

#[test]
fn exif_orientation_is_applied_png() {
    let dir = TempDir::new("exifpng");
    let path = dir.path("rotated.png");
    // 3 wide, 2 high; the top-left pixel is red.
    let img = ImageBuffer::from_fn(3, 2, |x, y| {
        if (x, y) == (0, 0) {
            Rgb([255u8, 0, 0])
        } else {
            Rgb([0, 0, 0])
        }
    });
    let mut encoder = PngEncoder::new(File::create(&path).unwrap());
    encoder.set_exif_metadata(exif_orientation(6)).unwrap();
    encoder
        .write_image(img.as_raw(), 3, 2, ::image::ExtendedColorType::Rgb8)
        .unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(
        loaded.notes,
        ["has EXIF orientation 6 (rotate 90° clockwise): applied, so the image is upright"]
    );
    // Rotated 90° clockwise: 2 wide, 3 high, and the old top-left is now top-right.
    assert_eq!((loaded.image.width, loaded.image.height), (2, 3));
    assert_eq!(pixel(&loaded.image, 1, 0), [1.0, 0.0, 0.0]);
    assert_eq!(pixel(&loaded.image, 0, 0), [0.0; 3]);
}

#[test]
fn exif_orientation_is_applied_jpeg() {
    let dir = TempDir::new("exifjpg");
    let path = dir.path("rotated.jpg");
    // 16 × 8, left half white, right half black.
    let img = ImageBuffer::from_fn(16, 8, |x, _| Rgb([if x < 8 { 255u8 } else { 0 }; 3]));
    let mut encoder = JpegEncoder::new_with_quality(File::create(&path).unwrap(), 95);
    encoder.set_exif_metadata(exif_orientation(6)).unwrap();
    encoder
        .write_image(img.as_raw(), 16, 8, ::image::ExtendedColorType::Rgb8)
        .unwrap();
    let loaded = load(&path).unwrap();
    assert!(
        loaded
            .notes
            .iter()
            .any(|n| n.contains("EXIF orientation 6")),
        "{:?}",
        loaded.notes
    );
    assert_eq!((loaded.image.width, loaded.image.height), (8, 16));
    // After a clockwise turn the white half is on top.
    assert!(pixel(&loaded.image, 4, 2)[0] > 0.9);
    assert!(pixel(&loaded.image, 4, 13)[0] < 0.1);
}

#[test]
fn missing_file_is_named() {
    let dir = TempDir::new("missing");
    let path = dir.path("nope.png");
    let err = load(&path).unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("nope.png") && msg.contains("no such file"),
        "{msg}"
    );
}

#[test]
fn folder_is_refused() {
    let dir = TempDir::new("folder");
    let err = load(dir.0.path()).unwrap_err();
    assert!(matches!(err, ImageError::InputIsFolder { .. }), "{err}");
    assert!(err.to_string().contains("is a folder"));
}

#[test]
fn text_named_png_names_the_formats() {
    let dir = TempDir::new("text");
    let path = dir.path("notes.png");
    fs::write(&path, "this is not an image\n").unwrap();
    let err = load(&path).unwrap_err();
    assert!(matches!(err, ImageError::Undecodable { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("notes.png"), "{msg}");
    for format in ["PNG", "JPEG", "WebP", "TIFF", "BMP", "GIF"] {
        assert!(msg.contains(format), "{msg}");
    }
    assert!(!msg.contains("Avif"), "{msg}");

    let unknown = dir.path("notes.txt");
    fs::write(&unknown, "plain text").unwrap();
    let err = load(&unknown).unwrap_err();
    assert!(matches!(err, ImageError::Undecodable { .. }), "{err}");
}

#[test]
fn empty_file_is_refused() {
    let dir = TempDir::new("emptyfile");
    let path = dir.path("empty.jpg");
    fs::write(&path, b"").unwrap();
    assert!(load(&path).is_err());
}

#[test]
fn check_output_path_refusals() {
    let dir = TempDir::new("check");
    let input = dir.path("in.png");
    save(&test_image(4, 4), &input, false).unwrap();
    let inputs = [input.as_path()];

    assert!(check_output_path(&dir.path("out.png"), &inputs, false).is_ok());
    assert!(check_output_path(&dir.path("out.PNG"), &inputs, true).is_ok());
    assert!(check_output_path(&dir.path("out.jpeg"), &inputs, false).is_ok());

    let same = check_output_path(&input, &inputs, false).unwrap_err();
    assert!(matches!(same, ImageError::SameAsInput { .. }), "{same}");
    // A different spelling of the same file is caught too.
    let dotted = dir.0.path().join(".").join("in.png");
    assert!(matches!(
        check_output_path(&dotted, &inputs, false),
        Err(ImageError::SameAsInput { .. })
    ));

    let gif = check_output_path(&dir.path("out.gif"), &inputs, false).unwrap_err();
    assert_eq!(
        gif.to_string(),
        format!(
            "cannot write {}: unknown output format `.gif`; use .png, .jpg or .webp",
            dir.path("out.gif").display()
        )
    );
    assert!(matches!(
        check_output_path(&dir.path("out"), &inputs, false),
        Err(ImageError::UnknownOutputFormat { .. })
    ));

    let missing = dir.path("no-such-folder").join("out.png");
    let err = check_output_path(&missing, &inputs, false).unwrap_err();
    assert!(matches!(err, ImageError::MissingFolder { .. }));
    assert!(err.to_string().contains("no-such-folder"), "{err}");

    let jpg16 = check_output_path(&dir.path("out.jpg"), &inputs, true).unwrap_err();
    assert!(
        matches!(jpg16, ImageError::SixteenBitNeedsPng { .. }),
        "{jpg16}"
    );

    assert!(matches!(
        check_output_path(dir.0.path(), &inputs, false),
        Err(ImageError::OutputIsFolder { .. })
    ));
    // The probe left nothing behind.
    assert_eq!(dir.entries(), ["in.png"]);
}

#[cfg(unix)]
#[test]
fn check_output_path_read_only_folder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("readonly");
    let locked = dir.path("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    let result = check_output_path(&locked.join("out.png"), &[], false);
    // Root ignores permission bits; then the probe rightly succeeds.
    let writable = File::create(locked.join("x")).is_ok();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    if writable {
        assert!(result.is_ok());
    } else {
        assert!(
            matches!(result, Err(ImageError::FolderNotWritable { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn same_file_needs_both_to_exist() {
    let dir = TempDir::new("same");
    let a = dir.path("a.png");
    fs::write(&a, b"x").unwrap();
    assert!(same_file(&a, &dir.0.path().join(".").join("a.png")));
    assert!(!same_file(&a, &dir.path("b.png")));
    assert!(!same_file(&dir.path("b.png"), &dir.path("b.png")));
}

#[test]
fn save_into_missing_folder_leaves_nothing() {
    let dir = TempDir::new("savemissing");
    let path = dir.path("absent").join("out.png");
    let err = save(&test_image(3, 3), &path, false).unwrap_err();
    assert!(matches!(err, ImageError::MissingFolder { .. }), "{err}");
    assert!(dir.entries().is_empty());
}

#[test]
fn save_refuses_bad_formats() {
    let dir = TempDir::new("savebad");
    let img = test_image(3, 3);
    assert!(matches!(
        save(&img, dir.path("out.gif"), false),
        Err(ImageError::UnknownOutputFormat { .. })
    ));
    assert!(matches!(
        save(&img, dir.path("out.webp"), true),
        Err(ImageError::SixteenBitNeedsPng { .. })
    ));
    assert!(dir.entries().is_empty());
}

#[test]
fn save_replaces_an_existing_file_whole() {
    let dir = TempDir::new("replace");
    let path = dir.path("out.png");
    // A large file first, so a truncating in-place write would leave a tail behind.
    save(&test_image(64, 64), &path, true).unwrap();
    let small = test_image(5, 4);
    save(&small, &path, false).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!((loaded.image.width, loaded.image.height), (5, 4));
    assert!(max_diff(&small, &loaded.image) <= 0.5 / 255.0 + 1e-6);
    assert_eq!(dir.entries(), ["out.png"]);
}

#[test]
fn save_clamps_out_of_range_values() {
    let dir = TempDir::new("clamp");
    let path = dir.path("out.png");
    let img = Image::new(1, 1, vec![-0.5, 1.5, 0.5]).unwrap();
    save(&img, &path, false).unwrap();
    assert_eq!(
        pixel(&load(&path).unwrap().image, 0, 0),
        [0.0, 1.0, 128.0 / 255.0]
    );
}

#[test]
fn resize_keeps_range_and_size() {
    let img = test_image(40, 30);
    assert_eq!(resize(&img, 40, 30), img);
    let small = resize(&img, 20, 15);
    assert_eq!((small.width, small.height), (20, 15));
    assert_eq!(small.data.len(), 3 * 20 * 15);
    let big = resize(&img, 97, 61);
    assert!(big.data.iter().all(|v| (0.0..=1.0).contains(v)));
    // A horizontal ramp stays a ramp: the red plane grows left to right.
    assert!(pixel(&big, 90, 30)[0] > pixel(&big, 10, 30)[0]);
    // A flat image stays flat.
    let flat = Image::new(8, 8, vec![0.25; 3 * 64]).unwrap();
    let flat_big = resize(&flat, 19, 5);
    assert!(flat_big.data.iter().all(|v| (v - 0.25).abs() < 1e-5));
    let zero = resize(&img, 0, 0);
    assert_eq!((zero.width, zero.height), (1, 1));
}

#[test]
fn fit_longest_keeps_aspect() {
    assert_eq!(fit_longest(1000, 500, 512), (512, 256));
    assert_eq!(fit_longest(500, 1000, 512), (256, 512));
    assert_eq!(fit_longest(300, 300, 128), (128, 128));
    assert_eq!(fit_longest(1000, 1, 100), (100, 1));
    assert_eq!(fit_longest(3, 2, 4), (4, 3)); // 2.67 rounds to 3
    assert_eq!(fit_longest(0, 0, 0), (1, 1));
}
