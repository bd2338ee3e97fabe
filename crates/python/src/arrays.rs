//! Recordings held by Python: numpy arrays in memory, or numpy memmaps read straight from
//! their file (so that a memmap larger than memory is streamed, never mapped in whole), seen
//! by the pipeline as readers, and outputs collected into arrays.
//!
//! The Python half passes an array as the address and length of its C-contiguous,
//! native-endian buffer and keeps the array alive for the whole call; a memmap as its file
//! name and offset. Nothing here holds on to a buffer after the call returns.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use deepinterp::model::{Modality, Model};
use deepinterp::probe::GridWriter;
use deepinterp_io::ephys::{
    ChannelPosition, EphysFormat, EphysInfo, EphysReader, EphysWriter, open_ephys_with,
};
use deepinterp_io::nifti::{NewVolume, NiftiDtype, create_volume, open_volume};
use deepinterp_io::{Dtype, IoError, MovieInfo, MovieReader, MovieWriter, WriteSummary};
use deepinterp_pipeline::backend::Infer;
use deepinterp_pipeline::denoise::{denoise_frames, load_denoiser};
use deepinterp_pipeline::{DenoiseRequest, PipelineError, Recording};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{Kwargs, invalid};
use crate::{PyProgress, detached, detached_reporting};

/// Element types an array may hold (numpy's names).
#[derive(Clone, Copy, Debug)]
enum Element {
    F32,
    F64,
    I16,
    U16,
    U8,
    I32,
}

impl Element {
    fn parse(name: &str) -> PyResult<Self> {
        Ok(match name {
            "float32" => Element::F32,
            "float64" => Element::F64,
            "int16" => Element::I16,
            "uint16" => Element::U16,
            "uint8" => Element::U8,
            "int32" => Element::I32,
            other => {
                return Err(invalid(format!(
                    "arrays of {other} are not read: give float32, float64, int16, uint16, uint8 or int32"
                )));
            }
        })
    }

    fn size(self) -> usize {
        match self {
            Element::U8 => 1,
            Element::I16 | Element::U16 => 2,
            Element::F32 | Element::I32 => 4,
            Element::F64 => 8,
        }
    }

    /// The type recorded in readers' infos (what an output defaults to).
    fn dtype(self) -> Dtype {
        match self {
            Element::I16 => Dtype::I16,
            Element::U16 => Dtype::U16,
            Element::U8 => Dtype::U8,
            Element::F64 => Dtype::F64,
            Element::F32 | Element::I32 => Dtype::F32,
        }
    }

    /// Converts little-endian `bytes` (a whole number of elements) into `out`.
    fn decode(self, bytes: &[u8], out: &mut [f32]) {
        macro_rules! each {
            ($t:ty) => {
                for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(size_of::<$t>())) {
                    *value = <$t>::from_le_bytes(chunk.try_into().unwrap_or_default()) as f32;
                }
            };
        }
        match self {
            Element::F32 => each!(f32),
            Element::F64 => each!(f64),
            Element::I16 => each!(i16),
            Element::U16 => each!(u16),
            Element::U8 => each!(u8),
            Element::I32 => each!(i32),
        }
    }
}

/// Where an array's elements are.
enum Storage {
    /// A buffer owned by a Python array that outlives the call.
    Memory { address: usize, bytes: usize },
    /// A file (a memmap's), from `offset` on.
    File { file: File, offset: u64 },
}

/// A C-contiguous array of `elements` values, read as float32 in runs.
struct ArrayData {
    storage: Storage,
    element: Element,
    elements: usize,
    /// Names the array in messages: its file, or `<array>`.
    name: PathBuf,
    bytes: Vec<u8>,
}

