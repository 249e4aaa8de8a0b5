//! Encoding and saving: PNG (8 or 16 bits), JPEG and lossless WebP, written whole or not at
//! all, and the checks an output path gets before a run.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::codecs::webp::WebPEncoder;
use ::image::{ImageBuffer, Rgb};

use super::error::*;
use super::Image;

/// JPEG quality for saved results: high enough that compression artifacts do not blur the
/// fine brush-stroke texture style transfer produces.
pub(super) const JPEG_QUALITY: u8 = 95;

/// The output formats we encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OutputFormat {
    Png,
    Jpeg,
    WebP,
}

/// The output format named by the extension (case-insensitive).
pub(super) fn output_format(path: &Path) -> Result<OutputFormat, ImageError> {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    match extension.to_ascii_lowercase().as_str() {
        "png" => Ok(OutputFormat::Png),
        "jpg" | "jpeg" => Ok(OutputFormat::Jpeg),
        "webp" => Ok(OutputFormat::WebP),
        _ => Err(ImageError::UnknownOutputFormat {
            path: path.to_owned(),
            extension,
        }),
    }
}

/// The folder a path's file lives in; `.` for a bare file name.
pub(super) fn parent_folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The format of an output `path` and its folder, after checking that `path` names a file
/// (not a folder) in a folder that exists, with an extension we encode (PNG for
/// `sixteen_bit`).
pub(super) fn destination(
    path: &Path, sixteen_bit: bool,
) -> Result<(OutputFormat, PathBuf), ImageError> {
    if path.is_dir() || path.file_name().is_none() {
        return Err(ImageError::OutputIsFolder {
            path: path.to_owned(),
        });
    }
    let format = output_format(path)?;
    if sixteen_bit && format != OutputFormat::Png {
        return Err(ImageError::SixteenBitNeedsPng {
            path: path.to_owned(),
        });
    }
    let folder = parent_folder(path);
    if !folder.is_dir() {
        return Err(ImageError::MissingFolder {
            path: path.to_owned(),
            folder,
        });
    }
    Ok((format, folder))
}

/// Every file output goes through the one writer, whole or not at all (see its docs).
pub(crate) use nst_weights::write_atomic;

/// Writes `img` to `path`, the format chosen by the extension (case-insensitive): `.png`,
/// `.jpg`/`.jpeg` (quality 95) or `.webp` (lossless: the `image` crate encodes no lossy WebP).
///
/// `sixteen_bit` writes a 16-bit PNG (an error for the other formats). Samples are clamped
/// to [0, 1] and rounded. The file is written under a temporary name in the same folder and
/// renamed into place, so a failure leaves nothing behind and never truncates an existing file.
pub fn save(img: &Image, path: impl AsRef<Path>, sixteen_bit: bool) -> Result<(), ImageError> {
    let path = path.as_ref();
    let (format, _) = destination(path, sixteen_bit)?;

    let written = write_atomic(path, |out| {
        write_encoded(img, out, format, sixteen_bit).map_err(std::io::Error::other)
    });
    written.map_err(|e| ImageError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A sample in [0, 1] as 8 bits: clamped and rounded.
pub(super) fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// `img` as an 8-bit PNG, in memory (for a browser's download).
pub fn encode_png(img: &Image) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    write_encoded(img, &mut out, OutputFormat::Png, false).map_err(|reason| ImageError::Write {
        path: PathBuf::from("(in memory).png"),
        reason,
    })?;
    Ok(out)
}

/// Encodes `img` into `out`.
pub(super) fn write_encoded(
    img: &Image, mut out: &mut dyn Write, format: OutputFormat, sixteen_bit: bool,
) -> Result<(), String> {
    let (w, h) = (img.width, img.height);
    let samples = img.to_interleaved();
    let bad_size = || format!("the image data does not match its size {w}×{h}");
    let encoded = if sixteen_bit {
        let raw = samples
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
            .collect();
        let buffer = ImageBuffer::<Rgb<u16>, Vec<u16>>::from_raw(w, h, raw).ok_or_else(bad_size)?;
        buffer.write_with_encoder(PngEncoder::new(&mut out))
    } else {
        let raw = samples.iter().map(|&v| to_u8(v)).collect();
        let buffer = ImageBuffer::<Rgb<u8>, Vec<u8>>::from_raw(w, h, raw).ok_or_else(bad_size)?;
        match format {
            OutputFormat::Png => buffer.write_with_encoder(PngEncoder::new(&mut out)),
            OutputFormat::Jpeg => {
                buffer.write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
            }
            OutputFormat::WebP => buffer.write_with_encoder(WebPEncoder::new_lossless(&mut out)),
        }
    };
    encoded.map_err(|e| e.to_string())
}

/// True when both paths exist and are the same file (same canonical path, or on Unix the
/// same inode, which also catches hard links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
            return true;
        }
    }
    #[cfg(not(unix))]
    let _ = (ma, mb);
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Checks, before any work is done, that [`save`] can write `output`: it must not be one of
/// `inputs`, its extension must be one we encode (PNG for `sixteen_bit`), and its folder must
/// exist and accept new files (probed by creating and removing a temporary file).
pub fn check_output_path(
    output: &Path, inputs: &[&Path], sixteen_bit: bool,
) -> Result<(), ImageError> {
    if let Some(input) = inputs
        .iter()
        .find(|input| output == **input || same_file(output, input))
    {
        return Err(ImageError::SameAsInput {
            path: output.to_owned(),
            input: input.to_path_buf(),
        });
    }
    let (_, folder) = destination(output, sixteen_bit)?;
    // Permission bits do not tell the whole story (ACLs, read-only mounts, root), so try it;
    // the probe is removed when dropped.
    let probe = tempfile::Builder::new()
        .prefix(".nst-")
        .tempfile_in(&folder);
    probe.map(drop).map_err(|e| ImageError::FolderNotWritable {
        path: output.to_owned(),
        folder,
        reason: e.to_string(),
    })
}
