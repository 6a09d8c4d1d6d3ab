"""Load test: N browser sessions upload one different image each at the same time; prints p50/p95 and peak RSS.

Bounded in count and time and on loopback only: it starts its own ``streamlit run app.py`` on
127.0.0.1 (``tests/support/server.py``), opens ``--sessions`` pages in one headless Chromium,
drops one sample into every page at once, and records when each page shows its verdict. Pages
still waiting at ``--timeout`` count as not finished. The server's peak resident memory (VmHWM)
is read from /proc.

Usage:
    python benchmarks/load.py --sessions 20 [--timeout 300]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.support.load import run_load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="simultaneous browser sessions (default 20)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="least seconds to wait for all verdicts (default 300; more on a slow machine, see run_load)")
    args = parser.parse_args(argv)
    sample = next((ROOT / "samples" / "histopathology" / "malignant").glob("*.png"))
    result = run_load(args.sessions, sample, args.timeout)
    print(f"one session alone: {result['single_s']:.1f} s to its verdict; bound for {result['sessions']}: "
          f"{result['bound_s']:.0f} s")
    print(f"{result['finished']} of {result['sessions']} sessions got their verdict within the bound")
    if result["latencies_s"]:
        print(f"time to verdict: p50 {result['p50_s']:.1f} s, p95 {result['p95_s']:.1f} s, "
              f"max {result['latencies_s'][-1]:.1f} s")
    print(f"server peak RSS: {result['peak_rss_mib']:.0f} MiB")
    return 0 if result["finished"] == result["sessions"] else 1


if __name__ == "__main__":
    sys.exit(main())
