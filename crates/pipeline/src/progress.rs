//! What long pipeline calls tell their front end as they go. The pipeline composes every
//! line a user reads; a front end decides how to show them (a terminal bar, a log, a Python
//! callback or tqdm).

/// One piece of news from a running call.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress<'a> {
    /// Work of `total` `unit`s (steps, frames, samples, volumes) begins; `label` names it.
    Begin {
        /// What runs ("train", "denoise").
        label: &'a str,
        /// Units of work in all; 0 when not known in advance (a run that trains until it
        /// converges).
        total: u64,
        /// What a unit is, plural.
        unit: &'a str,
    },
    /// `done` units are finished; `note` is a short status (e.g. the training loss).
    Advance {
        /// Units finished so far.
        done: u64,
        /// A short status, when there is one.
        note: Option<String>,
    },
    /// The counted work is over (a bar goes away before the closing lines).
    End,
    /// A line for the user.
    Line(String),
    /// From here on, what a user who interrupts the call can do about it (e.g. that training
    /// can resume from its checkpoint).
    Resumable(String),
}

/// What a front end gives a long call: somewhere to show its news, and a way to ask it to
/// stop (a user's interrupt). A closure taking [`Progress`] is one that never stops a call.
pub trait Observer {
    /// Shows one piece of news.
    fn show(&mut self, progress: Progress<'_>);

    /// Whether the call should stop now: asked after each unit of counted work. A stopped
    /// call removes its unfinished outputs and fails with `EngineError::Stopped`.
    fn should_stop(&mut self) -> bool {
        false
    }
}

impl<F: FnMut(Progress<'_>)> Observer for F {
    fn show(&mut self, progress: Progress<'_>) {
        self(progress)
    }
}

/// The observer a pipeline call reports to.
pub type Reporter<'r> = &'r mut dyn Observer;

/// Reports that `done` units are finished, then fails with `EngineError::Stopped` if the
/// observer asks the call to stop.
pub(crate) fn advance(
    report: &mut dyn Observer,
    done: u64,
    note: Option<String>,
) -> Result<(), deepinterp::EngineError> {
    report.show(Progress::Advance { done, note });
    if report.should_stop() {
        return Err(deepinterp::EngineError::Stopped);
    }
    Ok(())
}

/// Peak resident memory of this process in MiB (Linux; `None` elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(kib / 1024.0)
}

/// `", peak memory N MiB"` where it can be measured.
pub fn peak_rss_note() -> String {
    peak_rss_mib().map_or(String::new(), |mib| format!(", peak memory {mib:.0} MiB"))
}
