"""Start ``streamlit run app.py`` headless on a free loopback port, for the browser and load tests and the benchmarks.

Only 127.0.0.1 is used, the server is always terminated, and Chromium is launched with the flags
this sandboxed, offline machine needs (no background networking to hosts it cannot reach).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PATCH_UPLOADER", "ROOT", "peak_rss_mib", "percentile", "running_app"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PATCH_UPLOADER = 'input[type="file"][multiple]'
"""The Classify page's image uploader (it takes several files; region mode's takes one, in the first tab)."""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def peak_rss_mib(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) of a live process in MiB, from /proc (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"streamlit not healthy at {url} after {timeout_s:.0f} s")


@contextmanager
def running_app(*, log: IO | None = None, timeout_s: float = 90.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yield ``(url, process)`` of a healthy app server; the server is terminated on exit.

    Args:
        log: where the server's output goes (default: discarded).
        timeout_s: how long to wait for the health endpoint.
    """
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, timeout_s)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
