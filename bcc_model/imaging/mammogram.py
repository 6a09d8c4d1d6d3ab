"""Mammogram hygiene: polarity and the pectoral muscle, with classical OpenCV, before any model.

*Polarity.* A MONOCHROME1 image shown without inversion has a white background and a dark
breast (RSNA: 220 of 1,534 images, of which its curator flagged 116). Breast segmentation, a
model and a radiologist all expect the background black, so such an image is inverted first.
The test is the image frame: most of it is background (the chest wall covers one side at most),
so its median grey level says which way round the image is; and the image must hold more
near-white than near-black pixels (a film close-up with white edge strips does not).

*Pectoral muscle.* On an MLO view the pectoral muscle is a bright, roughly triangular region in
the corner at the chest wall and the top of the image. It is as bright as dense tissue and
lesions, so models and heatmaps latch onto it (the old mammography bundle's Grad-CAM sat on the
chest wall). With the chest wall on the left (``laterality_flip``), the bright component that
touches the top edge near the corner is found inside the breast, its right boundary in the top
quarter of the image (below it dense tissue often joins the muscle) is fitted with a straight line (robust least squares, as in Kwok et al. 2004's straight-line
first estimate), and the triangle above that line is the muscle. A candidate that is not a
plausible triangle (too small or too large, a line that does not run from the top edge down to
the chest wall) is rejected: a CC view has no muscle, and removing tissue wrongly is worse than
keeping the muscle.

References:
    Kwok, Chandrasekhar, Attikiouzel, Rickard (2004). Automatic pectoral muscle segmentation on
        mediolateral oblique view mammograms. IEEE Trans. Med. Imaging 23(9):1129-1140.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["is_inverted", "normalise_polarity", "pectoral_mask", "breast_region", "FRAME_FRACTION", "PECTORAL_AREA"]

FRAME_FRACTION = 0.03
"""Width of the image frame (as a share of each side) whose median grey level decides polarity."""
PECTORAL_AREA = (0.02, 0.40)
"""Plausible pectoral share of the breast area; outside it no muscle is removed."""
_NEAR_BLACK, _NEAR_WHITE = 15, 225
_SEARCH = 0.6  # the muscle lies in the top-left 60 % x 60 % of an oriented breast crop
_FIT_ROWS = 0.25  # its boundary is fitted on the top quarter, above where dense tissue can join it


def is_inverted(grey: np.ndarray) -> bool:
    """Whether a mammogram is stored with inverted polarity (white background, dark breast)."""
    height, width = grey.shape
    band = max(1, round(FRAME_FRACTION * min(height, width)))
    frame = np.concatenate([grey[:band].ravel(), grey[-band:].ravel(), grey[:, :band].ravel(),
                            grey[:, -band:].ravel()])
    # Film edge strips and labels can whiten much of a close-up's frame (2 of 274 mini-MIAS films),
    # but a black background still leaves more near-black than near-white pixels in the image.
    return bool(np.median(frame) > 127 and (grey < _NEAR_BLACK).mean() < (grey > _NEAR_WHITE).mean())


def normalise_polarity(grey: np.ndarray) -> np.ndarray:
    """The image with a black background: inverted when :func:`is_inverted`, else unchanged."""
    return (255 - grey).astype(np.uint8) if is_inverted(grey) else grey


def _line_through_boundary(component: np.ndarray) -> tuple[float, float] | None:
    """``(x_at_top, slope dx/dy)`` of the component's right boundary, fitted robustly; None if too few rows."""
    rows = np.flatnonzero(component.any(axis=1))
    if len(rows) < 5:
        return None
    right = np.array([np.flatnonzero(component[r]).max() for r in rows], np.float64)
    keep = np.ones(len(rows), bool)
    for _ in range(3):  # least squares, then drop rows more than 2.5 MAD from the line
        slope, intercept = np.polyfit(rows[keep], right[keep], 1)
        residual = np.abs(right - (intercept + slope * rows))
        mad = np.median(residual[keep]) + 1.0
        keep = residual < 2.5 * mad
        if keep.sum() < 5:
            return None
    return float(intercept), float(slope)


def pectoral_mask(grey: np.ndarray) -> np.ndarray:
    """bool HxW mask of the pectoral muscle of an oriented breast crop (chest wall left); all False if none.

    Args:
        grey: uint8 HxW breast crop after ``breast_crop`` and ``laterality_flip`` (background 0).
    """
    height, width = grey.shape
    none = np.zeros((height, width), bool)
    breast = grey > 0
    if breast.sum() < 100:
        return none
    smooth = cv2.GaussianBlur(grey, (0, 0), max(1.0, 0.01 * min(height, width)))
    h, w = max(2, round(_SEARCH * height)), max(2, round(_SEARCH * width))
    region = smooth[:h, :w]
    inside = region[breast[:h, :w]]
    if inside.size < 50:
        return none
    level, _ = cv2.threshold(inside.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = ((region > level) & breast[:h, :w]).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    top_left = [k for k in range(1, count)
                if stats[k, cv2.CC_STAT_TOP] == 0 and stats[k, cv2.CC_STAT_LEFT] <= 0.1 * w]
    if not top_left:
        return none
    component = labels == max(top_left, key=lambda k: stats[k, cv2.CC_STAT_AREA])
    line = _line_through_boundary(component[:max(5, round(_FIT_ROWS * height))])
    if line is None:
        return none
    x_top, slope = line
    if slope >= 0 or not 0.05 * width <= x_top <= 0.8 * width:
        return none  # the boundary must run from the top edge down towards the chest wall
    y_wall = -x_top / slope
    if not 0.05 * height <= y_wall <= 1.2 * height:
        return none
    ys, xs = np.mgrid[0:height, 0:width]
    muscle = (xs < x_top + slope * ys) & breast
    share = muscle.sum() / breast.sum()
    return muscle if PECTORAL_AREA[0] <= share <= PECTORAL_AREA[1] else none


def breast_region(view: np.ndarray) -> np.ndarray:
    """bool mask of the breast the model reads, in a mammogram's model view (HxW uint8).

    ``breast_crop`` blanks everything outside the breast (and ``pectoral_removal`` the muscle) to
    0, and ``pad_square`` pads with 0, so the breast is the largest non-zero region, its
    pinholes (dark fat at grey level 0) filled. Shown as an outline in the app, so a reader sees
    what the model could look at and what was cut away.
    """
    tissue = (view > 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(tissue, connectivity=8)
    if count < 2:
        return np.zeros(view.shape, bool)
    largest = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    outline, _ = cv2.findContours(largest, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(largest, outline, -1, 1, thickness=cv2.FILLED)
    return largest.astype(bool)
