"""The modality registry: what each model consumes and produces, and where its modality lives.

Why a slim spec plus a recipe: a *loaded* bundle is described by its own ``model.json``
(``models/bundle.py``); the spec here is only the default a new training run starts from, and
what the UI says before any bundle is loaded. Everything only training needs (architectures,
augmentation, cross-validation candidates, patient weighting ...) sits in a separate
``TrainingRecipe``, so the inference contract stays small enough to read at a glance.

Modalities live in ``bcc_model/modalities/`` and are found by import path
(``MODALITY_MODULES``), imported on first use: the core never imports them, so a new modality
is one new module (its ``SPEC`` and optional hooks) and one line here. Importing a modality
module registers what it brings (preprocessing steps, architectures, Keras layers).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Callable, Literal, Mapping, Protocol

__all__ = ["ModalitySpec", "TrainingRecipe", "Modality", "MODALITIES", "MODALITY_MODULES", "get_modality",
           "load_modality", "modality_hook", "modality_keys", "default_modality", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

MODALITY_MODULES: Mapping[str, str] = MappingProxyType({
    "histopathology": "bcc_model.modalities.histopathology",
    "cytology": "bcc_model.modalities.cytology",
    "mammography": "bcc_model.modalities.mammography",
    "ultrasound": "bcc_model.modalities.ultrasound",
})
"""Modality key -> the module that defines it; the first is the command lines' default."""

_RECIPE_OPTIONS = frozenset({"lr", "patch_pretrain"})


@dataclass(frozen=True)
class TrainingRecipe:
    """How ``python -m bcc_model.train`` trains a modality by default (never read at prediction time).

    Attributes:
        augmentation: names of the random training-time transforms (``training/augment.py``).
        default_arch: architecture used when none is given.
        arch_params: keyword arguments per architecture for this modality's input size.
        arch_training: per architecture, ``train`` options (``lr``, ``patch_pretrain``) that
            replace the command line's for that architecture only.
        training_defaults: defaults for ``epochs``, ``batch_size``, ``patience``, ``lr`` over
            those of the modality's kind.
        cv_candidates: recipes patient-grouped cross-validation compares, name -> overrides of
            ``arch``, ``preprocessing`` and ``augmentation``; empty: the architectures.
        cell_poolings: multiple-instance poolings cross-validation compares (non-empty: the
            modality trains a frozen-trunk cell model, ``modalities/mammography``).
        test_always: ``(column, value)`` of ``labels.csv`` whose patients always go to the test split.
        sampled_fraction: ``(column, value, label, fraction)``: in the rows of ``labels.csv`` where
            ``column == value``, only ``fraction`` of the ``label`` images of each patient were kept
            when the data were made; those images are weighted ``1 / fraction`` (loss, calibration,
            operating point, metrics) so the model learns and is judged on the tissue's real mix.
        patient_weighting: weight every training patient equally.
        lesion_source: lesion geometry, ``"circles"`` (``lesions.csv``), ``"masks"`` or ``None``.
        lesion_labels: classes whose images show a lesion; localisation is scored on them.
        lesion_loss_weight: weight of the lesion-map loss of the auxiliary head; ``None``/0: off.
        patch_fraction: side of the pre-training patches as a fraction of the input; ``None``: off.
        extra_binary_tasks: task name -> labels counted positive in a one-vs-rest task.
        negative_labels: folder labels ``evaluate`` accepts as "not positive" without a class.
        test_time_flips: flips averaged with the image at prediction time (``models.spec.FLIPS``);
            training fits calibration and operating point on the same average and records them in model.json.
    """

    augmentation: tuple[str, ...] = ()
    default_arch: str = "se_resnet"
    arch_params: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    arch_training: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    training_defaults: Mapping[str, float] = field(default_factory=dict)
    cv_candidates: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    cell_poolings: tuple[str, ...] = ()
    test_always: tuple[str, str] | None = None
    sampled_fraction: tuple[str, str, str, float] | None = None
    patient_weighting: bool = False
    lesion_source: Literal["circles", "masks"] | None = None
    lesion_labels: tuple[str, ...] = ()
    lesion_loss_weight: float | None = None
    patch_fraction: float | None = None
    extra_binary_tasks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    negative_labels: tuple[str, ...] = ()
    test_time_flips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.arch_params and self.default_arch not in self.arch_params:  # empty: nothing to train
            raise ValueError(f"default_arch {self.default_arch!r} has no arch_params entry")
        if self.lesion_source not in (None, "circles", "masks"):
            raise ValueError(f"lesion_source must be 'circles', 'masks' or None, got {self.lesion_source!r}")
        if self.patch_fraction is not None and not 0 < self.patch_fraction <= 1:
            raise ValueError(f"patch_fraction must be in (0, 1], got {self.patch_fraction}")
        if not set(self.arch_training) <= set(self.arch_params):
            raise ValueError(f"arch_training names architectures without arch_params: {sorted(self.arch_training)}")
        if self.patient_weighting and self.lesion_loss_weight:
            raise ValueError("patient_weighting and lesion_loss_weight cannot both be set: the lesion head's "
                             "sample weights already carry the class weights")
        unknown = {k for options in self.arch_training.values() for k in options} - _RECIPE_OPTIONS
        if unknown:
            raise ValueError(f"arch_training may set lr and patch_pretrain, not {sorted(unknown)}")
        for name, overrides in self.cv_candidates.items():
            if not set(overrides) <= {"arch", "preprocessing", "augmentation"}:
                raise ValueError(f"cv_candidates[{name!r}] may set arch, preprocessing and augmentation only")
            if overrides.get("arch", self.default_arch) not in self.arch_params:
                raise ValueError(f"cv_candidates[{name!r}] names an architecture without arch_params")
        if self.sampled_fraction is not None and not 0 < self.sampled_fraction[3] <= 1:
            raise ValueError(f"sampled_fraction's fraction must be in (0, 1], got {self.sampled_fraction[3]}")
        if self.lesion_loss_weight and self.lesion_source is None:
            raise ValueError("lesion_loss_weight needs lesion geometry (lesion_source)")


