//! `deepinterp simulate 2p|ephys|fmri`: the pipeline's simulations, shown on the terminal.

use anyhow::Result;
use deepinterp_pipeline::simulate::{
    self, Simulate2pRequest, SimulateEphysRequest, SimulateFmriRequest,
};

use crate::progress::Terminal;

pub fn simulate_2p(request: &Simulate2pRequest) -> Result<()> {
    let mut terminal = Terminal::default();
    Ok(simulate::simulate_2p(request, &mut terminal)?)
}

pub fn simulate_ephys(request: &SimulateEphysRequest) -> Result<()> {
    let mut terminal = Terminal::default();
    Ok(simulate::simulate_ephys(request, &mut terminal)?)
}

pub fn simulate_fmri(request: &SimulateFmriRequest) -> Result<()> {
    let mut terminal = Terminal::default();
    Ok(simulate::simulate_fmri(request, &mut terminal)?)
}
