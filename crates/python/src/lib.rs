//! The native half of the `deepinterp` Python package: thin bindings over
//! `deepinterp-pipeline`. Arguments arrive as the pipeline's request types (built from keyword
//! arguments), the GIL is released while the pipeline works, progress goes to a Python
//! callable, and errors become the package's exceptions carrying the CLI's one-line messages.
//! The Python half (`python/deepinterp`) holds the documented API, dispatch on array or path,
//! progress bars and the SpikeInterface drop-in.

mod arrays;
mod convert;
mod model;

use std::path::PathBuf;

use deepinterp_pipeline::{
    DenoiseRequest, EvaluateRequest, FinetuneRequest, Observer, PipelineError, Progress,
    TrainRequest,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{Kwargs, raise};

/// Calls the Python `progress(kind, done, total, text)` for each piece of pipeline news
/// (`kind` is "begin", "advance", "end" or "line"), and stops the call when Python has a
/// signal to handle (Ctrl-C: `KeyboardInterrupt`, raised once the call has cleaned up).
pub(crate) struct PyProgress {
    callback: Option<Py<PyAny>>,
    total: u64,
    /// The exception a signal handler raised, to raise once the call has stopped.
    interrupt: Option<PyErr>,
}

impl PyProgress {
    pub(crate) fn new(callback: Option<Py<PyAny>>) -> Self {
        Self {
            callback,
            total: 0,
            interrupt: None,
        }
    }
}

impl Observer for PyProgress {
    fn should_stop(&mut self) -> bool {
        if self.interrupt.is_none()
            && let Err(error) = Python::attach(|py| py.check_signals())
        {
            self.interrupt = Some(error);
        }
        self.interrupt.is_some()
    }

    fn show(&mut self, progress: Progress<'_>) {
        let Some(callback) = &self.callback else {
            return;
        };
        let (kind, done, text) = match progress {
            Progress::Begin { label, total, unit } => {
                self.total = total;
                ("begin", 0, Some(format!("{label} ({unit})")))
            }
            Progress::Advance { done, note } => ("advance", done, note),
            Progress::End => ("end", self.total, None),
            Progress::Line(line) => ("line", 0, Some(line)),
            Progress::Resumable(_) => return,
        };
        let total = self.total;
        let interrupt = Python::attach(|py| {
            let error = callback.call1(py, (kind, done, total, text)).err()?;
            // A signal handler's exception (KeyboardInterrupt, raised wherever Python code
            // runs next) stops the call; a failing callback must not: Python prints its
            // error as unraisable.
            if error.is_instance_of::<pyo3::exceptions::PyException>(py) {
                error.write_unraisable(py, Some(callback.bind(py)));
                None
            } else {
                Some(error)
            }
        });
        if self.interrupt.is_none() {
            self.interrupt = interrupt;
        }
    }
}

/// Runs `work` without the GIL, so that other Python threads keep running.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, PipelineError> + Send,
) -> PyResult<T> {
    py.detach(work).map_err(|error| raise(py, &error))
}

/// As [`detached`], for work that reports to `progress`: a call stopped by a signal raises
/// the signal handler's exception (`KeyboardInterrupt` for Ctrl-C).
pub(crate) fn detached_reporting<T: Send>(
    py: Python<'_>,
    progress: &mut PyProgress,
    work: impl FnOnce(&mut PyProgress) -> Result<T, PipelineError> + Send,
) -> PyResult<T> {
    let result = py.detach(|| work(progress));
    // A signal's exception is raised even when the work ended anyway: its handler has run
    // and will not run again.
    match (progress.interrupt.take(), result) {
        (Some(interrupt), _) => Err(interrupt),
        (None, Ok(value)) => Ok(value),
        (None, Err(error)) => Err(raise(py, &error)),
    }
}

