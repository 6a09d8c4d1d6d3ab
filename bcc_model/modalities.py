"""The modality registry: the one place that says what each model expects.

Every other module and every page reads these specs instead of carrying its own literals, so
a new modality is one new entry here (plus its data and bundle), not edits across the code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

__all__ = ["ModalitySpec", "MODALITIES", "get_modality", "modality_keys", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModalitySpec:
    """What a model of one modality consumes and produces.

    Attributes:
        key: registry name, also the bundle and sample folder name.
        title: human-readable name for the UI.
        kind: ``"image"`` or ``"tabular"``.
        labels: class names in model-output order.
        positive_label: the class whose probability drives the decision threshold.
        input_size: side of the square model input in px (images) or feature count (tabular).
        channels: 3 for RGB, 1 for greyscale (images only; 0 for tabular).
        mpp: scale the model was trained at, in µm per pixel of the model input; ``None`` when
            the modality has no fixed physical scale. With ``mpp_at_size`` set it is the scale of
            the source images at that size instead (see ``model_mpp``).
        mpp_at_size: side in px of the source images at which ``mpp`` holds, for modalities whose
            whole image is resized to the model input (mammography); ``None`` when ``mpp`` is
            already the scale of the model input (fixed-scale patches).
        magnification: apparent objective magnification of the training images, for the UI.
        preprocessing: names of the deterministic steps applied, in order, before the model
            (see ``imaging/preprocess.py``); identical in training and prediction.
        augmentation: names of the random training-time transforms (see ``training/augment.py``).
        default_arch: architecture name used by ``train`` when none is given.
        arch_params: keyword arguments per architecture for this modality's input size.
        cam_layer: name of the last 4-D feature layer, the Grad-CAM target.
        citation: where the training data came from.
        lesion_source: where lesion geometry comes from (``datasets/lesions.py``): ``"circles"`` (centre
            and radius rows of ``lesions.csv``), ``"masks"`` (the ``mask`` column of
            ``labels.csv``) or ``None`` (no geometry: no localisation scores, no patch
            pre-training).
        lesion_labels: classes whose images show a lesion; localisation is scored on them.
        extra_binary_tasks: task name -> the labels that count as positive in a one-vs-rest
            task reported besides the main one, e.g. ``{"abnormal_vs_normal": ("benign",
            "malignant")}`` scores ``1 - p(normal)``.
        negative_labels: folder labels that ``evaluate`` accepts besides ``labels`` and counts
            as "not ``positive_label``" without naming a class (RSNA screening's ``negative``:
            no cancer, normal or benign unknown). A folder holding one is scored as positive
            against the rest only, beside the histogram-only baseline.
        patch_fraction: side of the lesion / tissue patches that pre-train the network before
            whole-image training (``training/patches.py``), as a fraction of ``input_size`` (patches are
            cut from model inputs, so they share the model's scale); ``None`` disables it.
        appearance: what this modality's images look like, for the wrong-model hint
            (``imaging/modality_guess.py``): ``"he_stain"`` (pink/purple colour), ``"mammogram"``,
            ``"ultrasound"``, or ``"greyscale"`` (any greyscale image); ``None`` derives it from
            ``channels`` (1 -> ``"greyscale"``, otherwise unknown). Tabular modalities have none.
        lesion_loss_weight: weight of the lesion-map loss of an auxiliary head trained on the
            lesion masks beside the classifier (``models/lesion_head.py``; training only); ``None`` or 0
            turns it off. Needs ``lesion_source``.
        training_defaults: this modality's defaults for ``train`` options (``epochs``,
            ``batch_size``, ``patience``, ``lr``), over those of its kind: a few hundred whole images
            need smaller batches and more epochs than ten thousand patches.
        arch_training: per architecture, ``train`` options that replace the command line's for
            that architecture only (``lr``, ``patch_pretrain``): a pretrained trunk is fine-tuned
            gently, and patch pre-training would overwrite what it brings.
        overlay_style: how heatmaps are drawn by default (``explain/overlay.OVERLAY_STYLES``): H&E
            uses outlines, because a colour blend turns the stain blue-purple and hides morphology.
        cv_candidates: recipes that patient-grouped cross-validation (``train --cv-folds``) compares,
            name -> overrides of this spec's ``arch`` (an ``arch_params`` name; default
            ``default_arch``), ``preprocessing`` and ``augmentation``; the best by mean
            out-of-fold ROC AUC is bundled. Empty: the candidates are the architectures.
        cell_poolings: the multiple-instance aggregations of cell scores into an image score
            (``models/mil.POOLINGS``) that patient-grouped cross-validation compares; non-empty
            means the modality trains a frozen-trunk cell model on cached features
            (``training/mil.py``), optionally with a second, screening-labelled data folder.
        test_always: ``(column, value)`` of ``labels.csv``: patients with that value always go to the
            test split (H&E: the complete slides, so the bundle's region mode is validated on whole
            slides it never saw); ``None``: the test split is drawn like the others.
        patient_weighting: train with every patient weighted equally (``training/tfdata.patient_weights``),
            where patients contribute very different numbers of images (H&E: 2 to 700 patches).
        shipped_files: sha256 of each file of the bundle shipped in ``weights/<key>``, pinned in
            the source: a bundle whose files all match is *verified*; any other bundle (retrained
            locally, or from elsewhere) still loads if it is intact, but is marked *unverified*
            everywhere it is shown. ``model.json`` records ``model.keras``'s hash too, but whoever
            can write to ``weights/`` can change both; this pin lives in the package.
    """

    key: str
    title: str
    kind: Literal["image", "tabular"]
    labels: tuple[str, ...]
    positive_label: str
    input_size: int
    channels: int = 3
    mpp: float | None = None
    magnification: str = ""
    preprocessing: tuple[str, ...] = ()
    augmentation: tuple[str, ...] = ()
    default_arch: str = "se_resnet"
    arch_params: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    cam_layer: str = "last_conv"
    citation: str = ""
    mpp_at_size: int | None = None
    lesion_source: Literal["circles", "masks"] | None = None
    lesion_labels: tuple[str, ...] = ()
    extra_binary_tasks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    negative_labels: tuple[str, ...] = ()
    patch_fraction: float | None = None
    lesion_loss_weight: float | None = None
    training_defaults: Mapping[str, float] = field(default_factory=dict)
    arch_training: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    appearance: Literal["he_stain", "mammogram", "ultrasound", "greyscale"] | None = None
    shipped_files: Mapping[str, str] = field(default_factory=dict)
    patient_weighting: bool = False
    cv_candidates: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    test_always: tuple[str, str] | None = None
    cell_poolings: tuple[str, ...] = ()
    overlay_style: Literal["contour", "high", "blend"] = "blend"

    def __post_init__(self) -> None:
        if self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} not in labels {self.labels}")
        if self.kind not in ("image", "tabular"):
            raise ValueError(f"kind must be 'image' or 'tabular', got {self.kind!r}")
        if self.kind == "image" and self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.default_arch not in self.arch_params:
            raise ValueError(f"default_arch {self.default_arch!r} has no arch_params entry")
        if self.lesion_source not in (None, "circles", "masks"):
            raise ValueError(f"lesion_source must be 'circles', 'masks' or None, got {self.lesion_source!r}")
        for name, members in {"lesion_labels": self.lesion_labels, **self.extra_binary_tasks}.items():
            if not set(members) <= set(self.labels):
                raise ValueError(f"{name} {tuple(members)} names classes outside labels {self.labels}")
        if self.appearance not in (None, "he_stain", "mammogram", "ultrasound", "greyscale"):
            raise ValueError(f"unknown appearance {self.appearance!r}")
        if self.patch_fraction is not None and not 0 < self.patch_fraction <= 1:
            raise ValueError(f"patch_fraction must be in (0, 1], got {self.patch_fraction}")
        if not set(self.arch_training) <= set(self.arch_params):
            raise ValueError(f"arch_training names architectures without arch_params: {sorted(self.arch_training)}")
        if self.patient_weighting and self.lesion_loss_weight:
            raise ValueError("patient_weighting and lesion_loss_weight cannot both be set: the lesion head's "
                             "sample weights already carry the class weights")
        unknown = {k for options in self.arch_training.values() for k in options} - {"lr", "patch_pretrain"}
        if unknown:
            raise ValueError(f"arch_training may set lr and patch_pretrain, not {sorted(unknown)}")
        for name, overrides in self.cv_candidates.items():
            if not set(overrides) <= {"arch", "preprocessing", "augmentation"}:
                raise ValueError(f"cv_candidates[{name!r}] may set arch, preprocessing and augmentation only")
            if overrides.get("arch", self.default_arch) not in self.arch_params:
                raise ValueError(f"cv_candidates[{name!r}] names an architecture without arch_params")
        if self.lesion_loss_weight and self.lesion_source is None:
            raise ValueError("lesion_loss_weight needs lesion geometry (lesion_source)")

    def candidate(self, name: str) -> tuple[str, "ModalitySpec"]:
        """``(architecture, spec)`` of a cross-validation candidate: a ``cv_candidates`` recipe, or an architecture."""
        if name in self.cv_candidates:
            overrides = dict(self.cv_candidates[name])
            arch = str(overrides.pop("arch", self.default_arch))
            return arch, replace(self, **{k: tuple(v) for k, v in overrides.items()})
        if name in self.arch_params:
            return name, self
        raise KeyError(f"unknown candidate {name!r} for {self.key}; valid: "
                       f"{', '.join([*self.cv_candidates, *self.arch_params])}")

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
        return None if self.patch_fraction is None else max(8, round(self.patch_fraction * self.input_size))

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


_HISTOPATHOLOGY = ModalitySpec(
    key="histopathology",
    title="H&E histopathology (IDC patches)",
    kind="image",
    labels=("benign", "malignant"),
    positive_label="malignant",
    input_size=50,
    channels=3,
    # 40x scans (~0.25 µm/px) shown at 2.5x apparent magnification: 16x coarser.
    mpp=4.0,
    magnification="2.5x",
    preprocessing=("to_rgb", "resize"),
    appearance="he_stain",
    augmentation=("flip", "rot90", "hed_jitter", "brightness_contrast", "jpeg"),
    patient_weighting=True,
    # The 7 complete slides are test patients: region mode is validated on whole slides nobody trained on.
    test_always=("coverage", "complete"),
    # Stain and scanner robustness compared by patient-grouped CV (train --cv-folds): the shipped
    # recipe, Macenko normalisation to a fixed reference (imaging/stain.py), HED jitter four
    # times stronger, and both.
    cv_candidates=MappingProxyType({
        "se_resnet": MappingProxyType({}),
        "se_resnet+macenko": MappingProxyType({"preprocessing": ("to_rgb", "resize", "stain_normalise")}),
        "se_resnet+hed_strong": MappingProxyType(
            {"augmentation": ("flip", "rot90", "hed_jitter_strong", "brightness_contrast", "jpeg")}),
        "se_resnet+macenko+hed_strong": MappingProxyType(
            {"preprocessing": ("to_rgb", "resize", "stain_normalise"),
             "augmentation": ("flip", "rot90", "hed_jitter_strong", "brightness_contrast", "jpeg")}),
    }),
    overlay_style="contour",
    default_arch="se_resnet",
    arch_params=MappingProxyType(
        {
            "se_resnet": MappingProxyType(
                {"widths": (32, 64, 128), "blocks_per_stage": (2, 2, 2), "se_ratio": 8, "dropout": 0.3}
            ),
            "densenet": MappingProxyType(
                {"blocks": (3, 4, 6), "growth_rate": 12, "stem_filters": 24, "compression": 0.5, "dropout": 0.3}
            ),
        }
    ),
    citation=(
        "IDC patches (IDC_regular_ps50_idx5): Cruz-Roa et al., Proc. SPIE 9041, 904103 (2014), "
        "doi:10.1117/12.2043872; Janowczyk & Madabhushi, J Pathol Inform 7:29 (2016), "
        "doi:10.4103/2153-3539.186902."
    ),
    shipped_files=MappingProxyType({
        "model.keras": "d3a9d9b2589f815859d296d2b126659431236e963eea7f5d9d46ee1915d8d4cd",
        "model.json": "5536a7c90c868dd6671705b73f6f8050e20c61c8617965db7fb8fa0b87badcfe",
        "metrics.json": "1656e80c41e79cdc0a81ea0af511c0952686519be742a20f23b9a06e9c29d58c",
        "model.onnx": "1ed8315d1ec8ca5ff3c71ad4c5263d6267026293b0c103cad18dc06caaaedf53",
    }),
)

_CYTOLOGY = ModalitySpec(
    key="cytology",
    title="Cytology (fine-needle aspirate features, WDBC)",
    kind="tabular",
    labels=("benign", "malignant"),
    positive_label="malignant",
    input_size=30,
    channels=0,
    # Standardisation is a Normalization layer inside the model, adapted on training rows only.
    preprocessing=("standardize",),
    default_arch="conv1d",
    arch_params=MappingProxyType(
        {
            # The seed system's design. train_tabular.TUNING_GRID adds one narrower, more regularised
            # variant ((16, 32)/32/0.5); training keeps the one with the lower log loss on its
            # early-stopping cases (in CV the held-out quarter of each training fold, so the choice is
            # nested; the validation split for the bundle; never the test split). model.json
            # "tuning" and "architecture.params" record the choice: the shipped bundle kept this
            # design (validation log loss 0.038 vs 0.047), the CV folds kept it in 13 of 25 fits,
            # and nested 5 x 5 CV gave accuracy 0.963 ± 0.020, ROC AUC 0.993 ± 0.007.
            "conv1d": MappingProxyType({"filters": (32, 64), "kernel_size": 3, "dense_units": 64, "dropout": 0.3}),
            "dense": MappingProxyType({"units": (64, 32), "dropout": 0.3}),
        }
    ),
    cam_layer="",
    citation=(
        "Wisconsin Diagnostic Breast Cancer (WDBC): W.N. Street, W.H. Wolberg, O.L. Mangasarian, "
        "Proc. SPIE 1905:861-870 (1993), doi:10.1117/12.148698; UCI Machine Learning Repository, "
        "doi:10.24432/C5DW2B; as shipped in scikit-learn (sklearn.datasets.load_breast_cancer)."
    ),
    shipped_files=MappingProxyType({
        "model.keras": "f66ee365ab13cc2b4fb892ea1e8adcb3feabdda874bea70cfcbdd08481263140",
        "model.json": "14d870b94a5654cb2cfdee612224ad49678abaff959163ca0b67b66433c55660",
        "metrics.json": "eca177d90a951062ce68776569a4f0cf8726868ed144edf238f54d5d9cabbbc8",
    }),
)

# Whole greyscale images: a strided stem and max-pool quarter the side (224 px -> 56 px feature
# maps) so both architectures train in minutes on two CPU cores; four stages end at 1/32 of the
# input (7x7 at 224 px, 12x12 at 384 px: the CAM and lesion-map grid). With
# ~10-30 batches an epoch, batch-norm statistics need momentum 0.9 to track the weights.
_WHOLE_IMAGE_ARCHS = MappingProxyType(
    {
        "se_resnet": MappingProxyType(
            {"widths": (24, 48, 96, 192), "blocks_per_stage": (1, 1, 2, 1), "se_ratio": 8, "dropout": 0.3,
             "stem_strides": 2, "stem_pool": True, "bn_momentum": 0.9}
        ),
        "densenet": MappingProxyType(
            {"blocks": (3, 4, 6, 4), "growth_rate": 12, "stem_filters": 24, "compression": 0.5, "dropout": 0.3,
             "stem_strides": 2, "stem_pool": True, "bn_momentum": 0.9}
        ),
    }
)
# ImageNet-derived VGG16 trunk to conv4_3 (pretrained.py), blocks 1-3 frozen.
_PRETRAINED_VGG16 = MappingProxyType({"blocks": 4, "frozen_blocks": 3, "dropout": 0.3, "pretrained": True})
# Fine-tuned at a tenth of the default learning rate; patch pre-training would overwrite the trunk.
_PRETRAINED_VGG16_TRAINING = MappingProxyType({"vgg16": MappingProxyType({"lr": 1e-4, "patch_pretrain": False})})
_ABNORMAL_VS_NORMAL = MappingProxyType({"abnormal_vs_normal": ("benign", "malignant")})
# A few hundred whole images: small batches give enough updates per epoch; validation loss on a
# few dozen images is noisy, hence the long patience (the learning rate halves after a third of it).
_WHOLE_IMAGE_TRAINING = MappingProxyType({"epochs": 60, "batch_size": 16, "patience": 12})

_MAMMOGRAPHY = ModalitySpec(
    key="mammography",
    title="Mammography (screening and digitised film)",
    kind="image",
    labels=("normal", "benign", "malignant"),
    positive_label="malignant",
    # 16x16 cells of 32 px: MIAS lesions (median radius ~20 px at 512 px) fill one to a few cells.
    input_size=512,
    channels=1,
    # mini-MIAS: 200 µm/px at 1024 px, shipped at 512 px (400 µm/px). Nominal: breast_crop then
    # enlarges the breast, so the true scale is finer by the crop factor (typically 1.1-1.6x).
    mpp=400.0,
    mpp_at_size=512,
    # Hygiene first (imaging/mammogram.py): white-background images are inverted, the breast is
    # cropped and turned chest wall left, the pectoral muscle of MLO views is blanked.
    preprocessing=("to_grey", "polarity", "breast_crop", "laterality_flip", "pectoral_removal", "pad_square",
                   "resize"),
    appearance="mammogram",
    # No flips: laterality_flip fixes the chest wall on the left and the pectoral muscle on top.
    augmentation=("affine", "brightness_contrast", "gamma"),
    # Lesions first, then aggregation (models/mil.py): frozen ImageNet cells (DenseNet121 or VGG16),
    # a learnt cell head and a trunk and pooling chosen by patient-grouped CV over both data sets
    # (training/mil.py); "pooling" is the default until that choice is recorded in the bundle.
    default_arch="densenet121_mil",
    arch_params=MappingProxyType({
        "densenet121_mil": MappingProxyType({"width": 64, "dropout": 0.3, "pooling": "topk", "k": 4, "pretrained": True}),
        "vgg16_mil": MappingProxyType({"width": 64, "dropout": 0.3, "pooling": "topk", "k": 4, "pretrained": True}),
    }),
    cell_poolings=("max", "topk", "mean", "lse"),
    citation=(
        "mini-MIAS: J. Suckling et al., The Mammographic Image Analysis Society Digital Mammogram Database, "
        "Excerpta Medica International Congress Series 1069:375-378 (1994); research use only. "
        "RSNA Screening Mammography Breast Cancer Detection (2022), Kaggle competition data, research use only."
    ),
    lesion_source="circles",
    lesion_labels=("benign", "malignant"),
    extra_binary_tasks=_ABNORMAL_VS_NORMAL,
    # RSNA screening folders (negative/, malignant/) are evaluated as cancer vs no cancer.
    negative_labels=("negative",),
    # The lesion-cell loss beside the image loss (training/mil.py).
    lesion_loss_weight=1.0,
    training_defaults=MappingProxyType({"epochs": 20, "batch_size": 32, "patience": 0}),
    shipped_files=MappingProxyType({
        "model.keras": "267c7afd84fb8b194434ca28a0713d5807ee2c2f239f07751c031bed7241a529",
        "model.json": "577af3198532b60a8ffcc9e66baabe8ded2206b4289649008669548644f8dc94",
        "metrics.json": "76def0e14a79a98a224b6b57389ebc0adc8dac597a5d8ddd5f02c0612674f85f",
        "model.onnx": "2e511b21f1fb62ac1740ffd0a3a951e5a60c33e217b3ff4653a796613f8f879a",
        "lesion_map.keras": "1d08b63e4440d0fb06ef434812f82333734e9c76f4d68d68e59730d12b964cb6",
    }),
)

_ULTRASOUND = ModalitySpec(
    key="ultrasound",
    title="Breast ultrasound (B-mode)",
    kind="image",
    labels=("normal", "benign", "malignant"),
    positive_label="malignant",
    # Validation (106 images, seed 42, SE-ResNet with lesion-map head) improved with resolution:
    # log loss 0.581 / accuracy 0.792 at 224 px, 0.403 / 0.858 at 320, 0.338 / 0.887 at 384.
    # Margins, echo pattern and shadowing are fine detail; BUSI frames are ~500 px wide.
    input_size=384,
    channels=1,
    # BUSI frames come from one scanner at several depths with no recorded pixel spacing.
    mpp=None,
    preprocessing=("to_grey", "pad_square", "resize"),
    appearance="ultrasound",
    augmentation=("flip_lr", "affine", "brightness_contrast", "gamma"),
    default_arch="se_resnet",
    # The shipped bundle is the VGG16 (pretrained trunk): validation ROC AUC 0.973 against
    # SE-ResNet 0.946 and DenseNet 0.922 (55 epochs at ~150 s on two CPU cores, best epoch 43).
    arch_params=MappingProxyType({**_WHOLE_IMAGE_ARCHS, "vgg16": _PRETRAINED_VGG16}),
    citation=(
        "BUSI: W. Al-Dhabyani, M. Gomaa, H. Khaled, A. Fahmy, Dataset of breast ultrasound images, "
        "Data in Brief 28:104863 (2020), doi:10.1016/j.dib.2019.104863; research and academic use with citation "
        "(re-hosts label it CC BY 4.0; the authors' own licence statement was not found)."
    ),
    lesion_source="masks",
    lesion_labels=("benign", "malignant"),
    extra_binary_tasks=_ABNORMAL_VS_NORMAL,
    # Patches of half the input side centred on mask pixels (BUSI lesions are large). At 224 px on
    # validation (seed 42) it lowered log loss 0.634 -> 0.524 and raised accuracy 0.745 -> 0.783
    # and abnormal-vs-normal AUC 0.895 -> 0.922 (DenseNet), at malignant AUC 0.924 -> 0.904;
    # SE-ResNet moved alike.
    patch_fraction=0.5,
    # The lesion-map head, at 224 px on validation: SE-ResNet log loss 0.626 -> 0.581 (weight 1)
    # -> 0.488 (weight 3), DenseNet 0.526 -> 0.513 -> 0.469; at 320 px weight 3 gave 0.387 against
    # weight 1's 0.403, within the noise of 106 images, so the plain weight 1 is kept.
    lesion_loss_weight=1.0,
    training_defaults=_WHOLE_IMAGE_TRAINING,
    arch_training=_PRETRAINED_VGG16_TRAINING,
    shipped_files=MappingProxyType({
        "model.keras": "795d5d1c66bfc9b42c6a3d202e139440e5f7bbc24501c167cda9e5e039814395",
        "model.json": "0bf798ddd25659babfe82944322511e8d01ad44ce8cbef4759c6150e121de8be",
        "metrics.json": "af88a750be80a17b9eeeea6a29dffade03dca7c8fb681ac0dc0e9b337f7bed62",
        "model.onnx": "5b929787ecb8142bf4d83a03d9fac972be91087cc1b385e644e4f449f2ab31e3",
        "lesion_map.keras": "928379756f452bacde3e7623c1ebb521e8bce6c1f5c56360c314cee1fe3be49c",
    }),
)

MODALITIES: Mapping[str, ModalitySpec] = MappingProxyType(
    {s.key: s for s in (_HISTOPATHOLOGY, _CYTOLOGY, _MAMMOGRAPHY, _ULTRASOUND)}
)


def modality_keys() -> tuple[str, ...]:
    return tuple(MODALITIES)


def get_modality(key: str) -> ModalitySpec:
    """Return the spec for ``key``; an unknown key fails listing the valid ones."""
    try:
        return MODALITIES[key]
    except KeyError:
        raise KeyError(f"unknown modality {key!r}; valid: {', '.join(MODALITIES)}") from None