impl ArrayData {
    fn new(
        address: Option<usize>,
        nbytes: usize,
        filename: Option<PathBuf>,
        offset: u64,
        dtype: &str,
        elements: usize,
    ) -> PyResult<Self> {
        let element = Element::parse(dtype)?;
        let needed = elements
            .checked_mul(element.size())
            .ok_or_else(|| invalid("the array is too large"))?;
        let (storage, name) = match (address, filename) {
            (Some(address), _) => {
                if nbytes < needed || address == 0 {
                    return Err(invalid("the array's buffer is smaller than its shape"));
                }
                let storage = Storage::Memory {
                    address,
                    bytes: nbytes,
                };
                (storage, PathBuf::from("<array>"))
            }
            (None, Some(path)) => {
                let file = File::open(&path).map_err(|e| {
                    PyErr::new::<pyo3::exceptions::PyOSError, _>(format!("{}: {e}", path.display()))
                })?;
                let length = file.metadata().map(|m| m.len()).unwrap_or(0);
                if length < offset.saturating_add(needed as u64) {
                    return Err(invalid(format!(
                        "{}: the file holds {length} bytes, the memmap needs {} from offset {offset}",
                        path.display(),
                        needed
                    )));
                }
                (Storage::File { file, offset }, path)
            }
            (None, None) => return Err(invalid("no array and no file")),
        };
        Ok(Self {
            storage,
            element,
            elements,
            name,
            bytes: Vec::new(),
        })
    }

    /// Reads elements `start..start + out.len()` as float32.
    fn read(&mut self, start: usize, out: &mut [f32]) -> Result<(), IoError> {
        let size = self.element.size();
        let end = start.saturating_add(out.len());
        if end > self.elements {
            return Err(IoError::InvalidRequest {
                path: self.name.clone(),
                detail: format!(
                    "values {start}..{end} asked of an array of {}",
                    self.elements
                ),
            });
        }
        match &self.storage {
            Storage::Memory { address, bytes } => {
                debug_assert!(end * size <= *bytes);
                // SAFETY: the Python caller keeps the array (C-contiguous, `bytes` long,
                // checked to hold `elements` values) alive and unmoved for the whole call.
                let all = unsafe { std::slice::from_raw_parts(*address as *const u8, *bytes) };
                self.element.decode(&all[start * size..end * size], out);
            }
            Storage::File { file, offset } => {
                self.bytes.resize(out.len() * size, 0);
                file.read_exact_at(&mut self.bytes, offset + (start * size) as u64)
                    .map_err(|e| IoError::InvalidRequest {
                        path: self.name.clone(),
                        detail: format!("cannot read: {e}"),
                    })?;
                self.element.decode(&self.bytes, out);
            }
        }
        if let Some(position) = out.iter().position(|v| !v.is_finite()) {
            return Err(IoError::InvalidRequest {
                path: self.name.clone(),
                detail: format!(
                    "value {} is not finite ({})",
                    start + position,
                    out[position]
                ),
            });
        }
        Ok(())
    }
}

/// A movie `[t, y, x]` held by Python.
struct ArrayMovie {
    data: ArrayData,
    info: MovieInfo,
}

impl MovieReader for ArrayMovie {
    fn info(&self) -> &MovieInfo {
        &self.info
    }

    fn path(&self) -> &Path {
        &self.data.name
    }

    fn read_frames(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        let frame = self.info.frame_len();
        if out.len() != count * frame {
            return Err(IoError::BufferSize {
                path: self.data.name.clone(),
                expected: count * frame,
                actual: out.len(),
            });
        }
        self.data.read(start * frame, out)
    }
}

/// An extracellular recording `[samples, channels]` held by Python.
struct ArrayProbe {
    data: ArrayData,
    info: EphysInfo,
}

impl EphysReader for ArrayProbe {
    fn info(&self) -> &EphysInfo {
        &self.info
    }

    fn path(&self) -> &Path {
        &self.data.name
    }

    fn read_samples(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        self.read_saved(start, count, out)
    }

    fn read_saved(&mut self, start: usize, count: usize, out: &mut [f32]) -> Result<(), IoError> {
        let channels = self.info.saved_channels;
        if out.len() != count * channels {
            return Err(IoError::BufferSize {
                path: self.data.name.clone(),
                expected: count * channels,
                actual: out.len(),
            });
        }
        self.data.read(start * channels, out)
    }
}

