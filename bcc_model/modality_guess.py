"""Guess an upload's imaging modality from its colours, to catch the wrong model being used.

A histopathology model shown a mammogram still returns confident-looking probabilities: nothing
in a softmax says "this is not what I was trained on". This module looks at colour alone, the
cheapest cue that separates the modalities bcc knows about:

* H&E histopathology is coloured, and its colour is the pink (eosin) and purple (haematoxylin)
  end of the hue circle;
* mammography and ultrasound are greyscale: one channel, or three nearly equal channels;
* anything else coloured (a photograph, another stain, a screenshot) matches no modality.

It is a hint for the UI, not a guard: it never refuses an image, and an answer of ``None``
means "no confident suggestion", not "unsupported". Pure numpy/OpenCV; no model involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import cv2
import numpy as np

from .modalities import MODALITIES, ModalitySpec

__all__ = ["Appearance", "describe_appearance", "suggest_modality", "modality_hint"]

AppearanceKind = Literal["greyscale", "he_stain", "other_colour"]

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

# What each known modality's images look like. This belongs in ``ModalitySpec`` (one registry
# for everything a modality expects); it lives here until the registry grows the field.
_EXPECTED: Mapping[str, AppearanceKind] = {
    "histopathology": "he_stain",
    "mammography": "greyscale",
    "ultrasound": "greyscale",
}
_DESCRIPTION: Mapping[AppearanceKind, str] = {
    "greyscale": "a greyscale image",
    "he_stain": "a colour H&E-stained image",
    "other_colour": "a colour image that does not look H&E-stained",
}
_EXPECTATION: Mapping[AppearanceKind, str] = {
    "greyscale": "greyscale images",
    "he_stain": "colour H&E patches (pink/purple stained tissue)",
    "other_colour": "colour images",
}


@dataclass(frozen=True)
class Appearance:
    """What an image looks like, with the numbers behind the call.

    Attributes:
        kind: ``"greyscale"``, ``"he_stain"`` or ``"other_colour"``.
        colour_fraction: share of pixels with chroma >= 20 (0-255 scale), in [0, 1].
        he_fraction: share of those coloured pixels whose hue is pink/purple, in [0, 1]
            (0 when there are none).
        reason: one plain-language sentence saying why, for the person who uploaded it.
    """

    kind: AppearanceKind
    colour_fraction: float
    he_fraction: float
    reason: str


def describe_appearance(pixels: np.ndarray) -> Appearance:
    """Classify an image as greyscale, H&E-stained colour, or other colour.

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
        return Appearance("greyscale", 0.0, 0.0, "the file has a single grey channel")

    chroma = pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)
    coloured = chroma >= _CHROMA_LEVEL
    colour_fraction = float(coloured.mean())
    if colour_fraction < _MIN_COLOUR_FRACTION:
        return Appearance(
            "greyscale", colour_fraction, 0.0,
            f"only {colour_fraction:.1%} of its pixels carry any colour",
        )
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

    Args:
        pixels: uint8 HxW or HxWx3 RGB.
        modalities: the registry to choose from (default: ``modalities.MODALITIES``).

    Returns:
        A key of ``modalities``, or ``None`` when no registered modality matches or several do
        (mammography and ultrasound cannot be told apart by colour). The reason is
        ``describe_appearance(pixels).reason``.

    Examples:
        >>> suggest_modality(np.zeros((8, 8), np.uint8)) is None  # no greyscale model registered
        True
    """
    kind = describe_appearance(pixels).kind
    matches = [key for key in modalities if _EXPECTED.get(key) == kind]
    return matches[0] if len(matches) == 1 else None


def modality_hint(pixels: np.ndarray, selected: str) -> str | None:
    """A message for the UI when the image does not look like what the selected model expects.

    Args:
        pixels: uint8 HxW or HxWx3 RGB.
        selected: registry key of the model in use.

    Returns:
        ``None`` when the image looks as expected or the modality's expected look is unknown;
        otherwise e.g. "This looks like a greyscale image (the file has a single grey channel);
        the histopathology model expects colour H&E patches (…)", followed by the registered
        modality that would fit, if any.
    """
    expected = _EXPECTED.get(selected)
    appearance = describe_appearance(pixels)
    if expected is None or appearance.kind == expected:
        return None
    message = (
        f"This looks like {_DESCRIPTION[appearance.kind]} ({appearance.reason}); the {selected} model "
        f"expects {_EXPECTATION[expected]}. Its result may be meaningless."
    )
    suggestion = suggest_modality(pixels)
    if suggestion is not None and suggestion != selected:
        message += f" The {MODALITIES[suggestion].title} model may fit better."
    return message
