//! Video without flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos",
//! 2016): each frame starts from the previous stylized frame warped along the optical flow
//! (disoccluded pixels from the frame itself) and a temporal loss keeps it near the earlier
//! stylized frames warped to it, where the flow is reliable ([`crate::flow`],
//! [`crate::Temporal`]). Frames go in one at a time ([`Video::next`]); a run can resume from
//! the frames it already wrote ([`Video::resume`]). `docs/video.md` has the measurements.

use crate::engine::Engine;
use crate::error::{Field, Result, TransferError};
use crate::events::{Event, Flow, Outcome};
use crate::flow::{FlowSettings, FramePair};
use crate::image::{fit_longest, resize, Image};
use crate::objective::{Temporal, TemporalFrame};
use crate::settings::{Init, Settings, Style};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How a video is stylized, besides each frame's [`Settings`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoSettings {
    /// Weight of the temporal loss; 0 stylizes each frame on its own (still starting from
    /// the previous result warped).
    pub temporal_weight: f64,
    /// The earlier frames the temporal loss compares with, counted back from the current one
    /// (1: the previous frame). Several make Ruder et al.'s long-term loss: each frame's
    /// weights count only where no nearer frame's do.
    pub frames_back: Vec<u32>,
    /// The most iterations of each frame after the first (the first takes
    /// [`Settings::iterations`]), which starts from the previous result.
    pub later_iterations: u32,
    /// The optical flow's parameters.
    pub flow: FlowSettings,
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings {
            temporal_weight: crate::defaults::TEMPORAL_WEIGHT,
            frames_back: crate::defaults::FRAMES_BACK.to_vec(),
            later_iterations: crate::defaults::LATER_ITERATIONS,
            flow: FlowSettings::default(),
        }
    }
}

impl VideoSettings {
    /// Checks every setting, naming the one to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| Err(TransferError::invalid(field, reason.to_string()));
        if !(self.temporal_weight.is_finite() && self.temporal_weight >= 0.0) {
            return bad(Field::TemporalWeight, "must be 0 or more");
        }
        if self.frames_back.is_empty() || self.frames_back.contains(&0) {
            return bad(
                Field::FramesBack,
                "must list earlier frames, each 1 or more",
            );
        }
        if self.later_iterations == 0 {
            return bad(Field::Iterations, "later_iterations must be at least 1");
        }
        self.flow.validate()
    }
}

/// A video being stylized, frame after frame ([`Engine::video`]).
pub struct Video<'a> {
    engine: &'a Engine,
    styles: &'a [Style],
    settings: &'a Settings,
    video: &'a VideoSettings,
    /// The latest frames done, newest first: each content frame at the output's size and its
    /// stylized frame, as written (8 bits).
    done: VecDeque<(Image, Image)>,
    /// Frames done, this run or before it.
    count: usize,
}

/// One stylized frame.
pub struct VideoFrame {
    /// The run's outcome; its image is the frame as written, 8 bits a channel.
    pub outcome: Outcome,
    /// Per pixel, where the previous frame's flow was reliable (empty for the first frame).
    pub reliability: Vec<f32>,
}

impl Engine {
    /// A video in `styles` under `settings` (each frame's) and `video`: give it the frames
    /// in order ([`Video::next`]).
    pub fn video<'a>(
        &'a self, styles: &'a [Style], settings: &'a Settings, video: &'a VideoSettings,
    ) -> Result<Video<'a>> {
        settings.validate()?;
        video.validate()?;
        Ok(Video {
            engine: self,
            styles,
            settings,
            video,
            done: VecDeque::new(),
            count: 0,
        })
    }
}

