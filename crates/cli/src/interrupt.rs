//! How the process ends when it cannot finish: on SIGINT / SIGTERM, unfinished outputs are
//! removed and one line says so (exit 130 / 143); on an error, one line says why.

use std::io::IsTerminal;
use std::sync::Mutex;

use signal_hook::consts::{SIGINT, SIGTERM};

/// What to tell a user who interrupts the current command, besides that its unfinished
/// outputs are gone (e.g. that training can resume).
static HINT: Mutex<Option<String>> = Mutex::new(None);

/// Sets the line added to the interruption message.
pub fn set_hint(hint: String) {
    *HINT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(hint);
}

/// Starts the thread that handles SIGINT and SIGTERM. Without it (if the handler cannot be
/// installed) the default action still stops the process, and the next run to the same
/// output removes what was left.
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let removed = deepinterp_io::output::remove_pending_outputs();
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            let hint = HINT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .map_or(String::new(), |hint| format!("; {hint}"));
            // On a terminal the progress bar holds the line: start a fresh one.
            let fresh_line = if std::io::stderr().is_terminal() {
                "\n"
            } else {
                ""
            };
            eprintln!(
                "{fresh_line}interrupted ({name}): {} unfinished output file(s) removed{hint}",
                removed.len()
            );
            std::process::exit(128 + signal);
        }
    });
}

/// An error and its causes on one line (see [`deepinterp_pipeline::one_line`]).
pub fn one_line(error: &anyhow::Error) -> String {
    deepinterp_pipeline::one_line(error.as_ref())
}

pub use deepinterp_pipeline::escape_controls;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_print_once_on_one_line_without_control_bytes() {
        let os = std::io::Error::other("disk full");
        let error = anyhow::Error::new(os).context("out.h5: writing: disk full");
        assert_eq!(one_line(&error), "out.h5: writing: disk full");
        let error = anyhow::anyhow!("x.meta: bad line '\u{1b}[31mred\nnext'");
        let line = one_line(&error);
        assert!(!line.contains('\u{1b}') && !line.contains('\n'), "{line}");
    }
}
