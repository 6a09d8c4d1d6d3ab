"""A downloaded map stands alone: title, colour bar, legend, model, version and notice drawn into the PNG."""

from __future__ import annotations

import numpy as np

from bcc_model.explain.overlay import enlarge, map_over
from bcc_model.reporting.map_frame import framed_map


def test_the_frame_adds_a_title_a_colour_bar_and_text_rows_around_the_picture():
    picture = map_over(np.full((300, 400, 3), 220, np.uint8), np.full((300, 400), 0.8, np.float32))
    framed = framed_map(picture, title="P(IDC) per tissue tile", bar_label="P(IDC)", legend=["a", "b"],
                        footer=["Model x, version abc", "Research use only"])
    assert framed.dtype == np.uint8 and framed.shape[0] > 300 + 4 * 20 and framed.shape[1] > 400 + 60
    right = framed[:, -60:]
    colours = {tuple(c) for c in right.reshape(-1, 3)}
    assert len(colours) > 50, "a colour bar (a gradient) sits right of the map"
    below = framed[-4 * 20:, :200]
    assert (below < 128).any(), "text rows below the picture"


def test_an_enlarged_patch_gets_a_micrometre_bar_not_um():
    big = enlarge(np.full((50, 50, 3), 200, np.uint8), 260, mpp=4.0)
    assert big.shape == (300, 300, 3) and (big[-30:, :120] == 0).any()
