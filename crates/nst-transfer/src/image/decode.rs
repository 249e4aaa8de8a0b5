//! Decoding: any supported format to planar RGB in [0, 1], with EXIF orientation, alpha,
//! gray-scale and bit depth handled.

use std::fs;
use std::path::Path;

use ::image::metadata::Orientation;
use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::error::*;
use super::{Image, MAX_PIXELS};

/// A decoded image and the conversions applied to it, for telling the user.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The image, upright, RGB, in [0, 1].
    pub image: Image,
    /// One sentence per conversion applied (e.g. "is gray-scale: replicated to RGB"), meant to
    /// be shown after the file name; empty when the file was plain 8-bit RGB.
    pub notes: Vec<String>,
    /// Each pixel's opacity in [0, 1], row-major, when some pixel is not opaque (`image` is
    /// then composited over white); `None` for an opaque image.
    pub alpha: Option<Vec<f32>>,
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
    let (image, alpha, mut conversion_notes) = to_planar(dynamic);
    notes.append(&mut conversion_notes);
    Ok(Loaded {
        image,
        notes,
        alpha,
    })
}

/// The decoders' messages start with a capital; ours continue a sentence.
pub(super) fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Maps an I/O error on an input to the matching [`ImageError`].
pub(super) fn read_error(path: &Path, e: &std::io::Error) -> ImageError {
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
pub(super) fn describe_orientation(o: Orientation) -> &'static str {
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
pub(super) fn is_indexed_png(head: &[u8]) -> bool {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    head.len() >= 26 && head.starts_with(SIGNATURE) && &head[12..16] == b"IHDR" && head[25] == 3
}

/// Converts any decoded image to planar RGB in [0, 1], returning the opacity where some pixel
/// is not opaque, and the notes for the conversions.
pub(super) fn to_planar(dynamic: DynamicImage) -> (Image, Option<Vec<f32>>, Vec<String>) {
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
    let mut alpha = vec![1.0f32; n];
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
        alpha[i] = a;
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
    let alpha = transparent.then_some(alpha);
    (Image::from_parts(width, height, data), alpha, notes)
}