/// Collects an output's values (frames or samples, row-major) in memory.
struct Collected {
    values: Vec<f32>,
    announced: usize,
    written: usize,
}

impl Collected {
    fn new(announced: usize, item_len: usize) -> Self {
        Self {
            values: Vec::with_capacity(announced.saturating_mul(item_len)),
            announced,
            written: 0,
        }
    }

    fn push(&mut self, values: &[f32], count: usize) {
        self.values.extend_from_slice(values);
        self.written += count;
    }

    fn summary(&self) -> Result<WriteSummary, IoError> {
        if self.written != self.announced {
            return Err(IoError::FrameCount {
                path: PathBuf::from("<array>"),
                written: self.written,
                expected: self.announced,
            });
        }
        Ok(WriteSummary {
            frames: self.written,
            clipped_values: 0,
            path: PathBuf::from("<array>"),
        })
    }
}

/// Where collected outputs go when their writer finishes: the call takes them back.
type Sink = std::sync::Arc<std::sync::Mutex<Vec<f32>>>;

struct CollectedMovie {
    collected: Collected,
    sink: Sink,
}

impl MovieWriter for CollectedMovie {
    fn write_frames(&mut self, frames: &[f32], count: usize) -> Result<(), IoError> {
        self.collected.push(frames, count);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<WriteSummary, IoError> {
        let summary = self.collected.summary()?;
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = self.collected.values;
        Ok(summary)
    }
}

struct CollectedProbe {
    collected: Collected,
    sink: Sink,
}

impl EphysWriter for CollectedProbe {
    fn write_samples(&mut self, neural: &[f32], count: usize) -> Result<(), IoError> {
        self.collected.push(neural, count);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<WriteSummary, IoError> {
        let summary = self.collected.summary()?;
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = self.collected.values;
        Ok(summary)
    }
}

/// Denoises `recording` with `model` into `request.output` when it names a
/// file, else into memory: returns the values and the number of items.
fn run_frames(
    request: &DenoiseRequest,
    model: &Model<Infer>,
    mut recording: Recording,
    to_file: bool,
    item: usize,
    progress: &mut PyProgress,
) -> Result<(Vec<f32>, usize), PipelineError> {
    let sink: Sink = Default::default();
    let mut create = |recording: &Recording, plan: &deepinterp::inference::DenoisePlan| {
        if to_file {
            let dtype = request.dtype.map_or_else(
                || recording.default_output_dtype(&request.output),
                Into::into,
            );
            return recording.create_output(&request.output, dtype, plan);
        }
        Ok(match recording {
            Recording::Movie(_) => Box::new(CollectedMovie {
                collected: Collected::new(plan.output_frames, item),
                sink: sink.clone(),
            }) as Box<dyn MovieWriter>,
            Recording::Ephys(grid) => Box::new(GridWriter::new(
                Box::new(CollectedProbe {
                    collected: Collected::new(plan.output_frames, item),
                    sink: sink.clone(),
                }),
                grid.grid().clone(),
            )),
        })
    };
    let report = denoise_frames(request, model, &mut recording, &mut create, progress)?;
    let values = std::mem::take(&mut *sink.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((values, report.frames))
}

/// Refuses an output file over the recording's own file (a memmap's).
fn check_output(request: &DenoiseRequest, source: Option<&Path>) -> Result<(), PipelineError> {
    let mut guard = deepinterp_io::output::OutputGuard::new();
    guard.input("the model", &request.model);
    if let Some(source) = source {
        guard.input("the memmap's file", source);
    }
    guard.output("the denoised recording", &request.output);
    Ok(guard.check()?)
}

/// Denoises a movie `[t, y, x]`; returns the denoised movie (float32 `[t', y, x]`) or, with
/// an output path, writes it there and returns None.
#[pyfunction]
#[pyo3(signature = (address, nbytes, filename, offset, dtype, shape, model, options, output=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn denoise_movie<'py>(
    py: Python<'py>,
    address: Option<usize>,
    nbytes: usize,
    filename: Option<PathBuf>,
    offset: u64,
    dtype: &str,
    shape: [usize; 3],
    model: PathBuf,
    options: &Bound<'py, PyDict>,
    output: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let [frames, height, width] = shape;
    let elements = frames
        .checked_mul(height)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| invalid("the movie is too large"))?;
    let data = ArrayData::new(address, nbytes, filename.clone(), offset, dtype, elements)?;
    let info = MovieInfo {
        frames,
        height,
        width,
        dtype: data.element.dtype(),
    };
    let name = data.name.clone();
    let to_file = output.is_some();
    let mut request = DenoiseRequest::new(name, output.unwrap_or_default(), model);
    Kwargs::new(options).denoise(&mut request)?;
    let recording = Recording::Movie(Box::new(ArrayMovie { data, info }));
    let mut progress = PyProgress::new(progress);
    let (values, written) = detached_reporting(py, &mut progress, |progress| {
        if to_file {
            check_output(&request, filename.as_deref())?;
        }
        let device = Default::default();
        let model = load_denoiser(&request, &device)?;
        run_frames(
            &request,
            &model,
            recording,
            to_file,
            height * width,
            progress,
        )
    })?;
    if to_file {
        return Ok(None);
    }
    let array = PyArray1::from_vec(py, values).reshape([written, height, width])?;
    Ok(Some(array.into_any()))
}

/// Denoises an extracellular recording `[samples, channels]` at `sample_rate` Hz, its
/// channels at `positions` (µm, `(x, y)` per channel) when given; returns the denoised
/// samples (float32 `[samples', channels]`) or, with an output path, writes them there.
#[pyfunction]
#[pyo3(signature = (address, nbytes, filename, offset, dtype, shape, sample_rate, positions, model, options, output=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn denoise_probe<'py>(
    py: Python<'py>,
    address: Option<usize>,
    nbytes: usize,
    filename: Option<PathBuf>,
    offset: u64,
    dtype: &str,
    shape: [usize; 2],
    sample_rate: f64,
    positions: Option<Vec<(f32, f32)>>,
    model: PathBuf,
    options: &Bound<'py, PyDict>,
    output: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let [samples, channels] = shape;
    if channels == 0 || !(sample_rate.is_finite() && sample_rate > 0.0) {
        return Err(invalid(
            "a recording needs at least one channel and a sample rate above 0",
        ));
    }
    if let Some(positions) = &positions
        && positions.len() != channels
    {
        return Err(invalid(format!(
            "{} channel positions for {channels} channels",
            positions.len()
        )));
    }
    let elements = samples
        .checked_mul(channels)
        .ok_or_else(|| invalid("the recording is too large"))?;
    let data = ArrayData::new(address, nbytes, filename.clone(), offset, dtype, elements)?;
    let info = EphysInfo {
        format: EphysFormat::Raw,
        samples,
        saved_channels: channels,
        neural_channels: (0..channels).collect(),
        sample_rate_hz: sample_rate,
        dtype: data.element.dtype(),
        microvolts_per_bit: None,
        positions: positions.map(|positions| {
            positions
                .into_iter()
                .map(|(x_um, y_um)| ChannelPosition {
                    x_um,
                    y_um,
                    shank: 0,
                })
                .collect()
        }),
    };
    let name = data.name.clone();
    let to_file = output.is_some();
    let mut request = DenoiseRequest::new(name, output.unwrap_or_default(), model);
    Kwargs::new(options).denoise(&mut request)?;
    let mut progress = PyProgress::new(progress);
    let (values, written) = detached_reporting(py, &mut progress, |progress| {
        if to_file {
            check_output(&request, filename.as_deref())?;
        }
        let device = Default::default();
        // The grid's rows follow the network's pooling, as for a file.
        let model = load_denoiser(&request, &device)?;
        let row_multiple = model
            .network
            .planar()
            .map_or(1, |planar| planar.size_multiple()[0]);
        let recording = Recording::Ephys(Box::new(deepinterp::probe::GridRecording::new(
            Box::new(ArrayProbe { data, info }),
            row_multiple,
        )));
        run_frames(&request, &model, recording, to_file, channels, progress)
    })?;
    if to_file {
        return Ok(None);
    }
    let array = PyArray1::from_vec(py, values).reshape([written, channels])?;
    Ok(Some(array.into_any()))
}

