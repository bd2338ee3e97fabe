"""deepinterp: DeepInterpolation (Lecoq et al., Nature Methods 2021) without TensorFlow.

Self-supervised denoising of two-photon movies, extracellular (Neuropixels) recordings and
fMRI runs: a network predicts each frame from its neighbours, so noise that is independent
between frames is left out. The same engine as the ``deepinterp`` command line, from Python:

>>> import deepinterp
>>> denoised = deepinterp.denoise(movie, "model.dimodel")        # movie: [t, y, x] array
>>> deepinterp.denoise("noisy.h5", "model.dimodel", output="denoised.h5")
>>> deepinterp.train(["noisy.h5"], "model.dimodel", max_minutes=10)
>>> deepinterp.evaluate("noisy.h5", "denoised.h5", clean="clean.h5")["snr_gain_median"]

Arrays: ``[t, y, x]`` movies, ``[samples, channels]`` extracellular recordings (with their
``sample_rate``, and ``channel_positions`` when known), ``[x, y, z, t]`` fMRI runs. A
``numpy.memmap`` is read from its file as the work proceeds, never loaded whole. Every call
releases the GIL while it works. Errors are :class:`DeepInterpError` (with
:class:`InvalidInputError`, a ``ValueError``, and :class:`FileError`, an ``OSError``).
"""

from __future__ import annotations

import json
import mmap
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._errors import DeepInterpError, FileError, InvalidInputError
from ._progress import Progress, reporter

__all__ = [
    "DeepInterpError",
    "FileError",
    "InvalidInputError",
    "Model",
    "denoise",
    "evaluate",
    "finetune",
    "inspect",
    "load_model",
    "train",
    "__version__",
]

__version__: str = _native.__version__

PathLike = Union[str, "os.PathLike[str]"]

_NATIVE_DTYPES = {"float32", "float64", "int16", "uint16", "uint8", "int32"}


def _options(**settings: Any) -> Dict[str, Any]:
    """The settings a caller set (None means: the default)."""
    return {key: value for key, value in settings.items() if value is not None}


def _buffer(data: np.ndarray) -> Tuple[Optional[int], int, Optional[str], int, np.ndarray]:
    """How the native side reads ``data``: ``(address, nbytes, filename, offset, array)``.

    A C-contiguous memmap of a file is read from the file (``filename``, ``offset``);
    anything else from memory, made C-contiguous, little-endian and of a type the native
    side reads (converted to float32 otherwise). The returned array must stay alive for the
    call."""
    if isinstance(data, np.memmap) and data.filename and data.flags.c_contiguous:
        mapping = getattr(data, "_mmap", None)
        if isinstance(mapping, mmap.mmap) and data.dtype.name in _NATIVE_DTYPES and (
            data.dtype.byteorder in "=<|"
        ):
            base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
            start = data.offset - data.offset % mmap.ALLOCATIONGRANULARITY
            offset = start + (data.ctypes.data - base)
            return None, data.nbytes, os.fspath(data.filename), offset, data
    array = np.asarray(data)
    if array.dtype.name not in _NATIVE_DTYPES:
        array = array.astype(np.float32)
    array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
    return array.ctypes.data, array.nbytes, None, 0, array


