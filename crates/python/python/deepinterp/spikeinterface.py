"""DeepInterpolation for SpikeInterface recordings, without TensorFlow.

A drop-in for ``spikeinterface.preprocessing.deepinterpolate`` and
``spikeinterface.preprocessing.train_deepinterpolation`` (same signatures as SpikeInterface
0.105), running on deepinterp's engine:

>>> import spikeinterface.preprocessing as spre
>>> from deepinterp.spikeinterface import deepinterpolate, train_deepinterpolation
>>> recording = spre.zscore(recording)
>>> denoised = deepinterpolate(recording, "model_unet_single_ephys_1024.h5")
>>> denoised.save(folder="denoised", format="binary", n_jobs=4, chunk_duration="1s")

The result is a lazy recording: each ``get_traces(start, end)`` reads the samples it needs
around ``[start, end)`` from the parent and runs the network on them, so any chunking gives
the same values, and it is rebuilt from its keyword arguments in worker processes.

**Keras models** (the original's ``.h5``) follow SpikeInterface's rules exactly:

* No normalisation: the network sees the recording's values (SpikeInterface's users
  z-score first) and its outputs are returned as they are.
* The model's input is ``[rows, cols, pre_frame + post_frame]`` (its ``InputLayer``). When
  ``rows × cols`` equals the channel count, channel ``c`` goes to cell ``(c // cols, c % cols)``
  (SpikeInterface reshapes each sample, channels in recording order, to ``rows × cols``).
* The sample ``t`` is predicted from the frames ``t - pre_frame - pre_post_omission ..
  t - 2`` and ``t + 2 .. t + post_frame + pre_post_omission``: SpikeInterface's generator
  reads ``[t - pre_frame - pre_post_omission, t + post_frame + pre_post_omission]`` and
  always drops the centre and one frame on each side of it. With ``pre_post_omission = 1``
  (the default, and the only value SpikeInterface's generator runs with: any other gives it
  a frame count the network does not take) that is also the original's window. For other
  values we take the original's window (``pre_frame`` frames before ``t - pre_post_omission``,
  ``post_frame`` after ``t + pre_post_omission``), which agrees with SpikeInterface's where
  SpikeInterface runs at all.
* The first ``pre_frame + pre_post_omission`` and the last ``post_frame +
  pre_post_omission`` samples of each segment are returned raw (31 at each end with the
  defaults); the output has as many samples as the input. (SpikeInterface means this but,
  for a request that starts inside the head or ends inside the tail, returns the whole head
  or tail; we return exactly ``[start, end)``.)
* A wrong input size raises ``AssertionError`` as SpikeInterface does (ours is also a
  :class:`deepinterp.InvalidInputError`): ``rows × cols`` must equal the channel count and
  the model's input frames must equal ``pre_frame + post_frame``. One layout beyond
  SpikeInterface's: the original's Neuropixels models (``[384, 2]`` input) were trained on a
  ``channels × 2`` checkerboard, channel ``c`` at ``(c, c % 2)`` with the other cells zero
  (the original's ``EphysGenerator``). SpikeInterface refuses them for a 384-channel
  recording (``384 × 2 ≠ 384``); we run them with that checkerboard, so the Allen models work
  on Neuropixels 1.0 recordings, exactly as ``deepinterp denoise`` runs them.

**deepinterp models** (``.dimodel``, e.g. from :func:`train_deepinterpolation`) follow
deepinterp's own semantics, those of ``deepinterp denoise --edges keep`` on the same
recording: the window recorded in the model (``pre_frame``, ``post_frame`` and
``pre_post_omission`` must equal it), the model's normalisation (global mean and std of the
first ``stats_frames`` samples of each segment, all channels; computed once when the
recording is built and kept in its keyword arguments, so every chunk and every worker uses
the same), the probe grid from channel positions (channels ranked by depth ``y``, ties in
channel order, rank ``k`` at ``(k, k % 2)`` of a ``rows × 2`` grid, ``rows`` rounded up to
the network's pooling; channel order when the recording has no locations), and edge samples
predicted from time-mirrored windows rather than returned raw.

The denoised recording is float32 whatever its parent's type (SpikeInterface declares the
parent's type but returns the network's float32 values; saving them as int16 would truncate
them). Settings that only concern TensorFlow (``use_gpu``, ``predict_workers``,
``disable_tf_logger``, ``memory_gpu``) are accepted and kept but change nothing.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

import deepinterp
from deepinterp._errors import InvalidInputError

try:
    from spikeinterface.core import BaseRecording
    from spikeinterface.core.core_tools import define_function_handling_dict_from_class
    from spikeinterface.preprocessing.basepreprocessor import (
        BasePreprocessor,
        BasePreprocessorSegment,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "deepinterp.spikeinterface needs SpikeInterface: pip install spikeinterface"
    ) from error

__all__ = [
    "DeepInterpolatedRecording",
    "ModelShapeError",
    "deepinterpolate",
    "train_deepinterpolation",
]

#: The most float32 values one network call's inputs may hold: a large batch_size on a large
#: probe is split into calls of at most this size (the results do not depend on it).
_MAX_BATCH_VALUES = 64 << 20


class ModelShapeError(InvalidInputError, AssertionError):
    """A model whose input does not fit the recording or the window. An ``AssertionError``
    like SpikeInterface's checks (so code written for SpikeInterface catches it), and a
    :class:`deepinterp.InvalidInputError` (``ValueError``) like deepinterp's own."""


