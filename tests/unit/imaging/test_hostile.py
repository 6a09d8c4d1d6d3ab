"""Hostile and odd input (tests/hostile.py): no injection, no confident nonsense, one row per bad file."""

from __future__ import annotations

import io
from html import escape
import tomllib

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt
from PIL import Image

from bcc_model.imaging.gates import input_problem
from bcc_model.datasets.folders import sample_images
from bcc_model.imaging.io import read_image
from bcc_model.registry import PROJECT_ROOT, get_modality
from bcc_model.cli.predict import main as predict_main
from bcc_model.reporting.exports import to_safe_csv
from bcc_model.reporting.formatting import escape_markdown
from tests.apptest_helpers import PNG, run_app
from tests.hostile import EVIL_HOST, HOSTILE_CELLS, HOSTILE_NAMES, blank_and_noise, make_dicom, odd_files
from tests.support.cli import run_main

IMAGE_MODALITIES = ("histopathology", "mammography", "ultrasound")


@pytest.mark.parametrize("text", HOSTILE_NAMES + HOSTILE_CELLS)
def test_escaped_markdown_renders_as_the_literal_text(text):
    html = MarkdownIt("commonmark").render(escape_markdown(text))
    assert "<img" not in html and "<a " not in html and "<strong>" not in html and "<em>" not in html
    assert "<h1>" not in html and "<code>" not in html and "<script>" not in html
    shown = html.strip().replace("\u200b", "")  # zero-width spaces keep GFM from autolinking URLs
    assert shown == f"<p>{escape(' '.join(text.splitlines()))}</p>"
    assert "http://" not in html and "www." not in html.lower()


def test_every_csv_cell_that_a_spreadsheet_would_run_is_neutralised():
    table = pd.DataFrame({"file": list(HOSTILE_NAMES) + list(HOSTILE_CELLS), "P(malignant)": -0.5})
    rows = pd.read_csv(io.StringIO(to_safe_csv(table)), keep_default_na=False)
    assert not rows["file"].str.match(r"[=+\-@\t\r]").any()
    assert [name[1:] if name[:1] == "'" else name for name in rows["file"]] == table["file"].tolist()
    assert (rows["P(malignant)"] == -0.5).all(), "numbers stay numbers"


@pytest.mark.parametrize("modality", IMAGE_MODALITIES)
@pytest.mark.parametrize("name", sorted(blank_and_noise()))
def test_blank_and_noise_images_are_never_assessed(modality, name):
    assert input_problem(blank_and_noise()[name], get_modality(modality)) is not None


@pytest.mark.parametrize("modality", IMAGE_MODALITIES)
def test_every_bundled_sample_passes_the_gates_of_its_own_modality(modality):
    spec = get_modality(modality)
    assert [p.name for p in sample_images(spec) if input_problem(read_image(p).pixels, spec)] == []


def test_another_modality_and_a_field_too_large_for_a_patch_are_refused_with_the_way_out():
    he_patch = read_image(sample_images(get_modality("histopathology"))[0]).pixels
    for modality in ("mammography", "ultrasound"):
        assert input_problem(he_patch, get_modality(modality)).startswith("not a ")
    field = np.tile(he_patch, (6, 6, 1))  # 300 x 300 px of real tissue: six patches a side
    assert "Region mode" in input_problem(field, get_modality("histopathology"))


def test_shipped_streamlit_config_hides_tracebacks_and_watches_no_files():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"
    assert config["server"]["fileWatcherType"] == "none" and config["server"]["runOnSave"] is False


def test_hostile_names_render_as_text_on_the_classify_page(sample_files):
    data = sample_files[0].read_bytes()
    at = run_app()
    at.file_uploader(key="uploads_histopathology").set_value([(name, data, PNG) for name in HOSTILE_NAMES]).run()
    assert not at.exception, [e.message for e in at.exception]
    headings = [h.value for h in at.subheader if h.value[:1].isdigit()]
    assert len(headings) == len(HOSTILE_NAMES)
    for heading in headings:
        html = MarkdownIt("commonmark").render(heading)
        assert "<img" not in html and "<a " not in html and "<strong>" not in html, heading
    assert at.dataframe[0].value["file"].tolist() == list(HOSTILE_NAMES), "the table holds the names as typed"


def test_one_bad_file_is_a_row_and_never_ends_the_batch(sample_files):
    """Odd files, a sample, and a PACS file (no ending, burned-in text) read as the command line reads them."""
    cases = odd_files()
    sample = sample_files[0]
    scan = make_dicom(np.full((96, 96), 800, np.uint16), BurnedInAnnotation="YES")
    at = run_app()
    at.file_uploader(key="uploads_histopathology").set_value(
        [(c.name, c.data, "application/octet-stream") for c in cases] + [(sample.name, sample.read_bytes(), PNG),
                                                                         ("IM000001", scan, "application/dicom")]).run()
    assert not at.exception, [e.message for e in at.exception]
    table = at.dataframe[0].value.set_index("file")
    assert list(table.index) == [c.name for c in cases] + [sample.name, "IM000001"], "one row per file, in order"
    pacs = table.loc["IM000001"]
    assert pacs["status"] in ("ok", "not assessed") and bool(pacs["burned_in"])
    assert "burned into the pixels" in pacs["warnings"] and any("burned into the pixels" in i.value for i in at.info)
    for case in cases:
        if case.expect:
            assert case.expect in table.loc[case.name, "error"].lower(), case.name
        else:  # readable but absurd: shown without crashing, and not assessed
            assert table.loc[case.name, "verdict"] == "not assessed", case.name
    assert table.loc[sample.name, "verdict"] != "not analysed"
    assert "Traceback" not in "\n".join(e.value for e in at.error)


