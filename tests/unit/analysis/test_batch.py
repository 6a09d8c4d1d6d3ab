"""Batches, whole slides and exports: the predict command line over folders, zips and pyramidal TIFFs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import import_module

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile

from bcc_model.analysis.predictions import calibrated_probabilities
from bcc_model.analysis.wsi import analyse_slide
from bcc_model.imaging.io import read_image
from bcc_model.imaging.preprocess import to_model_batch
from bcc_model.imaging.wsi import open_slide
from bcc_model.registry import PROJECT_ROOT
from bcc_model.cli.predict import main as predict_main
from bcc_model.reporting.tilemaps import box_of_feature
from tests.support.cli import run_main
from tests.support.bundles import shipped_bundle

SLIDE_MPP = 1.0  # the generated slide's µm per pixel: tiles of 50 px at 4 µm/px are 200 px wide


def _subprocess_cli(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it: the smoke test and the Ray engine (its own processes) use this."""
    return subprocess.run([sys.executable, "-m", "bcc_model.predict", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT)


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``predict.main`` in this process: the same exit status and output without a new TensorFlow."""
    return run_main(predict_main, *args)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory, sample_files):
    """A pyramidal tiled TIFF (levels 1 and 4) of 16 real patches on glass, at 1 µm/px in its metadata."""
    patches = [read_image(path).pixels for path in sample_files[:16]]
    grid = np.concatenate([np.concatenate(patches[r * 4:(r + 1) * 4], axis=1) for r in range(4)], axis=0)
    canvas = np.full((300, 300, 3), 245, np.uint8)
    canvas[50:250, 50:250] = grid  # at the model's 4 µm/px
    full = cv2.resize(canvas, (1200, 1200), interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("slide") / "slide.tiff"
    with tifffile.TiffWriter(path) as tif:
        tif.write(full, tile=(256, 256), photometric="rgb", resolution=(1e4 / SLIDE_MPP,) * 2,
                  resolutionunit="CENTIMETER", compression="deflate")
        tif.write(full[::4, ::4].copy(), tile=(256, 256), photometric="rgb", subfiletype=1,
                  resolution=(1e4 / (4 * SLIDE_MPP),) * 2, resolutionunit="CENTIMETER", compression="deflate")
    return path


@pytest.mark.e2e
def test_folders_zips_and_bad_files_are_one_row_each(tmp_path, sample_files):
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    for path in sample_files[:3]:
        shutil.copy(path, folder / "nested" / path.name)
    with zipfile.ZipFile(folder / "more.zip", "w") as archive:
        for path in sample_files[3:5]:
            archive.write(path, f"../../{path.name}")  # a hostile member name: only ever a label
    (folder / "notes.png").write_text("not an image")
    out = tmp_path / "out"
    result = _subprocess_cli(str(folder), "--out", str(out), "--heatmaps")
    assert result.returncode == 1, result.stderr  # one file failed
    table = pd.read_csv(out / "predictions.csv")
    rows = json.loads((out / "predictions.json").read_text())
    assert len(table) == len(rows) == 6
    assert table["status"].tolist().count("error") == 1
    assert table.loc[table["status"] == "error", "error"].str.contains("not an image").all()
    assert {"model", "model_version", "provenance", "P(IDC)", "reason", "warnings", "conformal_set",
            "set_level"} <= set(table.columns)
    ok = table["status"] == "ok"
    assert (table.loc[ok, "set_level"] == 0.9).all() and table.loc[ok, "conformal_set"].notna().all()
    assert len(list((out / "heatmaps").glob("*.png"))) == 5
    assert not (tmp_path.parent / sample_files[3].name).exists(), "zip members are never extracted"
    assert "Traceback" not in result.stderr


def test_a_pyramidal_slide_gives_tile_maps_for_qupath(tmp_path, slide_path, histo_spec):
    out = tmp_path / "out"
    result = _cli("--region", str(slide_path), "--out", str(out), "--level", "0.95")
    assert result.returncode == 0, result.stderr
    tiles = pd.read_csv(next((out / "tiles").glob("*.tiles.csv")), keep_default_na=False)
    bundle = shipped_bundle(histo_spec.key)
    # Display names, the decision word, its threshold and the model's identity travel with every tile.
    assert list(tiles.columns) == ["x0", "y0", "x1", "y1", "P(no IDC)", "P(IDC)", "decision", "threshold", "model",
                                   "model_version", "caution"]
    assert (tiles["model_version"] == bundle.short_sha).all() and (tiles["threshold"] == round(bundle.threshold, 4)).all()
    assert len(tiles) > 0 and ((tiles.x1 - tiles.x0) == 200).all(), "tiles are 50 px at 4 µm/px, in level-0 px"
    features = json.loads(next((out / "tiles").glob("*.geojson")).read_text())["features"]
    assert [box_of_feature(f) for f in features] == [tuple(row) for row in tiles[["x0", "y0", "x1", "y1"]].values]
    names = [f["properties"]["classification"]["name"] for f in features]
    assert names == tiles["decision"].tolist() and set(names) <= {"no IDC", "IDC", "indeterminate"}
    low, high = bundle.band_at(0.95)  # the 95 % set's band marks the undecided tiles
    for feature, p in zip(features, tiles["P(IDC)"]):
        properties = feature["properties"]
        assert properties["conformal_level"] == 0.95
        undecided = properties["classification"]["name"] == "indeterminate"
        assert undecided == (low <= p < high) or abs(p - low) < 1e-5 or abs(p - high) < 1e-5
        assert properties["conformal_set"] == ("no IDC or IDC" if undecided else properties["classification"]["name"])
    assert next((out / "tiles").glob("*.heatmap.png")).stat().st_size > 0
    summary = pd.read_csv(out / "slides.csv")
    assert summary.loc[0, "tissue_tiles"] == len(tiles)


def test_slide_tiles_match_the_patch_model_and_reads_stay_small(slide_path, sample_files, histo_spec):
    bundle = shipped_bundle(histo_spec.key)
    slide = open_slide(slide_path)
    assert slide.mpp == SLIDE_MPP and slide.source.startswith("openslide") and len(slide.downsamples) == 2
    largest = []
    read = slide.read
    slide.read = lambda x, y, level, w, h: largest.append(w * h) or read(x, y, level, w, h)
    result = analyse_slide(bundle, slide, batch_tiles=4)
    assert max(largest[1:]) <= 200 * 200, "tiles are read one by one, never the whole slide"
    # The tile over patch (0, 0) of the grid holds the first sample, resampled: same verdict, close probability.
    first = np.where((result.boxes[:, 0] == 200) & (result.boxes[:, 1] == 200))[0]
    if len(first):
        expected = calibrated_probabilities(bundle, to_model_batch([read_image(sample_files[0]).pixels], histo_spec))
        assert abs(result.positive[first[0]] - expected[0, 1]) < 0.25


def test_a_plain_image_needs_its_scale_for_region_mode(tmp_path, sample_files):
    patches = [read_image(path).pixels for path in sample_files[:4]]
    image = tmp_path / "field.png"
    cv2.imwrite(str(image), cv2.cvtColor(np.concatenate(patches, axis=1), cv2.COLOR_RGB2BGR))
    without = _cli("--region", str(image), "--out", str(tmp_path / "a"))
    assert without.returncode == 1 and "--mpp" in without.stderr
    with_mpp = _cli("--region", str(image), "--mpp", "4", "--out", str(tmp_path / "b"))
    assert with_mpp.returncode == 0, with_mpp.stderr
    assert len(pd.read_csv(next((tmp_path / "b" / "tiles").glob("*.tiles.csv")))) >= 1


@pytest.mark.e2e
def test_saved_model_serves_the_bundles_calibrated_probabilities(tmp_path, sample_files, histo_spec):
    import tensorflow as tf

    out = tmp_path / "served"
    result = subprocess.run([sys.executable, "-m", "bcc_model.export", "--modality", "histopathology", "--format",
                             "saved_model", "--out", str(out)], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    bundle = shipped_bundle(histo_spec.key)
    batch = to_model_batch([read_image(path).pixels for path in sample_files], histo_spec)
    served = tf.saved_model.load(str(out)).signatures["serving_default"]
    probabilities = served(images=tf.constant(batch))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, calibrated_probabilities(bundle, batch), atol=1e-5)
    meta = json.loads((out / "bcc_serving.json").read_text())
    assert meta["labels"] == list(histo_spec.labels) and meta["threshold"] == bundle.threshold


def test_bcc_predict_console_script_is_declared():
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("bcc", "bcc-predict"):
        module, function = scripts[name].split(":")
        assert callable(getattr(import_module(module), function)), name


def test_bcc_runs_each_stage_as_its_module_does(sample_files, capsys):
    """``bcc predict`` prints what ``python -m bcc_model.predict`` prints; unknown or missing commands exit 2."""
    from bcc_model.cli import COMMANDS, main as bcc_main

    assert set(COMMANDS) == {"train", "predict", "evaluate", "recalibrate", "export", "fetch-pretrained"}
    assert all(callable(import_module(module).main) for module, _ in COMMANDS.values())
    via_bcc = run_main(bcc_main, "predict", sample_files[0])
    direct = _cli(sample_files[0])
    assert via_bcc.returncode == direct.returncode == 0 and via_bcc.stdout == direct.stdout != ""
    listing = run_main(bcc_main, "--help")
    assert listing.returncode == 0 and all(name in listing.stdout for name in COMMANDS)
    assert "Research use only" in listing.stdout
    assert run_main(bcc_main).returncode == 2 and run_main(bcc_main, "diagnose").returncode == 2
    assert run_main(bcc_main, "train", "--help").returncode == 0


@pytest.mark.e2e
def test_the_ray_engine_writes_what_the_local_engine_writes(tmp_path, sample_files, slide_path):
    """--engine ray (a local Ray instance, 2 actors, one bundle each): the same rows and tile maps.

    One region-mode batch of a pyramidal slide and 3 patches (at --mpp 4, one tile each), so both
    actors get work and the slide's tile map is compared byte for byte.
    """
    pytest.importorskip("ray")
    sample_dir = tmp_path / "patches"
    sample_dir.mkdir()
    for path in sample_files[::3][:3]:
        shutil.copy(path, sample_dir / f"{path.parent.name}_{path.name}")
    outputs = {}
    for engine, cli in (("local", _cli), ("ray", _subprocess_cli)):
        out = tmp_path / engine
        run = cli(str(sample_dir), str(slide_path), "--region", "--mpp", "4", "--out", str(out), "--engine", engine,
                  "--workers", "2")
        assert run.returncode == 0, run.stderr[-3000:]
        outputs[engine] = (run.stdout, out)
    assert outputs["ray"][0] == outputs["local"][0] and outputs["local"][0].count("\n") == 4
    local, ray = outputs["local"][1], outputs["ray"][1]
    files = sorted(p.relative_to(local) for p in local.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ray) for p in ray.rglob("*") if p.is_file())
    assert any(f.name.endswith(".geojson") for f in files) and any(f.name.endswith(".heatmap.png") for f in files)
    for name in files:
        if name.suffix == ".json":
            assert json.loads((local / name).read_text()) == json.loads((ray / name).read_text())
        else:
            assert (local / name).read_bytes() == (ray / name).read_bytes(), name


def test_an_image_without_tissue_gets_an_empty_tile_map_not_a_crash(tmp_path):
    """Region mode on glass: the row says no tissue was found, and the GeoJSON and CSV are empty."""
    glass = tmp_path / "glass.png"
    cv2.imwrite(str(glass), np.full((200, 200, 3), 245, np.uint8))
    run = _cli(str(glass), "--region", "--mpp", "4", "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr[-2000:]
    row = pd.read_csv(tmp_path / "out" / "predictions.csv").iloc[0]
    assert row["status"] == "ok" and row["reason"] == "no tissue found"
    features = [json.loads(p.read_text())["features"] for p in (tmp_path / "out").rglob("*.geojson")]
    assert features == [[]]
