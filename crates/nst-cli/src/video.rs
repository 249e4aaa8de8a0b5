//! `nst video` and `nst flicker`: frames in, stylized frames out, resumable; the flicker of
//! any folder of frames.

use crate::transfer::{FlowArgs, LossArgs};
use crate::{fail, Failure};
use clap::Args;
use nst_transfer::image::{save, Image};
use nst_transfer::report::load_image;
use nst_transfer::{defaults, Field, Flow, Style, TransferError, VideoSettings};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `nst video`.
#[derive(Args, Debug)]
pub struct VideoArgs {
    /// The frames: a folder of images (PNG, JPEG, WebP; in name order), or a video file, read
    /// through ffmpeg.
    #[arg(long)]
    content: PathBuf,
    /// A style image; repeat for several styles.
    #[arg(long, required = true)]
    style: Vec<PathBuf>,
    /// Blend weights of the style images, comma-separated.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    style_weights: Option<Vec<f64>>,
    /// The folder the stylized frames go to (frame_00001.png, …). Run again with the same
    /// flags to continue after the last frame written.
    #[arg(long, short)]
    output: PathBuf,
    /// Also encode the frames as this video file through ffmpeg (.mp4, .webm, .gif, …).
    #[arg(long)]
    video: Option<PathBuf>,
    /// Frames per second of --video.
    #[arg(long, default_value_t = 12)]
    fps: u32,
    /// Longest side of the output frames, in pixels.
    #[arg(long, default_value_t = defaults::SIZE)]
    size: u32,
    /// The most iterations of the first frame.
    #[arg(long, default_value_t = defaults::ITERATIONS)]
    iterations: u32,
    /// The most iterations of each later frame, which starts from the previous one warped.
    #[arg(long, default_value_t = defaults::LATER_ITERATIONS)]
    later_iterations: u32,
    /// Weight of the temporal loss, which keeps each frame near the previous ones where the
    /// flow is reliable; 0 stylizes each frame on its own.
    #[arg(long, default_value_t = defaults::TEMPORAL_WEIGHT)]
    temporal_weight: f64,
    /// The earlier frames the temporal loss compares with, counted back, comma-separated
    /// (1: the previous frame; 1,10,20 adds Ruder et al.'s long-term terms).
    #[arg(long, value_delimiter = ',', default_values_t = defaults::FRAMES_BACK)]
    frames_back: Vec<u32>,
    #[command(flatten)]
    flow: FlowArgs,
    #[command(flatten)]
    loss: LossArgs,
    /// One JSON object per frame on stdout.
    #[arg(long)]
    json: bool,
    /// Only errors on stderr.
    #[arg(long)]
    quiet: bool,
}

/// The name of frame `i` (from 1) in the output folder.
fn frame_name(i: usize) -> String {
    format!("frame_{i:05}.png")
}

/// The images of a folder in name order; errors name `flag`, which gave the folder.
fn frames_in(dir: &Path, flag: &str) -> Result<Vec<PathBuf>, Failure> {
    let bad = |reason: String| fail(2, format!("{flag}: {reason}"));
    let entries = (std::fs::read_dir(dir))
        .map_err(|e| bad(format!("{} cannot be read: {e}", dir.display())))?;
    let mut frames: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            ["png", "jpg", "jpeg", "webp"].contains(&ext.to_ascii_lowercase().as_str())
        })
        .collect();
    frames.sort();
    if frames.is_empty() {
        return Err(bad(format!(
            "{} holds no PNG, JPEG or WebP frames",
            dir.display()
        )));
    }
    Ok(frames)
}

/// Whether ffmpeg runs.
fn has_ffmpeg() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The error for a video file without ffmpeg.
fn no_ffmpeg(what: &str) -> Failure {
    let reason = format!(
        "{what} needs ffmpeg, which is not installed: install it (`apt-get install ffmpeg`, \
         `brew install ffmpeg`, or from ffmpeg.org) or pass a folder of frames"
    );
    TransferError::invalid(Field::Frames, reason).into()
}

/// The input frames: the folder's, or a video file's extracted by ffmpeg into `out/.input`.
fn input_frames(content: &Path, out: &Path, quiet: bool) -> Result<Vec<PathBuf>, Failure> {
    if content.is_dir() {
        return frames_in(content, "--content");
    }
    if !content.exists() {
        let reason = format!("{} does not exist", content.display());
        return Err(TransferError::invalid(Field::Frames, reason).into());
    }
    if !has_ffmpeg() {
        return Err(no_ffmpeg("reading a video file"));
    }
    let dir = out.join(".input");
    if !dir.join(frame_name(1)).exists() {
        std::fs::create_dir_all(&dir).map_err(|e| fail(1, format!("{}: {e}", dir.display())))?;
        if !quiet {
            eprintln!("extracting the frames of {} with ffmpeg", content.display());
        }
        let status = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i"])
            .arg(content)
            .arg(dir.join("frame_%05d.png"))
            .status()
            .map_err(|e| fail(1, format!("ffmpeg: {e}")))?;
        if !status.success() {
            let reason = format!("ffmpeg could not read {}", content.display());
            return Err(TransferError::invalid(Field::Frames, reason).into());
        }
    }
    frames_in(&dir, "--content")
}

