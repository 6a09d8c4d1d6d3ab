"""Shared fixtures: real sample patches, the registry spec, and a tiny trained bundle."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
E2E_FIXTURES = {"tiny_bundle", "tiny_cytology", "grey_bundle", "mil_bundle", "app_server"}
"""Fixtures that train a real bundle or start the app server: a test that uses one is end to end."""


SLOWEST_FILES = (
    "tests/unit/training/test_train.py", "tests/e2e/test_browser.py", "tests/unit/analysis/test_batch.py",
    "tests/unit/modalities/test_train_mil.py", "tests/unit/modalities/test_train_tabular.py", "tests/e2e/test_memory.py",
    "tests/unit/training/test_distribute.py", "tests/unit/training/test_train_grey.py", "tests/test_layout.py",
    "tests/unit/modalities/test_mammogram.py", "tests/unit/training/test_train_pretrained.py",
    "tests/unit/imaging/test_hostile.py", "tests/app/test_app.py", "tests/app/test_app_modalities.py",
)
"""Files by measured cost, slowest first (``pytest --durations=0``, 2026-12-06): they are handed to the two
xdist workers first (``--no-loadscope-reorder`` in pyproject.toml keeps this order), so no 80-second file
starts when the other worker is nearly done. xdist's own order (most tests first) left one worker idle
for about 50 s at the end."""


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses an end-to-end fixture ``e2e``, so ``pytest -m "not e2e"`` never trains or
    serves; then hand out the slowest files first (:data:`SLOWEST_FILES`, longest-first scheduling)."""
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOWEST_FILES)))  # stable: files stay whole
SAMPLES = ROOT / "samples" / "histopathology"


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's chromium, which the browser and load tests drive: a skip on a developer machine, a failure in CI."""
    from tests.support.server import CHROMIUM

    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: the browser and load tests must run in CI (install Debian's chromium)")
        pytest.skip(f"{CHROMIUM} not installed; the browser and load tests need it (they are mandatory in CI)")
    return CHROMIUM


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, chromium_path):
    """``(url, process)`` of one ``streamlit run app.py`` on a free loopback port, shared by the browser
    tests and the load test in ``e2e/test_browser.py`` (each start imports TensorFlow and loads a bundle);
    always terminated."""
    from tests.support.server import running_app
    from tests.timing import SLOWDOWN

    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    with log_path.open("w") as log, running_app(log=log, timeout_s=90 * SLOWDOWN) as server:
        yield server


@pytest.fixture(scope="session")
def histo_spec():
    from bcc_model.registry import get_modality

    return get_modality("histopathology")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*/*.png"))


def lay_out_slide(folder: Path, sample_files: list[Path]) -> list[dict]:
    """Copy sixteen real sample patches into ``folder`` as a 4 x 4 complete slide of a made-up patient
    777, on the IDC grid; returns their ``labels.csv`` rows (with ``coverage``)."""
    import shutil

    from bcc_model.datasets.slides import PATCH_PX

    rows = []
    for i, path in enumerate(sample_files[:16]):
        x, y = 1 + PATCH_PX * (i % 4), 1 + PATCH_PX * (i // 4)
        label = path.parent.name
        name = f"{label}/777_idx5_x{x}_y{y}_class{int(label == 'malignant')}.png"
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
        rows.append({"file": name, "label": label, "group": "777", "coverage": "complete"})
    return rows


@pytest.fixture
def slide_folder(tmp_path, sample_files) -> Path:
    """The slide of :func:`lay_out_slide` plus one sparse row of another patient."""
    import pandas as pd

    rows = lay_out_slide(tmp_path, sample_files)
    rows.append({"file": rows[0]["file"], "label": rows[0]["label"], "group": "5", "coverage": "sparse"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path


TINY_TRAIN_ARGS = ["--arch", "se_resnet", "--epochs", "2", "--batch-size", "8", "--bootstrap", "50", "--verbose", "0"]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A real bundle trained for two epochs on the sample patches (fast, poor accuracy).

    Trained once per test run: the suite runs in two xdist workers, and the first worker to need
    it trains it in the run's shared folder under a file lock while the other waits and reuses it
    (pytest-xdist's documented pattern for session fixtures).
    """
    from filelock import FileLock

    from bcc_model.cli.train import main

    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...; unset without xdist
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    root = shared / "tiny"
    out = root / "bundle"
    with FileLock(str(shared / "tiny.lock")):
        if not (out / "model.json").is_file():
            assert main(["--data", str(SAMPLES), "--out", str(out), "--work-dir", str(root / "runs"),
                         *TINY_TRAIN_ARGS]) == 0
    return out


def replicate_folder(source: Path, root: Path, replicas: int) -> Path:
    """Copy a sample folder's images under ``replicas`` pseudo-patients each, with labels, lesions and masks.

    The samples hold a few patients each, too few to split into train/validation/test; copies
    under new patient IDs let a tiny real training run go through every step (its figures
    mean nothing: copies of one image sit in several splits).
    """
    import shutil

    import pandas as pd

    labels = pd.read_csv(source / "labels.csv", dtype=str, keep_default_na=False)
    lesion_file = source / "lesions.csv"
    lesions = pd.read_csv(lesion_file, dtype=str, keep_default_na=False) if lesion_file.is_file() else None
    label_rows, lesion_rows = [], []
    for r in range(replicas):
        for row in labels.to_dict("records"):
            name = f"{row['label']}/r{r}_{Path(row['file']).name}"
            (root / row["label"]).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / row["file"], root / name)
            copy = {"file": name, "label": row["label"], "group": f"r{r}_{row['group']}"}
            if row.get("mask"):
                copy["mask"] = f"masks/r{r}_{Path(row['mask']).name}"
                (root / "masks").mkdir(exist_ok=True)
                shutil.copyfile(source / row["mask"], root / copy["mask"])
            label_rows.append(copy)
            if lesions is not None:
                lesion_rows += [{**les, "file": name} for les in lesions[lesions["file"] == row["file"]].to_dict("records")]
    pd.DataFrame(label_rows).to_csv(root / "labels.csv", index=False)
    if lesions is not None:
        pd.DataFrame(lesion_rows).to_csv(root / "lesions.csv", index=False)
    return root
