//! Reporting a run as it goes: a [`Reporter`] hears the engine's [`Event`]s and prints
//! progress for people (a progress bar on a terminal with the `progress` feature), prints the
//! log's rows as JSON lines, saves snapshots, and at the end saves the output and writes the
//! log (and, with the `plot` feature, the loss curves).
//!
//! ```no_run
//! # fn run(engine: &nst_transfer::Engine, content: &nst_transfer::Image,
//! #        styles: &[nst_transfer::Style]) -> nst_transfer::Result<()> {
//! use nst_transfer::report::{Reporter, Reporting};
//! use nst_transfer::Settings;
//! let settings = Settings::default();
//! let reporting = Reporting {
//!     output: Some("out.png".into()),
//!     log: Some("log.csv".into()),
//!     ..Reporting::default()
//! };
//! reporting.check(&[])?;
//! let mut reporter = Reporter::new(reporting, &settings);
//! let result = engine.stylize(content, styles, &settings, |e| reporter.event(&e));
//! let outcome = reporter.finish(result)?;
//! # Ok(()) }
//! ```

use crate::engine::{Engine, EngineOptions};
use crate::error::{Field, Result, TransferError};
use crate::events::{Event, Flow, Outcome};
use crate::image::{self, Image};
use crate::log::{Log, LogRow};
use crate::settings::Settings;
use std::path::{Path, PathBuf};

/// What to report and where.
#[derive(Clone, Debug, Default)]
pub struct Reporting {
    /// Print nothing for people: no progress lines, no bar, no final line.
    pub quiet: bool,
    /// Print each log row, and the final one, as a line of JSON on standard output.
    pub json: bool,
    /// Draw a progress bar on standard error when it is a terminal and `quiet` is off (with
    /// the `progress` feature; progress lines otherwise).
    pub bar: bool,
    /// Save the result here when the run ends (and the last good image when the loss became
    /// NaN or infinite): a `.png`, `.jpg` or `.webp` name.
    pub output: Option<PathBuf>,
    /// Save a PNG output with 16 bits per channel.
    pub sixteen_bit: bool,
    /// Save each [`Event::Snapshot`] as `<folder>/<stem>_s<scale>_<iteration>.png`: the
    /// folder and the stem (`None`: snapshots are not saved).
    pub snapshots: Option<(PathBuf, String)>,
    /// Write the log here (`.csv` or `.json`) when the run ends.
    pub log: Option<PathBuf>,
    /// Draw the loss curves into this PNG file when the run ends.
    #[cfg(feature = "plot")]
    pub plot: Option<PathBuf>,
}

impl Reporting {
    /// Checks, before a run, that every file can be written, so that a long run never ends
    /// unable to write: the output and the plot none of `taken` (the run's inputs) nor of the
    /// other outputs, the log's and the plot's names, the snapshots' folder. Errors name the
    /// file's field.
    pub fn check(&self, taken: &[&Path]) -> Result<()> {
        let named = |field| move |e: TransferError| TransferError::invalid(field, e.to_string());
        let mut taken = taken.to_vec();
        if let Some(out) = &self.output {
            let checked = image::check_output_path(out, &taken, self.sixteen_bit);
            checked.map_err(|e| TransferError::invalid(Field::Output, e.to_string()))?;
            taken.push(out);
        }
        if let Some(log) = &self.log {
            Log::check_path(log).map_err(named(Field::Log))?;
        }
        #[cfg(feature = "plot")]
        if let Some(plot) = &self.plot {
            taken.extend(self.log.as_deref());
            crate::plot::check_path(plot, &taken).map_err(named(Field::Plot))?;
        }
        match &self.snapshots {
            Some((dir, _)) if !dir.is_dir() => Err(TransferError::invalid(
                Field::Snapshots,
                format!("{}: no such folder; create it first", dir.display()),
            )),
            _ => Ok(()),
        }
    }
}

/// Loads the image at `path` (the file of `field`), telling any notes on the way (an alpha
/// channel composited, a rotation applied) on standard error unless `quiet`.
pub fn load_image(field: Field, path: &Path, quiet: bool) -> Result<Image> {
    let loaded = image::load(path).map_err(|source| TransferError::Image { field, source })?;
    for note in loaded.notes.iter().filter(|_| !quiet) {
        eprintln!("note: {}: {note}", path.display());
    }
    Ok(loaded.image)
}

