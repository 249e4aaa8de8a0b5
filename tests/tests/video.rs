//! Video (`nst_transfer::video`): a run resumed from the frames it wrote reproduces the run
//! straight through, bit for bit; and the temporal mode flickers less than frames stylized
//! one by one, by the warping error. On VGG-tiny and the test clip (tests/fixtures/clip).

use nst_transfer::image::{load, Image};
use nst_transfer::{Flow, Flows, Settings, Style, VideoSettings};

/// The test clip's first `n` frames.
fn clip(n: usize) -> Vec<Image> {
    (1..=n)
        .map(|i| {
            let path = format!(
                "{}/fixtures/clip/frame_{i:02}.png",
                env!("CARGO_MANIFEST_DIR")
            );
            load(&path).unwrap().image
        })
        .collect()
}

fn style() -> [Style; 1] {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/gallery/inputs/starry_night.jpg"
    );
    [Style::new(load(path).unwrap().image, 1.0)]
}

fn settings() -> (Settings, VideoSettings) {
    let s = Settings::default().size(48).iterations(12).tolerance(0.0);
    let v = VideoSettings {
        later_iterations: 6,
        frames_back: vec![1, 2],
        ..VideoSettings::default()
    };
    (s, v)
}

#[test]
fn a_resumed_video_reproduces_the_run_straight_through() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    let (frames, styles, (s, v)) = (clip(4), style(), settings());
    let mut straight = engine.video(&styles, &s, &v).unwrap();
    let all: Vec<Image> = (frames.iter())
        .map(|f| straight.next(f, |_| Flow::Continue).unwrap().outcome.image)
        .collect();
    // Stopped after two frames: a new run given what was written continues.
    let mut resumed = engine.video(&styles, &s, &v).unwrap();
    let written: Vec<(Image, Image)> = (frames.iter().cloned())
        .zip(all.iter().cloned())
        .take(2)
        .collect();
    resumed.resume(2, written);
    assert_eq!(resumed.count(), 2);
    for (i, f) in frames.iter().enumerate().skip(2) {
        let out = resumed.next(f, |_| Flow::Continue).unwrap();
        assert_eq!(out.outcome.image, all[i], "frame {}", i + 1);
        // Each later frame trusted the flow over most of the frame.
        let reliable = out.reliability.iter().filter(|&&c| c > 0.5).count();
        assert!(
            reliable * 2 > out.reliability.len(),
            "frame {}: {reliable}",
            i + 1
        );
    }
}

#[test]
fn the_temporal_mode_flickers_less_than_frames_one_by_one() {
    let Some(engine) = nst_tests::tiny_engine() else {
        return;
    };
    let (frames, styles, (s, v)) = (clip(5), style(), settings());
    let mut run = engine.video(&styles, &s, &v).unwrap();
    let temporal: Vec<Image> = (frames.iter())
        .map(|f| run.next(f, |_| Flow::Continue).unwrap().outcome.image)
        .collect();
    let one_by_one: Vec<Image> = (frames.iter())
        .map(|f| {
            let out = engine.stylize(f, &styles, &s, |_| Flow::Continue).unwrap();
            nst_transfer::video::as_written(&out.image)
        })
        .collect();
    let flows = Flows::open().unwrap();
    let err = |outs: &[Image]| {
        nst_transfer::video::warping_error(&flows, &frames, outs, &v.flow).unwrap()
    };
    let (t, o) = (err(&temporal), err(&one_by_one));
    eprintln!("warping error: temporal {t:.5}, one by one {o:.5}");
    assert!(t * 2.0 < o, "temporal {t}, one by one {o}");
}
