//! Between Python and the pipeline: keyword arguments into request types, errors into the
//! package's exceptions, reports into dicts.

use std::path::PathBuf;

use deepinterp::EngineError;
use deepinterp::engine::Engine;
use deepinterp::inference::EdgeMode;
use deepinterp::training::{Loss, OptimizerKind};
use deepinterp::volume::VolumeMode;
use deepinterp_io::IoError;
use deepinterp_pipeline::train::TrainReport;
use deepinterp_pipeline::{
    DenoiseRequest, EvaluateRequest, OutputDtype, PipelineError, RawOptions, TrainRequest, one_line,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The package's exception for `error`, with its one-line message: `FileError` (an
/// `OSError`) when a file could not be found, read or written, `InvalidInputError` (a
/// `ValueError`) when a request or a file's content is wrong, `DeepInterpError` otherwise.
pub(crate) fn raise(py: Python<'_>, error: &PipelineError) -> PyErr {
    let class = match error {
        PipelineError::Io(
            IoError::NotFound { .. } | IoError::Os { .. } | IoError::OutputFull { .. },
        )
        | PipelineError::Os { .. }
        | PipelineError::Engine(EngineError::Os { .. }) => "FileError",
        PipelineError::Io(_)
        | PipelineError::Refused(_)
        | PipelineError::Engine(
            EngineError::Settings(_)
            | EngineError::SettingsFile { .. }
            | EngineError::Io(_)
            | EngineError::ModelFile { .. }
            | EngineError::Recording { .. },
        ) => "InvalidInputError",
        _ => "DeepInterpError",
    };
    let message = one_line(error);
    match py
        .import("deepinterp._errors")
        .and_then(|module| module.getattr(class))
        .and_then(|class| class.call1((message.clone(),)))
    {
        Ok(exception) => PyErr::from_value(exception),
        // Without the Python half (the module imported alone), a plain ValueError.
        Err(_) => PyValueError::new_err(message),
    }
}

/// The package's `InvalidInputError` with `message` (for arguments refused before the
/// pipeline sees them).
pub(crate) fn invalid(message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| raise(py, &PipelineError::Refused(message)))
}

/// Typed reads of the keyword arguments a Python wrapper passes (only the ones the caller
/// set; the wrappers' signatures already refuse unknown names).
pub(crate) struct Kwargs<'a, 'py> {
    dict: &'a Bound<'py, PyDict>,
}

impl<'a, 'py> Kwargs<'a, 'py> {
    pub(crate) fn new(dict: &'a Bound<'py, PyDict>) -> Self {
        Self { dict }
    }