/// What the output folder records of the run that wrote it, to refuse continuing a run made
/// with other settings.
const RECORD: &str = "nst-video.json";

/// Runs `nst video`.
pub fn video(a: VideoArgs) -> Result<(), Failure> {
    let settings = (a.loss.settings()?).size(a.size).iterations(a.iterations);
    let video = VideoSettings {
        temporal_weight: a.temporal_weight,
        frames_back: a.frames_back.clone(),
        later_iterations: a.later_iterations,
        flow: a.flow.settings(),
    };
    settings.validate()?;
    video.validate()?;
    if a.video.is_some() && !has_ffmpeg() {
        return Err(no_ffmpeg("--video"));
    }
    std::fs::create_dir_all(&a.output)
        .map_err(|e| fail(1, format!("{}: {e}", a.output.display())))?;
    let inputs = input_frames(&a.content, &a.output, a.quiet)?;
    let n = a.style.len();
    let weights = nst_transfer::settings::style_weights(n, a.style_weights.clone())?;
    let mut styles = Vec::new();
    for (p, w) in a.style.iter().zip(weights) {
        styles.push(Style::new(load_image(Field::Style, p, a.quiet)?, w));
    }
    // The record of this run: a folder written with other settings is not continued.
    let record = serde_json::json!({
        "styles": a.style,
        "style_weights": a.style_weights,
        "settings": settings,
        "video": video,
    });
    let record_path = a.output.join(RECORD);
    let done = (1..)
        .take_while(|&i| a.output.join(frame_name(i)).exists())
        .count();
    if done > 0 {
        let kept = std::fs::read_to_string(&record_path).ok();
        let same = kept
            .and_then(|k| serde_json::from_str::<serde_json::Value>(&k).ok())
            .is_some_and(|k| k == record);
        if !same {
            let reason = format!(
                "{} holds {done} frames made with other settings (or by something else): \
                 choose another folder, or remove them to start again",
                a.output.display()
            );
            return Err(TransferError::invalid(Field::Output, reason).into());
        }
    }
    let text = serde_json::to_string_pretty(&record).expect("serializable") + "\n";
    nst_weights::write_atomic(&record_path, |out| {
        std::io::Write::write_all(out, text.as_bytes())
    })
    .map_err(|e| fail(1, format!("{}: {e}", record_path.display())))?;
    let engine = a.loss.open(a.quiet)?;
    let mut run = engine.video(&styles, &settings, &video)?;
    if done > 0 {
        let depth = video.frames_back.iter().copied().max().unwrap_or(1) as usize;
        let mut latest = Vec::new();
        for i in done.saturating_sub(depth) + 1..=done.min(inputs.len()) {
            let content = load_image(Field::Frames, &inputs[i - 1], true)?;
            let written = load_image(Field::Output, &a.output.join(frame_name(i)), true)?;
            latest.push((content, written));
        }
        run.resume(done, latest);
        if !a.quiet {
            eprintln!("continuing after frame {done} of {}", inputs.len());
        }
    }
    let total = inputs.len();
    let start = Instant::now();
    // A bar over the most iterations the frames left can take, on a terminal.
    let most = |i: usize| match i {
        0 => a.iterations as u64,
        _ => a.later_iterations as u64,
    };
    let bar =
        (!a.quiet && !a.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let len = (done..total).map(most).sum();
            let style = "{bar:30} {pos}/{len} iterations [{elapsed_precise} < {eta_precise}] {msg}";
            let style = indicatif::ProgressStyle::with_template(style).expect("valid");
            indicatif::ProgressBar::new(len).with_style(style)
        });
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    };
    let mut before = 0;
    for (i, path) in inputs.iter().enumerate().skip(done) {
        let frame = load_image(Field::Frames, path, true)?;
        let began = Instant::now();
        let out = run.next(&frame, |e| {
            if let (nst_transfer::Event::Iteration { iteration, .. }, Some(b)) = (&e, &bar) {
                b.set_position(before + *iteration as u64);
                b.set_message(format!("frame {}/{total}", i + 1));
            }
            Flow::Continue
        })?;
        before += most(i);
        if let Some(b) = &bar {
            b.set_position(before);
        }
        let dest = a.output.join(frame_name(i + 1));
        save(&out.outcome.image, &dest, false).map_err(|source| TransferError::Image {
            field: Field::Output,
            source,
        })?;
        let secs = began.elapsed().as_secs_f64();
        let per = start.elapsed().as_secs_f64() / (i + 1 - done) as f64;
        let left = per * (total - i - 1) as f64;
        let m = out.outcome.measure;
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "frame": i + 1,
                    "frames": total,
                    "seconds": secs,
                    "seconds_left": left,
                    "measure": m,
                    "loss": out.outcome.values,
                })
            );
        } else if !a.quiet {
            let gap = m.map_or(String::new(), |m| {
                format!(", style gap closed {:.1} %", 100.0 * m.style_gap_closed())
            });
            say(format!(
                "frame {}/{total}: {:.1} s{gap}, about {} left",
                i + 1,
                secs,
                nst_transfer::events::minutes(std::time::Duration::from_secs_f64(left))
            ));
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // How much the whole video flickers.
    let mut contents = Vec::new();
    let mut outputs = Vec::new();
    for (i, path) in inputs.iter().enumerate() {
        contents.push(load_image(Field::Frames, path, true)?);
        outputs.push(load_image(
            Field::Output,
            &a.output.join(frame_name(i + 1)),
            true,
        )?);
    }
    // On the engine's GPU: no second context.
    let errors = engine.warping_errors(&contents, &outputs, &video.flow)?;
    let error = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    match a.json {
        true => println!("{}", serde_json::json!({ "warping_error": error })),
        false if !a.quiet => eprintln!(
            "{total} frames in {}; warping error {error:.6} (nst flicker)",
            a.output.display()
        ),
        false => {}
    }
    if let Some(v) = &a.video {
        encode(&a.output, v, a.fps)?;
    }
    Ok(())
}

