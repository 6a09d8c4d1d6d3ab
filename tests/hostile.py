"""A generated corpus of hostile and odd inputs: names, CSV cells, sizes, blank and noise images, DICOM variants.

Nothing here is stored as a file in the repository; every case is made in memory from a real
sample so that the tests that sweep pages and command lines with it are reproducible.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

EVIL_HOST = "evil.example"

HOSTILE_NAMES = (
    f"![px](http://{EVIL_HOST}/x.png).png",
    f"[click me](http://{EVIL_HOST}/).png",
    "**bold** _it_ `code`.png",
    ":red[coloured] $x^2$.png",
    "=1+1.png",
    "@SUM(A1).png",
    '<script>alert("x")</script>.png',
    "# heading\nsecond line.png",
)
"""File names that render as markup, fetch a URL, or run as a spreadsheet formula if not escaped."""

HOSTILE_CELLS = (f"![x](http://{EVIL_HOST}/y.png)", "=HYPERLINK(\"http://evil.example\")", "+1", "-1+2", "@cmd")
"""CSV cell texts (e.g. a cytology case id) with the same dangers."""


@dataclass(frozen=True)
class Case:
    """One odd upload: its name, its bytes, and what the product must say (a substring, lower case)."""

    name: str
    data: bytes
    expect: str


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def odd_files() -> list[Case]:
    """Files no model should give a confident verdict on, or that must be refused with a reason."""
    return [
        Case("strip.png", png(np.full((1, 5000, 3), 200, np.uint8)), ""),
        Case("tall.png", png(np.full((5000, 2, 3), 90, np.uint8)), ""),
        Case("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>', "not an image"),
        Case("animation.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "not an image"),
        Case("empty.png", b"", "empty"),
        Case("truncated.png", png(np.zeros((64, 64, 3), np.uint8))[:40], "truncated"),
    ]


def blank_and_noise() -> dict[str, np.ndarray]:
    """Images without tissue: every one must be refused or marked indeterminate, never called confidently."""
    rng = np.random.default_rng(1)
    return {
        "blank black": np.zeros((50, 50, 3), np.uint8),
        "blank white": np.full((50, 50, 3), 255, np.uint8),
        "colour noise": rng.integers(0, 256, (50, 50, 3), dtype=np.uint8),
        "grey ramp": np.tile(np.linspace(0, 255, 512).astype(np.uint8), (512, 1)),
    }