    fn get<T: for<'b> FromPyObject<'b, 'py>>(&self, key: &str) -> PyResult<Option<T>> {
        match self.dict.get_item(key)? {
            Some(value) if !value.is_none() => value
                .extract()
                .map(Some)
                .map_err(|_| invalid(format!("{key}: {} is not a valid value", value))),
            _ => Ok(None),
        }
    }

    /// A whole number of at least 1.
    fn count(&self, key: &str) -> PyResult<Option<usize>> {
        match self.get::<usize>(key)? {
            Some(0) => Err(invalid(format!("{key} must be at least 1"))),
            value => Ok(value),
        }
    }

    pub(crate) fn flag(&self, key: &str) -> PyResult<bool> {
        Ok(self.get::<bool>(key)?.unwrap_or(false))
    }

    fn choice<T>(&self, key: &str, choices: &[(&str, T)]) -> PyResult<Option<T>>
    where
        T: Copy,
    {
        let Some(text) = self.get::<String>(key)? else {
            return Ok(None);
        };
        choices
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, value)| Some(*value))
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                invalid(format!(
                    "{key}: '{text}' is not one of {}",
                    names.join(", ")
                ))
            })
    }

    pub(crate) fn raw(&self, raw: &mut RawOptions) -> PyResult<()> {
        raw.channels = self.count("channels")?;
        raw.sample_rate = self.get("sample_rate")?;
        raw.cut_to_shortest = self.flag("cut_to_shortest")?;
        Ok(())
    }

    pub(crate) fn denoise(&self, request: &mut DenoiseRequest) -> PyResult<()> {
        self.raw(&mut request.raw)?;
        if let Some(edges) = self.choice(
            "edges",
            &[
                ("keep", EdgeMode::Keep),
                ("drop", EdgeMode::Drop),
                ("drop-pad-head", EdgeMode::DropPadHead),
            ],
        )? {
            request.edges = edges;
        }
        request.dtype = self.choice(
            "dtype",
            &[
                ("float32", OutputDtype::Float32),
                ("int16", OutputDtype::Int16),
                ("uint16", OutputDtype::Uint16),
            ],
        )?;
        request.batch_size = self.count("batch_size")?;
        request.start_frame = self.get("start_frame")?.unwrap_or(0);
        request.end_frame = self.get("end_frame")?;
        request.stats_frames = self.count("stats_frames")?;
        request.pre_frames = self.get("pre_frames")?;
        request.post_frames = self.get("post_frames")?;
        request.omitted_frames = self.get("omitted_frames")?;
        if let Some(mode) = self.choice(
            "mode",
            &[("parity", VolumeMode::Parity), ("fast", VolumeMode::Fast)],
        )? {
            request.mode = mode;
        }
        request.engine = self.choice(
            "engine",
            &[("kernels", Engine::Kernels), ("burn", Engine::Burn)],
        )?;
        Ok(())
    }

    pub(crate) fn train(&self, request: &mut TrainRequest) -> PyResult<()> {
        self.raw(&mut request.raw)?;
        request.validation = self.get::<Vec<PathBuf>>("validation")?.unwrap_or_default();
        request.config = self.get("config")?;
        request.resume = self.flag("resume")?;
        request.overwrite = self.flag("overwrite")?;
        let options = &mut request.options;
        options.arch = self.get("arch")?;
        options.steps = self.get("steps")?;
        options.max_minutes = self.get("max_minutes")?;
        options.pre_frames = self.get("pre_frames")?;
        options.post_frames = self.get("post_frames")?;
        options.omitted_frames = self.get("omitted_frames")?;
        options.loss = self.choice("loss", &[("l1", Loss::L1), ("l2", Loss::L2)])?;
        options.optimizer = self.choice(
            "optimizer",
            &[
                ("rmsprop", OptimizerKind::RmsProp),
                ("adam", OptimizerKind::Adam),
            ],
        )?;
        options.learning_rate = self.get("learning_rate")?;
        options.lr_halving_epochs = self.get("lr_halving_epochs")?;
        options.batch_size = self.get("batch_size")?;
        options.steps_per_epoch = self.get("steps_per_epoch")?;
        options.patch_size = self.get("patch_size")?;
        options.validation_fraction = self.get("validation_fraction")?;
        options.validation_samples = self.get("validation_samples")?;
        options.stats_frames = self.get("stats_frames")?;
        options.seed = self.get("seed")?;
        Ok(())
    }

    pub(crate) fn evaluate(&self, request: &mut EvaluateRequest) -> PyResult<()> {
        self.raw(&mut request.raw)?;
        request.clean = self.get("clean")?;
        request.spikes = self.get("spikes")?;
        request.offset = self.get("offset")?.unwrap_or(0);
        request.brain_threshold = self.get("brain_threshold")?;
        request.report = self.get("report")?;
        Ok(())
    }
}

/// A training run's report as a dict.
pub(crate) fn train_report(py: Python<'_>, report: &TrainReport) -> PyResult<Py<PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("steps", report.steps)?;
    dict.set_item("ending", report.end.ending.name())?;
    dict.set_item(
        "validation_fall_per_1000_steps",
        report.end.validation_fall_per_1000_steps,
    )?;
    dict.set_item(
        "validation_relative_error",
        report.end.validation_relative_error,
    )?;
    dict.set_item("model", &report.model)?;
    dict.set_item("loss_csv", &report.loss_csv)?;
    dict.set_item("loss_png", &report.loss_png)?;
    dict.set_item("validation_loss_before", report.validation_loss_before)?;
    dict.set_item("best_validation_loss", report.best_validation_loss)?;
    let history = PyList::empty(py);
    for epoch in &report.history {
        let row = PyDict::new(py);
        row.set_item("epoch", epoch.epoch)?;
        row.set_item("step", epoch.step)?;
        row.set_item("train_loss", epoch.train_loss)?;
        row.set_item("validation_loss", epoch.validation_loss)?;
        row.set_item("learning_rate", epoch.learning_rate)?;
        row.set_item("elapsed_seconds", epoch.elapsed_seconds)?;
        history.append(row)?;
    }
    dict.set_item("history", history)?;
    Ok(dict.unbind())
}
