"""Maps in the model's frame go back onto the source's pixels: a region sent forward returns where it was."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bcc_model.imaging.geometry import model_geometry, to_source_frame
from bcc_model.imaging.io import read_image
from bcc_model.imaging.preprocess import to_model_input_with_mask
from bcc_model.registry import get_modality
from tests.conftest import ROOT


def _disk(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < radius ** 2


@pytest.mark.parametrize("mirror", [False, True])
def test_a_region_sent_through_crop_flip_pad_and_resize_comes_back_in_place(mirror):
    """A MIAS film enlarged to a tall 2,300 x 1,400 image (shrunk, cropped to the breast, padded, resized)."""
    spec = get_modality("mammography")
    film = read_image(ROOT / "samples" / "mammography" / "malignant" / "mdb028.png").pixels
    big = cv2.resize(film, (1400, 2300), interpolation=cv2.INTER_LINEAR)
    big = big[:, ::-1].copy() if mirror else big  # the other breast: the laterality flip must be undone
    x_map, y_map, inside = model_geometry(big, spec)
    assert (x_map.scale < 0) == mirror, "a mirrored breast is flipped back, and the map knows it"
    centre = ((spec.input_size / 2 - x_map.offset) / x_map.scale, (spec.input_size / 2 - y_map.offset) / y_map.scale)
    disk = _disk(big.shape, centre, 150)
    _, forward = to_model_input_with_mask(big, disk, spec)
    back = to_source_frame(forward.astype(np.float32), big, spec) > 0.5
    assert (back & disk).sum() / (back | disk).sum() > 0.95
    assert inside.sum() < inside.size, "the padding is outside the image"


def test_the_padding_maps_to_nothing_and_an_ultrasound_frame_round_trips():
    spec = get_modality("ultrasound")
    frame = read_image(sorted((ROOT / "samples" / "ultrasound" / "malignant").glob("*.png"))[0]).pixels
    disk = _disk(frame.shape, (frame.shape[1] / 2, frame.shape[0] / 2), min(frame.shape[:2]) / 6)
    _, forward = to_model_input_with_mask(frame, disk, spec)
    back = to_source_frame(forward.astype(np.float32), frame, spec) > 0.5
    assert (back & disk).sum() / (back | disk).sum() > 0.9
    everywhere = to_source_frame(np.ones((spec.input_size, spec.input_size), np.float32), frame, spec)
    assert everywhere.shape == frame.shape[:2] and everywhere.min() > 0.4, "every source pixel is inside the model's view"