/// Writes a run `[x, y, z, t]`, given as its values in NIfTI order (x fastest, then y, z and
/// time), to a float32 NIfTI file at `path`.
#[pyfunction]
#[pyo3(signature = (address, nbytes, dtype, shape, path, voxel_size=(1.0, 1.0, 1.0), repetition_time=1.0))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_volumes(
    py: Python<'_>,
    address: usize,
    nbytes: usize,
    dtype: &str,
    shape: [usize; 4],
    path: PathBuf,
    voxel_size: (f64, f64, f64),
    repetition_time: f64,
) -> PyResult<()> {
    let [x, y, z, frames] = shape;
    let volume = x
        .checked_mul(y)
        .and_then(|n| n.checked_mul(z))
        .ok_or_else(|| invalid("the run is too large"))?;
    let elements = volume
        .checked_mul(frames)
        .ok_or_else(|| invalid("the run is too large"))?;
    let mut data = ArrayData::new(Some(address), nbytes, None, 0, dtype, elements)?;
    detached(py, || {
        let mut writer = create_volume(
            &path,
            &NewVolume {
                shape: [x, y, z],
                frames,
                dtype: NiftiDtype::F32,
                voxel_size: [voxel_size.0, voxel_size.1, voxel_size.2],
                repetition_time_s: repetition_time,
                description: "deepinterp: from a Python array".into(),
            },
        )?;
        let mut values = vec![0f32; volume];
        for t in 0..frames {
            data.read(t * volume, &mut values)?;
            writer.write_volumes(&values, 1)?;
        }
        writer.finish()?;
        Ok(())
    })
}

