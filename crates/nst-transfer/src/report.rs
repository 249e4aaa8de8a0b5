//! Reporting a run as it goes: a [`Reporter`] hears the engine's [`Event`]s and prints
//! progress for people (a progress bar on a terminal with the `progress` feature), prints the
//! log's rows as JSON lines, saves snapshots, and at the end writes the log (and, with the
//! `plot` feature, the loss curves).
//!
//! ```no_run
//! # fn run(engine: &nst_transfer::Engine, content: &nst_transfer::Image,
//! #        styles: &[nst_transfer::Style]) -> nst_transfer::Result<()> {
//! use nst_transfer::report::{Reporter, Reporting};
//! use nst_transfer::Settings;
//! let settings = Settings::default();
//! let reporting = Reporting { log: Some("log.csv".into()), ..Reporting::default() };
//! let mut reporter = Reporter::new(reporting, &settings);
//! let out = engine.stylize(content, styles, &settings, |e| reporter.event(&e))?;
//! reporter.finish(&out)?;
//! # Ok(()) }
//! ```

use crate::engine::{Event, Flow, Outcome};
use crate::error::{Result, TransferError};
use crate::image;
use crate::log::{Log, LogRow};
use crate::settings::Settings;
use std::path::PathBuf;

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
    /// Save each [`Event::Snapshot`] as `<folder>/<stem>_s<scale>_<iteration>.png`: the
    /// folder and the stem.
    pub snapshots: Option<(PathBuf, String)>,
    /// Write the log here (`.csv` or `.json`) when the run ends.
    pub log: Option<PathBuf>,
    /// Draw the loss curves into this PNG file when the run ends.
    #[cfg(feature = "plot")]
    pub plot: Option<PathBuf>,
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
                let (dir, stem) = self.how.snapshots.clone().unwrap_or_default();
                let path = dir.join(format!("{stem}_s{}_{iteration:05}.png", scale + 1));
                if let Err(e) = image::save(image, &path, false) {
                    self.snapshot_error = Some(TransferError::Snapshot(e));
                    return Flow::Stop;
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

    /// Reports the end of a run that returned `outcome`: the bar cleared, the final row
    /// printed, the log and the plot written; then the error of a snapshot that could not be
    /// saved, if one could not.
    pub fn finish(&mut self, outcome: &Outcome) -> Result<()> {
        self.clear_bar();
        if let Some(row) = self.log.finish(outcome).cloned() {
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
        match self.snapshot_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
    println!("{}", serde_json::to_string(row).expect("serialisable"));
}
