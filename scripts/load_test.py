"""Load test: N browser sessions upload one image each at the same time; prints p50/p95 and peak RSS.

Bounded in count and time and on loopback only: it starts its own ``streamlit run app.py`` on
127.0.0.1 (``scripts/streamlit_server.py``), opens ``--sessions`` pages in one headless Chromium,
drops one sample into every page at once, and records when each page shows its verdict. Pages
still waiting at ``--timeout`` count as not finished. The server's peak resident memory (VmHWM)
is read from /proc.

Usage:
    python scripts/load_test.py --sessions 20 [--timeout 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from scripts.benchmark_latency import _peak_rss_mib, _percentile  # noqa: E402
from scripts.streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app  # noqa: E402

__all__ = ["run_load"]

_VERDICT = ("Prediction:", "Indeterminate", "Not assessed")


def run_load(sessions: int, sample: Path, timeout_s: float = 300.0) -> dict:
    """Latencies (s) of ``sessions`` simultaneous uploads of ``sample``, and the server's peak RSS."""
    from playwright.sync_api import sync_playwright

    with running_app(timeout_s=120) as (url, proc), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pages = [browser.new_context(viewport={"width": 1200, "height": 900}).new_page() for _ in range(sessions)]
            for page in pages:
                page.goto(url)
            for page in pages:
                page.locator('input[type="file"]').first.wait_for(state="attached", timeout=120_000)
            started = {}
            for i, page in enumerate(pages):
                page.locator('input[type="file"]').first.set_input_files(str(sample))
                started[i] = time.perf_counter()
            finished: dict[int, float] = {}
            deadline = time.perf_counter() + timeout_s
            while len(finished) < sessions and time.perf_counter() < deadline:
                for i, page in enumerate(pages):
                    if i not in finished and any(page.get_by_text(text).count() for text in _VERDICT):
                        finished[i] = time.perf_counter() - started[i]
                time.sleep(0.25)
            peak = _peak_rss_mib(proc.pid)
        finally:
            browser.close()
    latencies = sorted(finished.values())
    return {"sessions": sessions, "finished": len(latencies), "latencies_s": latencies,
            "p50_s": _percentile(latencies, 0.5) if latencies else None,
            "p95_s": _percentile(latencies, 0.95) if latencies else None, "peak_rss_mib": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="simultaneous browser sessions (default 20)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all verdicts (default 300)")
    args = parser.parse_args(argv)
    sample = next((ROOT / "samples" / "histopathology" / "malignant").glob("*.png"))
    result = run_load(args.sessions, sample, args.timeout)
    print(f"{result['finished']} of {result['sessions']} sessions got their verdict within {args.timeout:.0f} s")
    if result["latencies_s"]:
        print(f"time to verdict: p50 {result['p50_s']:.1f} s, p95 {result['p95_s']:.1f} s, "
              f"max {result['latencies_s'][-1]:.1f} s")
    print(f"server peak RSS: {result['peak_rss_mib']:.0f} MiB")
    return 0 if result["finished"] == result["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