/// Reads a whole recording file into memory: a movie as `[t, y, x]`, an extracellular
/// recording's neural channels as `[samples, channels]` (raw units), an fMRI run as its
/// values in NIfTI order (x fastest) with the shape `[x, y, z, t]`. Returns the flat values
/// and the shape.
#[pyfunction]
#[pyo3(signature = (path, options))]
pub(crate) fn read_recording<'py>(
    py: Python<'py>,
    path: PathBuf,
    options: &Bound<'py, PyDict>,
) -> PyResult<(Bound<'py, PyArray1<f32>>, Vec<usize>)> {
    let mut raw = deepinterp_pipeline::RawOptions::default();
    Kwargs::new(options).raw(&mut raw)?;
    let (values, shape) = detached(py, || {
        Ok(match deepinterp_pipeline::modality_of(&path) {
            Modality::TwoPhoton => {
                let mut reader = deepinterp_io::open_movie(&path)?;
                let info = reader.info().clone();
                let mut values = vec![0f32; info.frames * info.frame_len()];
                reader.read_frames(0, info.frames, &mut values)?;
                (values, vec![info.frames, info.height, info.width])
            }
            Modality::Ephys => {
                let mut reader = open_ephys_with(&path, &raw.ephys_options())?;
                let info = reader.info().clone();
                let channels = info.neural_channel_count();
                let mut values = vec![0f32; info.samples * channels];
                reader.read_samples(0, info.samples, &mut values)?;
                (values, vec![info.samples, channels])
            }
            Modality::Fmri => {
                let mut reader = open_volume(&path)?;
                let info = reader.info().clone();
                let mut values = vec![0f32; info.volume_len() * info.frames];
                reader.read_volumes(0, info.frames, &mut values)?;
                let [x, y, z] = info.shape;
                (values, vec![x, y, z, info.frames])
            }
        })
    })?;
    Ok((PyArray1::from_vec(py, values), shape))
}
