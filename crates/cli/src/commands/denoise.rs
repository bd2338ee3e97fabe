//! `deepinterp denoise`: the pipeline's denoising run, shown on the terminal.

use anyhow::Result;
use deepinterp_pipeline::{DenoiseReport, DenoiseRequest};

use crate::progress::Terminal;

pub fn denoise(request: &DenoiseRequest) -> Result<DenoiseReport> {
    let mut terminal = Terminal::default();
    Ok(deepinterp_pipeline::denoise(request, &mut terminal)?)
}
