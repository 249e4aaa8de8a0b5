//! Image files in and out: decoding (with EXIF orientation, alpha, gray-scale and bit-depth
//! handling), high-quality resizing, and safe encoding that never leaves a half-written file.
//!
//! In memory an image is planar RGB `f32` in [0, 1], the layout the GPU pipeline uploads.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

// `::image` is the external crate; this module shares its name.
use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::codecs::webp::WebPEncoder;
use ::image::imageops::FilterType;
use ::image::metadata::Orientation;
use ::image::{DynamicImage, ImageBuffer, ImageDecoder, ImageFormat, ImageReader, Rgb};

/// The largest image accepted, in pixels (2^28, e.g. 16384 × 16384): beyond this the `f32`
/// planes alone take 3 GiB, far more than any style transfer run can use.
pub const MAX_PIXELS: u64 = 1 << 28;

/// JPEG quality for saved results: high enough that compression artifacts do not blur the
/// fine brush-stroke texture style transfer produces.
const JPEG_QUALITY: u8 = 95;

/// An RGB image in memory: planar `f32` samples in [0, 1], channel-major.
/// Built only by [`Image::new`] (or by loading a file), so its size always matches its data.
#[derive(Clone, PartialEq)]
pub struct Image {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) data: Vec<f32>,
}

impl Image {
    /// Wraps planar RGB samples: the R plane, then G, then B, each row-major, so `data` must
    /// hold `3 × width × height` values. Refuses an empty image, one larger than
    /// [`MAX_PIXELS`], and data of another length.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self, ImageError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels == 0 || pixels > MAX_PIXELS || data.len() as u64 != 3 * pixels {
            return Err(ImageError::BadData {
                width,
                height,
                len: data.len(),
            });
        }
        Ok(Self::from_parts(width, height, data))
    }

    /// [`Image::new`] for sizes this crate computed itself.
    pub(crate) fn from_parts(width: u32, height: u32, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), 3 * width as usize * height as usize);
        Self {
            width,
            height,
            data,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The `3 × height × width` samples in [0, 1]: the R plane, then G, then B.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The samples, without copying.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The number of pixels, `width × height`.
    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// Interleaves the planes into RGBRGB… order, the layout the `image` crate uses.
    fn to_interleaved(&self) -> Vec<f32> {
        let n = self.pixel_count();
        let (r, rest) = self.data.split_at(n);
        let (g, b) = rest.split_at(n);
        let mut out = Vec::with_capacity(3 * n);
        for ((&r, &g), &b) in r.iter().zip(g).zip(b) {
            out.extend_from_slice(&[r, g, b]);
        }
        out
    }

    /// 8-bit RGBA, opaque, as a PNG file stores it and a browser's `ImageData` takes it.
    pub fn to_rgba8(&self) -> Vec<u8> {
        self.to_interleaved()
            .chunks_exact(3)
            .flat_map(|p| [to_u8(p[0]), to_u8(p[1]), to_u8(p[2]), 255])
            .collect()
    }

    /// Splits RGBRGB… samples into planes.
    fn from_interleaved(width: u32, height: u32, rgb: &[f32]) -> Self {
        let n = width as usize * height as usize;
        let mut data = vec![0.0; 3 * n];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            data[i] = px[0];
            data[n + i] = px[1];
            data[2 * n + i] = px[2];
        }
        Self::from_parts(width, height, data)
    }
}

// Hand-written so that an accidental `{:?}` does not print millions of samples.
impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// A decoded image and the conversions applied to it, for telling the user.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The image, upright, RGB, in [0, 1].
    pub image: Image,
    /// One sentence per conversion applied (e.g. "is gray-scale: replicated to RGB"), meant to
    /// be shown after the file name; empty when the file was plain 8-bit RGB.
    pub notes: Vec<String>,
}

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
    /// Samples handed to [`Image::new`] that do not make an image of that size.
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

fn unknown_format(extension: &str) -> String {
    if extension.is_empty() {
        "the name has no extension to choose the format; add .png, .jpg or .webp".into()
    } else {
        format!("unknown output format `.{extension}`; use .png, .jpg or .webp")
    }
}

/// The input formats this build decodes, for error messages, the common ones first.
fn supported_input_formats() -> String {
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

/// Reads an image file, applying its EXIF orientation and converting it to RGB in [0, 1].
///
/// The format is detected from the content (the extension is only a fallback). Transparent
/// pixels are composited over white, gray-scale is replicated to RGB, and 16-bit or float
/// samples keep their full precision; each conversion adds a note.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ImageError> {
    let path = path.as_ref();
    let meta = fs::metadata(path).map_err(|e| read_error(path, &e))?;
    if meta.is_dir() {
        return Err(ImageError::InputIsFolder {
            path: path.to_owned(),
        });
    }
    let bytes = fs::read(path).map_err(|e| read_error(path, &e))?;
    decode(&bytes, path)
}

