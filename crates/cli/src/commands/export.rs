//! `deepinterp export`: a model in another format. Keras export writes the original
//! implementation's HDF5 layout (see `deepinterp::model::keras_export`), so models trained here
//! run in the original and in TensorFlow; what a Keras file cannot hold (the window's split,
//! the normalisation policy, the training summary) stays in our model file.

use anyhow::Result;
use deepinterp::model::{export_keras, load_model};
use deepinterp_io::output::OutputGuard;

use deepinterp_pipeline::backend::Infer;

use crate::args::{ExportArgs, ExportFormat};

pub fn export(args: &ExportArgs) -> Result<()> {
    OutputGuard::new()
        .input("the model", &args.model)
        .output("the exported model", &args.output)
        .check()?;
    let model = load_model::<Infer>(&args.model, None, &Default::default())?;
    match args.format {
        ExportFormat::Keras => export_keras(&model, &args.output)?,
    }
    eprintln!(
        "exported {} ({}, {} parameters) to {} as Keras .h5; check it in TensorFlow with crates/core/tests/keras_export_check.py",
        args.model.display(),
        model.spec.architecture,
        model.spec.network.parameter_count(),
        args.output.display()
    );
    Ok(())
}