/// Encodes the frames of `dir` into `video` with ffmpeg.
fn encode(dir: &Path, video: &Path, fps: u32) -> Result<(), Failure> {
    let mut cmd = std::process::Command::new("ffmpeg");
    let rate = fps.to_string();
    cmd.args(["-loglevel", "error", "-y", "-framerate", &rate, "-i"])
        .arg(dir.join("frame_%05d.png"));
    let gif = video
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gif"));
    if !gif {
        // The players' common pixel format, which needs even sides.
        cmd.args([
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-pix_fmt",
            "yuv420p",
        ]);
    }
    let status = (cmd.arg(video).status()).map_err(|e| fail(1, format!("ffmpeg: {e}")))?;
    match status.success() {
        true => Ok(()),
        false => Err(fail(
            1,
            format!("ffmpeg could not write {}", video.display()),
        )),
    }
}

/// `nst flicker`.
#[derive(Args, Debug)]
pub struct FlickerArgs {
    /// The original frames (a folder), whose flow says where each pixel moved.
    #[arg(long)]
    content: PathBuf,
    /// The stylized frames (a folder, in the same order).
    #[arg(long)]
    frames: PathBuf,
    #[command(flatten)]
    flow: FlowArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `nst flicker`: the warping error of a folder of stylized frames.
pub fn flicker(a: FlickerArgs) -> Result<(), Failure> {
    let settings = a.flow.settings();
    settings.validate()?;
    let load_all = |dir: &Path, flag: &str| -> Result<Vec<Image>, Failure> {
        let paths = frames_in(dir, flag)?;
        paths
            .iter()
            .map(|p| Ok(load_image(Field::Frames, p, true)?))
            .collect()
    };
    let contents = load_all(&a.content, "--content")?;
    let outputs = load_all(&a.frames, "--frames")?;
    if contents.len() != outputs.len() {
        let reason = format!(
            "{} holds {} frames and {} {}: give the frames the stylized ones were made from",
            a.content.display(),
            contents.len(),
            a.frames.display(),
            outputs.len()
        );
        return Err(TransferError::invalid(Field::Frames, reason).into());
    }
    let flows = nst_transfer::Flows::open()?;
    let errors = nst_transfer::video::warping_errors(&flows, &contents, &outputs, &settings)?;
    let mean = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    match a.json {
        true => println!(
            "{}",
            serde_json::json!({"warping_error": mean, "per_pair": errors})
        ),
        false => println!(
            "warping error {mean:.6} over {} pairs of frames (the mean squared RGB difference \
             from the previous frame warped, where the flow is reliable)",
            errors.len()
        ),
    }
    Ok(())
}
