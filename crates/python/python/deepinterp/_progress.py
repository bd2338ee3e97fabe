"""Showing a native call's progress: a caller's callable, a tqdm bar when tqdm is installed,
or nothing; lines go to the ``deepinterp`` logger."""

from __future__ import annotations

import logging
from typing import Callable, Optional, Union

logger = logging.getLogger("deepinterp")

#: ``progress(kind, done, total, text)``; kind is "begin", "advance", "end" or "line".
ProgressCallback = Callable[[str, int, int, Optional[str]], None]
Progress = Union[None, bool, ProgressCallback]


class _Tqdm:
    """Drives one tqdm bar per counted stage of a call."""

    def __init__(self, tqdm):
        self._tqdm = tqdm
        self._bar = None

    def __call__(self, kind: str, done: int, total: int, text: Optional[str]) -> None:
        if kind == "begin":
            self._close()
            self._bar = self._tqdm(total=total or None, desc=text, leave=False)
        elif kind == "advance" and self._bar is not None:
            self._bar.update(done - self._bar.n)
            if text:
                self._bar.set_postfix_str(text, refresh=False)
        elif kind == "end":
            self._close()
        elif kind == "line":
            if self._bar is not None:
                self._bar.write(text or "")
            logger.info(text)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _log_only(kind: str, done: int, total: int, text: Optional[str]) -> None:
    if kind == "line":
        logger.info(text)


def reporter(progress: Progress) -> ProgressCallback:
    """The callable a native call reports to: ``progress`` itself when callable; a tqdm bar
    when ``progress`` is None or True and tqdm is installed; otherwise only log lines."""
    if callable(progress):
        return progress
    if progress is False:
        return _log_only
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _log_only
    return _Tqdm(tqdm)
