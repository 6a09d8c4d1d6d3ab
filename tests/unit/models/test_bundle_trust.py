"""Weights you can trust: a damaged bundle is refused with the fix, a foreign one is marked unverified."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from bcc_model import RESEARCH_USE_NOTICE
from bcc_model.models.bundle import BundleTampered, BundleUnverified, file_sha256, is_shipped, load_bundle, save_model
from bcc_model.registry import MODALITIES, get_modality
from bcc_model.reporting.report import build_report_html
from bcc_model.cli.predict import main as predict_main
from tests.apptest_helpers import run_app
from tests.support.cli import run_main

HISTO = get_modality("histopathology")


@pytest.mark.parametrize("key", sorted(MODALITIES))
def test_every_shipped_bundle_matches_its_pinned_hashes(key):
    spec = get_modality(key)
    assert spec.shipped_files, "every shipped bundle is pinned in the registry"
    assert is_shipped(spec, spec.bundle_dir)


@pytest.fixture
def weights(tmp_path):
    """A weights folder holding a copy of the shipped histopathology bundle."""
    root = tmp_path / "weights"
    shutil.copytree(HISTO.bundle_dir, root / HISTO.key)
    return root


@pytest.fixture
def tampered(weights):
    """One flipped byte inside model.keras: refused, never run."""
    path = weights / HISTO.key / "model.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return weights


@pytest.fixture
def rezipped(weights):
    """One weight altered, the file re-saved and model.json's hash updated to match: intact, but not shipped."""
    folder = weights / HISTO.key
    bundle = load_bundle(HISTO, folder)  # still the shipped files here
    layer = next(layer for layer in bundle.model.layers if layer.get_weights())
    values = layer.get_weights()
    values[0] = values[0] * 1.01
    layer.set_weights(values)
    save_model(bundle.model, folder / "model.keras")
    info = json.loads((folder / "model.json").read_text())
    info["model_sha256"] = file_sha256(folder / "model.keras")
    (folder / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    return weights


def _predict(weights, sample, *flags: str) -> subprocess.CompletedProcess:
    return run_main(predict_main, *flags, "--weights", weights / HISTO.key, sample)


def test_a_flipped_byte_is_one_clear_line_with_the_fix(tampered, sample_files):
    with pytest.raises(BundleTampered, match="git checkout -- weights/histopathology"):
        load_bundle(HISTO, tampered / HISTO.key)
    result = _predict(tampered, sample_files[0])
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == result.stderr.splitlines()
    assert "restore the shipped files" in result.stderr and "retraining is not needed" in result.stderr


def test_a_rezipped_bundle_is_refused_unless_asked_for_then_unverified_everywhere(rezipped, sample_files):
    with pytest.raises(BundleUnverified, match="--allow-unverified"):
        load_bundle(HISTO, rezipped / HISTO.key)
    refused = _predict(rezipped, sample_files[0])
    assert refused.returncode == 2 and refused.stdout == "" and "not the shipped" in refused.stderr
    assert "Traceback" not in refused.stderr
    bundle = load_bundle(HISTO, rezipped / HISTO.key, allow_unverified=True)
    assert not bundle.verified and load_bundle(HISTO).verified
    assert bundle.short_sha == file_sha256(rezipped / HISTO.key / "model.keras")[:12], "its own hash is its version"
    result = _predict(rezipped, sample_files[0], "--allow-unverified")
    assert result.returncode == 0 and result.stdout.rstrip().endswith("[unverified model]")
    assert "unverified" in result.stderr
    html = build_report_html([], model_info=bundle.info, generated_at=datetime.now(timezone.utc),
                             notice=RESEARCH_USE_NOTICE, verified=bundle.verified)
    assert "unverified: not the shipped bundle" in html


def test_the_app_never_presents_a_refused_bundle_as_the_active_model(tampered, monkeypatch):
    monkeypatch.setenv("BCC_WEIGHTS_DIR", str(tampered))
    at = run_app()
    sidebar = "\n".join(m.value for m in at.sidebar.markdown)
    assert "seresnet" not in sidebar, "the refused bundle's name and metrics are not shown as active"
    assert any("refused" in e.value and "git checkout" in e.value for e in at.sidebar.error)
    assert any("restore the shipped files" in e.value for e in at.main.error)
    assert not at.file_uploader


def test_the_app_refuses_an_unverified_bundle_unless_its_setting_allows_it(rezipped, monkeypatch):
    monkeypatch.setenv("BCC_WEIGHTS_DIR", str(rezipped))
    at = run_app()
    assert any("refused" in e.value and "ALLOW" in e.value and "UNVERIFIED" in e.value for e in at.sidebar.error)
    assert not at.file_uploader
    monkeypatch.setenv("BCC_ALLOW_UNVERIFIED", "1")
    at = run_app()
    assert any("Unverified bundle" in w.value for w in at.sidebar.warning)
