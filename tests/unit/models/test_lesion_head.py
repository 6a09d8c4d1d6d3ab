"""Lesion-map supervision: the auxiliary head, mask-following augmentation and the mask targets.

Real sample ultrasound images with their real BUSI masks, and small real networks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from bcc_model.models.architectures import build_model
from bcc_model.training.augment import GEOMETRIC, augment
from bcc_model.training.tfdata import LesionTargets, make_dataset
from bcc_model.datasets.folders import discover, load_images
from bcc_model.models.lesion_head import (CLASS_OUTPUT, LESION_OUTPUT, add_lesion_head, attach_lesion_head, canonical_history,
                                   classifier_only, lesion_grid, lesion_head_only, lesion_map_model, lesion_maps)
from bcc_model.datasets.lesions import model_space_masks
from bcc_model.registry import get_modality
from bcc_model.training.fit import compile_model

from tests.conftest import ROOT

SIZE = 64
SPEC = replace(get_modality("ultrasound"), input_size=SIZE)
SMALL_SE_RESNET = {"widths": (16, 16, 16, 16), "blocks_per_stage": (1, 1, 1, 1), "se_ratio": 4, "dropout": 0.0,
                   "stem_strides": 2, "stem_pool": True, "bn_momentum": 0.9}


@pytest.fixture(scope="module")
def samples():
    """Sample ultrasound images at 64 px with their model-space masks (None: unknown geometry)."""
    root = ROOT / "samples" / "ultrasound"
    table = discover(root, SPEC)
    labels = np.array([SPEC.labels.index(label) for label in table["label"]])
    return load_images(table, root, SPEC), labels, model_space_masks(table, root, SPEC)


@pytest.fixture(scope="module")
def classifier():
    return build_model("se_resnet", SPEC.input_shape, len(SPEC.labels), **SMALL_SE_RESNET)


def test_head_adds_a_lesion_map_on_the_cam_grid_and_the_bundle_drops_it(classifier):
    model = add_lesion_head(classifier)
    grid = lesion_grid(model)
    assert grid == SIZE // 32 and model.get_layer("last_conv").output.shape[1] == grid
    out = model(np.zeros((2, *SPEC.input_shape), np.float32))
    assert out[CLASS_OUTPUT].shape == (2, 3) and out[LESION_OUTPUT].shape == (2, grid * grid)
    plain = classifier_only(model)
    assert len(plain.outputs) == 1 and "lesion_conv" not in [layer.name for layer in plain.layers]
    assert all(not hasattr(layer, "layers") or not layer.layers for layer in plain.layers), "flat for tf-keras-vis"
    assert classifier_only(classifier) is classifier


def test_the_stored_head_reattached_to_the_classifier_gives_the_trained_map(classifier, samples, tmp_path):
    import keras

    model = add_lesion_head(classifier)
    conv = model.get_layer("lesion_conv")
    kernel, bias = conv.get_weights()
    conv.set_weights([np.random.default_rng(0).normal(size=kernel.shape).astype(np.float32), bias + 0.3])
    images = samples[0]
    trained = lesion_maps(lesion_map_model(model), images)
    lesion_head_only(model).save(tmp_path / "head.keras")
    head = keras.models.load_model(tmp_path / "head.keras", compile=False)
    assert head.count_params() == kernel.size + bias.size, "only the 1x1 convolution is stored"
    np.testing.assert_allclose(lesion_maps(attach_lesion_head(classifier_only(model), head), images), trained,
                               rtol=1e-5, atol=1e-6)


def test_a_head_of_another_network_is_refused(classifier):
    wider = build_model("se_resnet", SPEC.input_shape, len(SPEC.labels), **{**SMALL_SE_RESNET, "widths": (16, 16, 16, 24)})
    with pytest.raises(ValueError, match="expects features of shape"):
        attach_lesion_head(classifier, lesion_head_only(add_lesion_head(wider)))


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_geometric_augmentation_moves_the_mask_with_the_image(name):
    rng = np.random.default_rng(0)
    mask = (rng.random((SIZE, SIZE, 1)) > 0.7).astype(np.float32)
    image = tf.constant(mask * 255.0)
    changed = 0
    for s in range(6):
        seed = tf.constant([s, 3], dtype=tf.int64)
        out_image, out_mask = augment(image, seed, (name,), tf.constant(mask))
        np.testing.assert_allclose(out_image.numpy(), out_mask.numpy() * 255.0, atol=1e-3)
        np.testing.assert_array_equal(out_image.numpy(), augment(image, seed, (name,)).numpy())
        changed += not np.array_equal(out_mask.numpy(), mask)
    assert changed, "the transform never moved anything"


def test_photometric_augmentation_leaves_the_mask_alone(samples):
    images, _, masks = samples
    mask = tf.constant(masks[1][..., None].astype(np.float32))
    _, out_mask = augment(tf.cast(images[1], tf.float32), tf.constant([1, 2], tf.int64),
                          ("gamma", "brightness_contrast"), mask)
    np.testing.assert_array_equal(out_mask.numpy(), mask.numpy())


def test_dataset_targets_pool_the_mask_to_the_grid_and_weight_unknown_geometry_out(samples):
    images, labels, masks = samples
    masks = [*masks[:-1], None]
    grid = 4
    targets = LesionTargets.from_masks(masks, SIZE, grid)
    ds = make_dataset(images, labels, SPEC, batch_size=len(images), training=False, seed=0, lesion=targets)
    x, y, weights = next(iter(ds))
    cells = y[LESION_OUTPUT].numpy().reshape(-1, grid, grid)
    for i, mask in enumerate(masks):
        expected = np.zeros((grid, grid)) if mask is None else \
            mask.reshape(grid, SIZE // grid, grid, SIZE // grid).any(axis=(1, 3))
        np.testing.assert_array_equal(cells[i], expected)
    np.testing.assert_array_equal(weights[LESION_OUTPUT].numpy(), [m is not None for m in masks])
    assert weights[CLASS_OUTPUT].numpy().tolist() == [1.0] * len(images), "validation is not class-weighted"
    assert any(cells[i].any() for i in range(len(masks)) if labels[i] != 0), "a lesion image has lesion cells"
    np.testing.assert_array_equal(y[CLASS_OUTPUT].numpy().argmax(1), labels)
    np.testing.assert_array_equal(x.numpy(), images.astype(np.float32))


@pytest.mark.e2e
def test_training_with_the_head_learns_the_map_and_logs_single_output_names(samples):
    images, labels, masks = samples
    tf.keras.utils.set_random_seed(0)  # before building: the weights must not depend on earlier tests
    classifier = build_model("se_resnet", SPEC.input_shape, len(SPEC.labels), **SMALL_SE_RESNET)
    model = compile_model(add_lesion_head(classifier), 3e-3, 1.0)
    targets = LesionTargets.from_masks(masks, SIZE, lesion_grid(model))
    ds = make_dataset(images, labels, SPEC, batch_size=4, training=True, seed=0, lesion=targets)
    history = model.fit(ds, validation_data=make_dataset(images, labels, SPEC, batch_size=4, training=False, seed=0,
                                                        lesion=targets), epochs=8, verbose=0).history
    lesion_loss = history[f"{LESION_OUTPUT}_loss"]
    assert np.mean(lesion_loss[-3:]) < lesion_loss[0], lesion_loss
    table = canonical_history(pd.DataFrame(history).assign(epoch=range(8)))
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "lesion_loss", "val_lesion_loss", "total_loss"} <= \
        set(table.columns)
    np.testing.assert_allclose(table["val_loss"], history[f"val_{CLASS_OUTPUT}_loss"])
    plain = pd.DataFrame({"loss": [1.0], "val_loss": [1.0]})
    assert canonical_history(plain) is plain
