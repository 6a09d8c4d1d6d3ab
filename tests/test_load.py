"""Twelve browser sessions upload one image each at once: every one gets its verdict (loopback only).

``scripts/load_test.py --sessions 20`` measures twenty for the README; twelve prove the same
locking and caching in the test suite's time budget.
"""

from __future__ import annotations

import os

import pytest

from scripts.load_test import run_load
from scripts.streamlit_server import CHROMIUM

SESSIONS = 12
BOUND_S = 300  # at least; run_load scales it with one session's measured time, so a busy machine is not a failure


def test_simultaneous_sessions_all_get_their_verdict(sample_files, capsys):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: the load test must run in CI")
        pytest.skip(f"{CHROMIUM} not installed")
    sample = next(path for path in sample_files if path.parent.name == "malignant")
    result = run_load(SESSIONS, sample, timeout_s=BOUND_S)
    with capsys.disabled():
        print(f"\nload test: {result['finished']}/{SESSIONS} verdicts within {result['bound_s']:.0f} s (one session "
              f"alone {result['single_s']:.1f} s), p50 {result['p50_s'] or float('nan'):.1f} s, p95 {result['p95_s'] or float('nan'):.1f} s, "
              f"server peak RSS {result['peak_rss_mib']:.0f} MiB")
    assert result["finished"] == SESSIONS
