"""How busy this machine is now: the factor every wall-clock limit in the tests is scaled by.

A test that waits for the app (AppTest runs, the browser) must not fail because the machine is
shared. A fixed CPU workload is timed once per test session and compared with its time on the
idle 2-core machine the base limits were set on; the limits are multiplied by the ratio (never
below 1).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["REFERENCE_S", "SLOWDOWN", "calibration_seconds"]

REFERENCE_S = 0.05
"""Seconds :func:`calibration_seconds` took on the idle 2-core reference machine."""


def calibration_seconds() -> float:
    """Wall seconds of a fixed CPU load (float32 matrix products on every core), best of three."""
    a = np.random.default_rng(0).random((512, 512), np.float32)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(40):
            a = (a @ a) / 512.0
        best = min(best, time.perf_counter() - start)
    return best


SLOWDOWN = max(1.0, calibration_seconds() / REFERENCE_S)
"""How much slower this machine is now than the reference (>= 1), measured once per session."""
