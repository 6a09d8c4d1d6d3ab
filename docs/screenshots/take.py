"""Screenshots of every page in the states a clinician meets, for before/after comparisons.

    python docs/screenshots/take.py --url http://127.0.0.1:8501 --suffix after [--data ../shared/data]

Writes ``docs/screenshots/<page>-<state>-<suffix>.png`` 1440 px wide and the region map on a phone 390 px
wide. Streamlit scrolls inside its own container, so a "full page" capture is the viewport: the viewport is
made tall (``TALL_PX``) for each shot, which keeps the layout of a 1440x900 or 390x844 screen (Streamlit's
layout follows the width). Run it against the app before a change (another checkout on another port) and after.
Uses only the bundled samples, and one RSNA screening JPEG from ``--data`` when given.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
WAIT_MS = 240_000
TALL_PX = 2600
PHONE_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.0 Mobile/15E148 Safari/604.1")


def _png(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": data}


def _region_grid() -> bytes:
    """A 4x4 grid of the bundled H&E samples: a small field of real tissue (a PNG: no recorded scale)."""
    paths = sorted((ROOT / "samples" / "histopathology").glob("*/*.png"))[:16]
    patches = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    grid = np.concatenate([np.concatenate(patches[r * 4:(r + 1) * 4], axis=1) for r in range(4)], axis=0)
    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    return buffer.getvalue()


def _choose(page, label: str, option: str) -> None:
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def _settle(page, ms: int = 2500) -> None:
    page.wait_for_timeout(ms)


def _shot(page, name: str, suffix: str, width: int = 1440, height: int = TALL_PX) -> None:
    page.set_viewport_size({"width": width, "height": height})
    _settle(page)
    page.screenshot(path=str(OUT / f"{name}-{suffix}.png"))
    page.set_viewport_size({"width": 1440, "height": 900})
    print(f"wrote {name}-{suffix}.png", file=sys.stderr)


def _give_region_scale(page) -> None:
    """After the change a PNG's scale must be given; before it there was no such control."""
    radio = page.get_by_text("µm per pixel", exact=True)
    if radio.count() and page.get_by_text("does not record its scale").count():
        radio.first.click()
        box = page.get_by_test_id("stNumberInputField").first
        box.fill("4")
        box.press("Enter")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--suffix", required=True)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    he_patch = sorted((ROOT / "samples" / "histopathology" / "malignant").glob("*.png"))[0].read_bytes()
    mammogram = (ROOT / "samples" / "mammography" / "malignant" / "mdb028.png").read_bytes()
    ultrasound = sorted((ROOT / "samples" / "ultrasound").glob("*/*.png"))
    region = _region_grid()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(args.url)
        expect(page.get_by_text("Research use only").first).to_be_visible(timeout=WAIT_MS)

        # Region mode on H&E (items 7, 13).
        page.locator('input[type="file"]').first.set_input_files([_png("region.png", region)])
        _settle(page, 3000)
        _shot(page, "classify-he-region-uploaded", args.suffix)
        _give_region_scale(page)
        expect(page.get_by_text("Most suspicious tiles").first).to_be_visible(timeout=WAIT_MS)
        _shot(page, "classify-he-region-map", args.suffix)

        # Mammography: the weak model, a refused H&E patch (items 2, 3).
        _choose(page, "Modality", "Mammography")
        expect(page.get_by_text("Mammography (screening").first).to_be_visible(timeout=WAIT_MS)
        page.locator('input[type="file"][multiple]').first.set_input_files(
            [_png("mdb028.png", mammogram), _png("he_patch.png", he_patch)])
        expect(page.get_by_text("2 of 2 images analysed")).to_be_visible(timeout=WAIT_MS)
        _shot(page, "classify-mammography-weak-and-refused", args.suffix)
        page.get_by_role("link", name="Explain").click()
        expect(page.get_by_text("Methods side by side").or_(page.get_by_text("nothing to explain")).first).to_be_visible(
            timeout=WAIT_MS)
        _shot(page, "explain-mammography", args.suffix)

        # Ultrasound: three classes, one-versus-rest (item 5).
        page.get_by_role("link", name="Classify").click()
        _choose(page, "Modality", "Breast ultrasound")
        expect(page.get_by_text("Breast ultrasound (B-mode): calibrated").first).to_be_visible(timeout=WAIT_MS)
        _settle(page, 3000)  # the page re-renders its uploader after a modality switch
        page.locator('input[type="file"][multiple]').first.set_input_files(
            [_png(p.name, p.read_bytes()) for p in ultrasound[:3]])
        expect(page.get_by_text("3 of 3 images analysed")).to_be_visible(timeout=WAIT_MS)
        _shot(page, "classify-ultrasound", args.suffix)

        # H&E patch: Explain (item 8), metrics (item 9), model card (item 10).
        _choose(page, "Modality", "H&E histopathology")
        page.get_by_role("tab", name="Single patches").click()
        expect(page.get_by_text("Upload images (several at once is fine)").first).to_be_visible(timeout=WAIT_MS)
        _settle(page, 3000)
        page.locator('input[type="file"][multiple]').first.set_input_files([_png("he_patch.png", he_patch)])
        expect(page.get_by_text("1 of 1 images analysed")).to_be_visible(timeout=WAIT_MS)
        _shot(page, "classify-he-patch", args.suffix)
        page.get_by_role("link", name="Explain").click()
        expect(page.get_by_text("Methods side by side").first).to_be_visible(timeout=WAIT_MS)
        _shot(page, "explain-he-patch", args.suffix)
        page.get_by_role("link", name="Training metrics").click()
        expect(page.get_by_text("Architecture comparison").first).to_be_visible(timeout=WAIT_MS)
        _shot(page, "metrics-he", args.suffix, height=3 * TALL_PX)
        page.get_by_role("link", name="Model card").click()
        expect(page.get_by_text("Key facts").first).to_be_visible(timeout=WAIT_MS)
        _shot(page, "model-card-he", args.suffix, height=2 * TALL_PX)

        # Region mode on a phone (item 13): a phone's browser, which says so in its User-Agent.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, user_agent=PHONE_UA)
        phone.goto(args.url)
        expect(phone.get_by_text("Research use only").first).to_be_visible(timeout=WAIT_MS)
        phone.locator('input[type="file"]').first.set_input_files([_png("region.png", region)])
        _settle(phone, 3000)
        _give_region_scale(phone)
        expect(phone.get_by_text("Most suspicious tiles").first).to_be_visible(timeout=WAIT_MS)
        _shot(phone, "classify-he-region-phone", args.suffix, width=390)
        phone.close()

        # Cytology (item 11).
        page.get_by_role("link", name="Cytology").click()
        page.get_by_role("button", name="Classify this case").click()
        expect(page.get_by_text("Result for the entered case").first).to_be_visible(timeout=WAIT_MS)
        _shot(page, "cytology-case", args.suffix)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
