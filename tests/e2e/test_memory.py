"""Memory stays bounded: caches hold bytes up to a budget, and large uploads do not pin memory for good."""

from __future__ import annotations

import ctypes
import gc
import io

import numpy as np
import pytest
from PIL import Image

from app_pages._lru import ByteLRU, nbytes
from tests.apptest_helpers import run_app


def _held_rss_bytes() -> int:
    """Resident memory after a collection and ``malloc_trim``: what live objects hold.

    Without the trim, RSS also counts memory freed earlier in this process (an xdist worker runs
    other modules first) and left in glibc's per-thread arenas (every AppTest run is a new thread),
    so the growth measured for the same uploads depended on what ran before.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_byte_lru_keeps_the_most_recent_values_within_its_budget():
    cache = ByteLRU(budget=3000)
    for key in "abc":
        cache.get_or_compute(key, lambda: np.zeros(1000, np.uint8))
    cache.get_or_compute("a", lambda: pytest.fail("a is cached"))  # a becomes the most recent
    cache.get_or_compute("d", lambda: np.zeros(1000, np.uint8))  # evicts b, the least recent
    assert cache.held <= 3000
    calls = []
    cache.get_or_compute("b", lambda: calls.append(1) or np.zeros(10, np.uint8))
    assert calls == [1]
    huge = cache.get_or_compute("huge", lambda: np.zeros(10_000, np.uint8))
    assert huge.size == 10_000 and cache.held <= 3000, "a value over the budget is returned, never kept"


def test_nbytes_counts_arrays_inside_results():
    from bcc_model.analysis.predictions import Prediction

    assert nbytes({"x": np.zeros(10, np.float32), "y": (np.zeros(3, np.uint8), "text")}) == 43
    assert nbytes(Prediction({"a": 1.0}, "a", False, "a")) == 0


@pytest.mark.e2e
def test_large_uploads_in_several_sessions_stay_under_the_cache_ceiling():
    """Three sessions each upload a different 25-megapixel field: after the first, memory grows by one cache entry at most."""
    from app_pages import _cache

    rng = np.random.default_rng(0)
    field = rng.integers(100, 200, (5000, 5000, 3), dtype=np.uint8)
    uploads = []
    for i in range(3):
        field[0, 0, 0] = i  # three different files, so nothing is shared
        buffer = io.BytesIO()
        Image.fromarray(field).save(buffer, format="PNG", compress_level=1)
        uploads.append(buffer.getvalue())
    del field
    def upload(i: int) -> None:
        at = run_app()
        at.file_uploader(key="uploads_histopathology").set_value([(f"field{i}.png", uploads[i], "image/png")]).run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.dataframe[0].value["verdict"].tolist() == ["not assessed"]  # far larger than a patch

    # The first large upload pays one-off costs (about 0.6 GB here: code paths, pools and arenas first
    # used on a 25 MP image), so it is the baseline; what the next two sessions leave behind is the point.
    upload(0)
    before = _held_rss_bytes()
    for i in range(1, len(uploads)):
        upload(i)
    held = sum(cache.held for cache in _cache._caches().values())
    assert held <= _cache.CACHE_CEILING
    # One 25 MP RGB field decodes to 75 MB. Kept in an entry-bounded cache and in every session (as before
    # the byte budget), two more uploads would pin 300 MB; now the decoded cache keeps at most two, sessions none.
    grown = _held_rss_bytes() - before
    assert grown < 250 * 2**20, f"{grown / 2**20:.0f} MiB more held after two more sessions"
