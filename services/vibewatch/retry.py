"""The backoff every retry loop of vibewatch uses (batches to InfluxDB, webhooks)."""

from __future__ import annotations

import random

__all__ = ["backoff"]

_jitter = random.Random()  # its own generator: callers' random state stays theirs


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Seconds before retry number ``attempt`` (0-based): exponential from ``initial`` up
    to ``maximum``, the upper half jittered (so that many clients that failed together
    do not retry together)."""
    cap = min(maximum, initial * 2.0 ** min(attempt, 30))
    return cap / 2 + _jitter.uniform(0, cap / 2)
