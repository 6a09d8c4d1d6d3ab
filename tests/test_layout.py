"""The package layout: behaviour unchanged by the re-layout, the README short, and docs/architecture.md's map of the tree true."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys

import pytest

from bcc_model.analysis.image import analyse
from bcc_model.modalities.cytology.cases import load_cases, predict_cases
from bcc_model.datasets.folders import sample_images
from bcc_model.imaging.io import read_image
from bcc_model.registry import MODALITIES, PROJECT_ROOT
from bcc_model.reporting.model_card import render_model_card
from tests.support.bundles import shipped_bundle

REFERENCE = json.loads((PROJECT_ROOT / "tests" / "reference" / "sample_predictions.json").read_text())
PACKAGE = PROJECT_ROOT / "bcc_model"


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_shipped_weights_and_sample_probabilities_are_unchanged(key):
    """Recorded with the pre-re-layout code: the same files give the same calibrated probabilities."""
    spec = MODALITIES[key]
    reference = REFERENCE[key]
    assert hashlib.sha256((spec.bundle_dir / "model.keras").read_bytes()).hexdigest() == reference["model_sha256"]
    bundle = shipped_bundle(key)
    if spec.kind == "image":
        results = {f"{p.parent.name}/{p.name}": analyse(bundle, read_image(p).pixels).prediction
                   for p in sample_images(spec)}
    else:
        cases = load_cases(spec.sample_dir / "cases.csv", spec.labels)
        results = {f"case{i}": p for i, p in enumerate(predict_cases(bundle, cases))}
    assert set(results) == set(reference["samples"])
    for name, prediction in results.items():
        expected = reference["samples"][name]
        assert (prediction.label, prediction.indeterminate) == (expected["label"], expected["indeterminate"]), name
        for label, p in expected["probabilities"].items():
            assert prediction.probabilities[label] == pytest.approx(p, abs=1e-6), (name, label)


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_templated_model_card_equals_the_shipped_card(key):
    """MODEL_CARD.md was written by the string-building renderer; the template gives the same text."""
    folder = MODALITIES[key].bundle_dir
    card = render_model_card(json.loads((folder / "model.json").read_text()),
                             json.loads((folder / "metrics.json").read_text()))
    squash = lambda text: re.sub(r"\s+", " ", text).strip()  # noqa: E731
    assert squash(card) == squash((folder / "MODEL_CARD.md").read_text(encoding="utf-8"))


def _layout_section() -> str:
    architecture = (PROJECT_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return architecture.split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_the_readme_is_read_in_five_minutes_and_links_only_to_files_that_exist():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 10 * 1024, "README.md at most 10 KB: narratives go to docs/"
    links = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert links and [link for link in links if not (PROJECT_ROOT / link).exists()] == []


def test_docs_layout_names_every_top_level_folder_and_subpackage():
    layout = _layout_section()
    folders = [p.name for p in PROJECT_ROOT.iterdir()
               if p.is_dir() and not p.name.startswith(".") and p.name not in {"__pycache__", "runs", "pretrained",
                                                                                 "test-output", "data"}
               and not p.name.endswith(".egg-info")]
    subpackages = [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    assert subpackages, "bcc_model has stage subpackages"
    missing = [f"{name}/" for name in folders + subpackages if f"{name}/" not in layout]
    assert not missing, f"docs/architecture.md Layout does not name {missing}"


def test_package_top_holds_only_command_lines_and_the_registry():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert top == ["evaluate", "export", "predict", "pretrained", "recalibrate", "registry", "train"]


def test_no_module_is_longer_than_about_400_lines():
    lengths = {p.relative_to(PACKAGE).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
               for p in PACKAGE.rglob("*.py")}
    assert max(lengths.values()) <= 450, sorted(lengths.items(), key=lambda kv: -kv[1])[:3]


def _core_modules():
    """The generic core: every module but the modalities, the command lines and the registry that finds them."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(("modalities/", "cli/")) and rel != "registry.py":
            yield rel, path


def _code_strings(source: str) -> list[tuple[int, str]]:
    """The string literals of a module that are not docstrings (prose may give examples; code may not)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_core_never_names_a_modality():
    """Modality-specific behaviour lives in bcc_model/modalities/, reached through the registry's hooks."""
    found = [f"{rel}:{line}: {text[:60]!r}" for rel, path in _core_modules()
             for line, text in _code_strings(path.read_text(encoding="utf-8"))
             if text.strip().lower() in MODALITIES]  # a key as code uses it ("the ultrasound image" is prose)
    templates = [path.name for path in (PACKAGE / "reporting" / "templates").glob("*.j2")
                 if re.search(r"modality\s*==", path.read_text(encoding="utf-8"))]
    imports = [f"{rel}: {line.strip()}" for rel, path in _core_modules()
               for line in path.read_text(encoding="utf-8").splitlines() if "bcc_model.modalities" in line
               and line.lstrip().startswith(("import ", "from "))]
    assert not found and not templates and not imports, (found, templates, imports)


def test_modalities_are_found_by_import_path_and_load_on_first_use():
    code = ("import sys, bcc_model.registry as r; spec = r.get_modality('histopathology'); "
            "print(sorted(m for m in sys.modules if m.startswith('bcc_model.modalities.')), 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert out.stdout.split() == ["['bcc_model.modalities.histopathology']", "False"], out.stdout + out.stderr