/// [`load`] on a file's bytes (a browser's file, say): `name` stands for the path in errors,
/// and its extension is the fallback for formats without a magic number.
pub fn decode(bytes: &[u8], name: impl AsRef<Path>) -> Result<Loaded, ImageError> {
    let path = name.as_ref();
    let undecodable = |e: ::image::ImageError| match e {
        ::image::ImageError::IoError(e) => read_error(path, &e),
        e => ImageError::Undecodable {
            path: path.to_owned(),
            reason: lowercase_first(&e.to_string()),
        },
    };

    // The extension first; the content sniff then overrides it, so a PNG named .jpg still
    // loads while formats without a magic number (TGA) fall back to the extension.
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes));
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| read_error(path, &e))?;
    // The default 512 MiB allocation cap would refuse legitimate large 16-bit photos; the
    // pixel-count check below bounds the allocation instead.
    reader.no_limits();
    let format = reader.format();
    let mut decoder = reader.into_decoder().map_err(undecodable)?;

    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Empty {
            path: path.to_owned(),
            width,
            height,
        });
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge {
            path: path.to_owned(),
            width,
            height,
        });
    }
    // A malformed EXIF block should not make an otherwise good image unusable.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut dynamic = DynamicImage::from_decoder(decoder).map_err(undecodable)?;

    let mut notes = Vec::new();
    if orientation != Orientation::NoTransforms {
        notes.push(format!(
            "has EXIF orientation {} ({}): applied, so the image is upright",
            orientation.to_exif(),
            describe_orientation(orientation)
        ));
        dynamic.apply_orientation(orientation);
    }
    match format {
        Some(ImageFormat::Png) if is_indexed_png(bytes) => {
            notes.push("is a palette (indexed-color) PNG: expanded to RGB".to_owned());
        }
        Some(ImageFormat::Gif) => {
            notes
                .push("is a GIF: palette expanded to RGB; only the first frame is used".to_owned());
        }
        _ => {}
    }
    let (image, mut conversion_notes) = to_planar(dynamic);
    notes.append(&mut conversion_notes);
    Ok(Loaded { image, notes })
}

/// The decoders' messages start with a capital; ours continue a sentence.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Maps an I/O error on an input to the matching [`ImageError`].
fn read_error(path: &Path, e: &std::io::Error) -> ImageError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ImageError::NotFound {
            path: path.to_owned(),
        },
        std::io::ErrorKind::IsADirectory => ImageError::InputIsFolder {
            path: path.to_owned(),
        },
        _ => ImageError::Unreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// Words for an orientation, for the note.
fn describe_orientation(o: Orientation) -> &'static str {
    match o {
        Orientation::NoTransforms => "upright",
        Orientation::Rotate90 => "rotate 90° clockwise",
        Orientation::Rotate180 => "rotate 180°",
        Orientation::Rotate270 => "rotate 90° anticlockwise",
        Orientation::FlipHorizontal => "mirror horizontally",
        Orientation::FlipVertical => "mirror vertically",
        Orientation::Rotate90FlipH => "rotate 90° clockwise and mirror",
        Orientation::Rotate270FlipH => "rotate 90° anticlockwise and mirror",
    }
}

/// Whether the file is a PNG whose IHDR chunk says color type 3 (palette). The decoder
/// expands palettes silently, so the header is the only place this is visible.
fn is_indexed_png(head: &[u8]) -> bool {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    head.len() >= 26 && head.starts_with(SIGNATURE) && &head[12..16] == b"IHDR" && head[25] == 3
}

