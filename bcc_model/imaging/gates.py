"""Input gates: images that no model of a modality should give a verdict on, and why.

A softmax always sums to one, so a blank slide, colour noise or an H&E patch shown to the
mammography model all get a confident-looking answer (probed: "benign 100 %" for a black
square, "malignant 95 %" for a synthetic grey ramp). Before any verdict is shown, these cheap
checks say whether the image can be assessed by the selected model at all:

* **Structure.** Mean absolute Laplacian of the image at a 256 px longest side, in grey levels.
  Blank and synthetic images (uniform fields, ramps) are below 0.1; on the bundled samples the
  lowest is 3.5 (a fatty mammogram), and on 300 random IDC patches the lowest is 10.
* **Tissue** (H&E). Share of stained tissue (``tiling.tissue_mask``). Below 2 % the patch is
  glass (1st percentile of 300 random IDC patches: 2.8 %).
* **Scale** (patch models). An image far larger than the model's field (over 4 patches a side)
  would be shrunk to one patch and lose all detail: region mode is the way to read it.
* **Modality.** A DICOM file's own header first: its Modality (MG, US, SM) names the modality, and a
  file that names another model's is refused, one that names this model's is never judged by its
  pixels' look, except that an H&E model never reads a file that stores no colour (a grey SM:
  fluorescence, IHC). A BodyPartExamined other than the breast is a warning from reading the file
  (``dicom.py``). Where the header is silent, the colour rules of ``modality_guess``: a colour image where a greyscale one is
  expected, or anything but pink/purple H&E where H&E is expected. Mammogram-versus-ultrasound
  (the speckle rule) stays an advisory warning: on RSNA screening mammograms (digital, JPEG) it
  called 106 of 150 "ultrasound", so it must not refuse.

A gate never changes what the model computed; it replaces the verdict with "not assessed" and
its reason, which travel into every export.
"""

from __future__ import annotations

import cv2
import numpy as np

from bcc_model.imaging.modality_guess import describe_appearance, expected_appearance, header_modality, modality_hint
from bcc_model.imaging.tiling import tissue_mask
from bcc_model.registry import ModalitySpec

__all__ = ["MIN_STRUCTURE", "MIN_TISSUE_FRACTION", "MAX_PATCHES_PER_SIDE", "structure", "input_problem"]

MIN_STRUCTURE = 1.0
"""Mean |Laplacian| (grey levels, 256 px side) below which an image is blank or synthetic."""
MIN_TISSUE_FRACTION = 0.02
"""Share of tissue pixels below which an H&E patch is glass."""
MAX_PATCHES_PER_SIDE = 4
"""A patch model's image may be at most this many patches on its shorter side."""
_STRUCTURE_SIDE_PX = 256
_COLOUR_KINDS = ("he_stain", "other_colour")


def structure(pixels: np.ndarray) -> float:
    """Mean absolute Laplacian of the greyscale image at a longest side of 256 px (grey levels)."""
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    scale = _STRUCTURE_SIDE_PX / max(grey.shape)
    if scale < 1:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return float(np.mean(np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F))))


def input_problem(pixels: np.ndarray, spec: ModalitySpec, header: str | None = None) -> str | None:
    """Why ``spec``'s model must not give a verdict on this image, or ``None`` when it may.

    Args:
        pixels: uint8 HxW or HxWx3 as read (``io.read_image``).
        spec: the modality whose model would classify it.
        header: the file's DICOM Modality (``LoadedImage.dicom_modality``), which wins over the pixels.

    Returns:
        One sentence for the user, e.g. "no tissue: 0.4 % of the image is stained tissue (at
        least 2 % expected)"; ``None`` when every gate passes.
    """
    height, width = pixels.shape[:2]
    level = structure(pixels)
    if level < MIN_STRUCTURE:
        return (f"no image structure: the image is blank or synthetic (detail {level:.2f} grey levels, "
                f"real {spec.title} images have at least {MIN_STRUCTURE:g})")
    if expected_appearance(spec) == "he_stain" and pixels.ndim == 3:
        tissue = float(tissue_mask(pixels).mean())
        if tissue < MIN_TISSUE_FRACTION:
            return (f"no tissue: {tissue:.1%} of the image is stained tissue "
                    f"(at least {MIN_TISSUE_FRACTION:.0%} expected); it looks like background glass")
    named = header_modality(header)
    if named is not None and named != spec.key:
        from bcc_model.registry import MODALITIES

        return (f"not a {spec.title} image: the file's DICOM header says Modality {header.strip().upper()} "
                f"({MODALITIES[named].title}); the {MODALITIES[named].title} model is the one for it")
    expected = expected_appearance(spec)
    if expected == "he_stain" and named == spec.key and pixels.ndim == 2:  # a grey SM file: fluorescence, IHC
        return (f"not a {spec.title} image: it is greyscale (the file stores no colour), and the model reads the "
                "H&E stain's colours")
    if expected is not None and named is None:
        look = describe_appearance(pixels)
        wrong_colour = (look.kind != "he_stain") if expected == "he_stain" else (look.kind in _COLOUR_KINDS)
        if wrong_colour:
            return f"not a {spec.title} image: {modality_hint(pixels, spec.key) or look.reason}"
    if spec.kind == "image" and spec.mpp is not None and spec.mpp_at_size is None \
            and min(height, width) > MAX_PATCHES_PER_SIDE * spec.input_size:
        return (f"too large for a patch: {width}×{height} px is over {MAX_PATCHES_PER_SIDE} patches of "
                f"{spec.input_size} px a side and would be shrunk to one; use Region mode (it tiles the image "
                f"at {spec.mpp:g} µm/px)")
    return None
