"""Guess an upload's imaging modality from simple image statistics, to catch the wrong model.

A histopathology model shown a mammogram still returns confident-looking probabilities: nothing
in a softmax says "this is not what I was trained on". This module looks at three cheap,
documented cues that separate the modalities bcc knows about:

* **Colour.** H&E histopathology is coloured, and its colour is the pink (eosin) and purple
  (haematoxylin) end of the hue circle. Mammography and ultrasound are greyscale: one channel,
  or three nearly equal channels. Anything else coloured (a photograph, another stain, a
  screenshot) matches no modality.
* **Texture** (greyscale whole images only). B-mode ultrasound is made of *speckle*: the
  interference of scattered echoes gives a grainy texture whose local standard deviation is a
  sizeable fraction of the local mean. The statistic is the median, over the (eroded)
  foreground, of the local coefficient of variation ``std / mean`` in 5x5 px windows, after
  scaling the image to a longest side of 512 px. Film mammograms (MIAS) are smooth (at most
  0.037), but screening JPEGs are not: RSNA mammograms reach 0.12 at the median, above BUSI's
  0.084, so texture alone called 73 % of them ultrasound.
* **Layout** (greyscale whole images). A mammogram is a breast on a large empty background
  (film, padding; >= 30 % of pixels below grey level 30, or above 225 for images stored with
  inverted polarity) in a portrait or square frame, and the breast leaves at least one side of
  the frame empty (the 15 % of columns opposite the chest wall hold at most 10 % breast). A
  B-mode frame starts at the transducer: its top 10 % of rows is image (at least 80 % of it),
  and its content reaches both sides. Ultrasound therefore needs speckle *and* a filled top band
  and no mammogram layout; a mammogram needs the background and frame *and* either a smooth
  texture or an empty side. Measured on every image of the training folders
  (``docs/experiments/modality_check.py``): MIAS 0 %, RSNA 0 % and BUSI 0 % are taken for the
  other modality; 2.8 % of RSNA and 7.4 % of BUSI images stay plain greyscale.

Images whose shorter side is under 128 px are patches, not whole images: texture and layout are
not judged and a greyscale one stays plain ``"greyscale"``. A greyscale image that meets neither
rule clearly (speckle between the two thresholds, or smooth without the dark background) is also
plain ``"greyscale"``: no suggestion rather than a wrong one.

It is a hint for the UI, not a guard: it never refuses an image, and an answer of ``None``
means "no confident suggestion", not "unsupported". Pure numpy/OpenCV; no model involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import cv2
import numpy as np

from bcc_model.registry import MODALITIES, ModalitySpec

__all__ = ["Appearance", "describe_appearance", "expected_appearance", "header_modality",
           "suggest_modality", "modality_hint"]

AppearanceKind = Literal["greyscale", "mammogram", "b_mode", "he_stain", "other_colour"]

# A pixel "carries colour" when max(R, G, B) - min(R, G, B) reaches this (0-255 scale). JPEG
# compression leaves greyscale images with a chroma of a few levels; stained tissue is far above.
_CHROMA_LEVEL = 20
# Below this share of coloured pixels an image reads as greyscale. Real IDC H&E patches that are
# mostly glass still have >= 2 % coloured pixels (1st percentile of 400 patches: 7.5 %).
_MIN_COLOUR_FRACTION = 0.01
# H&E hues on OpenCV's 0-179 hue scale (degrees / 2): purple-blue haematoxylin from 240°,
# through magenta, to pink-red eosin up to ~24°. Both stains stay inside this arc.
_HE_HUE_FROM, _HE_HUE_TO = 120, 12
# Share of coloured pixels that must fall in the H&E arc (median on IDC patches: 100 %).
_MIN_HE_FRACTION = 0.6

# Greyscale whole-image rules (see the module docstring for the measured sample ranges).
_MIN_WHOLE_IMAGE_PX = 128  # shorter side below this: a patch; texture and layout are not judged
_TEXTURE_SIDE_PX = 512  # longest side the texture is measured at (speckle grain is scale-dependent)
_DARK_LEVEL = 30  # grey level below which a pixel is background (0-255)
_SPECKLE_WINDOW_PX = 5
_BRIGHT_LEVEL = 225  # grey level above which a pixel is background in an inverted-polarity image
_MIN_ULTRASOUND_SPECKLE = 0.045  # BUSI: 0.084 median; MIAS film at most 0.037
_MAX_MAMMOGRAM_SPECKLE = 0.035  # MIAS: at most 0.037 (RSNA JPEGs: 0.12 median, hence the empty-side rule)
_MIN_MAMMOGRAM_DARK = 0.30  # background share: MIAS and RSNA median 0.65, BUSI 0.20
_MIN_MAMMOGRAM_ASPECT = 0.9  # height / width: portrait or square
_SIDE_BAND = 0.15  # share of columns on each side whose content is measured
_MAX_EMPTY_SIDE = 0.10  # content share of a side band that counts as empty (RSNA far side: 0.0 median)
_MIN_BREAST_SIDE = 0.40  # content share of the chest-wall side band
_TOP_BAND = 0.10  # share of rows at the top whose content is measured
_MIN_ULTRASOUND_TOP = 0.80  # B-mode: the transducer's near field fills the top band (BUSI 0.999 median)

_GREY_KINDS = ("greyscale", "mammogram", "b_mode")
_COLOUR_SIDE_PX = 2048  # colour shares are measured on at most this many pixels a side
_DESCRIPTION: Mapping[AppearanceKind, str] = {
    "greyscale": "a greyscale image",
    "mammogram": "a mammogram",
    "b_mode": "an ultrasound image",
    "he_stain": "a colour H&E-stained image",
    "other_colour": "a colour image that does not look H&E-stained",
}
_EXPECTATION: Mapping[AppearanceKind, str] = {
    "greyscale": "greyscale images",
    "mammogram": "mammograms (greyscale breast on a dark background)",
    "b_mode": "B-mode ultrasound images (greyscale speckle)",
    "he_stain": "colour H&E patches (pink/purple stained tissue)",
    "other_colour": "colour images",
}


def expected_appearance(spec: ModalitySpec) -> str | None:
    """What ``spec``'s images should look like: ``spec.appearance``, else greyscale for 1-channel models."""
    if spec.appearance is not None:
        return spec.appearance
    return "greyscale" if spec.kind == "image" and spec.channels == 1 else None


