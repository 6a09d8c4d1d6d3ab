"""A slide's shares: flagged, expected with a block-bootstrap interval, and indeterminate."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from bcc_model.analysis.shares import BLOCK_TILES, share_summary
from bcc_model.cli.predict import main as predict_main
from bcc_model.imaging.io import read_image
from tests.support.cli import run_main


def _grid(n: int, side: int = 50) -> np.ndarray:
    ys, xs = np.divmod(np.arange(n * n), n)
    return np.stack([xs * side, ys * side, xs * side + side, ys * side + side], axis=1)


def test_expected_share_is_the_mean_probability_and_differs_from_the_flagged_share():
    boxes = _grid(16)
    p = np.full(len(boxes), 0.55)  # every tile just above a 0.5 threshold, inside a 0.4-0.6 band
    shares = share_summary(p, boxes, 0.5, (0.4, 0.6))
    assert shares.flagged == 1.0 and shares.expected == pytest.approx(0.55) and shares.indeterminate == 1.0
    assert shares.n_tiles == 256 and shares.interval is None, "4 blocks: too few for an interval, none claimed"
    assert "no interval" in shares.describe("IDC")
    wider = share_summary(np.full(len(_grid(24)), 0.55), _grid(24), 0.5, (0.4, 0.6))  # 9 blocks
    assert wider.interval == pytest.approx((0.55, 0.55)) and "95 % interval" in wider.describe("IDC")
    assert share_summary(np.zeros(0), np.zeros((0, 4)), 0.5, (0.4, 0.6)) is None


def test_the_interval_counts_correlated_blocks_not_tiles():
    boxes = _grid(32)
    block = (boxes[:, 0] // (50 * BLOCK_TILES) + boxes[:, 1] // (50 * BLOCK_TILES)) % 2  # a checkerboard of blocks
    clustered = share_summary(block.astype(float), boxes, 0.5, (0.5, 0.5))
    rng = np.random.default_rng(0)
    scattered = share_summary(rng.permutation(block).astype(float), boxes, 0.5, (0.5, 0.5))
    width = lambda s: s.interval[1] - s.interval[0]  # noqa: E731
    assert clustered.expected == scattered.expected == 0.5
    assert width(clustered) > 3 * width(scattered), "16 blocks are 16 draws, not 1,024"


def test_slides_csv_and_the_row_give_every_share(tmp_path, sample_files):
    patches = [read_image(path).pixels for path in sample_files[:16]]
    field = np.concatenate([np.concatenate(patches[r * 4:(r + 1) * 4], axis=1) for r in range(4)], axis=0)
    cv2.imwrite(str(tmp_path / "field.png"), cv2.cvtColor(field, cv2.COLOR_RGB2BGR))
    result = run_main(predict_main, tmp_path / "field.png", "--region", "--mpp", "4", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(tmp_path / "out" / "slides.csv")
    for column in ("malignant_share", "expected_malignant_share", "indeterminate_share"):
        assert summary[column].between(0, 1).all(), column
    # 16 tiles fill one 8x8-tile block: no interval is claimed (a zero-width one would read as certainty).
    assert summary[["expected_share_ci95_low", "expected_share_ci95_high"]].isna().all().all()
    rows = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert rows["warnings"].str.contains("expected IDC share").all()  # display names
    assert rows["warnings"].str.contains("no interval").all()
