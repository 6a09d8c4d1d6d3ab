"""A tiny real training run of the pretrained VGG16 on ultrasound samples, and its per-architecture options.

The six sample ultrasound images (with their BUSI masks) are copied under five pseudo-patients
so the run can split them; it checks plumbing, not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bcc_model.models.bundle import load_bundle, read_bundle_info
from bcc_model.registry import get_modality
from bcc_model.models.pretrained import source_record
from bcc_model.cli.train import config_from_argv
from bcc_model.cli.train import main as train_main

from tests.conftest import ROOT, replicate_folder

SAMPLES = ROOT / "samples" / "ultrasound"
REPLICAS = 5


@pytest.fixture(scope="module")
def replicated(tmp_path_factory) -> Path:
    return replicate_folder(SAMPLES, tmp_path_factory.mktemp("us_data"), REPLICAS)


def test_registry_training_options_apply_to_their_architecture_only():
    args = config_from_argv(["--modality", "ultrasound", "--lr", "0.01", "--patch-pretrain"])
    spec = get_modality("ultrasound")
    vgg, se_resnet = args.for_arch(spec, "vgg16"), args.for_arch(spec, "se_resnet")
    assert (vgg.lr, vgg.patch_pretrain) == (1e-4, False)
    assert (se_resnet.lr, se_resnet.patch_pretrain) == (0.01, True)
    assert args.lr == 0.01, "the command line's options stay as given"


@pytest.mark.e2e
def test_tiny_vgg16_run_records_its_pinned_starting_weights(replicated, tmp_path):
    out = tmp_path / "bundle"
    assert train_main(["--modality", "ultrasound", "--data", str(replicated), "--arch", "vgg16", "--image-size", "32",
                       "--epochs", "1", "--batch-size", "8", "--bootstrap", "20", "--verbose", "0",
                       "--out", str(out), "--work-dir", str(tmp_path / "runs")]) == 0
    info, _ = read_bundle_info(out)
    info = info.to_json()
    assert info["architecture"]["name"] == "vgg16"
    assert info["architecture"]["initial_weights"] == source_record()
    assert info["training"]["lr"] == 1e-4 and "pretraining" not in info, "VGG16 skips patch pre-training"
    assert "--lr" not in info["training"]["command"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "Initial weights" in card and source_record()["wheel_sha256"] in card
    bundle = load_bundle(get_modality("ultrasound"), out, allow_unverified=True)
    assert bundle.lesion_map is not None and bundle.model.get_layer("last_conv").output.shape[1] == 32 // 8


def test_training_stops_before_loading_data_when_the_pinned_weights_are_missing(replicated, tmp_path, monkeypatch,
                                                                                 capsys):
    monkeypatch.setenv("BCC_PRETRAINED_DIR", str(tmp_path / "empty"))
    assert train_main(["--modality", "ultrasound", "--data", str(replicated), "--arch", "se_resnet", "vgg16",
                       "--out", str(tmp_path / "bundle"), "--work-dir", str(tmp_path / "runs")]) == 2
    assert "python -m bcc_model.pretrained" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "bundle").exists()