impl Video<'_> {
    /// How many earlier frames it keeps: the farthest the temporal loss looks back.
    fn depth(&self) -> usize {
        self.video.frames_back.iter().copied().max().unwrap_or(1) as usize
    }

    /// Continues after `count` frames done before: `latest` holds the last of them (the
    /// newest last), each its content frame and its stylized frame as written; at least
    /// [`VideoSettings::frames_back`]'s farthest, or all of them.
    pub fn resume(&mut self, count: usize, latest: Vec<(Image, Image)>) {
        self.count = count;
        self.done.clear();
        for (content, stylized) in latest.into_iter().rev().take(self.depth()) {
            let (w, h) = (stylized.width, stylized.height);
            self.done.push_back((resize(&content, w, h), stylized));
        }
    }

    /// Frames done so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Stylizes the next frame. `on_event` hears the run's events as
    /// [`Engine::stylize`]'s do.
    pub fn next(
        &mut self, frame: &Image, on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<VideoFrame> {
        pollster::block_on(self.next_async(frame, on_event))
    }

    /// [`Video::next`] without blocking.
    pub async fn next_async(
        &mut self, frame: &Image, on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<VideoFrame> {
        let (w, h) = fit_longest(frame.width, frame.height, self.settings.size);
        let content = resize(frame, w, h);
        if let Some((prev, _)) = self.done.front() {
            if (prev.width, prev.height) != (w, h) {
                let reason = format!(
                    "frame {} is {}×{}, the frames before it {}×{}: a video's frames share one \
                     shape",
                    self.count + 1,
                    frame.width,
                    frame.height,
                    prev.width,
                    prev.height
                );
                return Err(TransferError::invalid(Field::Content, reason));
            }
        }
        // The frame at the output's size, in one scale: the temporal loss holds at that size.
        let one_scale = self.settings.clone().size(w.max(h)).scales(Some(1));
        let (settings, temporal, reliability) = match self.done.is_empty() {
            true => (one_scale, None, Vec::new()),
            false => {
                let (start, temporal, reliability) = self.temporal(&content)?;
                let s = one_scale
                    .init(Init::Image(start))
                    .iterations(self.video.later_iterations);
                (s, Some(temporal), reliability)
            }
        };
        let run = self.engine.run_async(
            &content,
            self.styles,
            &settings,
            temporal
                .as_ref()
                .filter(|_| self.video.temporal_weight > 0.0),
            on_event,
        );
        let mut outcome = run.await?;
        outcome.image = as_written(&outcome.image);
        self.done.push_front((content, outcome.image.clone()));
        self.done.truncate(self.depth());
        self.count += 1;
        Ok(VideoFrame {
            outcome,
            reliability,
        })
    }

    /// The start of frame `content` (the previous result warped to it, the frame itself where
    /// the flow is not reliable), its temporal loss, and the previous frame's reliability.
    fn temporal(&self, content: &Image) -> Result<(Image, Temporal, Vec<f32>)> {
        let mut frames_back = self.video.frames_back.clone();
        frames_back.sort();
        frames_back.dedup();
        let n = content.width as usize * content.height as usize;
        // Σ of the nearer frames' weights: a farther frame counts only where they do not.
        let mut nearer = vec![0.0f32; n];
        let mut frames = Vec::new();
        let mut first: Option<(Image, Vec<f32>)> = None;
        for &j in &frames_back {
            let Some((earlier, stylized)) = self.done.get(j as usize - 1) else {
                break;
            };
            let FramePair {
                backward,
                reliability,
                ..
            } = self.engine.flows(earlier, content, &self.video.flow)?;
            let warped = self.engine.warp(stylized, &backward)?;
            let weights: Vec<f32> = (reliability.iter().zip(&nearer))
                .map(|(&c, &s)| (c - s).max(0.0))
                .collect();
            nearer
                .iter_mut()
                .zip(&reliability)
                .for_each(|(s, c)| *s += c);
            if first.is_none() {
                first = Some((warped.clone(), reliability));
            }
            frames.push(TemporalFrame { warped, weights });
        }
        let (warped, reliability) = first.expect("a frame done before");
        let start: Vec<f32> = (warped.data.iter().zip(&content.data).enumerate())
            .map(|(i, (&wv, &cv))| {
                let c = reliability[i % n];
                c * wv + (1.0 - c) * cv
            })
            .collect();
        let start = Image::from_parts(content.width, content.height, start);
        let temporal = Temporal {
            weight: self.video.temporal_weight,
            frames,
        };
        Ok((start, temporal, reliability))
    }
}

/// `img` as an 8-bit file holds it: each sample clamped to [0, 1] and rounded to 1/255. A
/// resumed run reads its earlier frames from such files, so the frames it keeps are these.
pub fn as_written(img: &Image) -> Image {
    let data = img
        .data
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0);
    Image::from_parts(img.width, img.height, data.collect())
}

/// Lai et al.'s warping error ("Learning Blind Video Temporal Consistency", 2018) of
/// `outputs`, stylized from `contents` (frames in order; the contents are resized to the
/// outputs' size): for each pair of consecutive frames, the mean over the pixels where the
/// contents' flow is reliable of the squared difference (summed over RGB in [0, 1]) between
/// the output and the previous output warped to it along that flow; the mean over pairs.
/// 0 for fewer than two frames.
pub fn warping_error(
    flows: &crate::Flows, contents: &[Image], outputs: &[Image], flow: &FlowSettings,
) -> Result<f64> {
    let errors = warping_errors(flows, contents, outputs, flow)?;
    Ok(errors.iter().sum::<f64>() / errors.len().max(1) as f64)
}

/// [`warping_error`] of each pair of consecutive frames.
pub fn warping_errors(
    flows: &crate::Flows, contents: &[Image], outputs: &[Image], flow: &FlowSettings,
) -> Result<Vec<f64>> {
    let pair = |a: &Image, b: &Image| flows.flows(a, b, flow);
    pair_errors(pair, |i, f| flows.warp(i, f), contents, outputs)
}

impl Engine {
    /// [`warping_errors`] on this engine's GPU.
    pub fn warping_errors(
        &self, contents: &[Image], outputs: &[Image], flow: &FlowSettings,
    ) -> Result<Vec<f64>> {
        let pair = |a: &Image, b: &Image| self.flows(a, b, flow);
        pair_errors(pair, |i, f| self.warp(i, f), contents, outputs)
    }
}

/// The warping errors of consecutive `outputs` with the flows of `contents` from `flows` and
/// the warps of `warp`.
fn pair_errors(
    flows: impl Fn(&Image, &Image) -> Result<FramePair>,
    warp: impl Fn(&Image, &crate::FlowField) -> Result<Image>, contents: &[Image],
    outputs: &[Image],
) -> Result<Vec<f64>> {
    let pairs = contents.len().min(outputs.len()).saturating_sub(1);
    let mut errors = Vec::new();
    for t in 1..=pairs {
        let (w, h) = (outputs[t].width, outputs[t].height);
        let (c0, c1) = (resize(&contents[t - 1], w, h), resize(&contents[t], w, h));
        let pair = flows(&c0, &c1)?;
        let warped = warp(&outputs[t - 1], &pair.backward)?;
        let n = w as usize * h as usize;
        let (mut err, mut count) = (0.0f64, 0.0f64);
        for (q, &m) in pair.reliability.iter().enumerate() {
            let d: f64 = (0..3)
                .map(|k| (outputs[t].data[k * n + q] - warped.data[k * n + q]) as f64)
                .map(|d| d * d)
                .sum();
            err += m as f64 * d;
            count += m as f64;
        }
        errors.push(err / count.max(1.0));
    }
    Ok(errors)
}
