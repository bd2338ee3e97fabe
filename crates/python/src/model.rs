//! A model loaded once and run on batches of network inputs from Python (`predict`), as the
//! SpikeInterface drop-in and scripts that build their own windows need.

use std::path::PathBuf;
use std::sync::Mutex;

use deepinterp::engine::Forward;
use deepinterp::model::{Model, load_model};
use deepinterp::sampling::Window;
use deepinterp_pipeline::PipelineError;
use deepinterp_pipeline::backend::{DEFAULT_ENGINE, Infer};
use numpy::{PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::convert::invalid;
use crate::detached;

/// A model (ours or an original Keras `.h5`) ready to run.
#[pyclass(module = "deepinterp._native")]
pub(crate) struct LoadedModel {
    model: Mutex<Model<Infer>>,
    path: PathBuf,
}

#[pymethods]
impl LoadedModel {
    /// Loads `path`; a Keras model takes the window given (it records none).
    #[new]
    #[pyo3(signature = (path, pre_frames=None, post_frames=None, omitted_frames=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        pre_frames: Option<usize>,
        post_frames: Option<usize>,
        omitted_frames: Option<usize>,
    ) -> PyResult<Self> {
        let model = detached(py, || {
            let window = match (pre_frames, post_frames, omitted_frames) {
                (None, None, None) => None,
                (pre, post, omitted) => {
                    let pre = pre.or(post).unwrap_or(30);
                    Some(Window::new(pre, post.unwrap_or(pre), omitted.unwrap_or(0))?)
                }
            };
            let device = Default::default();
            Ok(load_model::<Infer>(&path, window, &device)?)
        })?;
        Ok(Self {
            model: Mutex::new(model),
            path,
        })
    }

    /// The model's description (architecture, modality, network, window, normalisation,
    /// training) as JSON.
    fn spec_json(&self) -> PyResult<String> {
        let model = self.model.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_string(&model.spec)
            .map_err(|e| invalid(format!("cannot describe the model: {e}")))
    }

    /// The Keras `model_config` JSON of an original `.h5` model (its input layer records the
    /// frame shape it was built for); None for deepinterp model files.
    fn keras_config(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let path = self.path.clone();
        detached(py, move || {
            if deepinterp::model::file::is_model_file(&path)? {
                return Ok(None);
            }
            Ok(Some(
                deepinterp_io::keras::read_keras_model(&path)?.model_config,
            ))
        })
    }

    /// The file the model came from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Runs the network on `batch` (`[n, channels, h, w]` for frame and probe networks,
    /// `[n, channels, x, y, z]` for fMRI's), float32, no normalisation; returns the output
    /// (`[n, 1, ...]`) as a flat float32 array.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        batch: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let shape = batch.shape().to_vec();
        let input = batch.as_slice()?.to_vec();
        drop(batch);
        let values = detached(py, || {
            let model = self.model.lock().unwrap_or_else(|e| e.into_inner());
            let device = Default::default();
            let mut forward = Forward::new(&model.network, DEFAULT_ENGINE, &device)?;
            Ok(match shape[..] {
                [n, c, h, w] => forward.planar(&input, [n, c, h, w])?,
                [n, c, x, y, z] => forward.volumetric(&input, [n, c, x, y, z])?,
                _ => {
                    return Err(PipelineError::Refused(format!(
                        "a batch of {} axes: give [n, channels, h, w] or [n, channels, x, y, z]",
                        shape.len()
                    )));
                }
            })
        })?;
        Ok(PyArray1::from_vec(py, values))
    }
}
