"""The firmware's anomaly state machine (``vw_anomaly.h``) over scores in Python.

The device layer runs it on its own scores; :class:`AnomalyState` runs the same C code on
scores that are not a device's (a baseline detector's, say), so that their events follow
the same debounce and hysteresis: an anomaly starts when ``k`` of the last ``n`` windows
score at or above the threshold and ends after ``m`` windows below ``release_ratio`` times
it.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np
import numpy.typing as npt

from vibewatch.edge import _lib
from vibewatch.edge.device import DeviceSettings

__all__ = ["AnomalyState"]

_P = ctypes.c_void_p
_START = 1
_END = 2


@cache
def _core() -> ctypes.CDLL:
    return _lib.declare(
        [
            ("vwpy_anomaly_sizeof", ctypes.c_size_t, []),
            (
                "vwpy_anomaly_init",
                ctypes.c_int,
                [_P, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_float],
            ),
            (
                "vwpy_anomaly_run",
                ctypes.c_int,
                [_P, _P, ctypes.c_size_t, ctypes.c_float, _P, ctypes.POINTER(ctypes.c_size_t)],
            ),
        ]
    )


class AnomalyState:
    """One anomaly state machine, with no anomaly open and an empty history.

    Args:
        settings: ``k``, ``n``, ``m`` and ``release_ratio`` are used.

    Raises:
        EdgeError: ``range`` for settings the C code refuses.
    """

    def __init__(self, settings: DeviceSettings) -> None:
        core = _core()
        self._state = _lib.buffer(core.vwpy_anomaly_sizeof())
        _lib.check(
            core.vwpy_anomaly_init(
                self._state,
                min(settings.k, 2**32 - 1),
                min(settings.n, 2**32 - 1),
                min(settings.m, 2**32 - 1),
                settings.release_ratio,
            ),
            f"the anomaly settings k={settings.k}, n={settings.n}, m={settings.m}, "
            f"release_ratio={settings.release_ratio}",
        )

    def events(self, scores: npt.ArrayLike, threshold: float) -> tuple[list[int], list[int]]:
        """Take the scores of the next windows; the indices (into ``scores``) of the
        windows that started an anomaly, and of those that ended one.

        Raises:
            EdgeError: ``input`` for a score that is not finite or a threshold that is not
                a finite positive number (the windows before it were taken).
        """
        values = np.ascontiguousarray(np.asarray(scores, dtype=np.float32).ravel())
        events = np.zeros(values.size, dtype=np.int8)
        failed = ctypes.c_size_t(0)
        status = _core().vwpy_anomaly_run(
            self._state,
            values.ctypes.data,
            values.size,
            threshold,
            events.ctypes.data,
            ctypes.byref(failed),
        )
        if status != 0:
            at = failed.value
            score = values[at].item() if at < values.size else None
            _lib.check(status, f"window {at}: score {score!r} at threshold {threshold!r}")
        return np.flatnonzero(events == _START).tolist(), np.flatnonzero(events == _END).tolist()
