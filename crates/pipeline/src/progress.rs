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
        /// Units of work in all.
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

/// A receiver of [`Progress`]: front ends pass a closure.
pub type Reporter<'r> = &'r mut dyn FnMut(Progress<'_>);

/// A reporter that shows nothing.
pub fn silent(_: Progress<'_>) {}

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
