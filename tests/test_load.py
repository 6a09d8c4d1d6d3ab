"""Four browser sessions upload one image each at once: every one gets its verdict (loopback only).

``python scripts/load_test.py --sessions 20`` measures twenty for docs/performance.md's figures; four, twice the
cores of the machine, prove the same locking and caching in the test suite's time budget. The app
server is the suite's shared one (``conftest.app_server``), already warm from the browser test or
warmed by the load test's own first upload.
"""

from __future__ import annotations

from tests.support.load import run_load

SESSIONS = 4
BOUND_S = 300  # at least; run_load scales it with one session's measured time, so a busy machine is not a failure


def test_simultaneous_sessions_all_get_their_verdict(app_server, sample_files, capsys):
    sample = next(path for path in sample_files if path.parent.name == "malignant")
    result = run_load(SESSIONS, sample, timeout_s=BOUND_S, server=app_server)
    with capsys.disabled():
        print(f"\nload test: {result['finished']}/{SESSIONS} verdicts within {result['bound_s']:.0f} s (one session "
              f"alone {result['single_s']:.1f} s), p50 {result['p50_s'] or float('nan'):.1f} s, p95 {result['p95_s'] or float('nan'):.1f} s, "
              f"server peak RSS {result['peak_rss_mib']:.0f} MiB")
    assert result["finished"] == SESSIONS
