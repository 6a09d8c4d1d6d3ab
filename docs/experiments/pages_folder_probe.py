"""Does Streamlit run a ``pages/`` folder under ``st.navigation`` without skipping the router? (research use only)

Builds a two-page app in a temporary folder, once with its pages in ``pages/`` and once in
``app_pages/``; for each, starts ``streamlit run`` on 127.0.0.1, opens the deep link ``/metrics``
first in headless Chromium, and prints whether the router's notice rendered.

    python docs/experiments/pages_folder_probe.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PORT = 8599
ROUTER = '''import streamlit as st
page = st.navigation([st.Page("{folder}/home.py", title="Home", default=True),
                      st.Page("{folder}/metrics.py", title="Metrics")])
st.write("ROUTER-NOTICE research use only")
page.run()
'''


def _probe(root: Path, folder: str) -> list[bool]:
    """Whether the router's notice showed on the first and the second visit of ``/metrics``."""
    from playwright.sync_api import sync_playwright

    (root / folder).mkdir()
    (root / "app.py").write_text(ROUTER.format(folder=folder))
    for name in ("home", "metrics"):
        (root / folder / f"{name}.py").write_text(f'import streamlit as st\nst.write("{name.upper()} PAGE")\n')
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.address", "127.0.0.1", "--server.port", str(PORT)],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        seen = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page()
            for _ in range(2):
                page.goto(f"http://127.0.0.1:{PORT}/metrics")
                page.wait_for_timeout(5000)
                seen.append("ROUTER-NOTICE" in page.inner_text("body"))
            browser.close()
        return seen
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    for folder in ("pages", "app_pages"):
        with tempfile.TemporaryDirectory() as tmp:
            first, second = _probe(Path(tmp), folder)
        print(f"{folder + '/':<11} deep link /metrics first: router notice shown {first}; second visit: {second}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
