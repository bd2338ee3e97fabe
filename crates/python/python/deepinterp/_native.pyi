"""Type stubs of deepinterp's native module (bindings over deepinterp-pipeline). The public
API is the package's (``deepinterp.denoise`` etc.); these are its building blocks. Arrays
are passed as the address and length of a C-contiguous little-endian buffer the caller keeps
alive, or as a memmap's file name and byte offset."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike[str]]
_Progress = Optional[Callable[[str, int, int, Optional[str]], None]]

__version__: str

def denoise_file(
    input: _Path, output: _Path, model: _Path, options: Dict[str, Any], progress: _Progress = None
) -> Dict[str, Any]: ...
def denoise_movie(
    address: Optional[int],
    nbytes: int,
    filename: Optional[_Path],
    offset: int,
    dtype: str,
    shape: Sequence[int],
    model: _Path,
    options: Dict[str, Any],
    output: Optional[_Path] = None,
    progress: _Progress = None,
) -> Optional[npt.NDArray[np.float32]]: ...
def denoise_probe(
    address: Optional[int],
    nbytes: int,
    filename: Optional[_Path],
    offset: int,
    dtype: str,
    shape: Sequence[int],
    sample_rate: float,
    positions: Optional[List[Tuple[float, float]]],
    model: _Path,
    options: Dict[str, Any],
    output: Optional[_Path] = None,
    progress: _Progress = None,
) -> Optional[npt.NDArray[np.float32]]: ...
def write_volumes(
    address: int,
    nbytes: int,
    dtype: str,
    shape: Sequence[int],
    path: _Path,
    voxel_size: Tuple[float, float, float] = ...,
    repetition_time: float = ...,
) -> None: ...
def read_recording(
    path: _Path, options: Dict[str, Any]
) -> Tuple[npt.NDArray[np.float32], List[int]]: ...
def train(
    inputs: Sequence[_Path], output: _Path, options: Dict[str, Any], progress: _Progress = None
) -> Dict[str, Any]: ...
def finetune(
    inputs: Sequence[_Path],
    output: _Path,
    model: _Path,
    options: Dict[str, Any],
    progress: _Progress = None,
) -> Dict[str, Any]: ...
def evaluate(
    noisy: _Path, denoised: _Path, options: Dict[str, Any], progress: _Progress = None
) -> str: ...
def inspect(path: _Path, options: Dict[str, Any]) -> str: ...

class LoadedModel:
    def __init__(
        self,
        path: _Path,
        pre_frames: Optional[int] = None,
        post_frames: Optional[int] = None,
        omitted_frames: Optional[int] = None,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    def spec_json(self) -> str: ...
    def keras_config(self) -> Optional[str]: ...
    def predict(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
