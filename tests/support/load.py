"""N browser sessions upload one different image each at the same time: latencies and the server's peak RSS.

Bounded in count and time and on loopback only: it uses an app server on 127.0.0.1
(``tests/support/server.py``), opens the pages in one headless Chromium, drops one sample into
every page at once, and records when each page shows its verdict. Pages still waiting at the
bound count as not finished. Used by ``tests/e2e/test_browser.py`` (a few sessions) and by
``benchmarks/load.py`` (the figures in docs/performance.md).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.server import CHROMIUM, CHROMIUM_ARGS, PATCH_UPLOADER, peak_rss_mib, percentile, running_app

__all__ = ["run_load"]

_VERDICT = ("Result:", "Indeterminate", "Not assessed", "Model output:")


def _verdict_shown(page) -> bool:
    return any(page.get_by_text(text).count() for text in _VERDICT)


def _wait(condition, timeout_s: float, poll_s: float = 0.25) -> bool:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if condition():
            return True
        time.sleep(poll_s)
    return False


def _variants(sample: Path, count: int, folder: Path) -> list[Path]:
    """``count`` different files made from ``sample`` (rotations, flips, one pixel changed): no session's
    result can come from another's cache."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(sample).convert("RGB"))
    paths = []
    for i in range(count):
        variant = np.rot90(pixels, i % 4)
        variant = variant[:, ::-1] if (i // 4) % 2 else variant
        variant = np.array(variant)  # a writable copy
        variant[0, 0, 0] = (int(variant[0, 0, 0]) + i // 8 + 1) % 256
        path = folder / f"session{i:02d}.png"
        Image.fromarray(variant).save(path)
        paths.append(path)
    return paths


def run_load(sessions: int, sample: Path, timeout_s: float = 300.0, *, slack: float = 25.0,
             server: tuple[str, "subprocess.Popen"] | None = None) -> dict:
    """Latencies (s) of ``sessions`` simultaneous uploads of ``sample``, and the server's peak RSS.

    The bound scales with the machine: one session's time to its verdict is measured first (warm
    model), and the bound is ``max(timeout_s, slack * sessions / 20 * that time)``, so a busy machine
    gets a proportionally longer bound instead of a spurious failure. Every wait is in the script;
    Playwright's own timeouts are set to the same bound. ``server``: ``(url, process)`` of an app
    already running (the test suite shares one); by default a fresh one is started and stopped.
    """
    import contextlib
    import tempfile

    from playwright.sync_api import sync_playwright

    app = contextlib.nullcontext(server) if server else running_app(timeout_s=600)
    with tempfile.TemporaryDirectory() as tmp, app as (url, proc), sync_playwright() as playwright:
        files = _variants(sample, sessions + 2, Path(tmp))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            def new_page():
                context = browser.new_context(viewport={"width": 1200, "height": 900})
                context.set_default_timeout(600_000)
                page = context.new_page()
                page.goto(url)
                page.locator(PATCH_UPLOADER).first.wait_for(state="attached")
                return page

            probe = new_page()  # loads the model: the first session pays for it, not the measurement
            probe.locator(PATCH_UPLOADER).first.set_input_files(str(files[-1]))
            _wait(lambda: _verdict_shown(probe), 600)
            probe.reload()
            probe.locator(PATCH_UPLOADER).first.wait_for(state="attached")
            start = time.perf_counter()
            probe.locator(PATCH_UPLOADER).first.set_input_files(str(files[-2]))
            _wait(lambda: _verdict_shown(probe), 600)
            single_s = time.perf_counter() - start
            bound_s = max(timeout_s, slack * sessions / 20 * single_s)
            pages = [new_page() for _ in range(sessions)]
            started = {}
            for i, page in enumerate(pages):
                page.locator(PATCH_UPLOADER).first.set_input_files(str(files[i]))
                started[i] = time.perf_counter()
            finished: dict[int, float] = {}

            def poll() -> bool:
                for i, page in enumerate(pages):
                    if i not in finished and _verdict_shown(page):
                        finished[i] = time.perf_counter() - started[i]
                return len(finished) == sessions

            _wait(poll, bound_s)
            peak = peak_rss_mib(proc.pid)
        finally:
            browser.close()
    latencies = sorted(finished.values())
    return {"sessions": sessions, "finished": len(latencies), "latencies_s": latencies, "single_s": single_s,
            "bound_s": bound_s, "p50_s": percentile(latencies, 0.5) if latencies else None,
            "p95_s": percentile(latencies, 0.95) if latencies else None, "peak_rss_mib": peak}
