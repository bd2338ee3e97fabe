//! When a run is done: training until the validation loss stops improving, with the learning
//! rate halved on plateaus, instead of a step count fixed in advance.
//!
//! The fixed validation samples are scored after every epoch, sample by sample. An epoch
//! counts as progress only when it beats the last progress point by more than the
//! validation set can resolve: the mean of the per-sample differences must exceed twice its
//! standard error (a paired comparison on the same samples) and a minimum relative
//! improvement. Noise in a small validation set therefore reads as "no progress", never as
//! progress, and the run's report says how precise the validation was.

use serde::{Deserialize, Serialize};

/// How a run decides it has converged (see the module's doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Convergence {
    /// Smallest improvement, as a fraction of the reference loss, that counts as progress.
    pub min_improvement: f64,
    /// Epochs without progress before the learning rate is halved.
    pub plateau_epochs: usize,
    /// Epochs without progress that end the run.
    pub patience_epochs: usize,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The validation loss stopped improving.
    Converged,
    /// The step count given was reached (`--steps`), or the most steps a converging run may
    /// take.
    Steps,
    /// The time budget (`--max-minutes`) ran out first.
    TimeBudget,
}

impl Ending {
    /// Its name in model files and reports: "converged", "steps" or "time_budget".
    pub fn name(self) -> &'static str {
        match self {
            Ending::Converged => "converged",
            Ending::Steps => "steps",
            Ending::TimeBudget => "time_budget",
        }
    }

    /// How a person reads it.
    pub fn describe(self) -> &'static str {
        match self {
            Ending::Converged => "converged (the validation loss stopped improving)",
            Ending::Steps => "ran its step count",
            Ending::TimeBudget => "cut short by the time budget",
        }
    }
}

/// How a finished run ended, as its model file records it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// Why it ended.
    pub ending: Ending,
    /// Steps run in all (the saved model is the best epoch's, often earlier).
    pub steps: usize,
    /// How fast the best validation loss was still falling over the last epochs: its
    /// relative fall per 1,000 steps (see [`recent_fall_per_1000_steps`]).
    pub validation_fall_per_1000_steps: Option<f64>,
    /// Standard error of the last validation loss as a fraction of it: how finely the fixed
    /// validation samples rank models.
    pub validation_relative_error: Option<f64>,
}

impl RunEnd {
    /// One line for a person: how the run ended and how far the loss was still falling.
    pub fn describe(&self) -> String {
        let mut line = format!("{} steps: {}", self.steps, self.ending.describe());
        if let Some(fall) = self.validation_fall_per_1000_steps {
            line.push_str(&format!(
                "; over the last {TREND_EPOCHS} epochs the best validation loss fell {:.2}% per 1,000 steps",
                100.0 * fall
            ));
        }
        if let Some(error) = self.validation_relative_error {
            line.push_str(&format!(
                " (validation standard error {:.2}%)",
                100.0 * error
            ));
        }
        if self.ending == Ending::TimeBudget {
            line.push_str(
                "; the model is not finished: the same command with --resume trains it on",
            );
        }
        line
    }
}

/// Epochs over which [`RunEnd::validation_fall_per_1000_steps`] is measured.
pub const TREND_EPOCHS: usize = 10;

/// Where a converging run stands; kept in checkpoints so a resumed run goes on as if it had
/// never stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Plateau {
    /// Per-sample validation losses of the last epoch that counted as progress (or of the
    /// starting network).
    reference: Vec<f64>,
    /// Epochs since that point.
    pub stale_epochs: usize,
    /// Epochs since that point or since the last halving of the learning rate.
    since_reduction: usize,
    /// Halvings of the learning rate so far.
    pub reductions: u32,
}

impl Plateau {
    /// The factor on the scheduled learning rate.
    pub fn learning_rate_factor(&self) -> f64 {
        0.5f64.powi(self.reductions as i32)
    }

    /// Takes the starting network's per-sample losses as the first reference.
    pub fn start(&mut self, losses: &[f64]) {
        self.reference = losses.to_vec();
    }

    /// Scores an epoch's per-sample losses; returns whether the run has converged.
    pub fn update(&mut self, rule: &Convergence, losses: &[f64]) -> bool {
        if self.reference.len() != losses.len() || significant(rule, &self.reference, losses) {
            self.reference = losses.to_vec();
            self.stale_epochs = 0;
            self.since_reduction = 0;
            return false;
        }
        self.stale_epochs += 1;
        self.since_reduction += 1;
        if self.since_reduction >= rule.plateau_epochs {
            self.reductions += 1;
            self.since_reduction = 0;
        }
        self.stale_epochs >= rule.patience_epochs
    }
}

