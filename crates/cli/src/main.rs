//! `deepinterp`: DeepInterpolation denoising from the command line.
//!
//! Subcommands follow the pipeline: `simulate` → `train` → `denoise` → `evaluate`, and `demo`
//! runs them all on simulated data. Recordings are two-photon movies (HDF5, TIFF) or
//! extracellular recordings (SpikeGLX, Open Ephys, raw binary); the modality comes from the
//! file. The work is `deepinterp-pipeline`'s; this crate parses flags (`args`), calls it,
//! shows its progress and turns errors into one-line messages.

mod args;
mod commands;
mod interrupt;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, SimulateCommand};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    interrupt::install();
    let result = match cli.command {
        Command::Simulate(SimulateCommand::TwoPhoton(args)) => commands::simulate_2p(&args),
        Command::Simulate(SimulateCommand::Ephys(args)) => commands::simulate_ephys(&args),
        Command::Simulate(SimulateCommand::Fmri(args)) => commands::simulate_fmri(&args),
        Command::Train(args) => commands::train(&args),
        Command::Finetune(args) => commands::finetune(&args),
        Command::Export(args) => commands::export(&args),
        Command::Denoise(args) => commands::denoise(&args).map(|_| ()),
        Command::Evaluate(args) => commands::evaluate(&args).map(|_| ()),
        Command::Demo(args) => commands::demo(&args),
        Command::Inspect(args) => commands::inspect(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", interrupt::one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go out as clap writes them; a wrong flag or value is one line (the text
/// before clap's usage hint), exit code 1 like every other error.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.exit_code() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let rendered = error.render().to_string();
    let first_paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = first_paragraph.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    eprintln!("error: {}", interrupt::escape_controls(line));
    ExitCode::FAILURE
}