/// Converts any decoded image to planar RGB in [0, 1], returning the notes for the conversions.
fn to_planar(dynamic: DynamicImage) -> (Image, Vec<String>) {
    let color = dynamic.color();
    let mut notes = Vec::new();
    if !color.has_color() {
        notes.push("is gray-scale: replicated to RGB".to_owned());
    }
    let bytes_per_sample = color.bytes_per_pixel() / color.channel_count();
    let is_float = bytes_per_sample == 4;
    match bytes_per_sample {
        2 => notes.push("has 16 bits per channel: kept at full precision".to_owned()),
        4 => notes.push("has floating-point samples: kept at full precision".to_owned()),
        _ => {}
    }

    let (width, height) = (dynamic.width(), dynamic.height());
    let n = width as usize * height as usize;
    // One path for every color type: `f32` holds 8- and 16-bit samples exactly, and an
    // opaque pixel's compositing below is the identity (c · 1 + 1 · 0).
    let rgba = dynamic.into_rgba32f();
    let mut data = vec![0.0f32; 3 * n];
    let mut transparent = false;
    let mut clipped = 0usize;
    let mut sanitize = |v: f32| {
        // Float formats (OpenEXR, HDR) may hold values outside [0, 1], or NaN.
        if (0.0..=1.0).contains(&v) {
            v
        } else {
            clipped += 1;
            if v > 1.0 {
                1.0
            } else {
                0.0
            }
        }
    };
    for (i, px) in rgba.pixels().enumerate() {
        let a = sanitize(px.0[3]);
        transparent |= a < 1.0;
        for c in 0..3 {
            data[c * n + i] = sanitize(px.0[c]) * a + (1.0 - a);
        }
    }
    if transparent {
        notes.push("has an alpha channel: transparent areas are composited over white".to_owned());
    }
    if is_float && clipped > 0 {
        notes.push(format!(
            "has {clipped} sample(s) outside [0, 1]: clipped (HDR values are not tone-mapped)"
        ));
    }
    (Image::from_parts(width, height, data), notes)
}

/// Resamples to `width × height` with a Catmull-Rom filter (sharp, with less ringing than
/// Lanczos when multi-scale runs upscale repeatedly); the result is clamped to [0, 1].
/// The same size returns a copy; a zero size is taken as 1.
pub fn resize(img: &Image, width: u32, height: u32) -> Image {
    let (width, height) = (width.max(1), height.max(1));
    if (width, height) == (img.width, img.height) {
        return img.clone();
    }
    let buffer =
        ImageBuffer::<Rgb<f32>, Vec<f32>>::from_raw(img.width, img.height, img.to_interleaved())
            .expect("an Image holds 3 × width × height samples");
    let resized = ::image::imageops::resize(&buffer, width, height, FilterType::CatmullRom);
    // `imageops` clamps float output to [0, 1] itself; clamping again costs little and keeps
    // the invariant independent of that detail.
    let samples: Vec<f32> = resized
        .into_raw()
        .iter()
        .map(|v| v.clamp(0.0, 1.0))
        .collect();
    Image::from_interleaved(width, height, &samples)
}

/// The size that fits `width × height` into a `longest`-pixel longest side, keeping the
/// aspect ratio (rounded, each side at least 1).
pub fn fit_longest(width: u32, height: u32, longest: u32) -> (u32, u32) {
    let (w, h, longest) = (width.max(1), height.max(1), longest.max(1));
    let scaled = |short: u32, long: u32| {
        ((f64::from(short) * f64::from(longest) / f64::from(long)).round() as u32).max(1)
    };
    if w >= h {
        (longest, scaled(h, w))
    } else {
        (scaled(w, h), longest)
    }
}

/// The output formats we encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    Png,
    Jpeg,
    WebP,
}

/// The output format named by the extension (case-insensitive).
fn output_format(path: &Path) -> Result<OutputFormat, ImageError> {
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
fn parent_folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
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
    let format = output_format(path)?;
    if sixteen_bit && format != OutputFormat::Png {
        return Err(ImageError::SixteenBitNeedsPng {
            path: path.to_owned(),
        });
    }
    if path.is_dir() {
        return Err(ImageError::OutputIsFolder {
            path: path.to_owned(),
        });
    }
    if path.file_name().is_none() {
        return Err(ImageError::OutputIsFolder {
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

    let written = write_atomic(path, |out| {
        write_encoded(img, out, format, sixteen_bit).map_err(std::io::Error::other)
    });
    written.map_err(|e| ImageError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// A sample in [0, 1] as 8 bits: clamped and rounded.
fn to_u8(v: f32) -> u8 {
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
fn write_encoded(
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
    if output.is_dir() {
        return Err(ImageError::OutputIsFolder {
            path: output.to_owned(),
        });
    }
    let format = output_format(output)?;
    if sixteen_bit && format != OutputFormat::Png {
        return Err(ImageError::SixteenBitNeedsPng {
            path: output.to_owned(),
        });
    }
    if let Some(input) = inputs
        .iter()
        .find(|input| output == **input || same_file(output, input))
    {
        return Err(ImageError::SameAsInput {
            path: output.to_owned(),
            input: input.to_path_buf(),
        });
    }
    if output.file_name().is_none() {
        return Err(ImageError::OutputIsFolder {
            path: output.to_owned(),
        });
    }
    let folder = parent_folder(output);
    if !folder.is_dir() {
        return Err(ImageError::MissingFolder {
            path: output.to_owned(),
            folder,
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::{ImageEncoder, Luma, LumaA, Rgba};
    use std::fs::File;

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
}