# --------------------------------------------------------------------------------------
# How samples become network inputs
# --------------------------------------------------------------------------------------


class _Layout:
    """Where each channel sits on the network's ``rows × cols`` input (flat cell index
    ``row * cols + col``); cells without a channel are zero."""

    def __init__(self, rows: int, cols: int, cells: np.ndarray):
        self.rows = rows
        self.cols = cols
        self.cells = cells

    def scatter(self, windows: np.ndarray) -> np.ndarray:
        """``[n, frames, channels]`` windows as network inputs ``[n, rows, cols, frames]``."""
        count, frames, _ = windows.shape
        grid = np.zeros((count, self.rows * self.cols, frames), dtype=np.float32)
        grid[:, self.cells, :] = windows.transpose(0, 2, 1)
        return grid.reshape(count, self.rows, self.cols, frames)

    def gather(self, outputs: np.ndarray) -> np.ndarray:
        """Network outputs ``[n, rows, cols, 1]`` as ``[n, channels]``."""
        return outputs.reshape(outputs.shape[0], self.rows * self.cols)[:, self.cells]


def _keras_input_shape(model: "deepinterp.Model") -> List[Optional[int]]:
    """The ``[batch, rows, cols, frames]`` input of a Keras model, from its InputLayer as
    SpikeInterface reads it (``batch_input_shape``; Keras 3 writes ``batch_shape``)."""
    import json

    config = json.loads(model._native.keras_config())
    layers = config.get("config", {}).get("layers", [])
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            settings = layer.get("config", {})
            shape = settings.get("batch_input_shape") or settings.get("batch_shape")
            if shape is not None:
                return list(shape)
    raise InvalidInputError(f"{model.path}: the Keras model has no InputLayer with a shape")


def _keras_layout(shape: Sequence[Optional[int]], channels: int) -> _Layout:
    """SpikeInterface's layout of ``channels`` on the model's ``rows × cols`` input, or the
    original's Neuropixels checkerboard (see the module's notes)."""
    rows, cols = int(shape[1]), int(shape[2])
    if rows * cols == channels:
        return _Layout(rows, cols, np.arange(channels))
    if cols == 2 and rows == channels:
        index = np.arange(channels)
        return _Layout(rows, cols, index * 2 + index % 2)
    raise ModelShapeError(
        f"the network's input is {rows} x {cols} = {rows * cols} cells but the recording has "
        f"{channels} channels: the desired shape of the network input must match the number "
        "of channels in the recording"
    )


