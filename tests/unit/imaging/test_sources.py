"""What a batch reads: every file and zip member one item, limits before work, nothing vanishes."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from bcc_model.imaging import sources
from bcc_model.imaging.pixels import ImageReadError
from bcc_model.imaging.sources import InputLimits, iter_inputs, sniff
from tests.hostile import hostile_zip, make_dicom, png


@pytest.fixture
def images(sample_files) -> dict[str, bytes]:
    return {"good.png": sample_files[0].read_bytes(), "twin_a.png": sample_files[1].read_bytes(),
            "twin_b.png": sample_files[-1].read_bytes(), "scan": make_dicom(np.full((64, 64), 900, np.uint16))}


def test_every_member_of_a_hostile_zip_is_one_item_in_order(tmp_path, images):
    expected = hostile_zip(tmp_path / "batch.zip", images)
    items = list(iter_inputs([tmp_path / "batch.zip"]))
    assert [item.name.split("!", 1)[1] for item in items] == list(expected)
    for item in items:
        want = expected[item.name.split("!", 1)[1]]
        if want == "ok":
            assert item.skip is None, item
        elif want == "damaged zip member":
            assert item.skip is None
            with pytest.raises(ImageReadError, match="damaged zip member"):
                item.source()
        else:
            assert want in item.skip, (item.name, item.skip)
    by_name = {item.name.split("!", 1)[1]: item for item in items}
    assert by_name["dup.png"].source() == images["twin_a.png"] and by_name["dup.png#2"].source() == images["twin_b.png"]
    assert by_name["scan"].source() == images["scan"]


def test_an_archive_is_opened_once_however_many_members(tmp_path, images, monkeypatch):
    hostile_zip(tmp_path / "batch.zip", images)
    opened = []
    real = zipfile.ZipFile
    monkeypatch.setattr(sources.zipfile, "ZipFile", lambda *a, **k: opened.append(a) or real(*a, **k))
    sources._OPEN.clear()
    items = list(iter_inputs([tmp_path / "batch.zip"]))
    for item in items:
        if item.skip is None:
            try:
                item.source()
            except ImageReadError:
                pass
    assert len(opened) == 1


def test_limits_are_settable_and_a_crowded_archive_is_one_refused_item(tmp_path, images):
    hostile_zip(tmp_path / "batch.zip", images)
    crowded = list(iter_inputs([tmp_path / "batch.zip"], InputLimits(members=3)))
    assert len(crowded) == 1 and "above the limit of 3" in crowded[0].skip
    small = {i.name.split("!", 1)[1]: i for i in iter_inputs([tmp_path / "batch.zip"], InputLimits(member_bytes=1000))}
    assert "too large" in small["good.png"].skip
    (tmp_path / "big.png").write_bytes(images["good.png"] + bytes(5000))
    [big] = iter_inputs([tmp_path / "big.png"], InputLimits(file_bytes=1000))
    assert big.skip.startswith("too large")
    with pytest.raises(ValueError):
        InputLimits(ratio=0.5)


def test_a_folder_gives_every_file_a_row_reason_and_never_reads_its_own_output(tmp_path, images):
    folder = tmp_path / "export"
    (folder / "out").mkdir(parents=True)
    (folder / "IM000001").write_bytes(images["scan"])  # a PACS export: no file ending
    (folder / "photo").write_bytes(images["good.png"])
    (folder / "drawing.svg").write_bytes(b"<svg/>")
    (folder / "animation.gif").write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    (folder / "inner.zip").write_bytes(b"not really a zip")
    (folder / "out" / "predictions.csv").write_text("file\n")
    os.mkfifo(folder / "pipe")
    items = {item.name.rsplit("/", 1)[-1]: item for item in iter_inputs([folder], exclude=[folder / "out"])}
    assert set(items) == {"IM000001", "photo", "drawing.svg", "animation.gif", "inner.zip", "pipe"}
    assert items["IM000001"].skip is None and items["photo"].skip is None
    assert "unsupported file type (.svg" in items["drawing.svg"].skip
    assert "unsupported file type (.gif" in items["animation.gif"].skip
    assert "damaged or unreadable zip" in items["inner.zip"].skip
    assert "not a regular file" in items["pipe"].skip
    [fifo] = iter_inputs([folder / "pipe"])  # named on the command line: a row, never a hang
    assert "not a regular file" in fifo.skip
    [missing] = iter_inputs([tmp_path / "nowhere.png"])
    assert "not found" in missing.skip


def test_signatures_name_what_a_file_is():
    assert sniff(bytes(128) + b"DICM") == ".dcm"
    assert sniff(png(np.zeros((2, 2), np.uint8))) == ".png"
    assert sniff(b"\xff\xd8\xff\xe0") == ".jpg" and sniff(b"II*\x00") == ".tif" and sniff(b"PK\x03\x04") == ".zip"
    assert sniff(b"GIF89a") is None and sniff(b"") is None
