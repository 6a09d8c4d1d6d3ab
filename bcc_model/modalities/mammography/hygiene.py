"""Mammogram hygiene: polarity, breast crop, orientation and the pectoral muscle, before any model.

Importing this module registers the preprocessing steps ``polarity``, ``breast_crop``,
``laterality_flip`` and ``pectoral_removal`` (``imaging/preprocess.register_step``).

*Breast crop.* Otsu's threshold (Otsu 1979) at half its level, an opening and the largest
component give the breast; everything else (film labels, markers) is blanked and the image
cropped to it. *Orientation.* The chest wall is the side whose edge columns hold more breast;
it is turned to the left so left and right breasts look alike.

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
    Otsu (1979). A threshold selection method from gray-level histograms. IEEE Trans. Syst. Man
        Cybern. 9(1):62-66.
    Kwok, Chandrasekhar, Attikiouzel, Rickard (2004). Automatic pectoral muscle segmentation on
        mediolateral oblique view mammograms. IEEE Trans. Med. Imaging 23(9):1129-1140.
"""

from __future__ import annotations

import cv2
import numpy as np

from bcc_model.imaging.preprocess import as_grey, register_step
from bcc_model.registry import ModalitySpec

__all__ = ["is_inverted", "normalise_polarity", "pectoral_mask", "breast_region", "breast_box", "faces_right",
           "FRAME_FRACTION", "PECTORAL_AREA"]

FRAME_FRACTION = 0.03
"""Width of the image frame (as a share of each side) whose median grey level decides polarity."""
PECTORAL_AREA = (0.02, 0.40)
"""Plausible pectoral share of the breast area; outside it no muscle is removed."""
# Breast segmentation: pixels above OTSU_FRACTION x Otsu's threshold count as breast. Otsu alone
# (53-107 grey levels on mini-MIAS) splits dense from fatty tissue and cuts the fatty chest-wall
# side off dense breasts; film background is below ~15, so half of it still rejects background.
OTSU_FRACTION = 0.5
# The opening kernel (as a fraction of the shorter side) detaches film labels and edge strips that
# touch the breast through a few pixels; a component smaller than MIN_BREAST_FRACTION of the image
# means "no breast found" and the image is kept whole.
OPENING_FRACTION = 0.02
MIN_BREAST_FRACTION = 0.05
# Dilation (fraction of the shorter side) of the breast component before everything outside it is
# blanked: Otsu's threshold can sit above the faint skin line, which must stay in the image.
MARGIN_FRACTION = 0.01
# Laterality: share of tissue in the outermost fifth of columns on each side.
EDGE_FRACTION = 0.2
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


def breast_box(grey: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Bounding box and mask of the breast: the largest bright connected component.

    Film mammograms hold the breast, a dark background, and bright film labels, orientation
    markers and scanner edge strips. Otsu's threshold (Otsu 1979) on the smoothed image separates
    bright from background; a morphological opening cuts thin bridges between the breast and a
    label or edge strip; the largest connected component is the breast (its holes filled, then
    dilated by a small margin so the faint skin line is kept). The threshold is half of Otsu's,
    because Otsu's own level falls between fatty and dense tissue on dense breasts.

    Args:
        grey: uint8 HxW image.

    Returns:
        ``((x0, y0, x1, y1), mask)``: the box in px (x1, y1 exclusive) and a bool HxW mask of the
        breast. When no component covers ``MIN_BREAST_FRACTION`` of the image (an image that is
        not a mammogram, or a blank one), the box is the whole image and the mask is all True.
    """
    height, width = grey.shape
    smooth = cv2.GaussianBlur(grey, (5, 5), 0)
    otsu, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = np.where(smooth > OTSU_FRACTION * otsu, 255, 0).astype(np.uint8)
    side = max(3, int(round(OPENING_FRACTION * min(height, width))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if count < 2:
        return (0, 0, width, height), np.ones_like(grey, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < MIN_BREAST_FRACTION * height * width:
        return (0, 0, width, height), np.ones_like(grey, dtype=bool)
    component = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(component, contours, -1, 1, thickness=cv2.FILLED)
    margin = max(3, int(round(MARGIN_FRACTION * min(height, width))) * 2 + 1)
    component = cv2.dilate(component, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (margin, margin)))
    x, y, w, h = cv2.boundingRect(component)
    return (x, y, x + w, y + h), component.astype(bool)


def _breast_crop(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Blank everything outside the breast (labels, markers) and crop to the breast's box."""
    (x0, y0, x1, y1), breast = breast_box(as_grey(pixels))
    blanked = np.where(breast[..., None] if pixels.ndim == 3 else breast, pixels, 0).astype(np.uint8)
    cropped_mask = None if mask is None else mask[y0:y1, x0:x1]
    return blanked[y0:y1, x0:x1], cropped_mask


def faces_right(grey: np.ndarray) -> bool:
    """Whether the breast's chest wall is on the right of the image.

    The breast is cut off by the image edge along the chest wall, so the columns on that side are
    (nearly) all tissue, while the nipple side tapers to background. The side whose outermost
    ``EDGE_FRACTION`` of columns holds more of the breast mask (``breast_box``) is the chest
    wall (columns are counted within the breast's box, so black film margins do not matter).
    Summed intensity is less reliable: on a dense breast the bright glandular cone lies
    towards the nipple. On mini-MIAS this agrees with the left/right breast of ``Info.txt`` on
    272 of 274 images (the two others are close-ups filling the whole film).
    """
    (x0, _, x1, _), breast = breast_box(grey)
    coverage = breast[:, x0:x1].mean(axis=0)
    edge = max(1, int(round(EDGE_FRACTION * coverage.size)))
    return bool(coverage[-edge:].mean() > coverage[:edge].mean())


def _laterality_flip(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Mirror left/right so the chest wall is always on the left (left and right breasts look alike)."""
    if not faces_right(as_grey(pixels)):
        return pixels, mask
    return pixels[:, ::-1].copy(), None if mask is None else mask[:, ::-1].copy()


def _polarity(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Invert a mammogram stored with a white background (``mammogram.is_inverted``); others unchanged."""
    return normalise_polarity(as_grey(pixels)), mask


def _pectoral_removal(pixels: np.ndarray, mask: np.ndarray | None, spec: ModalitySpec):
    """Blank the pectoral muscle of an oriented MLO crop (``mammogram.pectoral_mask``; none on CC views)."""
    grey = as_grey(pixels)
    return np.where(pectoral_mask(grey), 0, grey).astype(np.uint8), mask


register_step("polarity", _polarity, view_word="polarity-normalised")
register_step("breast_crop", _breast_crop, view_word="cropped", region=breast_region)
register_step("laterality_flip", _laterality_flip, view_word="oriented")
register_step("pectoral_removal", _pectoral_removal, view_word="pectoral muscle removed")