def _fits(kind: str, expected: str) -> bool:
    """Same look, or greyscale where either side only knows "greyscale" (no contradiction)."""
    if kind == expected:
        return True
    return kind in _GREY_KINDS and expected in _GREY_KINDS and "greyscale" in (kind, expected)


@dataclass(frozen=True)
class Appearance:
    """What an image looks like, with the numbers behind the call.

    Attributes:
        kind: ``"greyscale"`` (undecided greyscale), ``"mammogram"``, ``"b_mode"`` (ultrasound),
            ``"he_stain"`` or ``"other_colour"``.
        colour_fraction: share of pixels with chroma >= 20 (0-255 scale), in [0, 1].
        he_fraction: share of those coloured pixels whose hue is pink/purple, in [0, 1]
            (0 when there are none).
        reason: one plain-language sentence saying why, for the person who uploaded it.
        dark_fraction: share of background pixels: below grey level 30, or above 225 when those are
            more (inverted polarity) (greyscale whole images; else NaN).
        speckle: median local coefficient of variation in 5x5 px windows (greyscale whole
            images; else NaN).
    """

    kind: AppearanceKind
    colour_fraction: float
    he_fraction: float
    reason: str
    dark_fraction: float = float("nan")
    speckle: float = float("nan")


def _grey_appearance(grey: np.ndarray, colour_fraction: float, why_grey: str) -> Appearance:
    """Mammogram, ultrasound or undecided greyscale, by the texture and layout rules above."""
    height, width = grey.shape
    if min(height, width) < _MIN_WHOLE_IMAGE_PX:
        return Appearance("greyscale", colour_fraction, 0.0, f"{why_grey}; too small to judge as a whole image")
    scale = _TEXTURE_SIDE_PX / max(height, width)
    if scale < 1:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    values = grey.astype(np.float32)
    dark, bright = float((values < _DARK_LEVEL).mean()), float((values > _BRIGHT_LEVEL).mean())
    # The background is the dark side, or the bright one in an image stored with inverted polarity.
    foreground = values >= _DARK_LEVEL if dark >= bright else values <= _BRIGHT_LEVEL
    background = max(dark, bright)
    size = (_SPECKLE_WINDOW_PX, _SPECKLE_WINDOW_PX)
    mean = cv2.blur(values, size)
    std = np.sqrt(np.maximum(cv2.blur(values * values, size) - mean * mean, 0.0))
    inner = cv2.erode((values >= _DARK_LEVEL).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # away from edges
    speckle = float(np.median(std[inner] / np.maximum(mean[inner], 1.0))) if inner.any() else 0.0
    band = max(1, round(_SIDE_BAND * foreground.shape[1]))
    sides = sorted((float(foreground[:, :band].mean()), float(foreground[:, -band:].mean())))
    top = float(foreground[:max(1, round(_TOP_BAND * foreground.shape[0]))].mean())
    upright = height / width >= _MIN_MAMMOGRAM_ASPECT
    empty_side = sides[0] <= _MAX_EMPTY_SIDE
    stats = dict(colour_fraction=colour_fraction, he_fraction=0.0, dark_fraction=background, speckle=speckle)
    if upright and background >= _MIN_MAMMOGRAM_DARK and (
            speckle <= _MAX_MAMMOGRAM_SPECKLE or (empty_side and sides[1] >= _MIN_BREAST_SIDE)):
        cue = "a smooth texture" if speckle <= _MAX_MAMMOGRAM_SPECKLE else "one side of the frame empty"
        return Appearance("mammogram", reason=f"{why_grey}, {background:.0%} empty background in a portrait or "
                          f"square frame and {cue}", **stats)
    if speckle >= _MIN_ULTRASOUND_SPECKLE and top >= _MIN_ULTRASOUND_TOP and not (
            upright and (background >= _MIN_MAMMOGRAM_DARK or empty_side)):
        return Appearance("b_mode", reason=f"{why_grey}, grainy speckle texture (local variation {speckle:.3f} >= "
                          f"{_MIN_ULTRASOUND_SPECKLE}) and an image that starts at the top edge", **stats)
    return Appearance("greyscale", reason=f"{why_grey}; neither clearly ultrasound (speckle {speckle:.3f}, top band "
                      f"{top:.0%} filled) nor a mammogram layout ({background:.0%} empty background)", **stats)


def describe_appearance(pixels: np.ndarray) -> Appearance:
    """Classify an image as H&E-stained colour, other colour, mammogram, ultrasound or plain greyscale.

    Args:
        pixels: uint8 HxW (grey) or HxWx3 RGB, as returned by ``io.read_image``.

    Returns:
        The appearance and the reason for it.

    Raises:
        ValueError: not a non-empty uint8 HxW or HxWx3 array.
    """
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
    if pixels.size == 0:
        raise ValueError(f"image is empty, shape {pixels.shape}")
    if pixels.ndim == 2:
        return _grey_appearance(pixels, 0.0, "the file has a single grey channel")
    # Colour shares are global statistics: on a large image every k-th pixel gives the same answer
    # without int16 and HSV copies of 100 megapixels (the pixels themselves are kept, not averaged).
    step = max(1, int(np.ceil(max(pixels.shape[:2]) / _COLOUR_SIDE_PX)))
    pixels = pixels[::step, ::step]
    chroma = pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)
    coloured = chroma >= _CHROMA_LEVEL
    colour_fraction = float(coloured.mean())
    if colour_fraction < _MIN_COLOUR_FRACTION:
        grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        return _grey_appearance(grey, colour_fraction, f"only {colour_fraction:.1%} of its pixels carry any colour")
    hue = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)[:, :, 0][coloured]
    he_fraction = float(np.mean((hue >= _HE_HUE_FROM) | (hue <= _HE_HUE_TO)))
    if he_fraction >= _MIN_HE_FRACTION:
        return Appearance(
            "he_stain", colour_fraction, he_fraction,
            f"{he_fraction:.0%} of its coloured pixels are the pink/purple of H&E staining",
        )
    return Appearance(
        "other_colour", colour_fraction, he_fraction,
        f"only {he_fraction:.0%} of its coloured pixels are the pink/purple of H&E staining",
    )


