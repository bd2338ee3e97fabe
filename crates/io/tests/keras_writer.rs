//! Writing Keras model files: every original model file, read and written back, reads back
//! identical (config, layer order, weight names, shapes and values), whichever string
//! encoding and optimizer state the original had. `tests/keras_layout_check.py` compares
//! the HDF5 structure of a written file with an original one using h5py.

mod common;

use std::path::PathBuf;

use common::{ScratchDir, keras_fixture, shared_or_skip};
use deepinterp_io::{read_keras_model, write_keras_model};

/// Reads each model, writes it back, and reads the copy: it must equal the original.
fn rewrite_and_compare(models: &[PathBuf]) {
    let scratch = ScratchDir::new("keras-rewrite");
    for path in models {
        let name = path.file_name().expect("file name").to_string_lossy();
        let original = read_keras_model(path).expect("read fixture");
        let rewritten = scratch.join(&name);
        write_keras_model(&rewritten, &original).expect("write");
        let reread = read_keras_model(&rewritten).expect("read rewritten");
        assert_eq!(reread.keras_version, original.keras_version, "{name}");
        assert_eq!(reread.model_config, original.model_config, "{name}");
        assert_eq!(reread.layer_names, original.layer_names, "{name}");
        assert_eq!(
            reread.parameter_count(),
            original.parameter_count(),
            "{name}"
        );
        // The whole struct, bit for bit (f32 equality; the weights hold no NaN).
        assert!(reread == original, "{name}: rewritten file differs");
    }
    // Nothing but the outputs: no temporary files left over.
    assert_eq!(scratch.file_names().len(), models.len());
}

/// The fMRI model in both string encodings and optimizer layouts.
#[test]
fn rewritten_fixture_models_read_back_identical() {
    rewrite_and_compare(&[
        keras_fixture("model_fmri_unet_denoiser.h5"),
        keras_fixture("model_fmri_unet_denoiser_legacy_layout.h5"),
    ]);
}

/// The paper's two-photon (no optimizer state) and Neuropixels (RMSprop state) models.
#[test]
fn rewritten_paper_models_read_back_identical() {
    let Some(models) = shared_or_skip([
        "fixtures/keras/model_unet_single_1024.h5",
        "fixtures/keras/model_unet_single_ephys_1024.h5",
    ]) else {
        return;
    };
    rewrite_and_compare(&models);
}
