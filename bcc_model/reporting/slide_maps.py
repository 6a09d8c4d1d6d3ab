"""Truth beside prediction for a rebuilt slide: the picture of slide validation.

Left, every labelled patch coloured by its truth (IDC = 1); right, region mode's P(IDC) map;
the same colour scale on both. On blank glass for the model card (a bundle carries no tissue
pixels of the research data), or over the slide for a local look (``scripts/slide_validation.py``).
"""

from __future__ import annotations

import numpy as np

from bcc_model.analysis.region import RegionResult
from bcc_model.datasets.slides import RebuiltSlide
from bcc_model.explain.overlay import encode_png, map_over
from bcc_model.reporting.map_frame import framed_map

__all__ = ["truth_beside_map"]

_GAP_PX = 20


def truth_beside_map(slide: RebuiltSlide, result: RegionResult, *, tissue: bool = True, label: str = "IDC",
                     footer: tuple[str, ...] = ()) -> bytes:
    """PNG bytes: truth map | gap | model map, over the slide (``tissue``) or over white glass, with the
    shared colour bar, a title and ``footer`` (model, version, notice) around them."""
    truth = np.full(slide.rgb.shape[:2], np.nan, np.float32)
    for (x0, y0, x1, y1), value in zip(slide.boxes.tolist(), slide.labels.tolist()):
        truth[y0:y1, x0:x1] = value
    background = slide.rgb if tissue else np.full_like(slide.rgb, 255)
    opacity = 0.4 if tissue else 1.0
    left, right = (map_over(background, values, opacity=opacity) for values in (truth, result.prob_map))
    height = min(left.shape[0], right.shape[0])
    both = np.concatenate([left[:height], np.full((height, _GAP_PX, 3), 255, np.uint8), right[:height]], axis=1)
    return encode_png(framed_map(both, title=f"Left: truth ({label} = 1). Right: the model's P({label}) per tile.",
                                 bar_label=f"P({label})", legend=["Uncoloured: no labelled patch / not analysed."],
                                 footer=footer))