@dataclass(frozen=True)
class ModalitySpec:
    """What a model of one modality consumes and produces, and how the UI names it.

    Attributes:
        key: registry name, also the bundle and sample folder name.
        title: human-readable name for the UI.
        kind: ``"image"`` or ``"tabular"``.
        labels: class names in model-output order.
        positive_label: the class whose probability drives the decision threshold.
        input_size: side of the square model input in px (images) or feature count (tabular).
        channels: 3 for RGB, 1 for greyscale (images only; 0 for tabular).
        mpp: µm per pixel of the model input; with ``mpp_at_size`` the scale of the source
            images at that size instead (``model_mpp``); ``None``: no fixed physical scale.
        mpp_at_size: side in px of the source images at which ``mpp`` holds (whole images
            resized to the input); ``None`` when ``mpp`` is already the model input's scale.
        magnification: apparent objective magnification of the training images, for the UI.
        preprocessing: deterministic steps before the model (``imaging/preprocess.py``), in order.
        cam_layer: name of the last 4-D feature layer, the Grad-CAM target.
        citation: where the training data came from.
        appearance: what the images look like, for the wrong-model hint
            (``imaging/modality_guess.py``); ``None`` derives it from ``channels``.
        overlay_style: how heatmaps are drawn by default (``explain/overlay.OVERLAY_STYLES``).
        whole_image: the model sees a whole image resized to its input (not fixed-scale patches),
            so cards and pages describe resizing rather than a physical scale.
        shipped_files: sha256 of each file of the bundle shipped in ``weights/<key>``: a bundle
            whose files all match is *verified*; any other intact bundle loads *unverified*.
        recipe: the training defaults (``TrainingRecipe``).
        display_names: words a reader sees for a bundle label where they differ from it (the
            H&E negative class is "no IDC", not "benign": it holds DCIS and atypia too).
        dicom_modalities: the DICOM Modality codes of this modality's images (MG, US, SM): a file whose
            header names one is this modality's, whatever its pixels look like.
        breast_views: each image is one view of one breast (mammography): batch results are also
            pooled per exam and side (``analysis/breasts.py``, ``breasts.csv``).
    """

    key: str
    title: str
    kind: Literal["image", "tabular"]
    labels: tuple[str, ...]
    positive_label: str
    input_size: int
    channels: int = 3
    mpp: float | None = None
    mpp_at_size: int | None = None
    magnification: str = ""
    preprocessing: tuple[str, ...] = ()
    cam_layer: str = "last_conv"
    citation: str = ""
    appearance: Literal["he_stain", "mammogram", "b_mode", "greyscale"] | None = None
    overlay_style: Literal["contour", "high", "blend"] = "blend"
    whole_image: bool = False
    shipped_files: Mapping[str, str] = field(default_factory=dict)
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    display_names: Mapping[str, str] = field(default_factory=dict)
    dicom_modalities: tuple[str, ...] = ()
    breast_views: bool = False

    def display(self, label: str) -> str:
        """The word a reader sees for ``label`` (the label itself unless the modality names it otherwise)."""
        return self.display_names.get(label, label)

    def __post_init__(self) -> None:
        if self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} not in labels {self.labels}")
        if self.kind not in ("image", "tabular"):
            raise ValueError(f"kind must be 'image' or 'tabular', got {self.kind!r}")
        if self.kind == "image" and self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.appearance not in (None, "he_stain", "mammogram", "b_mode", "greyscale"):
            raise ValueError(f"unknown appearance {self.appearance!r}")
        groups = {"lesion_labels": self.recipe.lesion_labels, **self.recipe.extra_binary_tasks}
        for name, members in groups.items():
            if not set(members) <= set(self.labels):
                raise ValueError(f"{name} {tuple(members)} names classes outside labels {self.labels}")

    def candidate(self, name: str) -> tuple[str, "ModalitySpec"]:
        """``(architecture, spec)`` of a cross-validation candidate: a ``cv_candidates`` recipe, or an architecture."""
        recipe = self.recipe
        if name in recipe.cv_candidates:
            overrides = dict(recipe.cv_candidates[name])
            arch = str(overrides.pop("arch", recipe.default_arch))
            spec = self
            if "preprocessing" in overrides:
                spec = replace(spec, preprocessing=tuple(overrides["preprocessing"]))
            if "augmentation" in overrides:
                spec = spec.with_recipe(augmentation=tuple(overrides["augmentation"]))
            return arch, spec
        if name in recipe.arch_params:
            return name, self
        raise KeyError(f"unknown candidate {name!r} for {self.key}; valid: "
                       f"{', '.join([*recipe.cv_candidates, *recipe.arch_params])}")

    def with_recipe(self, **changes: Any) -> "ModalitySpec":
        """This spec with ``changes`` to its training recipe (validated again)."""
        return replace(self, recipe=replace(self.recipe, **changes))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Model input shape without the batch axis (HWC for images)."""
        if self.kind == "tabular":
            return (self.input_size,)
        return (self.input_size, self.input_size, self.channels)

    @property
    def model_mpp(self) -> float | None:
        """µm per pixel of the model input: ``mpp`` rescaled from ``mpp_at_size`` to ``input_size``."""
        if self.mpp is None or self.mpp_at_size is None:
            return self.mpp
        return self.mpp * self.mpp_at_size / self.input_size

    @property
    def patch_size(self) -> int | None:
        """Side of the pre-training patches in model-input px (``patch_fraction`` of ``input_size``)."""
        fraction = self.recipe.patch_fraction
        return None if fraction is None else max(8, round(fraction * self.input_size))

    @property
    def supports_region_mode(self) -> bool:
        """Region mode (tile maps of fields of view and slides) needs a colour patch model with a fixed
        physical scale; whole-image models (``mpp_at_size`` set) resize the full image instead."""
        return self.kind == "image" and self.channels == 3 and self.mpp is not None and self.mpp_at_size is None

    @property
    def positive_index(self) -> int:
        return self.labels.index(self.positive_label)

    @property
    def bundle_dir(self) -> Path:
        """``weights/<key>``; ``BCC_WEIGHTS_DIR`` points the product at another weights folder."""
        return Path(os.environ.get("BCC_WEIGHTS_DIR", PROJECT_ROOT / "weights")) / self.key

    @property
    def sample_dir(self) -> Path:
        return PROJECT_ROOT / "samples" / self.key

    @property
    def default_data_dir(self) -> Path:
        return Path("data") / self.key


class Modality(Protocol):
    """What a modality module offers: ``SPEC`` always; the hooks only where it differs from the core.

    ``train(config, spec) -> Path`` replaces the generic image pipeline (``training/pipeline.py``)
    and raises ``training.config.TrainingError`` or ``DataError`` on unusable options or data;
    ``keras_objects()`` names the modality's own Keras layers for loading its bundles;
    ``card_context(info)`` adds the modality's section to the model card, drawn by the template
    ``CARD_TEMPLATE`` beside the module; ``evaluate_external(bundle, data, ...)`` replaces the
    image-folder evaluation (``evaluation/external.py``).
    """

    SPEC: ModalitySpec


def load_modality(key: str) -> ModuleType:
    """Import (once) and return the module of modality ``key``; an unknown key lists the valid ones."""
    try:
        path = MODALITY_MODULES[key]
    except KeyError:
        raise KeyError(f"unknown modality {key!r}; valid: {', '.join(MODALITY_MODULES)}") from None
    return importlib.import_module(path)


def modality_hook(key: str, name: str) -> Callable[..., Any] | None:
    """The modality's ``name`` hook (``train``, ``card_context``, ``evaluate_external``), or ``None``."""
    return getattr(load_modality(key), name, None)


def get_modality(key: str) -> ModalitySpec:
    """Return the spec for ``key``; an unknown key fails listing the valid ones."""
    return load_modality(key).SPEC


def modality_keys() -> tuple[str, ...]:
    return tuple(MODALITY_MODULES)


def default_modality() -> str:
    """The modality the command lines use when none is given (the registry's first)."""
    return next(iter(MODALITY_MODULES))


class _Specs(Mapping[str, ModalitySpec]):
    """Key -> spec, importing each modality on first access (a read-only view of the registry)."""

    def __getitem__(self, key: str) -> ModalitySpec:
        if key not in MODALITY_MODULES:
            raise KeyError(key)
        return get_modality(key)

    def __iter__(self) -> Iterator[str]:
        return iter(MODALITY_MODULES)

    def __len__(self) -> int:
        return len(MODALITY_MODULES)


MODALITIES: Mapping[str, ModalitySpec] = _Specs()
