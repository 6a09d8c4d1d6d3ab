"""The registry refuses per-architecture training options it cannot apply."""

from __future__ import annotations


import pytest

from bcc_model.registry import get_modality


def test_arch_training_must_name_configured_architectures_and_known_options():
    spec = get_modality("ultrasound")
    assert spec.recipe.arch_training["vgg16"]["patch_pretrain"] is False
    with pytest.raises(ValueError, match="without arch_params"):
        spec.with_recipe(arch_training={"resnet50": {"lr": 1e-4}})
    with pytest.raises(ValueError, match="not \\['epochs'\\]"):
        spec.with_recipe(arch_training={"vgg16": {"epochs": 3}})