def _probe_layout(recording: BaseRecording, row_multiple: int) -> _Layout:
    """deepinterp's probe grid: channels ranked by depth, rank ``k`` at ``(k, k % 2)``."""
    channels = recording.get_num_channels()
    try:
        depth = np.asarray(recording.get_channel_locations())[:, 1]
    except Exception:  # no probe and no locations: the channels are taken in order
        depth = None
    rank_of_channel = np.arange(channels)
    if depth is not None and len(depth) == channels:
        # A stable sort keeps ties in channel order, as deepinterp's probe grid does.
        order = np.argsort(depth, kind="stable")
        rank_of_channel = np.empty(channels, dtype=np.int64)
        rank_of_channel[order] = np.arange(channels)
    rows = -(-max(channels, 1) // row_multiple) * row_multiple
    return _Layout(rows, 2, rank_of_channel * 2 + rank_of_channel % 2)


def _window_offsets(pre: int, post: int, omitted: int) -> np.ndarray:
    """Offsets from the centre of each input frame, in time order."""
    before = -(omitted + np.arange(pre, 0, -1))
    after = omitted + np.arange(1, post + 1)
    return np.concatenate([before, after]).astype(np.int64)


def _head_statistics(segment, stats_frames: int) -> Tuple[float, float]:
    """Mean and std (float32, as deepinterp keeps them) of all channels over the first
    ``stats_frames`` samples of ``segment``: two float64 passes, as deepinterp computes them."""
    frames = min(segment.get_num_samples(), max(stats_frames, 1))
    chunk = 65536

    def blocks():
        for start in range(0, frames, chunk):
            yield segment.get_traces(start, min(frames, start + chunk), slice(None))

    total, count = 0.0, 0
    for block in blocks():
        total += float(np.sum(block, dtype=np.float64))
        count += block.size
    mean = total / max(count, 1)
    squares = sum(float(np.sum((block.astype(np.float64) - mean) ** 2)) for block in blocks())
    std = math.sqrt(squares / max(count, 1))
    if not (math.isfinite(std) and std > 0):
        raise InvalidInputError(
            f"the first {frames} samples are constant: cannot normalise (std = 0)"
        )
    return float(np.float32(mean)), float(np.float32(std))


# --------------------------------------------------------------------------------------
# The recording
# --------------------------------------------------------------------------------------


class DeepInterpolatedRecording(BasePreprocessor):
    """A recording denoised by a DeepInterpolation model, computed lazily chunk by chunk.

    Parameters
    ----------
    recording : BaseRecording
        The recording to denoise (z-score it first for Keras models, as SpikeInterface
        expects; deepinterp models normalise by themselves).
    model_path : str | Path
        An original Keras ``.h5`` model or a deepinterp ``.dimodel``.
    pre_frame, post_frame : int
        Frames before and after the predicted sample.
    pre_post_omission : int
        Frames left out on each side of the predicted sample.
    batch_size : int
        Samples per network call.
    use_gpu, predict_workers, disable_tf_logger, memory_gpu
        TensorFlow settings of SpikeInterface's version: accepted, without effect.
    normalization : list of (mean, std) or None
        deepinterp models only: the statistics of each segment. Computed from the head of
        each segment when None; kept in the keyword arguments so rebuilt copies (workers,
        loading a saved description) need not read the head again.

    See the module's notes for the exact rules of each kind of model.
    """

    def __init__(
        self,
        recording: BaseRecording,
        model_path: Union[str, "os.PathLike[str]"],
        pre_frame: int = 30,
        post_frame: int = 30,
        pre_post_omission: int = 1,
        batch_size: int = 128,
        use_gpu: bool = True,
        predict_workers: int = 1,
        disable_tf_logger: bool = True,
        memory_gpu: Optional[int] = None,
        normalization: Optional[Sequence[Tuple[float, float]]] = None,
    ):
        if int(batch_size) < 1:
            raise InvalidInputError(f"batch_size must be at least 1, not {batch_size}")
        if min(int(pre_frame), int(post_frame), int(pre_post_omission)) < 0:
            raise InvalidInputError("pre_frame, post_frame and pre_post_omission must be >= 0")
        # Our outputs are float32 whatever the parent's type (the network's values); casting
        # them back to an integer type would truncate them.
        BasePreprocessor.__init__(self, recording, dtype="float32")
        model = deepinterp.load_model(model_path)
        channels = recording.get_num_channels()
        keras = model._native.keras_config() is not None
        if keras:
            shape = _keras_input_shape(model)
            layout = _keras_layout(shape, channels)
            if shape[-1] != pre_frame + post_frame:
                raise ModelShapeError(
                    f"the network takes {shape[-1]} frames but pre_frame + post_frame = "
                    f"{pre_frame + post_frame}: the desired shape of the network input must "
                    "match the pre and post frames"
                )
            segment_statistics: List[Optional[Tuple[float, float]]] = [None] * (
                recording.get_num_segments()
            )
        else:
            if model.spec.get("modality") != "ephys":
                raise InvalidInputError(
                    f"{model_path}: a {model.spec.get('modality')} model; extracellular "
                    "recordings need an ephys model"
                )
            trained = model.window
            if (pre_frame, post_frame, pre_post_omission) != tuple(trained):
                raise ModelShapeError(
                    f"{model_path} was trained with pre_frame={trained[0]}, "
                    f"post_frame={trained[1]}, pre_post_omission={trained[2]}; got "
                    f"{pre_frame}, {post_frame}, {pre_post_omission}"
                )
            pools = model.spec.get("network", {}).get("pools") or [[1, 1]]
            row_multiple = int(np.prod([pool[0] for pool in pools]))
            layout = _probe_layout(recording, row_multiple)
            if normalization is None:
                stats_frames = int(model.spec["normalization"]["stats_frames"])
                normalization = [
                    _head_statistics(segment, stats_frames) for segment in recording.segments
                ]
            if len(normalization) != recording.get_num_segments():
                raise InvalidInputError(
                    f"normalization has {len(normalization)} entries for "
                    f"{recording.get_num_segments()} segments"
                )
            normalization = [(float(mean), float(std)) for mean, std in normalization]
            segment_statistics = list(normalization)

        self.model = model
        for parent, statistics in zip(recording.segments, segment_statistics):
            self.add_recording_segment(
                DeepInterpolatedRecordingSegment(
                    parent,
                    model,
                    layout,
                    int(pre_frame),
                    int(post_frame),
                    int(pre_post_omission),
                    int(batch_size),
                    statistics,
                )
            )

        # Our native library runs thread pools; a forked worker would inherit them half
        # made, so workers are spawned (SpikeInterface asks the same for TensorFlow).
        self._preferred_mp_context = "spawn"
        self._kwargs = dict(
            recording=recording,
            model_path=str(model_path),
            pre_frame=pre_frame,
            post_frame=post_frame,
            pre_post_omission=pre_post_omission,
            batch_size=batch_size,
            use_gpu=use_gpu,
            predict_workers=predict_workers,
            disable_tf_logger=disable_tf_logger,
            memory_gpu=memory_gpu,
            normalization=None if keras else [list(pair) for pair in normalization],
        )
        self.extra_requirements.append("deepinterp")


class DeepInterpolatedRecordingSegment(BasePreprocessorSegment):
    """One segment: reads each request with the margins its windows need, then predicts.

    ``statistics`` is None for Keras models (SpikeInterface's semantics: raw edges, no
    normalisation) and ``(mean, std)`` for deepinterp models (deepinterp's semantics)."""

    def __init__(
        self,
        parent_recording_segment,
        model: "deepinterp.Model",
        layout: _Layout,
        pre_frame: int,
        post_frame: int,
        pre_post_omission: int,
        batch_size: int,
        statistics: Optional[Tuple[float, float]],
    ):
        BasePreprocessorSegment.__init__(self, parent_recording_segment)
        self.model = model
        self.layout = layout
        self.pre_frame = pre_frame
        self.post_frame = post_frame
        self.pre_post_omission = pre_post_omission
        self.batch_size = batch_size
        self.statistics = statistics
        self.offsets = _window_offsets(pre_frame, post_frame, pre_post_omission)
        # Inputs of one call stay bounded however large batch_size is.
        cells = layout.rows * layout.cols * max(len(self.offsets), 1)
        self.samples_per_call = max(1, min(batch_size, _MAX_BATCH_VALUES // cells))

    def get_traces(self, start_frame, end_frame, channel_indices):
        total = self.get_num_samples()
        start = 0 if start_frame is None else int(start_frame)
        end = total if end_frame is None else int(end_frame)
        if channel_indices is None:
            channel_indices = slice(None)
        if self.statistics is None:
            traces = self._keras_traces(start, end, total)
        else:
            traces = self._deepinterp_traces(start, end, total)
        return traces[:, channel_indices]

    def _keras_traces(self, start: int, end: int, total: int) -> np.ndarray:
        """SpikeInterface's semantics: raw head and tail, bare network in between."""
        first_full = self.pre_frame + self.pre_post_omission
        end_full = total - self.post_frame - self.pre_post_omission
        channels = len(self.layout.cells)
        out = np.empty((max(end - start, 0), channels), dtype=np.float32)
        head_end = min(end, first_full)
        if start < head_end:
            out[: head_end - start] = self.parent_recording_segment.get_traces(
                start, head_end, slice(None)
            )
        tail_start = max(start, end_full, first_full)
        if tail_start < end:
            out[tail_start - start :] = self.parent_recording_segment.get_traces(
                tail_start, end, slice(None)
            )
        first, last = max(start, first_full), min(end, end_full)
        if first < last:
            reach_back = -int(self.offsets[0]) if len(self.offsets) else 0
            reach_ahead = int(self.offsets[-1]) if len(self.offsets) else 0
            for batch_start in range(first, last, self.samples_per_call):
                batch_end = min(last, batch_start + self.samples_per_call)
                block = self.parent_recording_segment.get_traces(
                    batch_start - reach_back, batch_end + reach_ahead, slice(None)
                ).astype(np.float32, copy=False)
                centres = np.arange(batch_end - batch_start) + reach_back
                windows = block[centres[:, None] + self.offsets[None, :]]
                predicted = self.model.predict(self.layout.scatter(windows))
                out[batch_start - start : batch_end - start] = self.layout.gather(predicted)
        return out

    def _deepinterp_traces(self, start: int, end: int, total: int) -> np.ndarray:
        """deepinterp's semantics (``deepinterp denoise --edges keep``): normalised windows,
        time-mirrored near the edges, outputs back in raw units."""
        mean, std = (np.float32(value) for value in self.statistics)
        channels = len(self.layout.cells)
        out = np.empty((max(end - start, 0), channels), dtype=np.float32)
        reach = int(np.abs(self.offsets).max()) if len(self.offsets) else 0
        for batch_start in range(start, end, self.samples_per_call):
            batch_end = min(end, batch_start + self.samples_per_call)
            low, high = max(0, batch_start - reach), min(total, batch_end + reach)
            raw = self.parent_recording_segment.get_traces(low, high, slice(None))
            # deepinterp subtracts and divides in float64 and rounds to float32.
            block = ((raw.astype(np.float64) - float(mean)) / float(std)).astype(np.float32)
            centres = np.arange(batch_start, batch_end)[:, None]
            direct = centres + self.offsets[None, :]
            # A neighbour beyond the recording is replaced by its mirror about the centre.
            mirrored = centres - self.offsets[None, :]
            inside = (direct >= 0) & (direct < total)
            source = np.clip(np.where(inside, direct, mirrored), 0, total - 1)
            windows = block[source - low]
            predicted = self.layout.gather(self.model.predict(self.layout.scatter(windows)))
            out[batch_start - start : batch_end - start] = predicted * std + mean
        return out


#: ``deepinterpolate(recording, model_path, ...)``: a :class:`DeepInterpolatedRecording`
#: (or a dict of them for a dict of recordings), as SpikeInterface's function.
deepinterpolate = define_function_handling_dict_from_class(
    source_class=DeepInterpolatedRecording, name="deepinterpolate"
)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

_LOSSES = {
    "mean_squared_error": "l2",
    "mse": "l2",
    "l2": "l2",
    "mean_absolute_error": "l1",
    "mae": "l1",
    "l1": "l1",
}

#: SpikeInterface's SpikeInterfaceRecordingGenerator takes batches of this many samples.
_SI_BATCH_SIZE = 100

#: The integer scale a float recording is written at for training: its std becomes this many
#: steps, leaving room up to int16's limit for spikes of ~30 std (values beyond are clipped).
_STEPS_PER_STD = 1000.0


def _frames(seconds: Optional[float], sampling_frequency: float, default: int) -> int:
    return default if seconds is None else int(seconds * sampling_frequency)


def _recording_list(recordings) -> List[BaseRecording]:
    if recordings is None:
        return []
    return list(recordings) if isinstance(recordings, (list, tuple)) else [recordings]


def _int16_gain(recordings: List[BaseRecording]) -> Optional[float]:
    """None when every recording is int16 already (written as is); else the gain that maps
    the std of the first recording's head to ``_STEPS_PER_STD`` int16 steps."""
    if all(np.dtype(r.get_dtype()) == np.int16 for r in recordings):
        return None
    first = recordings[0]
    head = first.get_traces(
        segment_index=0, start_frame=0, end_frame=min(first.get_num_samples(0), 100_000)
    )
    std = float(np.std(head.astype(np.float64)))
    return _STEPS_PER_STD / std if std > 0 else 1.0


def _write_raw(
    recording: BaseRecording,
    segment_index: int,
    start: int,
    end: int,
    order: np.ndarray,
    gain: Optional[float],
    path: Path,
) -> int:
    """Writes samples ``[start, end)`` of a segment, channels in depth ``order``, as a
    headerless int16 file; returns the samples written."""
    end = min(end, recording.get_num_samples(segment_index))
    start = max(0, start)
    with open(path, "wb") as file:
        for chunk_start in range(start, end, 65536):
            chunk = recording.get_traces(
                segment_index=segment_index,
                start_frame=chunk_start,
                end_frame=min(end, chunk_start + 65536),
            )[:, order]
            if gain is not None:
                chunk = np.clip(np.rint(chunk.astype(np.float64) * gain), -32768, 32767)
            chunk.astype("<i2").tofile(file)
    return max(end - start, 0)


def _depth_order(recording: BaseRecording) -> np.ndarray:
    """Channels ranked by depth (ties in channel order): a headerless file written in this
    order lays out on deepinterp's grid as the recording's positions would."""
    try:
        depth = np.asarray(recording.get_channel_locations())[:, 1]
        return np.argsort(depth, kind="stable")
    except Exception:
        return np.arange(recording.get_num_channels())


def _architecture(network) -> str:
    """Our architecture for SpikeInterface's ``network``: None is its default,
    ``unet_single_ephys_1024``; a network builder of the original counts by its name; a
    string names one of ours (e.g. ``unet-ephys-d3-w16``)."""
    if network is None:
        return "unet_single_ephys_1024"
    if isinstance(network, str):
        return network
    name = getattr(network, "__name__", None)
    if name:
        return name
    raise InvalidInputError(
        "network: give None, an architecture name (e.g. 'unet-ephys-d3-w16') or one of the "
        "original's network builders (deepinterp cannot run arbitrary Keras networks)"
    )


def train_deepinterpolation(
    recordings: Union[BaseRecording, List[BaseRecording]],
    model_folder: Union[str, Path],
    model_name: str,
    desired_shape: Optional[Tuple[int, int]] = None,
    train_start_s: Optional[float] = None,
    train_end_s: Optional[float] = None,
    train_duration_s: Optional[float] = None,
    test_start_s: Optional[float] = None,
    test_end_s: Optional[float] = None,
    test_duration_s: Optional[float] = None,
    test_recordings: Optional[Union[BaseRecording, List[BaseRecording]]] = None,
    pre_frame: int = 30,
    post_frame: int = 30,
    pre_post_omission: int = 1,
    existing_model_path: Optional[Union[str, Path]] = None,
    verbose: bool = True,
    nb_gpus: int = 1,
    steps_per_epoch: int = 10,
    period_save: int = 100,
    apply_learning_decay: int = 0,
    nb_times_through_data: int = 1,
    learning_rate: float = 0.0001,
    loss: str = "mean_squared_error",
    nb_workers: int = -1,
    caching_validation: bool = False,
    run_uid: str = "si",
    network: Optional[Union[str, Callable]] = None,
    use_gpu: bool = True,
    disable_tf_logger: bool = True,
    memory_gpu: Optional[int] = None,
    **train_settings: Any,
) -> Path:
    """Trains a DeepInterpolation model on recordings with deepinterp's engine, as
    SpikeInterface's ``train_deepinterpolation`` (0.105) does with TensorFlow; returns the
    path of the model, ``model_folder / f"{run_uid}_{model_name}_model.dimodel"`` (SpikeInterface
    names it ``..._model.h5``; ours is a deepinterp model file), which
    :func:`deepinterpolate` and ``deepinterp denoise`` load.

    How SpikeInterface's settings map onto deepinterp's engine:

    * The training samples are ``[train_start_s, train_end_s)`` of the recordings and
      their segments laid end to end (SpikeInterface's generator counts so), the validation
      samples ``[test_start_s, test_end_s)`` of ``test_recordings``
      (the training recordings when None); None means the start or end of the recording.
      They are written to temporary int16 files (channels in depth order, so deepinterp's
      probe grid matches the recording's; float recordings scaled so their std is 1000
      steps: deepinterp normalises by each recording's statistics, so the scale does not
      matter) and no window crosses a recording's or segment's border, as in SpikeInterface.
    * Steps: ``nb_times_through_data`` passes over the training samples in batches of 100
      (SpikeInterface's generator), whole epochs of ``steps_per_epoch`` steps, at least one;
      ``train_duration_s`` limits the samples counted, ``test_duration_s`` the validation
      samples.
    * ``loss`` (mean_squared_error or mean_absolute_error), ``learning_rate``,
      ``pre_frame``/``post_frame``/``pre_post_omission`` (deepinterp's window: frames
      omitted on each side), ``existing_model_path`` (fine-tunes that model).
    * ``network``: None trains SpikeInterface's default, ``unet_single_ephys_1024``; a name
      of ours (``"unet-ephys-d2-w8"``) or one of the original's network builders by name.
    * ``desired_shape``: checked as SpikeInterface checks it (``rows × cols`` = channels);
      deepinterp's networks lay the channels on their own ``channels × 2`` probe grid.
    * ``train_settings``: any further setting of :func:`deepinterp.train` (``steps``,
      ``batch_size``, ``max_minutes``, ``seed``, ``lr_halving_epochs``...), which wins over
      the mapped ones.
    * TensorFlow's settings (``nb_gpus``, ``period_save``, ``nb_workers``,
      ``caching_validation``, ``use_gpu``, ``disable_tf_logger``, ``memory_gpu``) change
      nothing; ``apply_learning_decay`` needs ``lr_halving_epochs`` in ``train_settings``.
    """
    recordings = _recording_list(recordings)
    if not recordings:
        raise InvalidInputError("train_deepinterpolation needs at least one recording")
    channels = recordings[0].get_num_channels()
    if any(r.get_num_channels() != channels for r in recordings):
        raise InvalidInputError("all recordings must have the same number of channels")
    if desired_shape is not None:
        if len(desired_shape) != 2:
            raise ModelShapeError("desired_shape should be 2D")
        if desired_shape[0] * desired_shape[1] != channels:
            raise ModelShapeError(
                "The product of desired_shape dimensions should be the number of channels: "
                f"{channels}"
            )
    if loss not in _LOSSES:
        raise InvalidInputError(
            f"loss {loss!r}: deepinterp trains with mean_squared_error or mean_absolute_error"
        )
    if apply_learning_decay and "lr_halving_epochs" not in train_settings:
        warnings.warn(
            "apply_learning_decay: give lr_halving_epochs=N to halve the learning rate every "
            "N epochs; training with a constant learning rate"
        )
    sampling_frequency = recordings[0].get_sampling_frequency()
    test_list = _recording_list(test_recordings) or recordings

    model_folder = Path(model_folder)
    model_folder.mkdir(parents=True, exist_ok=True)
    model_path = model_folder / f"{run_uid}_{model_name}_model.dimodel"
    margin = pre_frame + post_frame + 2 * pre_post_omission + 1

    with tempfile.TemporaryDirectory(prefix="deepinterp-si-") as scratch:
        scratch = Path(scratch)
        gain = _int16_gain(recordings + [r for r in test_list if r not in recordings])

        def write(group: List[BaseRecording], start_s, end_s, tag: str) -> Tuple[List[str], int]:
            """Samples ``[start_s, end_s)`` of the recordings' segments laid end to end (as
            SpikeInterface's generator counts them), one file per segment piece."""
            total = sum(r.get_total_samples() for r in group)
            start = _frames(start_s, sampling_frequency, 0)
            end = _frames(end_s, sampling_frequency, total)
            paths, centres, offset = [], 0, 0
            for r_index, recording in enumerate(group):
                order = _depth_order(recording)
                for segment in range(recording.get_num_segments()):
                    samples = recording.get_num_samples(segment)
                    low, high = max(start, offset) - offset, min(end, offset + samples) - offset
                    offset += samples
                    if high - low < margin:
                        continue  # no whole window fits in this piece
                    path = scratch / f"{tag}-{r_index}-{segment}.dat"
                    written = _write_raw(recording, segment, low, high, order, gain, path)
                    paths.append(str(path))
                    centres += written - (margin - 1)
            if not paths:
                raise InvalidInputError(
                    f"no {tag} segment is long enough for the window ({margin} samples)"
                )
            return paths, centres

        train_paths, train_centres = write(recordings, train_start_s, train_end_s, "train")
        test_paths, test_centres = write(test_list, test_start_s, test_end_s, "test")
        if test_recordings is None and _overlaps(
            train_start_s, train_end_s, test_start_s, test_end_s
        ):
            warnings.warn("Training and testing overlap. This is not recommended.")

        if train_duration_s is not None:
            train_centres = min(train_centres, int(train_duration_s * sampling_frequency))
        batches = train_centres // _SI_BATCH_SIZE
        epochs = nb_times_through_data * (batches // max(steps_per_epoch, 1))
        settings: Dict[str, Any] = dict(
            validation=test_paths,
            pre_frames=pre_frame,
            post_frames=post_frame,
            omitted_frames=pre_post_omission,
            loss=_LOSSES[loss],
            learning_rate=learning_rate,
            batch_size=_SI_BATCH_SIZE,
            steps_per_epoch=steps_per_epoch,
            steps=max(1, epochs) * steps_per_epoch,
            channels=channels,
            sample_rate=sampling_frequency,
            overwrite=True,
        )
        if test_duration_s is not None:
            settings["validation_samples"] = max(
                1, min(test_centres, int(test_duration_s * sampling_frequency))
            )
        else:
            settings["validation_samples"] = max(1, test_centres)
        settings.update(train_settings)
        progress = None if verbose else False
        if existing_model_path is not None:
            settings.pop("arch", None)
            deepinterp.finetune(
                train_paths, model_path, existing_model_path, progress=progress, **settings
            )
        else:
            settings.setdefault("arch", _architecture(network))
            deepinterp.train(train_paths, model_path, progress=progress, **settings)
    return model_path


def _overlaps(train_start_s, train_end_s, test_start_s, test_end_s) -> bool:
    """SpikeInterface's warning: a test range that begins or ends inside the training range."""
    low, high = train_start_s or 0.0, math.inf if train_end_s is None else train_end_s
    test_low, test_high = test_start_s or 0.0, math.inf if test_end_s is None else test_end_s
    return (low <= test_low < high) or (low < test_high <= high)
