//! `deepinterp train` and `deepinterp finetune`: the pipeline's runs, shown on the terminal.

use anyhow::Result;
use deepinterp_pipeline::{FinetuneRequest, TrainRequest};

use crate::progress::Terminal;

pub fn train(request: &TrainRequest) -> Result<()> {
    let mut terminal = Terminal::default();
    deepinterp_pipeline::train(request, &mut terminal)?;
    Ok(())
}

pub fn finetune(request: &FinetuneRequest) -> Result<()> {
    let mut terminal = Terminal::default();
    deepinterp_pipeline::finetune(request, &mut terminal)?;
    Ok(())
}
