"""Macenko stain normalisation on real H&E patches: reference colours out, glass left alone, lab shifts undone."""

from __future__ import annotations

import numpy as np
import pytest

from bcc_model.imaging.io import read_image
from bcc_model.imaging.preprocess import to_model_input
from bcc_model.imaging.stain import REFERENCE_STAINS, macenko_normalise, stain_vectors


@pytest.fixture(scope="module")
def patches(sample_files) -> list[np.ndarray]:
    return [read_image(path).pixels for path in sample_files]


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))))


def _shift_stains(rgb: np.ndarray, hue: float) -> np.ndarray:
    """The same tissue as another lab might stain it: optical densities through a rotated colour basis."""
    od = -np.log((rgb.astype(np.float64) + 1.0) / 255.0)
    mix = np.array([[1.0, hue, 0.0], [0.0, 1.0 - hue, hue], [hue, 0.0, 1.0]])
    return np.clip(255.0 * np.exp(-(od @ mix.T)) - 1.0, 0, 255).astype(np.uint8)


def test_normalised_patches_carry_the_reference_stains(patches):
    fitted = 0
    for rgb in patches:
        out = macenko_normalise(rgb)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        vectors = stain_vectors(out)
        if stain_vectors(rgb) is None:
            assert np.array_equal(out, rgb), "an image without fitted stains must come back unchanged"
            continue
        fitted += 1
        assert vectors is not None
        assert _angle(vectors[:, 0], REFERENCE_STAINS[:, 0]) < 12 and _angle(vectors[:, 1], REFERENCE_STAINS[:, 1]) < 12
    assert fitted >= len(patches) // 2


def test_glass_and_flat_images_are_returned_unchanged():
    glass = np.full((50, 50, 3), 242, np.uint8)
    assert stain_vectors(glass) is None and np.array_equal(macenko_normalise(glass), glass)
    grey = np.full((50, 50, 3), 120, np.uint8)
    assert np.array_equal(macenko_normalise(grey), grey)


def test_a_lab_colour_shift_is_mostly_undone(patches):
    """Shifted stains move the raw pixels far; after normalisation the two versions are much closer."""
    raw_gaps, normalised_gaps = [], []
    for rgb in patches:
        if stain_vectors(rgb) is None:
            continue
        shifted = _shift_stains(rgb, 0.25)
        raw_gaps.append(np.abs(shifted.astype(float) - rgb).mean())
        normalised_gaps.append(np.abs(macenko_normalise(shifted).astype(float) - macenko_normalise(rgb)).mean())
    assert np.median(normalised_gaps) < 0.6 * np.median(raw_gaps)


def test_the_macenko_recipe_normalises_in_preprocessing_for_training_and_use(histo_spec, patches):
    _, recipe = histo_spec.candidate("se_resnet+macenko")
    assert recipe.preprocessing[-1] == "stain_normalise"
    rgb = next(p for p in patches if stain_vectors(p) is not None)
    assert np.array_equal(to_model_input(rgb, recipe).astype(np.uint8), macenko_normalise(rgb))
    arch, plain = histo_spec.candidate("se_resnet")
    assert arch == "se_resnet" and plain.preprocessing == histo_spec.preprocessing
    with pytest.raises(KeyError, match="valid"):
        histo_spec.candidate("no_such_recipe")


def test_a_bundle_runs_with_the_preprocessing_it_was_trained_with(tiny_bundle, tmp_path, histo_spec, patches):
    """A bundle of the Macenko recipe normalises at prediction time whatever the registry's default says."""
    import json
    import shutil

    from bcc_model.models.bundle import BundleError, load_bundle

    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    info = json.loads((folder / "model.json").read_text())
    info["preprocessing"] = ["to_rgb", "resize", "stain_normalise"]
    (folder / "model.json").write_text(json.dumps(info))
    bundle = load_bundle(histo_spec, folder, allow_unverified=True)
    assert bundle.spec.preprocessing[-1] == "stain_normalise" and "stain_normalise" not in histo_spec.preprocessing
    rgb = next(p for p in patches if stain_vectors(p) is not None)
    assert np.array_equal(to_model_input(rgb, bundle.spec).astype(np.uint8), macenko_normalise(rgb))
    info["preprocessing"] = ["to_rgb", "resize", "a_step_from_the_future"]
    (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match="a_step_from_the_future"):
        load_bundle(histo_spec, folder, allow_unverified=True)
