//! What can go wrong reading or writing an image file.

use std::path::PathBuf;

use ::image::ImageFormat;

use super::MAX_PIXELS;

/// Why an image could not be read or written; each message names the file and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The input file does not exist.
    #[error("cannot read {}: no such file; check the path and spelling", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The input path is a folder.
    #[error(
        "cannot read {}: it is a folder, not an image file; give the path of an image file",
        path.display()
    )]
    InputIsFolder {
        /// The path given.
        path: PathBuf,
    },
    /// The input file exists but could not be read (permissions, I/O error).
    #[error(
        "cannot read {}: {reason}; check that you have permission to read it",
        path.display()
    )]
    Unreadable {
        /// The path given.
        path: PathBuf,
        /// The operating system's explanation.
        reason: String,
    },
    /// The file is not an image in a format this build decodes, or it is corrupt.
    #[error(
        "cannot decode {}: {reason}; use an image in a supported format ({})",
        path.display(),
        supported_input_formats()
    )]
    Undecodable {
        /// The path given.
        path: PathBuf,
        /// The decoder's explanation.
        reason: String,
    },
    /// The image has no pixels.
    #[error(
        "cannot use {}: the image is {width}×{height} pixels; use an image with at least one pixel",
        path.display()
    )]
    Empty {
        /// The path given.
        path: PathBuf,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The image has more than [`MAX_PIXELS`] pixels.
    #[error(
        "cannot use {}: the image is {width}×{height} = {} pixels, more than the {MAX_PIXELS} \
         supported; scale it down first",
        path.display(),
        u64::from(*width) * u64::from(*height)
    )]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// Samples handed to [`Image::new`](super::Image::new) that do not make an image of that size.
    #[error(
        "a {width}×{height} image needs 3 × {width} × {height} samples (at least one pixel, at \
         most {MAX_PIXELS}), got {len}"
    )]
    BadData {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
        /// Samples given.
        len: usize,
    },
    /// The output path is an existing folder.
    #[error("cannot write {}: it is a folder; give a file name such as out.png", path.display())]
    OutputIsFolder {
        /// The output path given.
        path: PathBuf,
    },
    /// The output extension is missing or not one we encode.
    #[error("cannot write {}: {}", path.display(), unknown_format(extension))]
    UnknownOutputFormat {
        /// The output path given.
        path: PathBuf,
        /// The extension as written, without the dot; empty when there is none.
        extension: String,
    },
    /// 16-bit output was asked for a format other than PNG.
    #[error(
        "cannot write {}: 16-bit output is only available as PNG; use a .png name or drop the \
         16-bit option",
        path.display()
    )]
    SixteenBitNeedsPng {
        /// The output path given.
        path: PathBuf,
    },
    /// The output would overwrite one of the inputs.
    #[error(
        "cannot write {}: it is the input image {}; choose another output name so the input is \
         not overwritten",
        path.display(),
        input.display()
    )]
    SameAsInput {
        /// The output path given.
        path: PathBuf,
        /// The input it refers to.
        input: PathBuf,
    },
    /// The output's folder does not exist.
    #[error(
        "cannot write {}: the folder {} does not exist; create it first or choose another folder",
        path.display(),
        folder.display()
    )]
    MissingFolder {
        /// The output path given.
        path: PathBuf,
        /// The folder that is missing.
        folder: PathBuf,
    },
    /// The output's folder exists but a file cannot be created there.
    #[error(
        "cannot write {}: cannot create files in the folder {} ({reason}); choose a folder you \
         can write to",
        path.display(),
        folder.display()
    )]
    FolderNotWritable {
        /// The output path given.
        path: PathBuf,
        /// The folder.
        folder: PathBuf,
        /// The operating system's explanation.
        reason: String,
    },
    /// Encoding or writing the output failed; nothing was left at the output path.
    #[error(
        "cannot write {}: {reason}; check the free disk space and the folder's permissions",
        path.display()
    )]
    Write {
        /// The output path given.
        path: PathBuf,
        /// The encoder's or operating system's explanation.
        reason: String,
    },
}

pub(super) fn unknown_format(extension: &str) -> String {
    if extension.is_empty() {
        "the name has no extension to choose the format; add .png, .jpg or .webp".into()
    } else {
        format!("unknown output format `.{extension}`; use .png, .jpg or .webp")
    }
}

/// The input formats this build decodes, for error messages, the common ones first.
pub(super) fn supported_input_formats() -> String {
    const COMMON: [ImageFormat; 6] = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::WebP,
        ImageFormat::Tiff,
        ImageFormat::Bmp,
        ImageFormat::Gif,
    ];
    let mut formats: Vec<ImageFormat> = ImageFormat::all()
        // AVIF *encoding* is on by default but decoding needs the native `avif-native`
        // feature, so `reading_enabled` overstates it.
        .filter(|f| f.reading_enabled() && *f != ImageFormat::Avif)
        .collect();
    formats.sort_by_key(|f| COMMON.iter().position(|c| c == f).unwrap_or(COMMON.len()));
    formats
        .into_iter()
        .map(|f| match f {
            ImageFormat::Png => "PNG".to_owned(),
            ImageFormat::Jpeg => "JPEG".to_owned(),
            ImageFormat::Gif => "GIF".to_owned(),
            ImageFormat::WebP => "WebP".to_owned(),
            ImageFormat::Pnm => "PNM".to_owned(),
            ImageFormat::Tiff => "TIFF".to_owned(),
            ImageFormat::Tga => "TGA".to_owned(),
            ImageFormat::Bmp => "BMP".to_owned(),
            ImageFormat::Ico => "ICO".to_owned(),
            ImageFormat::Hdr => "Radiance HDR".to_owned(),
            ImageFormat::OpenExr => "OpenEXR".to_owned(),
            ImageFormat::Farbfeld => "Farbfeld".to_owned(),
            ImageFormat::Qoi => "QOI".to_owned(),
            other => format!("{other:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