def denoise(
    data: Union[np.ndarray, PathLike],
    model: PathLike,
    *,
    output: Optional[PathLike] = None,
    edges: str = "keep",
    batch_size: Optional[int] = None,
    dtype: Optional[str] = None,
    start_frame: int = 0,
    end_frame: Optional[int] = None,
    stats_frames: Optional[int] = None,
    pre_frames: Optional[int] = None,
    post_frames: Optional[int] = None,
    omitted_frames: Optional[int] = None,
    mode: str = "fast",
    engine: Optional[str] = None,
    sample_rate: Optional[float] = None,
    channel_positions: Optional[Sequence[Tuple[float, float]]] = None,
    channels: Optional[int] = None,
    cut_to_shortest: bool = False,
    progress: Progress = None,
) -> Optional[np.ndarray]:
    """Denoises a recording with a trained model (a deepinterp ``.dimodel`` or an original
    Keras ``.h5``).

    ``data`` is a file (any format the command line reads) or an array: ``[t, y, x]`` for a
    movie, ``[samples, channels]`` for an extracellular recording (``sample_rate`` in Hz
    required; ``channel_positions`` as ``(x, y)`` µm per channel when known, else the
    channels fill the model's probe grid in order), ``[x, y, z, t]`` for an fMRI run.

    Returns the denoised recording as a float32 array of the same layout (with
    ``edges="keep"``, the default, of the same length), or writes it to ``output`` and
    returns None. The other settings are those of ``deepinterp denoise`` (``edges``: keep,
    drop or drop-pad-head; ``mode`` for fMRI: fast or parity; ``engine``: kernels or burn).
    ``progress``: a callable ``(kind, done, total, text)``, False for none, or None/True for a
    tqdm bar when tqdm is installed.
    """
    options = _options(
        edges=edges,
        batch_size=batch_size,
        dtype=dtype,
        start_frame=start_frame,
        end_frame=end_frame,
        stats_frames=stats_frames,
        pre_frames=pre_frames,
        post_frames=post_frames,
        omitted_frames=omitted_frames,
        mode=mode,
        engine=engine,
        channels=channels,
        sample_rate=sample_rate,
        cut_to_shortest=cut_to_shortest or None,
    )
    report = reporter(progress)
    model = os.fspath(model)
    if isinstance(data, (str, os.PathLike)):
        if output is not None:
            _native.denoise_file(os.fspath(data), os.fspath(output), model, options, report)
            return None
        with tempfile.TemporaryDirectory(prefix="deepinterp-") as folder:
            target = Path(folder) / _temporary_name(Path(data))
            _native.denoise_file(os.fspath(data), os.fspath(target), model, options, report)
            return _read(target, options)
    array = data if isinstance(data, np.memmap) else np.asarray(data)
    target = None if output is None else os.fspath(output)
    if array.ndim == 3:
        address, nbytes, filename, offset, keep = _buffer(array)
        result = _native.denoise_movie(
            address, nbytes, filename, offset, keep.dtype.name, list(array.shape),
            model, options, target, report,
        )
        del keep
        return result
    if array.ndim == 2:
        if sample_rate is None:
            raise InvalidInputError(
                "an extracellular recording [samples, channels] needs its sample_rate (Hz)"
            )
        address, nbytes, filename, offset, keep = _buffer(array)
        positions = None
        if channel_positions is not None:
            positions = [(float(x), float(y)) for x, y in channel_positions]
        result = _native.denoise_probe(
            address, nbytes, filename, offset, keep.dtype.name, list(array.shape),
            float(sample_rate), positions, model, options, target, report,
        )
        del keep
        return result
    if array.ndim == 4:
        return _denoise_run(array, model, options, target, report)
    raise InvalidInputError(
        f"an array of {array.ndim} axes: give [t, y, x] (movie), [samples, channels] "
        "(extracellular) or [x, y, z, t] (fMRI)"
    )


def _temporary_name(source: Path) -> str:
    """A name for the temporary output of a file denoised into memory."""
    name = source.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "denoised.nii"
    if name.endswith((".h5", ".hdf5", ".tif", ".tiff")):
        return "denoised.h5"
    return "denoised.bin"


def _read(path: Path, options: Dict[str, Any]) -> np.ndarray:
    values, shape = _native.read_recording(os.fspath(path), _raw_options(options))
    if len(shape) == 4:
        return values.reshape(shape, order="F")
    return values.reshape(shape)


def _raw_options(options: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in options.items() if k in ("channels", "sample_rate", "cut_to_shortest")}


