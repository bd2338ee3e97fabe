//! `deepinterp inspect`: the pipeline's description of a file, as lines or JSON.

use anyhow::Result;

use crate::args::InspectArgs;

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let inspection = deepinterp_pipeline::inspect(&args.file, &args.raw)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        print!("{}", inspection.to_lines());
    }
    Ok(())
}
