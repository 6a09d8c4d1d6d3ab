"""The physical scale a file records, and whether the tissue looks like the scale a user gives (region mode)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from bcc_model.imaging.io import read_image
from bcc_model.imaging.scale import mpp_from_dicom, mpp_from_tiff, nucleus_size_um, scale_doubt

HISTO = Path(__file__).resolve().parents[4] / "shared" / "data" / "histopathology"


def _tiff(**kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((60, 80, 3), 200, np.uint8)).save(buffer, format="TIFF", **kwargs)
    return buffer.getvalue()


def test_a_tiff_says_its_scale_in_resolution_tags_or_its_description_and_72_dpi_is_no_microscope():
    assert read_image(_tiff(dpi=(101600, 101600))).mpp == pytest.approx(0.25)
    assert read_image(_tiff(description="Aperio Image Library |AppMag = 40|MPP = 0.2520")).mpp == pytest.approx(0.252)
    assert read_image(_tiff(dpi=(72, 72))).mpp is None, "a desktop TIFF's 72 dpi is 353 µm/px: not a microscope's"
    buffer = io.BytesIO()  # a 16-bit TIFF goes through tifffile: the same tags are read there
    tifffile.imwrite(buffer, np.zeros((40, 40, 3), np.uint16), resolution=(40000, 40000), resolutionunit=3)
    assert read_image(buffer.getvalue()).mpp == pytest.approx(0.25)
    ome = '<OME><Image><Pixels PhysicalSizeX="0.5" PhysicalSizeXUnit="µm"/></Image></OME>'
    assert mpp_from_tiff(ome, None, None) == pytest.approx(0.5)
    png = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png, format="PNG")
    assert read_image(png.getvalue()).mpp is None


def test_dicom_pixel_spacing_is_millimetres():
    from pydicom.dataset import Dataset

    slide = Dataset()
    slide.PixelSpacing = [0.00025, 0.00025]
    assert mpp_from_dicom(slide) == pytest.approx(0.25)
    mammogram = Dataset()
    mammogram.PixelSpacing = [0.07, 0.07]
    assert mpp_from_dicom(mammogram) is None and mpp_from_dicom(Dataset()) is None


@pytest.mark.skipif(not (HISTO / "labels.csv").is_file(), reason="needs ../shared/data/histopathology")
def test_nuclei_size_flags_tissue_enlarged_but_called_the_training_scale():
    """Real IDC tissue at its 4 µm/px passes; the same tissue enlarged 8x and still called 4 µm/px is flagged,
    and passes again when called 0.5 µm/px."""
    import cv2

    table = pd.read_csv(HISTO / "labels.csv", dtype=str)
    files = table[table["group"] == table["group"].iloc[0]]["file"].tolist()
    tiles = [t for t in (cv2.imread(str(HISTO / f))[..., ::-1] for f in files[:64]) if t.shape[:2] == (50, 50)][:49]
    side = int(np.sqrt(len(tiles)))
    mosaic = np.vstack([np.hstack(tiles[r * side:(r + 1) * side]) for r in range(side)])
    assert 3 <= nucleus_size_um(mosaic, 4.0) <= 20 and scale_doubt(mosaic, 4.0) is None
    enlarged = cv2.resize(mosaic, None, fx=8, fy=8, interpolation=cv2.INTER_CUBIC)
    doubt = scale_doubt(enlarged, 4.0)
    assert doubt is not None and "µm/px" in doubt and "looks wrong" in doubt
    assert scale_doubt(enlarged, 0.5) is None
    assert nucleus_size_um(np.full((100, 100, 3), 240, np.uint8), 1.0) is None, "glass: nothing to measure"