/// Denoises a recording file into an output file; returns what was written.
#[pyfunction]
#[pyo3(signature = (input, output, model, options, progress=None))]
fn denoise_file(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    model: PathBuf,
    options: &Bound<'_, PyDict>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Py<PyDict>> {
    let mut request = DenoiseRequest::new(input, output, model);
    Kwargs::new(options).denoise(&mut request)?;
    let mut progress = PyProgress::new(progress);
    let report = detached_reporting(py, &mut progress, |progress| {
        deepinterp_pipeline::denoise(&request, progress)
    })?;
    let summary = PyDict::new(py);
    summary.set_item("path", report.written.path)?;
    summary.set_item("frames", report.frames)?;
    summary.set_item("unit", report.unit)?;
    summary.set_item("clipped_values", report.written.clipped_values)?;
    summary.set_item("engine", report.engine.name())?;
    summary.set_item("seconds", report.seconds)?;
    Ok(summary.unbind())
}

/// Trains a model; returns the run's report.
#[pyfunction]
#[pyo3(signature = (inputs, output, options, progress=None))]
fn train(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    output: PathBuf,
    options: &Bound<'_, PyDict>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Py<PyDict>> {
    let mut request = TrainRequest::new(inputs, output);
    Kwargs::new(options).train(&mut request)?;
    let mut progress = PyProgress::new(progress);
    let report = detached_reporting(py, &mut progress, |progress| {
        deepinterp_pipeline::train(&request, progress)
    })?;
    convert::train_report(py, &report)
}

/// Fine-tunes `model` on new recordings; returns the run's report.
#[pyfunction]
#[pyo3(signature = (inputs, output, model, options, progress=None))]
fn finetune(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    output: PathBuf,
    model: PathBuf,
    options: &Bound<'_, PyDict>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Py<PyDict>> {
    let mut request = FinetuneRequest {
        model,
        freeze_encoder: false,
        train: TrainRequest::new(inputs, output),
    };
    let kwargs = Kwargs::new(options);
    request.freeze_encoder = kwargs.flag("freeze_encoder")?;
    kwargs.train(&mut request.train)?;
    let mut progress = PyProgress::new(progress);
    let report = detached_reporting(py, &mut progress, |progress| {
        deepinterp_pipeline::finetune(&request, progress)
    })?;
    convert::train_report(py, &report)
}

/// Measures a denoised recording against its noisy source; returns the report as JSON.
#[pyfunction]
#[pyo3(signature = (noisy, denoised, options, progress=None))]
fn evaluate(
    py: Python<'_>,
    noisy: PathBuf,
    denoised: PathBuf,
    options: &Bound<'_, PyDict>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let mut request = EvaluateRequest {
        noisy,
        denoised,
        ..EvaluateRequest::default()
    };
    Kwargs::new(options).evaluate(&mut request)?;
    let mut progress = PyProgress::new(progress);
    detached_reporting(py, &mut progress, |progress| {
        deepinterp_pipeline::evaluate(&request, progress)?.to_json()
    })
}

/// What a file is, as JSON.
#[pyfunction]
#[pyo3(signature = (path, options))]
fn inspect(py: Python<'_>, path: PathBuf, options: &Bound<'_, PyDict>) -> PyResult<String> {
    let mut raw = deepinterp_pipeline::RawOptions::default();
    Kwargs::new(options).raw(&mut raw)?;
    detached(py, || {
        let inspection = deepinterp_pipeline::inspect(&path, &raw)?;
        serde_json::to_string(&inspection)
            .map_err(|e| PipelineError::Refused(format!("cannot describe the file: {e}")))
    })
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(denoise_file, module)?)?;
    module.add_function(wrap_pyfunction!(arrays::denoise_movie, module)?)?;
    module.add_function(wrap_pyfunction!(arrays::denoise_probe, module)?)?;
    module.add_function(wrap_pyfunction!(arrays::write_volumes, module)?)?;
    module.add_function(wrap_pyfunction!(arrays::read_recording, module)?)?;
    module.add_function(wrap_pyfunction!(train, module)?)?;
    module.add_function(wrap_pyfunction!(finetune, module)?)?;
    module.add_function(wrap_pyfunction!(evaluate, module)?)?;
    module.add_function(wrap_pyfunction!(inspect, module)?)?;
    module.add_class::<model::LoadedModel>()?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