def _denoise_run(array, model, options, target, report) -> Optional[np.ndarray]:
    """fMRI runs are small: written to a temporary NIfTI file and denoised as one."""
    values = np.asfortranarray(array)
    if values.dtype.name not in _NATIVE_DTYPES:
        values = values.astype(np.float32, order="F")
    flat = values.ravel(order="K")
    with tempfile.TemporaryDirectory(prefix="deepinterp-") as folder:
        source = Path(folder) / "run.nii"
        _native.write_volumes(
            flat.ctypes.data, flat.nbytes, flat.dtype.name, list(array.shape), os.fspath(source)
        )
        if target is not None:
            _native.denoise_file(os.fspath(source), target, model, options, report)
            return None
        denoised = Path(folder) / "denoised.nii"
        _native.denoise_file(os.fspath(source), os.fspath(denoised), model, options, report)
        return _read(denoised, {})


def _paths(inputs: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    return [os.fspath(path) for path in inputs]


#: The settings :func:`train` and :func:`finetune` take (those of ``deepinterp train``).
_TRAINING_SETTINGS = (
    "validation", "arch", "steps", "max_minutes", "pre_frames", "post_frames",
    "omitted_frames", "loss", "optimizer", "learning_rate", "lr_halving_epochs", "batch_size",
    "steps_per_epoch", "patch_size", "validation_fraction", "validation_samples",
    "stats_frames", "seed", "config", "resume", "overwrite", "channels", "sample_rate",
    "cut_to_shortest",
)


def _training_options(settings: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(settings) - set(_TRAINING_SETTINGS))
    if unknown:
        raise TypeError(f"unknown training settings: {', '.join(unknown)}")
    options = _options(**settings)
    for flag in ("resume", "overwrite", "cut_to_shortest"):
        if not options.get(flag):
            options.pop(flag, None)
    if "validation" in options:
        options["validation"] = _paths(options["validation"])
    if "config" in options:
        options["config"] = os.fspath(options["config"])
    return options


def train(
    inputs: Union[PathLike, Sequence[PathLike]],
    output: PathLike,
    *,
    validation: Optional[Sequence[PathLike]] = None,
    arch: Optional[str] = None,
    steps: Optional[int] = None,
    max_minutes: Optional[float] = None,
    pre_frames: Optional[int] = None,
    post_frames: Optional[int] = None,
    omitted_frames: Optional[int] = None,
    loss: Optional[str] = None,
    optimizer: Optional[str] = None,
    learning_rate: Optional[float] = None,
    lr_halving_epochs: Optional[int] = None,
    batch_size: Optional[int] = None,
    steps_per_epoch: Optional[int] = None,
    patch_size: Optional[int] = None,
    validation_fraction: Optional[float] = None,
    validation_samples: Optional[int] = None,
    stats_frames: Optional[int] = None,
    seed: Optional[int] = None,
    config: Optional[PathLike] = None,
    resume: bool = False,
    overwrite: bool = False,
    channels: Optional[int] = None,
    sample_rate: Optional[float] = None,
    cut_to_shortest: bool = False,
    progress: Progress = None,
) -> Dict[str, Any]:
    """Trains a denoising network on recordings (files of any modality) and writes the best
    model by validation loss to ``output``, with its loss history beside it. Settings left
    at None take the value of ``config`` (a TOML file), then the modality's preset — the
    defaults of ``deepinterp train``. Without ``steps`` the run trains until its validation
    loss stops improving (within ``max_minutes`` when given); ``steps`` is an exact count.
    Returns the run's report: steps, ``ending`` ("converged", "steps" or "time_budget"),
    ``validation_fall_per_1000_steps`` (how fast the loss was still falling),
    ``validation_relative_error``, losses, history and files."""
    settings = {
        key: value
        for key, value in locals().items()
        if key not in ("inputs", "output", "progress")
    }
    options = _training_options(settings)
    return _native.train(_paths(inputs), os.fspath(output), options, reporter(progress))


def finetune(
    inputs: Union[PathLike, Sequence[PathLike]],
    output: PathLike,
    model: PathLike,
    *,
    freeze_encoder: bool = False,
    progress: Progress = None,
    **settings: Any,
) -> Dict[str, Any]:
    """Fine-tunes ``model`` (ours or an original Keras ``.h5``) on new recordings: training
    that starts from its weights and keeps its architecture and window. Takes the settings
    of :func:`train` (but not ``arch``); it runs until its validation loss stops improving
    unless ``steps`` is given, at the preset's fine-tuning learning rate. Returns the run's
    report, with the validation loss before and after."""
    options = _training_options(settings)
    if freeze_encoder:
        options["freeze_encoder"] = True
    return _native.finetune(
        _paths(inputs), os.fspath(output), os.fspath(model), options, reporter(progress)
    )


def evaluate(
    noisy: PathLike,
    denoised: PathLike,
    *,
    clean: Optional[PathLike] = None,
    spikes: Optional[PathLike] = None,
    offset: int = 0,
    brain_threshold: Optional[float] = None,
    report: Optional[PathLike] = None,
    channels: Optional[int] = None,
    sample_rate: Optional[float] = None,
    progress: Progress = None,
) -> Dict[str, Any]:
    """Measures a denoised recording against its noisy source (and the ground truth when
    given): the figures of ``deepinterp evaluate`` as a dict (also written to ``report``)."""
    options = _options(
        clean=None if clean is None else os.fspath(clean),
        spikes=None if spikes is None else os.fspath(spikes),
        offset=offset,
        brain_threshold=brain_threshold,
        report=None if report is None else os.fspath(report),
        channels=channels,
        sample_rate=sample_rate,
    )
    text = _native.evaluate(os.fspath(noisy), os.fspath(denoised), options, reporter(progress))
    return json.loads(text)


def inspect(
    path: PathLike, *, channels: Optional[int] = None, sample_rate: Optional[float] = None
) -> Dict[str, Any]:
    """What a file is: a model (architecture, window, training) or a recording (shape, type
    and an estimate of the time denoising it would take here), as ``deepinterp inspect
    --json`` prints it."""
    options = _options(channels=channels, sample_rate=sample_rate)
    return json.loads(_native.inspect(os.fspath(path), options))


class Model:
    """A model loaded once, to run on network inputs you build yourself.

    ``spec`` describes it (architecture, modality, network, window, normalisation).
    :meth:`predict` runs the bare network: no windows, no normalisation."""

    def __init__(self, native: "_native.LoadedModel"):
        self._native = native
        self.spec: Dict[str, Any] = json.loads(native.spec_json())

    @property
    def path(self) -> Path:
        return Path(self._native.path)

    @property
    def window(self) -> Tuple[int, int, int]:
        """``(pre_frames, post_frames, omitted_frames)``."""
        w = self.spec["window"]
        return (w["pre_frames"], w["post_frames"], w["omitted_frames"])

    def predict(self, batch: np.ndarray, *, channels_last: bool = True) -> np.ndarray:
        """Runs the network on ``batch``: ``[n, h, w, channels]`` (Keras' layout, the
        default) or with ``channels_last=False`` ``[n, channels, h, w]``; fMRI networks take
        ``[n, x, y, z, channels]`` (or ``[n, channels, x, y, z]``). Returns float32 with one
        output channel, in the same layout."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim not in (4, 5):
            raise InvalidInputError(f"a batch of {batch.ndim} axes: give 4 (frames) or 5 (fMRI)")
        if channels_last:
            batch = np.moveaxis(batch, -1, 1)
        batch = np.ascontiguousarray(batch)
        out = self._native.predict(batch)
        shape = (batch.shape[0], 1) + batch.shape[2:]
        out = out.reshape(shape)
        return np.moveaxis(out, 1, -1) if channels_last else out

    def __repr__(self) -> str:
        return f"deepinterp.Model({str(self.path)!r}, {self.spec['architecture']})"


def load_model(
    path: PathLike,
    *,
    pre_frames: Optional[int] = None,
    post_frames: Optional[int] = None,
    omitted_frames: Optional[int] = None,
) -> Model:
    """Loads a model: a deepinterp model file or an original Keras ``.h5`` (which records no
    window: give ``pre_frames``/``post_frames``/``omitted_frames``, default half the input
    frames each side)."""
    return Model(_native.LoadedModel(os.fspath(path), pre_frames, post_frames, omitted_frames))
