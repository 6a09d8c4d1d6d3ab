"""Greyscale whole-image augmentations: range, shape, seeding and what each one may change."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bcc_model.training.augment import AUGMENTATIONS, augment
from bcc_model.imaging.io import read_image
from bcc_model.registry import get_modality
from bcc_model.imaging.preprocess import to_model_input

from tests.conftest import ROOT

GREY = ("flip_lr", "affine", "gamma", "brightness_contrast")


@pytest.fixture(scope="module")
def mammogram() -> tf.Tensor:
    spec = get_modality("mammography")
    pixels = read_image(ROOT / "samples" / "mammography" / "malignant" / "mdb028.png").pixels
    return tf.constant(to_model_input(np.array(pixels), spec))


@pytest.mark.parametrize("name", GREY)
def test_grey_augmentations_keep_range_shape_and_are_seeded(name, mammogram):
    seed = tf.constant([7, 8], dtype=tf.int64)
    out = AUGMENTATIONS[name](mammogram, seed).numpy()
    assert out.shape == mammogram.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 255
    np.testing.assert_array_equal(out, AUGMENTATIONS[name](mammogram, seed).numpy())
    draws = [AUGMENTATIONS[name](mammogram, tf.constant([s, 1], dtype=tf.int64)).numpy() for s in range(6)]
    assert any(not np.array_equal(d, mammogram.numpy()) for d in draws), "never changed the image"


def test_affine_is_small_and_keeps_the_breast(mammogram):
    image = mammogram.numpy()
    for s in range(5):
        out = AUGMENTATIONS["affine"](mammogram, tf.constant([s, 2], dtype=tf.int64)).numpy()
        assert abs(out.mean() - image.mean()) < 0.25 * image.mean()
        assert np.corrcoef(out.ravel(), image.ravel())[0, 1] > 0.5


def test_affine_identity_draw_matches_the_formula():
    """A centred dot stays centred under rotation and zoom (only the shift moves it)."""
    image = np.zeros((41, 41, 1), np.float32)
    image[20, 20] = 255.0
    out = AUGMENTATIONS["affine"](tf.constant(image), tf.constant([1, 1], dtype=tf.int64)).numpy()[..., 0]
    row, col = np.unravel_index(np.argmax(out), out.shape)
    assert abs(row - 20) <= 0.06 * 41 + 1 and abs(col - 20) <= 0.06 * 41 + 1


def test_gamma_keeps_black_and_white():
    image = tf.constant(np.array([0.0, 64.0, 255.0], np.float32).reshape(1, 3, 1))
    for s in range(4):
        out = AUGMENTATIONS["gamma"](image, tf.constant([s, 3], dtype=tf.int64)).numpy().ravel()
        assert out[0] == 0 and out[2] == pytest.approx(255, abs=1e-3) and 0 < out[1] < 255


def test_flip_lr_only_mirrors_columns(mammogram):
    image = mammogram.numpy()
    outs = [AUGMENTATIONS["flip_lr"](mammogram, tf.constant([s, 4], dtype=tf.int64)).numpy() for s in range(8)]
    assert all(np.array_equal(o, image) or np.array_equal(o, image[:, ::-1]) for o in outs)
    assert any(np.array_equal(o, image[:, ::-1]) for o in outs)


@pytest.mark.parametrize("key", ["mammography", "ultrasound"])
def test_registry_policies_run_seeded(key, mammogram):
    names = get_modality(key).recipe.augmentation
    seed = tf.constant([3, 4], dtype=tf.int64)
    a, b = augment(mammogram, seed, names).numpy(), augment(mammogram, seed, names).numpy()
    np.testing.assert_array_equal(a, b)
    assert 0 <= a.min() and a.max() <= 255
    assert "flip" not in names and "rot90" not in names, "up/down flips and 90° turns are not anatomical"


def test_strong_hed_jitter_moves_stain_colours_further_than_the_light_setting(sample_files):
    """The two stain-augmentation strengths that cross-validation compares differ as named, and stay seeded."""
    patch = tf.constant(read_image(sample_files[0]).pixels.astype(np.float32))
    seeds = [tf.constant([s, 11], dtype=tf.int64) for s in range(12)]
    change = {name: np.mean([np.abs(AUGMENTATIONS[name](patch, seed).numpy() - patch.numpy()).mean() for seed in seeds])
              for name in ("hed_jitter", "hed_jitter_strong")}
    assert change["hed_jitter"] > 0.5 and change["hed_jitter_strong"] > 2.5 * change["hed_jitter"]
    out = AUGMENTATIONS["hed_jitter_strong"](patch, seeds[0]).numpy()
    assert 0 <= out.min() and out.max() <= 255
    np.testing.assert_array_equal(out, AUGMENTATIONS["hed_jitter_strong"](patch, seeds[0]).numpy())
