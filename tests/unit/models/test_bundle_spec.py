"""BundleSpec: the one reader and writer of model.json (validated, byte-for-byte round trip)."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from bcc_model.registry import MODALITIES, get_modality
from bcc_model.models.bundle import BundleError, read_bundle_info
from bcc_model.models.spec import BundleSpec, BundleSpecError

SHIPPED = [spec for spec in MODALITIES.values() if (spec.bundle_dir / "model.json").is_file()]


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda s: s.key)
def test_shipped_model_json_round_trips_byte_for_byte(spec, tmp_path):
    meta = BundleSpec.read(spec.bundle_dir / "model.json")
    meta.write(tmp_path / "model.json")
    assert (tmp_path / "model.json").read_bytes() == (spec.bundle_dir / "model.json").read_bytes()
    assert meta.modality == spec.key and meta.labels == spec.labels
    assert meta.positive_label == spec.positive_label


def test_cam_layer_is_one_recorded_field():
    meta = BundleSpec.read(get_modality("ultrasound").bundle_dir / "model.json")
    assert meta.cam_layer == meta.architecture.cam_layer == meta.to_json()["architecture"]["cam_layer"]


@pytest.fixture
def raw() -> dict:
    return json.loads((get_modality("histopathology").bundle_dir / "model.json").read_text())


@pytest.mark.parametrize("path, value, named", [
    (("decision", "threshold"), 1.5, "decision.threshold"),
    (("decision", "indeterminate_band"), [0.7, 0.2], "decision.indeterminate_band"),
    (("calibration", "temperature"), -1, "calibration.temperature"),
    (("labels",), "benign", "labels"),
    (("architecture", "cam_layer"), 3, "architecture.cam_layer"),
    (("model_sha256",), "abc", "model_sha256"),
    (("input_shape",), [50, -1, 3], "input_shape"),
    (("test_time_flips",), ["diagonal"], "test_time_flips"),
])
def test_a_bad_field_is_refused_by_name(raw, path, value, named):
    broken = copy.deepcopy(raw)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(BundleSpecError, match=f"'{named}'"):
        BundleSpec.from_json(broken)


def test_missing_field_and_wrong_version_are_named(raw):
    missing = {k: v for k, v in raw.items() if k != "calibration"}
    with pytest.raises(BundleSpecError, match="'calibration'"):
        BundleSpec.from_json(missing)
    with pytest.raises(BundleSpecError, match="format_version 99"):
        BundleSpec.from_json({**raw, "format_version": 99})
    with pytest.raises(BundleSpecError, match="positive_label"):
        BundleSpec.from_json({**raw, "positive_label": "tumour"})


def test_a_bundle_with_an_invalid_model_json_is_refused_with_the_field(raw, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(get_modality("histopathology").bundle_dir, folder)
    raw["decision"]["threshold"] = "high"
    (folder / "model.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="decision.threshold"):
        read_bundle_info(folder)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle_info(folder)


def test_spec_is_read_only(raw):
    meta = BundleSpec.from_json(raw)
    with pytest.raises(TypeError):
        meta.training["seed"] = 1  # shared between app sessions: nobody may change it
    assert meta.to_json() == raw


def test_test_time_flips_round_trip_and_are_absent_when_unused(raw):
    flipped = BundleSpec.from_json({**raw, "test_time_flips": ["vertical"]})
    assert flipped.test_time_flips == ("vertical",) and flipped.to_json()["test_time_flips"] == ["vertical"]
    assert "test_time_flips" not in BundleSpec.from_json(raw).to_json()
