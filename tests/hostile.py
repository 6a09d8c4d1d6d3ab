"""A generated corpus of hostile and odd inputs: names, CSV cells, sizes, blank and noise images, DICOM variants.

Nothing here is stored as a file in the repository; every case is made in memory from a real
sample so that the tests that sweep pages and command lines with it are reproducible.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, DigitalMammographyXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

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

PATIENT_TAGS = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-9876543",
    "PatientBirthDate": "19640312",
}
"""Patient tags every generated DICOM carries: no output may ever contain them."""

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


def make_dicom(
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    transfer_syntax: UID = ExplicitVRLittleEndian,
    **tags: object,
) -> bytes:
    """Encode pixels as a DICOM Part 10 file with patient tags set, returned as bytes."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    dataset.SOPInstanceUID = generate_uid()
    dataset.Modality = "MG"
    for name, value in PATIENT_TAGS.items():
        setattr(dataset, name, value)
    dataset.set_pixel_data(pixels, photometric, bits_stored)
    for name, value in tags.items():
        setattr(dataset, name, value)
    dataset.file_meta.TransferSyntaxUID = transfer_syntax
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


# --- zip archives that go wrong -------------------------------------------------------------

_LOCAL, _CENTRAL = b"PK\x03\x04", b"PK\x01\x02"
# Byte offsets inside a local file header and a central directory entry (APPNOTE 4.3.7, 4.3.12).
_FIELDS = {"flags": (6, 8, "<H"), "method": (8, 10, "<H"), "crc": (14, 16, "<I"), "size": (22, 24, "<I")}


def _patch(data: bytearray, name: str, field: str, value: int) -> None:
    """Set ``field`` of member ``name`` in both its local header and its central directory entry."""
    import struct

    local_at, central_at, fmt = _FIELDS[field]
    encoded = name.encode()
    for signature, at in ((_LOCAL, local_at), (_CENTRAL, central_at)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_at = start + (30 if signature == _LOCAL else 46)
            if data[name_at:name_at + len(encoded)] == encoded:
                struct.pack_into(fmt, data, start + at, value)
                break
            start += 4


def hostile_zip(path: Path, images: dict[str, bytes]) -> dict[str, str]:
    """Write a zip of good and bad members to ``path``; returns member name -> what its row must say.

    Built in memory from small parts (no real multi-GB file is ever made): the 2 GiB member only
    declares that size in its headers, the bomb is 8 MiB of zeros (about 8 KB compressed).
    ``images`` must hold ``good.png``, ``twin_a.png``, ``twin_b.png`` and ``scan`` (an
    extension-less DICOM).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the duplicate name is the point
        archive.writestr("good.png", images["good.png"])
        archive.writestr("dup.png", images["twin_a.png"])
        archive.writestr("dup.png", images["twin_b.png"])
        archive.writestr("scan", images["scan"])
        for name in ("locked.png", "badcrc.png", "method99.png", "declared_2gib.png"):
            archive.writestr(name, images["good.png"])
        archive.writestr("bomb.png", bytes(8 << 20))
        archive.writestr("inner.zip", b"PK\x05\x06" + bytes(18))
        archive.writestr("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>')
        archive.writestr("folder/", b"")
    data = bytearray(buffer.getvalue())
    _patch(data, "locked.png", "flags", 0x1)
    _patch(data, "badcrc.png", "crc", 0x12345678)
    _patch(data, "method99.png", "method", 99)
    _patch(data, "declared_2gib.png", "size", 2 << 30)
    path.write_bytes(bytes(data))
    return {"good.png": "ok", "dup.png": "ok", "dup.png#2": "ok", "scan": "ok", "locked.png": "encrypted",
            "badcrc.png": "damaged zip member", "method99.png": "compression method 99",
            "declared_2gib.png": "too large", "bomb.png": "zip bomb", "inner.zip": "nested archive",
            "drawing.svg": "unsupported file type"}
