//! A run's log: one row per reported iteration, one where each scale ends (saying why), and
//! one for the final image, written as CSV or JSON.

use crate::error::{Result, TransferError};
use crate::events::{Event, Outcome};
use crate::image::write_atomic;
use crate::measure::Measure;
use crate::terms::LossValues;
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One row: a reported iteration, or the final image with its measure.
#[derive(Clone, Debug, Serialize)]
pub struct LogRow {
    /// The scale, counted from 1.
    pub scale: usize,
    /// The iteration within the scale, counted from 1 (the scale's last for the final row).
    pub iteration: u32,
    /// The losses.
    #[serde(flatten)]
    pub values: LossValues,
    /// Mean wall time per iteration since the previous row (0 on the final row).
    pub ms_per_iteration: f64,
    /// Seconds since the log began.
    pub elapsed_s: f64,
    /// Why the scale ended, on the row of its last iteration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// True on the final row only.
    #[serde(rename = "final", skip_serializing_if = "std::ops::Not::not")]
    pub is_final: bool,
    /// The final image's measure (final row only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub measure: Option<Measure>,
}

/// The rows of a run, collected from its events.
#[derive(Debug)]
pub struct Log {
    rows: Vec<LogRow>,
    start: Instant,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            rows: Vec::new(),
            start: Instant::now(),
        }
    }
}

impl Log {
    /// An empty log; its clock starts now.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row for an [`Event::Iteration`] or [`Event::ScaleEnd`] and returns it; other
    /// events add nothing.
    pub fn record(&mut self, event: &Event<'_>) -> Option<&LogRow> {
        let (scale, iteration, values, ms, ended) = match event {
            Event::Iteration {
                scale,
                iteration,
                values,
                per_iteration,
                ..
            } => (
                scale,
                iteration,
                values,
                per_iteration.as_secs_f64() * 1e3,
                None,
            ),
            Event::ScaleEnd {
                scale,
                iterations,
                end,
                values,
                ..
            } => (scale, iterations, values, 0.0, Some(end.to_string())),
            _ => return None,
        };
        self.rows.push(LogRow {
            scale: scale + 1,
            iteration: *iteration,
            values: (*values).clone(),
            ms_per_iteration: ms,
            elapsed_s: self.start.elapsed().as_secs_f64(),
            ended,
            is_final: false,
            measure: None,
        });
        self.rows.last()
    }

    /// Adds the final row of a run that finished (none for one stopped early) and returns it.
    pub fn finish(&mut self, outcome: &Outcome) -> Option<&LogRow> {
        let (Some(values), Some(measure)) = (&outcome.values, outcome.measure) else {
            return None;
        };
        self.rows.push(LogRow {
            scale: outcome.scales,
            iteration: outcome.iterations,
            values: values.clone(),
            ms_per_iteration: 0.0,
            elapsed_s: self.start.elapsed().as_secs_f64(),
            ended: None,
            is_final: true,
            measure: Some(measure),
        });
        self.rows.last()
    }

    /// The rows so far.
    pub fn rows(&self) -> &[LogRow] {
        &self.rows
    }

    /// Checks, before a run, that [`Log::write`] can write `path`: a `.csv` or `.json` name in
    /// a folder that exists.
    pub fn check_path(path: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(TransferError::Write {
                path: path.to_owned(),
                reason,
            })
        };
        if Format::of(path).is_none() {
            return bad("use a .csv or .json file name".into());
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return bad(format!(
                "the folder {} does not exist; create it first",
                dir.display()
            ));
        }
        Ok(())
    }

    /// Writes the rows to `path`, as CSV or JSON by its extension, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        Self::check_path(path)?;
        let written = write_atomic(path, |out| match Format::of(path) {
            Some(Format::Csv) => self.write_csv(out),
            _ => {
                serde_json::to_writer_pretty(&mut *out, &self.rows)?;
                writeln!(out)
            }
        });
        written.map_err(|e| TransferError::Write {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    fn write_csv(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "scale,iteration,total,content,style,tv,out_of_range,ms_per_iteration,elapsed_s,\
             style_distance,content_distance,style_gap_closed,ended"
        )?;
        for r in &self.rows {
            let iteration = match r.is_final {
                true => "final".to_string(),
                false => r.iteration.to_string(),
            };
            let measure = r.measure.map_or(",,".into(), |m| {
                format!(
                    "{},{},{}",
                    m.style_distance,
                    m.content_distance,
                    m.style_gap_closed()
                )
            });
            let v = &r.values;
            let ended = r
                .ended
                .as_ref()
                .map_or(String::new(), |e| format!("\"{e}\""));
            writeln!(
                out,
                "{},{iteration},{},{},{},{},{},{:.3},{:.3},{measure},{ended}",
                r.scale,
                v.total(),
                v.content(),
                v.style(),
                v.tv(),
                v.out_of_range(),
                r.ms_per_iteration,
                r.elapsed_s
            )?;
        }
        Ok(())
    }
}

enum Format {
    Csv,
    Json,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}