/// Loads the mask at `path` (the file of `field`): white where it applies; a transparent
/// area marks nothing ([`Mask::from_loaded`](crate::guide::Mask::from_loaded)). Tells the notes
/// that matter for a mask on standard error unless `quiet`.
pub fn load_mask(field: Field, path: &Path, quiet: bool) -> Result<crate::guide::Mask> {
    let loaded = image::load(path).map_err(|source| TransferError::Image { field, source })?;
    // Read as grey and over black anyway: those conversions are no news.
    let news = |n: &&String| !n.starts_with("is gray-scale") && !n.starts_with("has an alpha");
    for note in loaded.notes.iter().filter(|_| !quiet).filter(news) {
        eprintln!("note: {}: {note}", path.display());
    }
    Ok(crate::guide::Mask::from_loaded(&loaded))
}

/// Refuses an output `path` (of `field`) that is one of the `inputs`: writing it would lose
/// an input.
pub fn check_not_input(field: Field, path: &Path, inputs: &[&Path]) -> Result<()> {
    match inputs.iter().any(|p| image::same_file(p, path)) {
        true => Err(TransferError::invalid(
            field,
            format!(
                "{} is one of the input images; choose another name",
                path.display()
            ),
        )),
        false => Ok(()),
    }
}

/// Opens the engine ([`Engine::open_with_progress`]), telling its progress, the GPU and any
/// tuning hint on standard error unless `quiet`.
pub fn open_engine(options: EngineOptions, quiet: bool) -> Result<Engine> {
    let say = &mut |m: &str| {
        if !quiet {
            eprintln!("{m}")
        }
    };
    let engine = Engine::open_with_progress(options, say)?;
    let s = &engine.context().summary;
    say(&format!("GPU: {} ({})", s.name, s.backend));
    engine.tuning().hint().inspect(|h| say(h));
    Ok(engine)
}

/// Prints `value` on standard output for people, or as JSON; a closed pipe (`nst layers |
/// head`) is not an error.
pub fn print(
    value: &(impl std::fmt::Display + serde::Serialize), json: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let text = match json {
        true => serde_json::to_string_pretty(value).expect("serializable") + "\n",
        false => value.to_string(),
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Reports one run (see the [module](self)).
pub struct Reporter {
    how: Reporting,
    log: Log,
    /// Iterations per scale, for the plot.
    #[cfg_attr(not(feature = "plot"), allow(dead_code))]
    iterations: u32,
    #[cfg(feature = "progress")]
    bar: Option<indicatif::ProgressBar>,
    /// The first snapshot that could not be saved; the run stops there.
    snapshot_error: Option<TransferError>,
}

impl Reporter {
    /// A reporter for a run of `settings`; the log's clock starts now.
    pub fn new(how: Reporting, settings: &Settings) -> Reporter {
        #[cfg(feature = "progress")]
        let bar = (how.bar && !how.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .then(|| {
                let total = settings.iterations as u64 * settings.scale_sizes().len() as u64;
                let style = "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}";
                let style = indicatif::ProgressStyle::with_template(style).expect("valid");
                indicatif::ProgressBar::new(total).with_style(style)
            });
        Reporter {
            how,
            log: Log::new(),
            iterations: settings.iterations,
            #[cfg(feature = "progress")]
            bar,
            snapshot_error: None,
        }
    }

    /// Prints a line for people on standard error (above the bar), unless quiet.
    pub fn say(&self, line: impl std::fmt::Display) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            return bar.println(line.to_string());
        }
        if !self.how.quiet {
            eprintln!("{line}");
        }
    }

    /// Reports one event; [`Flow::Stop`] when a snapshot could not be saved.
    pub fn event(&mut self, event: &Event<'_>) -> Flow {
        match event {
            Event::Snapshot {
                scale,
                iteration,
                image,
            } => {
                if let Some((dir, stem)) = &self.how.snapshots {
                    let path = dir.join(format!("{stem}_s{}_{iteration:05}.png", scale + 1));
                    if let Err(e) = image::save(image, &path, false) {
                        self.snapshot_error = Some(TransferError::Snapshot(e));
                        return Flow::Stop;
                    }
                }
            }
            Event::Final { .. } => {}
            Event::Iteration {
                scale,
                iteration,
                of,
                ..
            } if self.bar_at(*scale as u64 * *of as u64 + *iteration as u64, event) => {}
            _ => self.say(event),
        }
        if let (Some(row), true) = (self.log.record(event), self.how.json) {
            print_json(row);
        }
        Flow::Continue
    }

    /// Moves the bar to `position` with `event` as its message; false when there is no bar.
    fn bar_at(&self, position: u64, event: &Event<'_>) -> bool {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(event.to_string());
            return true;
        }
        let _ = (position, event);
        false
    }

    /// Clears the bar (later lines print without it).
    fn clear_bar(&self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Reports the end of a run that returned `result`: the bar cleared, the final row
    /// printed, the log and the plot written, the error of a snapshot that could not be saved
    /// returned, else the output saved. When the loss became NaN or infinite, or the device
    /// was lost, the last good image is saved as the output and the error returned.
    pub fn finish(&mut self, result: Result<Outcome>) -> Result<Outcome> {
        self.clear_bar();
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                if let TransferError::NonFinite { last_good, .. }
                | TransferError::DeviceLost { last_good, .. } = &e
                {
                    self.save(last_good)?;
                }
                return Err(e);
            }
        };
        if let Some(row) = self.log.finish(&out).cloned() {
            let m = row.measure.expect("the final row has the measure");
            match self.how.json {
                true => print_json(&row),
                false => self.say(format!("final loss {:.4e}; {m}", row.values.total())),
            }
        }
        if let Some(path) = &self.how.log {
            self.log.write(path)?;
        }
        #[cfg(feature = "plot")]
        if let Some(path) = &self.how.plot {
            crate::plot::write(path, self.log.rows(), self.iterations)?;
        }
        if let Some(e) = self.snapshot_error.take() {
            return Err(e);
        }
        if let Some(path) = self.save(&out.image)? {
            let how = match out.stopped {
                true => "stopped early; wrote the current image to",
                false => "wrote",
            };
            self.say(format!("{how} {}", path.display()));
        }
        Ok(out)
    }

    /// Saves `image` as the output, if there is one, and says where.
    fn save(&self, image: &image::Image) -> Result<Option<&Path>> {
        let Some(path) = &self.how.output else {
            return Ok(None);
        };
        image::save(image, path, self.how.sixteen_bit).map_err(TransferError::Output)?;
        Ok(Some(path))
    }

    /// The log so far.
    pub fn log(&self) -> &Log {
        &self.log
    }
}