/// Whether `current` beats `reference` (per-sample losses on the same samples) by more than
/// twice the standard error of the mean difference and by at least the rule's fraction.
fn significant(rule: &Convergence, reference: &[f64], current: &[f64]) -> bool {
    let n = reference.len();
    if n == 0 {
        return false;
    }
    let differences: Vec<f64> = reference.iter().zip(current).map(|(r, c)| r - c).collect();
    let mean_difference = differences.iter().sum::<f64>() / n as f64;
    let reference_mean = reference.iter().sum::<f64>() / n as f64;
    let standard_error = standard_error(&differences);
    mean_difference > 2.0 * standard_error
        && mean_difference > rule.min_improvement * reference_mean.abs()
}

/// Standard error of the mean of `values` (0 for fewer than two).
pub(crate) fn standard_error(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    (variance / n as f64).sqrt()
}

/// How fast the best validation loss was still falling at the end of a run: its relative
/// fall over the last `epochs` epochs (or all of them), per 1,000 steps. `None` without
/// validation or with fewer than two scored epochs.
pub fn recent_fall_per_1000_steps(history: &[super::EpochReport], epochs: usize) -> Option<f64> {
    let scored: Vec<(usize, f64)> = history
        .iter()
        .filter_map(|r| r.validation_loss.map(|v| (r.step, v)))
        .collect();
    if scored.len() < 2 {
        return None;
    }
    let split = scored.len().saturating_sub(epochs + 1);
    let best = |points: &[(usize, f64)]| points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let before = best(&scored[..=split]);
    let after = best(&scored);
    let steps = scored.last()?.0.saturating_sub(scored[split].0);
    if steps == 0 || before <= 0.0 || !before.is_finite() {
        return None;
    }
    Some((before - after) / before * 1000.0 / steps as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::EpochReport;

    const RULE: Convergence = Convergence {
        min_improvement: 0.001,
        plateau_epochs: 2,
        patience_epochs: 5,
    };

    #[test]
    fn noise_is_not_progress_and_a_plateau_halves_then_ends() {
        let reference = vec![1.0, 2.0, 3.0, 4.0];
        let mut plateau = Plateau::default();
        plateau.start(&reference);
        // A clear improvement on every sample is progress.
        assert!(!plateau.update(&RULE, &[0.9, 1.8, 2.7, 3.6]));
        assert_eq!(plateau.stale_epochs, 0);
        // Better on average but within the samples' spread: not progress.
        let mut epochs = 0;
        while !plateau.update(&RULE, &[0.5, 2.1, 2.2, 3.9]) {
            epochs += 1;
            assert!(epochs < 10, "never converged");
        }
        assert_eq!(plateau.stale_epochs, RULE.patience_epochs);
        assert_eq!(plateau.reductions, 2);
        assert_eq!(plateau.learning_rate_factor(), 0.25);
    }

    #[test]
    fn an_improvement_below_the_minimum_fraction_is_not_progress() {
        let mut plateau = Plateau::default();
        plateau.start(&[1.0, 1.0, 1.0]);
        plateau.update(&RULE, &[0.9995, 0.9995, 0.9995]);
        assert_eq!(plateau.stale_epochs, 1);
        plateau.update(&RULE, &[0.99, 0.99, 0.99]);
        assert_eq!(plateau.stale_epochs, 0);
    }

    #[test]
    fn endings_are_named_as_model_files_write_them() {
        for ending in [Ending::Converged, Ending::Steps, Ending::TimeBudget] {
            assert_eq!(
                serde_json::to_value(ending).unwrap(),
                serde_json::Value::from(ending.name())
            );
        }
    }

    #[test]
    fn the_recent_fall_is_measured_on_the_best_loss() {
        let history: Vec<EpochReport> = [(100, 1.0), (200, 0.8), (300, 0.9), (400, 0.6)]
            .into_iter()
            .enumerate()
            .map(|(epoch, (step, loss))| EpochReport {
                epoch,
                step,
                train_loss: loss,
                validation_loss: Some(loss),
                learning_rate: 1e-3,
                elapsed_seconds: 0.0,
                improved: false,
            })
            .collect();
        // Over the last two epochs: best 0.8 at step 200 → 0.6 at 400, 25% in 200 steps.
        let fall = recent_fall_per_1000_steps(&history, 2).unwrap();
        assert!((fall - 1.25).abs() < 1e-12, "{fall}");
        assert_eq!(recent_fall_per_1000_steps(&history[..1], 2), None);
    }
}
