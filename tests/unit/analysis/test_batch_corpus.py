"""The hostile batch corpus through the predict command line: a row for every file and member, no traceback.

Uses the shipped H&E bundle (ONNX Runtime, in this process). The memory checks run in a fresh
process each, since peak resident memory is the point there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
import tifffile

from bcc_model.analysis.rows import ResultRow
from bcc_model.cli.predict import main as predict_main
from bcc_model.models.bundle import file_sha256
from bcc_model.registry import PROJECT_ROOT, get_modality
from bcc_model.reporting.report import ReportEntry, build_report_html
from tests.hostile import hostile_zip, make_dicom
from tests.support.bundles import shipped_bundle
from tests.support.cli import run_main

GIB = 1 << 30


@pytest.fixture
def corpus(tmp_path, sample_files):
    """A folder as a careless export looks: a hostile zip, PACS files, a pipe, files of other kinds."""
    folder = tmp_path / "batch"
    folder.mkdir()
    images = {"good.png": sample_files[0].read_bytes(), "twin_a.png": sample_files[1].read_bytes(),
              "twin_b.png": sample_files[-1].read_bytes(), "scan": make_dicom(np.full((64, 64), 900, np.uint16))}
    expected = {f"{folder / 'archive.zip'}!{name}": want for name, want in
                hostile_zip(folder / "archive.zip", images).items()}
    (folder / "IM000001").write_bytes(make_dicom(np.full((64, 64), 700, np.uint16), BurnedInAnnotation="YES"))
    (folder / "drawing.svg").write_bytes(b"<svg/>")
    (folder / "notes.png").write_text("not an image")
    os.mkfifo(folder / "pipe")
    expected |= {str(folder / "IM000001"): "ok", str(folder / "drawing.svg"): "unsupported file type",
                 str(folder / "notes.png"): "error", str(folder / "pipe"): "not a regular file"}
    return folder, expected


def test_every_file_and_member_is_one_row_in_order_and_nothing_ends_the_batch(tmp_path, corpus):
    folder, expected = corpus
    out = tmp_path / "out"
    result = run_main(predict_main, folder, "--out", out)
    assert result.returncode == 1, result.stderr  # damaged members and a non-image are errors
    assert "Traceback" not in result.stderr + result.stdout
    table = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert sorted(table["file"]) == sorted(expected) and len(table) == len(expected)
    rows = table.set_index("file")
    for name, want in expected.items():
        row = rows.loc[name]
        if want == "ok":
            assert row["status"] in ("ok", "not assessed"), (name, row.to_dict())
        elif want in ("error", "damaged zip member"):
            assert row["status"] == "error" and row["error"], (name, row.to_dict())
        else:
            assert row["status"] == "skipped" and want in row["reason"], (name, row.to_dict())
    counts = table["status"].value_counts()
    assert f"{len(table)} input(s): " in result.stderr
    for status in ("ok", "not assessed", "skipped", "error"):
        assert f"{counts.get(status, 0)} {status}" in result.stderr
    pacs = rows.loc[str(folder / "IM000001")]
    assert pacs["burned_in"] in (True, "True") and "burned into the pixels" in pacs["warnings"]
    assert "Doe" not in (out / "predictions.csv").read_text() + result.stdout + result.stderr


def test_the_output_folder_is_checked_first_and_never_followed_out(tmp_path, sample_files):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    (out / "predictions.csv").symlink_to(outside)
    refused = run_main(predict_main, sample_files[0], "--out", out)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and refused.stdout == ""
    done = run_main(predict_main, sample_files[0], "--out", out, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert outside.read_text() == "keep me" and not (out / "predictions.csv").is_symlink()
    assert len(pd.read_csv(out / "predictions.csv")) == 1
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert run_main(predict_main, sample_files[0], "--out", a_file).returncode == 2


@pytest.mark.parametrize("option", [["--mpp", "1e6"], ["--mpp", "0"], ["--tile-batch", "-1"], ["--workers", "0"],
                                    ["--max-ratio", "0.5"], ["--max-members", "0"]])
def test_command_line_values_are_range_checked_by_the_parser(option, sample_files):
    result = run_main(predict_main, sample_files[0], *option)
    assert result.returncode == 2 and ("outside" in result.stderr or "not a" in result.stderr), result.stderr


def test_names_are_escaped_on_the_terminal_and_true_in_the_csv(tmp_path, sample_files):
    name = "forged\nother.png: malignant\x1b[2K\u202egnp.png"
    (tmp_path / name).write_bytes(sample_files[0].read_bytes())
    result = run_main(predict_main, tmp_path / name, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and result.stdout.count("\n") == 1
    assert "\\x0a" in result.stdout and "\\u202e" in result.stdout
    assert json.loads((tmp_path / "out" / "predictions.json").read_text())[0]["file"] == str(tmp_path / name)


def test_a_region_smaller_than_one_tile_is_an_error_not_an_empty_ok(sample_files):
    result = run_main(predict_main, sample_files[0], "--region", "--mpp", "0.25")
    assert result.returncode == 1 and "smaller than one" in result.stderr


def test_burned_in_pixels_stay_out_of_the_report(sample_files):
    bundle = shipped_bundle("histopathology")
    from bcc_model.analysis.image import analyse
    from bcc_model.imaging.io import read_image

    image = read_image(sample_files[0].read_bytes())
    row = ResultRow.of_analysis(bundle, "IM1", analyse(bundle, image.pixels), burned_in=True)
    html = build_report_html([ReportEntry(row, image.pixels)], model_info=dict(bundle.info),
                             generated_at=datetime.now(timezone.utc), notice="n")
    assert "<img" not in html and ("Result:" in html or "Indeterminate" in html)


def _damage(tmp_path, change) -> str:
    """A copy of the shipped H&E bundle with ``change(folder, info)`` applied and model.json rewritten."""
    import shutil

    folder = tmp_path / "bundle"
    shutil.copytree(get_modality("histopathology").bundle_dir, folder)
    info = json.loads((folder / "model.json").read_text())
    change(folder, info)
    (folder / "model.json").write_text(json.dumps(info, indent=2))
    return folder


def _lambda_model(folder, info):
    import keras

    inputs = keras.Input((50, 50, 3))
    outputs = keras.layers.Lambda(lambda x: x[:, 0, 0, :2])(inputs)
    keras.Model(inputs, outputs).save(folder / "model.keras")
    info["model_sha256"] = file_sha256(folder / "model.keras")


@pytest.mark.parametrize("change", [
    _lambda_model,
    lambda folder, info: info["runtime"].update(file="../../../etc/passwd"),
    lambda folder, info: info.update(runtime=["not", "an", "object"]),
    lambda folder, info: info["calibration"].update(temperature=float("inf")),
], ids=["lambda-layer", "path-outside", "runtime-type", "infinite-temperature"])
def test_a_damaged_bundle_is_a_clean_error_and_exit_2(tmp_path, sample_files, change):
    folder = _damage(tmp_path, change)
    result = run_main(predict_main, "--allow-unverified", "--weights", folder, sample_files[0])
    assert result.returncode == 2 and result.stderr.startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def _peak_rss(code: str) -> int:
    """Peak resident bytes of ``code`` run in a fresh interpreter (it prints nothing else).

    VmHWM of the new process image, not ``getrusage().ru_maxrss``: Linux keeps ru_maxrss across
    ``fork`` + ``exec``, so it reported this test worker's own size (3 GB after the training tests),
    not the decoder's.
    """
    report = ("\nprint(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')))")
    run = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, cwd=PROJECT_ROOT,
                         check=True)
    return int(run.stdout.split()[-1]) * 1024


@pytest.mark.e2e
def test_large_decodes_stay_under_one_and_a_half_gib(tmp_path):
    """A 100-megapixel RGBA PNG (was 5.1 GB) and a slide without a pyramid (was 3.1 GB at 8000² px)."""
    from PIL import Image

    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((10000, 10000, 4), np.uint8), "RGBA").save(rgba)
    flat = tmp_path / "flat.tiff"

    def tiles():
        for _ in range((8000 // 256 + 1) ** 2):
            yield np.full((256, 256, 3), 240, np.uint8)

    tifffile.imwrite(flat, tiles(), shape=(8000, 8000, 3), dtype=np.uint8, tile=(256, 256), photometric="rgb",
                     compression="deflate")
    png_peak = _peak_rss(f"from bcc_model.imaging.io import read_image; read_image({str(rgba)!r})")
    slide_peak = _peak_rss(f"from bcc_model.imaging.wsi import open_slide; s = open_slide({str(flat)!r}, mpp=1.0); "
                           f"assert s.source.startswith('openslide'); s.thumbnail(2048)")
    print(f"peak RSS: RGBA PNG {png_peak / GIB:.2f} GiB, flat slide thumbnail {slide_peak / GIB:.2f} GiB")
    assert png_peak < 1.5 * GIB and slide_peak < 1.5 * GIB
