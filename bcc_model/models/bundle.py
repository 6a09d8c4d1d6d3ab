"""Model bundles: the folder the app runs and ``train`` writes (see docs/SCHEMAS.md).

A bundle is loaded only if ``model.keras`` (and the optional lesion map, ``lesion_head.py``, and
ONNX copy, ``onnx_path.py``) hashes to the sha256 recorded in ``model.json``: a tampered or half-copied weight file is
refused, never silently run. A loaded bundle is *verified* only if its files also match the
hashes pinned in the registry (``ModalitySpec.shipped_files``, in the package source); any
other bundle (retrained locally, or from elsewhere) is *unverified*, and says so wherever it is
shown. New bundles are written to a sibling temporary folder and swapped in with renames, so an
interrupted training run can never leave the shipped weights damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Mapping

import pandas as pd

from bcc_model.registry import ModalitySpec, modality_hook
from bcc_model.models.spec import BundleSpec, BundleSpecError

__all__ = [
    "Bundle", "BundleError", "BundleTampered", "BundleUnverified", "ALLOW_UNVERIFIED_ENV", "unverified_allowed",
    "check_provenance", "BUNDLE_FILES", "check_weights", "is_shipped", "restore_advice", "load_bundle", "read_bundle_info", "file_sha256", "install_bundle",
    "staging_dir", "write_json", "save_model",
]

BUNDLE_FILES = ("model.keras", "model.json", "history.csv", "metrics.json", "manifest.csv", "MODEL_CARD.md")


class BundleError(RuntimeError):
    """A bundle is missing, incomplete, does not match its modality, or fails its checksum."""


class BundleTampered(BundleError):
    """A weight file differs from the sha256 its model.json records: restore it, do not retrain."""


class BundleUnverified(BundleError):
    """An intact bundle that is not the shipped one pinned in this version: run only when asked to."""


ALLOW_UNVERIFIED_ENV = "BCC_ALLOW_UNVERIFIED"
"""Set to 1 to let the app run a bundle that is not the shipped one (the command lines: ``--allow-unverified``)."""


def unverified_allowed() -> bool:
    """The app's setting: ``BCC_ALLOW_UNVERIFIED=1`` runs a retrained bundle, marked unverified."""
    return os.environ.get(ALLOW_UNVERIFIED_ENV, "").strip().lower() in ("1", "true", "yes")


def _inside(folder: Path, name: object, field: str) -> Path:
    """``folder / name`` for a plain file name from model.json; anything that would leave the folder is refused."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts \
            or not (folder / name).resolve().is_relative_to(folder.resolve()):
        raise BundleError(f"bundle {folder}: model.json {field} must name a file inside the bundle folder, "
                          f"found {name!r:.60}")
    return folder / name


def restore_advice(spec: ModalitySpec) -> str:
    """What to do about a tampered or damaged bundle: restore the shipped files."""
    return (f"restore the shipped files (`git checkout -- weights/{spec.key}`) or copy the bundle again; "
            "retraining is not needed")


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified model with everything the app shows about it.

    ``meta`` is the validated ``model.json``; ``info`` is the same as plain JSON, for the
    documents rendered from it (model card, report, figures).
    """

    spec: ModalitySpec
    model: object  # keras.Model; typed loosely so importing this module does not import Keras
    meta: BundleSpec
    metrics: dict
    path: Path
    lesion_map: object | None = None  # keras.Model image -> lesion probability grid, when the bundle has one
    fast: object | None = None  # x -> softmax through ONNX Runtime (``onnx_path``), when the bundle ships model.onnx
    verified: bool = False  # every file matches the hashes pinned in the registry (``shipped_files``)

    @property
    def provenance(self) -> str:
        """"verified" (the shipped files, pinned in the package) or "unverified" (any other bundle)."""
        return "verified" if self.verified else "unverified"

    @cached_property
    def conformal(self):
        """The stored conformal calibration (``models.conformal.ConformalCalibration``), or ``None`` (older bundles)."""
        from bcc_model.models.conformal import ConformalCalibration

        record = self.meta.extras.get("conformal")
        return None if not record else ConformalCalibration.from_json(record, self.labels)

    @cached_property
    def info(self) -> dict:
        return self.meta.to_json()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    @property
    def temperature(self) -> float:
        return self.meta.calibration.temperature

    @property
    def threshold(self) -> float:
        return self.meta.decision.threshold

    @property
    def band(self) -> tuple[float, float]:
        return self.meta.decision.indeterminate_band

    def band_at(self, level: float) -> tuple[float, float]:
        """The indeterminate band at a conformal level: derived from the set for two-class bundles, else the stored one.

        The stored band is the one at ``models.conformal.DEFAULT_LEVEL``; a user choosing 80 % or
        95 % in the app gets the band of that set, so the verdict, the tile map and the share agree.
        """
        from bcc_model.models.conformal import undecided_band

        if self.conformal is None:
            return self.band
        derived = undecided_band(self.conformal, self.meta.positive_index, self.threshold, level)
        return self.band if derived is None else derived

    @property
    def short_sha(self) -> str:
        return self.meta.short_sha

    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "history.csv")

    def model_card(self) -> str:
        return (self.path / "MODEL_CARD.md").read_text(encoding="utf-8")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bundle_info(path: str | Path) -> tuple[BundleSpec, dict]:
    """Read ``model.json`` (validated) and ``metrics.json`` without loading the network (cheap, for the UI)."""
    folder = Path(path)
    missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
    if missing:
        raise BundleError(f"bundle {folder} is incomplete: missing {', '.join(missing)}")
    try:
        meta = BundleSpec.read(folder / "model.json")
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (BundleSpecError, json.JSONDecodeError) as err:
        raise BundleError(f"bundle {folder}: {err}") from err
    return meta, metrics