def test_hostile_case_ids_render_as_text_on_the_cytology_page():
    spec = get_modality("cytology")
    cases = pd.read_csv(spec.sample_dir / "cases.csv").head(len(HOSTILE_CELLS))
    cases["group"] = list(HOSTILE_CELLS)
    at = run_app("app_pages/cytology.py", modality="cytology")
    at.file_uploader(key="cytology_csv").set_value(
        (f"![n](http://{EVIL_HOST}/n.png).csv", cases.to_csv(index=False).encode(), "text/csv")).run()
    assert not at.exception, [e.message for e in at.exception]
    for element in list(at.markdown) + list(at.subheader):
        html = MarkdownIt("commonmark").render(element.value)
        assert "<img" not in html and "<a " not in html, element.value


def test_predict_cli_reports_every_odd_file_without_a_traceback(tmp_path, sample_files):
    paths = []
    for case in odd_files():
        path = tmp_path / case.name
        path.write_bytes(case.data)
        paths.append(path)
    blank = tmp_path / "blank.png"
    Image.fromarray(blank_and_noise()["blank white"]).save(blank)
    dicom = tmp_path / "scan.dcm"
    dicom.write_bytes(_dicom_with_patient_name())
    paths.append(dicom)
    result = run_main(predict_main, *paths, blank, sample_files[0])
    assert "Doe" not in result.stdout + result.stderr, "no DICOM patient data in any output"
    assert result.returncode == 1, "some files failed"
    assert "Traceback" not in result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    for path in [*paths, blank, sample_files[0]]:
        assert any(line.startswith(f"{path}:") for line in lines), path.name
    assert any(line.startswith(f"{blank}: NOT ASSESSED") for line in lines)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_reported_with_its_real_size_and_the_real_limit():
    from bcc_model.imaging.io import ImageReadError

    with pytest.raises(ImageReadError, match=r"^image too large: 1600 megapixels, limit 100 megapixels$"):
        read_image(_png_header(40_000, 40_000))


def test_a_float32_rgb_tiff_is_read_and_windowed():
    import tifffile

    values = (np.random.default_rng(0).random((40, 60, 3)) * 3.0 - 1.0).astype(np.float32)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values, photometric="rgb")
    image = read_image(buffer.getvalue())
    assert image.pixels.shape == (40, 60, 3) and image.format == "TIFF"
    assert image.pixels.min() == 0 and image.pixels.max() == 255
    assert any("float32" in note for note in image.warnings)


def _dicom_with_patient_name() -> bytes:
    """A 32 x 48 greyscale DICOM data set naming a patient, written without the 128-byte preamble."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.Rows, dataset.Columns, dataset.SamplesPerPixel = 32, 48, 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    dataset.PatientName = "Doe^Jane"
    dataset.PixelData = (np.arange(32 * 48, dtype=np.uint16) * 2).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def test_a_dicom_without_its_preamble_is_read():
    data = _dicom_with_patient_name()
    assert data[128:132] != b"DICM", "written without the preamble"
    image = read_image(data)
    assert image.format == "DICOM" and image.pixels.shape == (32, 48)
    assert "Doe" not in repr(image)


def test_reencoding_keeps_layout_and_robustness_reports_every_codec():
    from bcc_model.models.decision import OperatingPoint
    from bcc_model.evaluation.robustness import CODECS, compression_robustness, reencode

    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (64, 48), dtype=np.uint8)
    for codec in CODECS:
        assert reencode(rgb, codec).shape == rgb.shape and reencode(grey, codec).shape == grey.shape
    images = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (20, 60, 200, 240)])
    y = np.array([0, 0, 1, 1])

    def brightness(batch):  # a "model" whose P(positive) is the mean grey level
        p = batch.mean(axis=(1, 2, 3)) / 255.0
        return np.stack([1 - p, p], axis=1)

    result = compression_robustness(brightness, images, y, OperatingPoint(("benign", "malignant"), 1, 0.5, (0.5, 0.5)))
    assert result["original"]["balanced_accuracy"] == 1.0 and set(result["codecs"]) == set(CODECS)
    assert all(entry["decisions_changed"] == 0.0 for entry in result["codecs"].values())  # flat images survive


def test_switching_modality_never_reruns_an_upload_through_another_model(sample_files):
    at = run_app()
    at.file_uploader(key="uploads_histopathology").set_value(
        [(sample_files[0].name, sample_files[0].read_bytes(), PNG)]).run()
    assert len(at.dataframe) == 1
    at.selectbox(key="modality").set_value("mammography").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.dataframe, "nothing was analysed with the mammography model"
    assert at.file_uploader(key="uploads_mammography").value in (None, [])
    at.switch_page("app_pages/explain.py").run()
    assert not any(sample_files[0].name in option for option in at.selectbox(key="explain_image").options)
