//! `deepinterp evaluate`: the pipeline's evaluation, printed as JSON or as summary lines.

use anyhow::Result;
use deepinterp_pipeline::Evaluation;

use crate::args::EvaluateArgs;
use crate::progress::Terminal;

pub fn evaluate(args: &EvaluateArgs) -> Result<Evaluation> {
    let mut terminal = Terminal::default();
    let evaluation = deepinterp_pipeline::evaluate(&args.request, &mut terminal)?;
    if args.json {
        println!("{}", evaluation.to_json()?);
    } else {
        for line in evaluation.summary() {
            println!("{line}");
        }
    }
    Ok(evaluation)
}