impl Drop for Reporter {
    /// A run that failed leaves no bar behind.
    fn drop(&mut self) {
        self.clear_bar();
    }
}

fn print_json(row: &LogRow) {
    println!("{}", serde_json::to_string(row).expect("serializable"));
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::measure::Measure;
    use crate::terms::{LossValues, Term, TermValue};
    use std::time::Duration;

    #[test]
    fn a_run_leaves_its_snapshots_log_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        let how = Reporting {
            quiet: true,
            output: Some(at("out.png")),
            snapshots: Some((dir.path().to_owned(), "out".into())),
            log: Some(at("log.csv")),
            ..Reporting::default()
        };
        how.check(&[]).unwrap();
        let settings = Settings::default().iterations(2);
        let mut reporter = Reporter::new(how, &settings);
        let image = Image::new(2, 2, vec![0.5; 12]).unwrap();
        let values = LossValues {
            terms: vec![TermValue {
                term: Term::Tv,
                raw: 1.0,
                weight: 0.5,
            }],
        };
        let per_iteration = Duration::from_millis(3);
        for iteration in 1..=2 {
            let e = Event::Iteration {
                scale: 0,
                iteration,
                of: 2,
                values: &values,
                per_iteration,
                left: Duration::from_secs(1),
            };
            assert_eq!(reporter.event(&e), Flow::Continue);
        }
        let snapshot = Event::Snapshot {
            scale: 0,
            iteration: 2,
            image: &image,
        };
        assert_eq!(reporter.event(&snapshot), Flow::Continue);
        let end = Event::ScaleEnd {
            scale: 0,
            iterations: 2,
            shrunk: 0,
            end: crate::ScaleEnd::Iterations,
            values: &values,
        };
        assert_eq!(reporter.event(&end), Flow::Continue);
        let outcome = Outcome {
            image,
            stopped: false,
            values: Some(values.clone()),
            measure: Some(Measure {
                style_distance: 0.5,
                content_distance: 0.25,
                content_style_distance: 1.0,
            }),
            scales: 1,
            iterations: 2,
        };
        reporter.finish(Ok(outcome)).unwrap();
        assert_eq!(reporter.log().rows().len(), 4);
        let log = std::fs::read_to_string(at("log.csv")).unwrap();
        assert_eq!(log.lines().count(), 5, "{log}");
        assert!(
            log.contains(",\"it ran every iteration allowed\"\n"),
            "{log}"
        );
        assert!(at("out_s1_00002.png").is_file() && at("out.png").is_file());
    }

    #[test]
    fn each_bad_output_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.png");
        std::fs::write(&input, b"x").unwrap();
        let field = |how: Reporting| how.check(&[&input]).unwrap_err().field();
        let d = Reporting::default;
        let output = Some(input.clone());
        assert_eq!(field(Reporting { output, ..d() }), Some(Field::Output));
        let log = Some(dir.path().join("log.txt"));
        assert_eq!(field(Reporting { log, ..d() }), Some(Field::Log));
        let snapshots = Some((dir.path().join("none"), "x".into()));
        assert_eq!(
            field(Reporting { snapshots, ..d() }),
            Some(Field::Snapshots)
        );
    }
}