def is_shipped(spec: ModalitySpec, folder: str | Path) -> bool:
    """True when every file pinned in ``spec.shipped_files`` is in ``folder`` with that sha256.

    The pin lives in the package source, so unlike the hash in ``model.json`` it cannot be changed
    by whoever can write to ``weights/``. A locally retrained bundle is intact but not shipped.
    """
    folder = Path(folder)
    pins = dict(spec.shipped_files)
    return bool(pins) and all((folder / name).is_file() and file_sha256(folder / name) == sha
                              for name, sha in pins.items())


def check_weights(spec: ModalitySpec, folder: str | Path, meta: BundleSpec) -> None:
    """Refuse weight files that differ from the sha256 ``model.json`` records (without loading them).

    Raises:
        BundleTampered: a modified, truncated or swapped weight file, with the advice to restore it.
    """
    folder = Path(folder)
    expected = {"model.keras": meta.model_sha256}
    for field, file_key, sha_key in (("lesion_supervision", "map_file", "map_sha256"), ("runtime", "file", "sha256")):
        record = meta.extras.get(field) or {}
        if not isinstance(record, Mapping):
            raise BundleError(f"bundle {folder}: model.json {field} must be an object")
        if record.get(file_key):
            _inside(folder, record[file_key], f"{field}.{file_key}")
            expected[record[file_key]] = record.get(sha_key)
    for name, sha in expected.items():
        if not (folder / name).is_file():
            raise BundleError(f"bundle {folder} is incomplete: missing {name}")
        actual = file_sha256(folder / name)
        if actual != sha:
            raise BundleTampered(
                f"{name} in {folder} does not match its recorded sha256 (expected {str(sha)[:12]}…, found "
                f"{actual[:12]}…): refusing to load a modified or corrupted weight file; {restore_advice(spec)}")


def bundle_contract(spec: ModalitySpec, meta: BundleSpec, folder: Path) -> ModalitySpec:
    """The spec a loaded bundle runs under: its ``model.json`` says what the model consumes.

    Labels, positive class, input size and channels, scale, preprocessing and the Grad-CAM layer
    all come from the bundle (a cross-validation recipe may add stain normalisation; ``--image-size``
    changes the input), so ``bundle.spec`` and ``bundle.meta`` can never disagree. The registry
    contributes only what the UI says about the modality (title, appearance, overlay style) and
    the training defaults.

    Raises:
        BundleError: a preprocessing step this version does not have.
    """
    from bcc_model.imaging.preprocess import STEPS

    preprocessing = tuple(meta.preprocessing)
    image = spec.kind == "image"
    unknown = [step for step in preprocessing if step not in STEPS] if image else []
    if unknown:
        raise BundleError(f"bundle {folder} needs preprocessing step(s) {unknown} that this version does not have")
    return replace(spec, labels=tuple(meta.labels), positive_label=meta.positive_label,
                   input_size=int(meta.input_shape[0]), channels=int(meta.input_shape[-1]) if image else 0,
                   mpp=meta.mpp, magnification=meta.magnification or "", preprocessing=preprocessing,
                   cam_layer=meta.cam_layer)


def check_provenance(spec: ModalitySpec, folder: Path, meta: BundleSpec, *, allow_unverified: bool) -> bool:
    """Whether the bundle is the shipped one; an unverified one is refused unless ``allow_unverified``.

    Raises:
        BundleUnverified: the files differ from the hashes pinned in the package and running
            such a bundle was not asked for; the message says how to ask.
    """
    verified = is_shipped(spec, folder)
    if not verified and not allow_unverified:
        raise BundleUnverified(
            f"bundle {folder} is not the shipped {spec.key} bundle pinned in this version (its files differ from "
            f"the pinned hashes): refusing to run it. To run your own retrained bundle, pass --allow-unverified "
            f"(the app: set {ALLOW_UNVERIFIED_ENV}=1); it is then marked unverified, with its own hash "
            f"({meta.short_sha}) as its version")
    return verified


