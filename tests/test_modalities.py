"""The registry refuses per-architecture training options it cannot apply."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bcc_model.modalities import get_modality


def test_arch_training_must_name_configured_architectures_and_known_options():
    spec = get_modality("ultrasound")
    assert spec.arch_training["vgg16"]["patch_pretrain"] is False
    with pytest.raises(ValueError, match="without arch_params"):
        replace(spec, arch_training={"resnet50": {"lr": 1e-4}})
    with pytest.raises(ValueError, match="not \\['epochs'\\]"):
        replace(spec, arch_training={"vgg16": {"epochs": 3}})
