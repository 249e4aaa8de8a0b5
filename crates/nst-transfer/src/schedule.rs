//! How a run's work is spread and when a scale stops: the plan a run announces
//! ([`RunPlan`]), the stopping rule ([`StoppingRule`]) and why a scale ended ([`ScaleEnd`]).

use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;

/// What a run will do at most: its scales and the iterations each may take. Serialized with
/// its [`RunPlan::work`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    /// Each scale's size (width, height), smallest first.
    pub scales: Vec<(u32, u32)>,
    /// The most iterations at each scale.
    pub iterations: u32,
}

impl RunPlan {
    /// The most work, in evaluations of the loss and its gradient at the output's size: an
    /// iteration at a scale with a quarter of the pixels counts a quarter.
    pub fn work(&self) -> f64 {
        let last = self.scales.last().map_or(1.0, |&(w, h)| f64::from(w * h));
        (self.scales.iter())
            .map(|&(w, h)| f64::from(self.iterations) * f64::from(w * h) / last)
            .sum()
    }

    /// The most time left, at `per_iteration` for scale `scale` after `done` of its
    /// iterations: later scales are taken to cost in proportion to their pixels.
    pub fn time_left(&self, scale: usize, done: u32, per_iteration: Duration) -> Duration {
        let pixels = |(w, h): (u32, u32)| f64::from(w * h);
        let here = pixels(self.scales[scale]);
        let later: f64 = self.scales[scale + 1..]
            .iter()
            .map(|&s| pixels(s) / here)
            .sum();
        let left =
            f64::from(self.iterations.saturating_sub(done)) + f64::from(self.iterations) * later;
        per_iteration.mul_f64(left)
    }
}

impl Serialize for RunPlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("RunPlan", 3)?;
        out.serialize_field("scales", &self.scales)?;
        out.serialize_field("iterations", &self.iterations)?;
        out.serialize_field("work", &self.work())?;
        out.end()
    }
}

impl std::fmt::Display for RunPlan {
    /// "1 scale (512×384), at most 60 iterations", or "3 scales (128×96, 181×136, 256×192), at
    /// most 60 iterations each: at most 105 evaluations at full size".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<String> = self
            .scales
            .iter()
            .map(|(w, h)| format!("{w}×{h}"))
            .collect();
        let (n, sizes, most) = (self.scales.len(), sizes.join(", "), self.iterations);
        match n {
            1 => write!(f, "1 scale ({sizes}), at most {most} iterations"),
            _ => write!(
                f,
                "{n} scales ({sizes}), at most {most} iterations each: at most {:.0} \
                 evaluations at full size",
                self.work()
            ),
        }
    }
}

/// Why a scale ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum ScaleEnd {
    /// It ran every iteration allowed.
    Iterations,
    /// Its loss fell by less than `tolerance` (a fraction) over `window` iterations.
    Converged {
        /// The fraction.
        tolerance: f64,
        /// The iterations looked back over.
        window: u32,
    },
    /// No step lowered the loss: L-BFGS shrank one `shrinks` times in a row.
    NoDescent {
        /// The shrinks.
        shrinks: u32,
    },
}

impl std::fmt::Display for ScaleEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScaleEnd::Iterations => write!(f, "it ran every iteration allowed"),
            ScaleEnd::Converged { tolerance, window } => write!(
                f,
                "the loss fell less than {} % over {window} iterations",
                tolerance * 100.0
            ),
            ScaleEnd::NoDescent { shrinks } => write!(
                f,
                "no step lowered the loss (the last was shrunk {shrinks} times)"
            ),
        }
    }
}

/// The stopping rule: a scale has converged once its loss fell by less than `tolerance` (a
/// fraction of the loss then) over the last `window` iterations.
#[derive(Debug)]
pub struct StoppingRule {
    tolerance: f64,
    window: u32,
    losses: VecDeque<f64>,
}

impl StoppingRule {
    /// The rule; a `tolerance` of 0 never stops a scale.
    pub fn new(tolerance: f64, window: u32) -> Self {
        StoppingRule {
            tolerance,
            window: window.max(1),
            losses: VecDeque::new(),
        }
    }

    /// Adds the loss after one more iteration; `Some` once the scale has converged.
    pub fn push(&mut self, loss: f64) -> Option<ScaleEnd> {
        self.losses.push_back(loss);
        if self.losses.len() <= self.window as usize {
            return None;
        }
        let before = self.losses.pop_front().expect("window + 1 losses");
        let converged = self.tolerance > 0.0 && before - loss < self.tolerance * before.abs();
        converged.then_some(ScaleEnd::Converged {
            tolerance: self.tolerance,
            window: self.window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_converges_when_the_loss_falls_too_little_over_the_window() {
        // The loss halves every 4 iterations, then falls 0.5 % per iteration: over a window of
        // 4 it falls by about 2 %, under a tolerance of 3 %.
        let mut rule = StoppingRule::new(0.03, 4);
        let mut loss = 1.0;
        let mut stopped = None;
        for t in 1..=40 {
            loss *= if t <= 12 { 0.5f64.powf(0.25) } else { 0.995 };
            if rule.push(loss).is_some() {
                stopped = Some(t);
                break;
            }
        }
        // At iteration 16 the window looks back to the loss after 12, the last fast
        // iteration, so it spans only slow ones.
        assert_eq!(stopped, Some(16));
    }

    #[test]
    fn a_tolerance_of_zero_never_stops_and_a_rising_loss_stops_at_once() {
        let mut never = StoppingRule::new(0.0, 2);
        assert!((0..100).all(|_| never.push(1.0).is_none()));
        let mut rule = StoppingRule::new(1e-6, 2);
        assert!(rule.push(1.0).is_none() && rule.push(2.0).is_none());
        assert!(rule.push(3.0).is_some());
    }

    #[test]
    fn the_plan_counts_work_and_time_by_pixels() {
        let plan = RunPlan {
            scales: vec![(100, 50), (200, 100)],
            iterations: 40,
        };
        assert_eq!(plan.work(), 40.0 * 0.25 + 40.0);
        // 10 iterations done at the first scale, at 1 s each: 30 more there, and 40 at four
        // times the pixels.
        let left = plan.time_left(0, 10, Duration::from_secs(1));
        assert_eq!(left, Duration::from_secs(30 + 160));
        let one = RunPlan {
            scales: vec![(512, 384)],
            iterations: 60,
        };
        assert_eq!(one.to_string(), "1 scale (512×384), at most 60 iterations");
        assert_eq!(one.work(), 60.0);
        // As the web page reads the event.
        let json = serde_json::to_value(crate::Event::Plan { plan: &plan }).unwrap();
        assert_eq!(json["event"], "plan");
        assert_eq!(json["work"], 50.0);
        assert_eq!(json["scales"][1][0], 200);
        let values = crate::LossValues { terms: vec![] };
        let end = crate::Event::ScaleEnd {
            scale: 1,
            iterations: 85,
            shrunk: 2,
            end: ScaleEnd::Converged {
                tolerance: 0.001,
                window: 20,
            },
            values: &values,
        };
        let json = serde_json::to_value(&end).unwrap();
        assert_eq!(
            (&json["event"], &json["why"], &json["window"]),
            (&"scale_end".into(), &"converged".into(), &20.into())
        );
        assert_eq!(
            end.to_string(),
            "scale 2 stopped at iteration 85: the loss fell less than 0.1 % over 20 iterations \
             (2 steps raised the loss and were shrunk)"
        );
        assert_eq!(
            plan.to_string(),
            "2 scales (100×50, 200×100), at most 40 iterations each: at most 50 evaluations at \
             full size"
        );
    }
}
