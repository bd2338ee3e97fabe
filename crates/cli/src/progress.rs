//! Showing the pipeline's progress on a terminal: a bar with rate and ETA for counted work
//! (hidden when stderr is not a terminal), lines above it, and the interruption hint.

use deepinterp_pipeline::{Observer, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `unit`s up to `total`; a total of 0 is open-ended work (a training run
/// that stops when it converges): a count and a rate, no ETA.
pub fn bar(total: u64, message: &str, unit: &str) -> ProgressBar {
    let (bar, template) = if total == 0 {
        (
            ProgressBar::new_spinner(),
            format!("{{msg}} {{spinner}} {{pos}} {unit} {{per_sec}} ({{elapsed}})"),
        )
    } else {
        (
            ProgressBar::new(total),
            format!(
                "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}} ({{elapsed}})"
            ),
        )
    };
    bar.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// Prints a line above the bar, or plainly when the bar is hidden (logs, CI).
pub fn log(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Shows one pipeline call's [`Progress`] on stderr.
#[derive(Default)]
pub struct Terminal {
    bar: Option<ProgressBar>,
}

impl Observer for Terminal {
    fn show(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Begin { label, total, unit } => self.bar = Some(bar(total, label, unit)),
            Progress::Advance { done, note } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                    if let Some(note) = note {
                        bar.set_message(note);
                    }
                }
            }
            Progress::End => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
            Progress::Line(line) => match &self.bar {
                Some(bar) => log(bar, line),
                None => eprintln!("{line}"),
            },
            Progress::Resumable(hint) => crate::interrupt::set_hint(hint),
        }
    }
}
