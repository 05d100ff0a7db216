"""The firmware's anomaly state machine through vibewatch.edge.anomaly."""

from __future__ import annotations

import math

import pytest

from vibewatch.edge.anomaly import AnomalyState
from vibewatch.edge.device import DeviceSettings
from vibewatch.errors import EdgeError


def test_k_of_n_starts_and_m_below_the_release_level_ends() -> None:
    state = AnomalyState(DeviceSettings(k=3, n=5, m=2, release_ratio=0.5))
    #        below  above  above  below  above  (start)  0.6: kept  below  below (end)
    scores = [0.1, 1.0, 1.2, 0.1, 1.0, 0.6, 0.4, 0.3]
    assert state.events(scores, 1.0) == ([4], [7])
    # the state carries over from call to call
    assert state.events([1.0, 1.0], 1.0) == ([], [])
    assert state.events([1.0], 1.0) == ([0], [])


def test_what_the_c_code_refuses_is_named() -> None:
    with pytest.raises(EdgeError, match="k=6, n=5"):
        AnomalyState(DeviceSettings(k=6, n=5))
    state = AnomalyState(DeviceSettings())
    with pytest.raises(EdgeError, match=r"window 2: score nan at threshold 1\.0"):
        state.events([0.1, 0.2, math.nan], 1.0)
    with pytest.raises(EdgeError, match=r"threshold 0\.0"):
        state.events([0.1], 0.0)