def load_bundle(spec: ModalitySpec, path: str | Path | None = None, *, allow_unverified: bool = False) -> Bundle:
    """Load and verify the bundle of ``spec`` (default: the shipped one in ``weights/``).

    Args:
        spec: the modality.
        path: the bundle folder (default ``spec.bundle_dir``).
        allow_unverified: run an intact bundle that is not the shipped one pinned in the package
            (a user's own retrained model); it is marked unverified wherever it is shown, with
            its own hash as its version. Off, such a bundle is refused.

    Raises:
        BundleError: missing files, an invalid or damaged model.json or weight file, a
            modality/label mismatch, a sha256 mismatch (``BundleTampered``), or an unverified
            bundle without ``allow_unverified`` (``BundleUnverified``).
    """
    folder = Path(path) if path is not None else spec.bundle_dir
    meta, metrics = read_bundle_info(folder)
    if meta.modality != spec.key or meta.labels != spec.labels:
        raise BundleError(
            f"bundle {folder} is for {meta.modality!r} with labels {list(meta.labels)}, "
            f"not {spec.key!r} with labels {list(spec.labels)}"
        )
    check_weights(spec, folder, meta)
    verified = check_provenance(spec, folder, meta, allow_unverified=allow_unverified)
    model = _load_keras(folder / "model.keras", spec.key)
    lesion = meta.extras.get("lesion_supervision") or {}
    lesion_map = (_lesion_map(model, _load_keras(folder / lesion["map_file"], spec.key), meta, folder)
                  if lesion.get("map_file") else None)
    bundle_spec = bundle_contract(spec, meta, folder)
    runtime = meta.extras.get("runtime") or {}
    fast = None
    if runtime.get("file"):
        from bcc_model.models.onnx_path import load_forward

        try:
            fast = load_forward(folder / runtime["file"])
        except Exception as err:  # onnxruntime raises its own types on a damaged graph
            raise BundleError(f"bundle {folder}: {runtime['file']} could not be loaded ({type(err).__name__}); "
                              f"{restore_advice(spec)}") from None
    return Bundle(spec=bundle_spec, model=model, meta=meta, metrics=metrics, path=folder, lesion_map=lesion_map,
                  fast=fast, verified=verified)


def _lesion_map(model, head, meta: BundleSpec, folder: Path):
    """Image -> lesion map model: the stored head on the classifier's Grad-CAM layer."""
    from bcc_model.models.lesion_head import attach_lesion_head

    try:
        return attach_lesion_head(model, head, meta.cam_layer)
    except ValueError as err:
        raise BundleError(f"bundle {folder}: {err}") from err


def _load_keras(path: Path, modality: str):
    """Load a Keras file whose hash :func:`check_weights` has just checked.

    A modality's own layers come from its ``keras_objects`` hook (``registry.Modality``): a fresh
    process (the app, ``evaluate``) may not have imported the module that defines them.
    """
    import keras

    objects = modality_hook(modality, "keras_objects")
    try:  # safe mode: a Lambda layer (arbitrary code) is refused, never run
        return keras.models.load_model(path, compile=False, custom_objects=objects() if objects else None)
    except Exception as err:  # Keras raises many types on a damaged or hostile file
        raise BundleError(f"{path.name} in {path.parent} could not be loaded ({type(err).__name__}: "
                          f"{str(err)[:160]})") from None


def install_bundle(staging: Path, target: Path) -> None:
    """Atomically replace ``target`` by the complete bundle in ``staging`` (same filesystem).

    The old bundle is renamed aside first and deleted only after the new one is in place.
    """
    missing = [name for name in BUNDLE_FILES if not (staging / name).is_file()]
    if missing:
        raise BundleError(f"refusing to install an incomplete bundle: missing {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def staging_dir(target: Path) -> Path:
    """A fresh temporary folder beside ``target`` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


_SHARED_OBJECT_ID = re.compile(rb'"shared_object_id": (\d+)')


def _renumber_shared_objects(config: bytes) -> bytes:
    """``config`` with each distinct ``shared_object_id`` replaced by 0, 1, 2, ... in order of appearance."""
    numbers: dict[bytes, int] = {}
    return _SHARED_OBJECT_ID.sub(
        lambda match: b'"shared_object_id": %d' % numbers.setdefault(match.group(1), len(numbers)), config)


def save_model(model, path: Path) -> None:
    """Save a Keras model so that identical weights give an identical file, hence the same sha256.

    A ``.keras`` file is a zip whose ``metadata.json`` holds the save time and whose weight entry
    carries it as a timestamp, so a deterministic re-run would otherwise get a new version
    hash. Both are dropped here (model.json's ``created`` records when the bundle was made).
    ``config.json`` names an object shared by several layers (an initializer, a regularizer) by
    its Python ``id()``, a memory address that differs between runs; those ids are renumbered in
    order of appearance. Everything Keras reads back is unchanged.
    """
    path.unlink(missing_ok=True)
    raw = path.with_name(f".unpinned-{path.name}")
    model.save(raw)
    try:
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w") as dst:
            for entry in src.infolist():
                data = src.read(entry.filename)
                if entry.filename == "metadata.json":
                    metadata = json.loads(data)
                    metadata.pop("date_saved", None)
                    data = json.dumps(metadata).encode("utf-8")
                elif entry.filename == "config.json":
                    data = _renumber_shared_objects(data)
                fixed = zipfile.ZipInfo(entry.filename, _ZIP_EPOCH)
                fixed.compress_type = entry.compress_type
                dst.writestr(fixed, data)
    finally:
        raw.unlink(missing_ok=True)