def suggest_modality(pixels: np.ndarray, modalities: Mapping[str, ModalitySpec] = MODALITIES) -> str | None:
    """The registry key of the one registered modality whose images look like this one.

    A modality whose expected appearance is exactly the image's wins; failing that, a greyscale
    image goes to the one modality that only asks for "greyscale".

    Args:
        pixels: uint8 HxW or HxWx3 RGB.
        modalities: the registry to choose from (default: ``modalities.MODALITIES``).

    Returns:
        A key of ``modalities``, or ``None`` when no registered modality matches or several do.
        The reason is ``describe_appearance(pixels).reason``.

    Examples:
        >>> suggest_modality(np.zeros((8, 8), np.uint8)) is None  # a tiny grey patch fits no model
        True
    """
    kind = describe_appearance(pixels).kind
    expected = {key: expected_appearance(spec) for key, spec in modalities.items()}
    matches = [key for key, look in expected.items() if look == kind]
    if not matches and kind in _GREY_KINDS:
        matches = [key for key, look in expected.items() if look == "greyscale"]
    return matches[0] if len(matches) == 1 else None


def header_modality(code: str | None) -> str | None:
    """The registry key whose ``dicom_modalities`` hold a DICOM Modality code (PS3.3 C.7.3.1.1.1), or
    ``None`` when the header is silent or names no model's modality (CR, DX, OT... say nothing)."""
    code = (code or "").strip().upper()
    return next((key for key, spec in MODALITIES.items() if code and code in spec.dicom_modalities), None)


def modality_hint(pixels: np.ndarray, selected: str) -> str | None:
    """A message for the UI when the image does not look like what the selected model expects.

    Args:
        pixels: uint8 HxW or HxWx3 RGB.
        selected: registry key of the model in use.

    Returns:
        ``None`` when the image looks as expected, when the rules cannot tell (plain greyscale
        for a greyscale model), or when the modality's expected look is unknown; otherwise e.g.
        "This looks like a colour H&E-stained image (…); the mammography model expects
        mammograms (…). Its result may be meaningless. The H&E histopathology model may fit
        better."
    """
    spec = MODALITIES.get(selected)
    expected = None if spec is None else expected_appearance(spec)
    if expected is None:
        return None
    appearance = describe_appearance(pixels)
    if _fits(appearance.kind, expected):
        return None
    message = (
        f"This looks like {_DESCRIPTION[appearance.kind]} ({appearance.reason}); the {selected} model "
        f"expects {_EXPECTATION[expected]}. Its result may be meaningless."
    )
    suggestion = suggest_modality(pixels)
    if suggestion is not None and suggestion != selected:
        message += f" The {MODALITIES[suggestion].title} model may fit better."
    return message
