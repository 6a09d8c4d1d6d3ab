"""Shared fixtures: real sample patches, the registry spec, and a tiny trained bundle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "histopathology"


@pytest.fixture(scope="session")
def histo_spec():
    from bcc_model.modalities import get_modality

    return get_modality("histopathology")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*/*.png"))


TINY_TRAIN_ARGS = ["--arch", "se_resnet", "--epochs", "2", "--batch-size", "8", "--bootstrap", "50", "--verbose", "0"]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A real bundle trained for two epochs on the sample patches (fast, poor accuracy)."""
    from bcc_model.train import main

    root = tmp_path_factory.mktemp("tiny")
    out = root / "bundle"
    assert main(["--data", str(SAMPLES), "--out", str(out), "--work-dir", str(root / "runs"), *TINY_TRAIN_ARGS]) == 0
    return out
