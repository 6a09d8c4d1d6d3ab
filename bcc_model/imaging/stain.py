"""Macenko stain normalisation: map each H&E image's stain colours onto one reference.

Why: slides from different labs and scanners differ mostly in stain hue and strength, and a
model trained on some patients' colours can read another lab's colours as tissue change.
Macenko et al. (ISBI 2009, doi:10.1109/ISBI.2009.5193250) estimate an image's two stain
vectors from the plane of its optical densities, express every pixel as haematoxylin and eosin
concentrations, rescale those to the reference's 99th percentiles and rebuild the pixel with
the reference stain vectors. The reference is fixed in this module (and recorded in every
bundle's model card through the preprocessing step's name), so training and prediction
normalise identically.

A 50 px patch has few tissue pixels; where the image has too little stained tissue to fit two
stain vectors (glass, fat, a blank tile), it is returned unchanged rather than distorted.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REFERENCE_STAINS", "REFERENCE_MAX_CONCENTRATIONS", "macenko_normalise", "stain_vectors"]

# Reference H and E optical-density vectors (columns) and 99th-percentile concentrations, the
# values used by the common Macenko implementations (e.g. StainTools, TIAToolbox's defaults).
REFERENCE_STAINS = np.array([[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]], dtype=np.float64)
REFERENCE_MAX_CONCENTRATIONS = np.array([1.9705, 1.0308], dtype=np.float64)

_IO = 255.0  # transmitted light intensity
_OD_THRESHOLD = 0.15  # pixels fainter than this in every channel are background
_ANGLE_PERCENTILE = 1.0
_MIN_TISSUE_PIXELS = 64
_MIN_ANGLE_SPREAD = 0.05  # radians


def _optical_density(rgb: np.ndarray) -> np.ndarray:
    return -np.log((rgb.reshape(-1, 3).astype(np.float64) + 1.0) / _IO)


def stain_vectors(rgb: np.ndarray) -> np.ndarray | None:
    """The image's H and E optical-density vectors (3x2, unit columns), or ``None`` when too little tissue.

    The two vectors span the plane of the two largest principal directions of the tissue pixels'
    optical densities; they are the robust extremes (1st and 99th percentile) of the angles in
    that plane. Haematoxylin is the one with the larger red component.
    """
    od = _optical_density(rgb)
    tissue = od[np.all(od > _OD_THRESHOLD, axis=1)]
    if len(tissue) < _MIN_TISSUE_PIXELS:
        return None
    _, eigvecs = np.linalg.eigh(np.cov(tissue.T))
    plane = eigvecs[:, 1:3]
    plane = plane * np.where(plane[0] < 0, -1.0, 1.0)  # both principal vectors point into positive OD
    projected = tissue @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(angles, [_ANGLE_PERCENTILE, 100 - _ANGLE_PERCENTILE])
    if high - low < _MIN_ANGLE_SPREAD:  # one colour only (a flat or single-stain image): no two stains to separate
        return None
    v1 = plane @ np.array([np.cos(low), np.sin(low)])
    v2 = plane @ np.array([np.cos(high), np.sin(high)])
    stains = np.stack([v1, v2], axis=1) if v1[0] > v2[0] else np.stack([v2, v1], axis=1)
    norms = np.linalg.norm(stains, axis=0)
    if not np.all(np.isfinite(stains)) or np.any(norms < 1e-6):
        return None
    return stains / norms


def macenko_normalise(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 with the image's stains replaced by the reference stains (same shape).

    Images without enough stained tissue to fit their stains come back unchanged.
    """
    stains = stain_vectors(rgb)
    if stains is None:
        return rgb
    od = _optical_density(rgb)
    concentrations, *_ = np.linalg.lstsq(stains, od.T, rcond=None)
    max_concentrations = np.percentile(concentrations, 99, axis=1)
    if np.any(max_concentrations <= 1e-6):
        return rgb
    concentrations *= (REFERENCE_MAX_CONCENTRATIONS / max_concentrations)[:, None]
    out = _IO * np.exp(-REFERENCE_STAINS @ concentrations)
    return np.clip(out.T.reshape(rgb.shape), 0, 255).astype(np.uint8)
