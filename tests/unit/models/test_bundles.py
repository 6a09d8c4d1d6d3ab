"""Every shipped image bundle loads, verifies and classifies its own sample images.

Accuracy on a handful of samples says little, so it is reported (``-rA`` or ``-s`` shows it),
not asserted; the assertions are that each sample gets a valid, calibrated prediction.
"""

from __future__ import annotations

import pandas as pd
import pytest

from bcc_model.registry import MODALITIES
from tests.support.bundles import shipped_bundle

SHIPPED = [spec for spec in MODALITIES.values()
           if spec.kind == "image" and (spec.bundle_dir / "model.keras").is_file() and spec.sample_dir.is_dir()]


@pytest.mark.skipif(not SHIPPED, reason="no image bundle in weights/")
@pytest.mark.parametrize("spec", SHIPPED, ids=[spec.key for spec in SHIPPED])
def test_shipped_bundle_classifies_its_samples(spec, capsys):
    from bcc_model.imaging.io import read_image
    from bcc_model.analysis.predictions import predict_images

    bundle = shipped_bundle(spec.key)
    table = pd.read_csv(spec.sample_dir / "labels.csv", dtype=str)
    images = [read_image(spec.sample_dir / file).pixels for file in table["file"]]
    results = predict_images(bundle, images)
    assert len(results) == len(table)
    for result in results:
        assert result.label in spec.labels
        assert set(result.probabilities) == set(spec.labels)
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    correct = sum(result.label == label for result, label in zip(results, table["label"]))
    with capsys.disabled():
        print(f"\n{spec.key}: {bundle.info['name']} classified {correct}/{len(table)} samples correctly")
    assert correct >= 1, "a shipped bundle should get at least one of its own samples right"
