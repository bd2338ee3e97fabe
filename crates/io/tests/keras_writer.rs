//! Writing Keras model files: every original model file, read and written back, reads back
//! identical (config, layer order, weight names, shapes and values), whichever string
//! encoding and optimizer state the original had. `tests/keras_layout_check.py` compares
//! the HDF5 structure of a written file with an original one using h5py.

mod common;

use common::{ScratchDir, keras_fixture};
use deepinterp_io::{read_keras_model, write_keras_model};

#[test]
fn rewritten_fixture_models_read_back_identical() {
    let scratch = ScratchDir::new("keras-rewrite");
    for name in [
        "model_unet_single_1024.h5",
        "model_unet_single_ephys_1024.h5",
        "model_fmri_unet_denoiser.h5",
        "model_fmri_unet_denoiser_legacy_layout.h5",
    ] {
        let original = read_keras_model(&keras_fixture(name)).expect("read fixture");
        let rewritten = scratch.join(name);
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
    assert_eq!(scratch.file_names().len(), 4);
}
