"""Mammography: lesions first, then aggregation, on a pretrained trunk whose early part is frozen.

Everything only mammography needs lives here, over the generic core:

- ``hygiene.py``: polarity, breast crop, orientation, pectoral muscle (registers preprocessing steps).
- ``mil.py``: the cell (multiple-instance) model and its ``CellPooling`` layer (registers architectures).
- ``features.py``: cached frozen-trunk features per image (augmented copies, test-time flips).
- ``training.py``: the ``train`` hook: pooling and trunk chosen by patient-grouped CV over both data sets.
- ``choice.py``: what CV found, and the operating point, conformal sets and view pooling fitted out of fold.
- ``scoring.py``: per data set figures, FROC, map-peak checks, per abnormality class.
- ``failure_cases.py``: pictures of the most confident errors for the card.
- ``card.py`` and ``card.md.j2``: the model-card sections only a cell model has.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from bcc_model.modalities.mammography import hygiene  # noqa: F401  (registers the preprocessing steps)
from bcc_model.registry import ModalitySpec, TrainingRecipe

__all__ = ["SPEC", "CARD_TEMPLATE", "train", "card_context", "keras_objects"]

CARD_TEMPLATE = Path(__file__).with_name("card.md.j2")
"""This modality's model-card sections (factors, per data set figures, FROC, failure cases)."""

_CELL_HEAD = {"width": 64, "dropout": 0.3, "pooling": "topk", "k": 4, "pretrained": True}

SPEC = ModalitySpec(
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
    # Hygiene first (hygiene.py): white-background images are inverted, the breast is cropped and
    # turned chest wall left, the pectoral muscle of MLO views is blanked.
    preprocessing=("to_grey", "polarity", "breast_crop", "laterality_flip", "pectoral_removal", "pad_square",
                   "resize"),
    appearance="mammogram",
    dicom_modalities=("MG",),
    breast_views=True,
    whole_image=True,
    citation=(
        "mini-MIAS: J. Suckling et al., The Mammographic Image Analysis Society Digital Mammogram Database, "
        "Excerpta Medica International Congress Series 1069:375-378 (1994); research use only. "
        "RSNA Screening Mammography Breast Cancer Detection (2022), Kaggle competition data, research use only."
    ),
    shipped_files=MappingProxyType({
        "model.keras": "267c7afd84fb8b194434ca28a0713d5807ee2c2f239f07751c031bed7241a529",
        "model.json": "577af3198532b60a8ffcc9e66baabe8ded2206b4289649008669548644f8dc94",
        "metrics.json": "76def0e14a79a98a224b6b57389ebc0adc8dac597a5d8ddd5f02c0612674f85f",
        "model.onnx": "2e511b21f1fb62ac1740ffd0a3a951e5a60c33e217b3ff4653a796613f8f879a",
        "lesion_map.keras": "1d08b63e4440d0fb06ef434812f82333734e9c76f4d68d68e59730d12b964cb6",
    }),
    recipe=TrainingRecipe(
        # No flips: laterality_flip fixes the chest wall on the left and the pectoral muscle on top.
        augmentation=("affine", "brightness_contrast", "gamma"),
        # ImageNet cells (DenseNet121 or VGG16 frozen; EfficientNet-Lite0 with its last stages
        # fine-tuned), a learnt cell head, and a trunk and pooling chosen by patient-grouped CV over
        # both data sets (training.py); "pooling" is the default until that choice is recorded.
        default_arch="densenet121_mil",
        arch_params=MappingProxyType({"densenet121_mil": MappingProxyType(_CELL_HEAD),
                                      "vgg16_mil": MappingProxyType(_CELL_HEAD),
                                      # Lite0: stages 6-7 and the 1x1 head fine-tuned (units 12-17)
                                      "lite0_mil": MappingProxyType({**_CELL_HEAD, "tuned_from": 12})}),
        cell_poolings=("max", "topk", "mean", "lse"),
        lesion_source="circles",
        lesion_labels=("benign", "malignant"),
        extra_binary_tasks=MappingProxyType({"abnormal_vs_normal": ("benign", "malignant")}),
        # RSNA screening folders (negative/, malignant/) are evaluated as cancer vs no cancer.
        negative_labels=("negative",),
        # The lesion-cell loss beside the image loss (training.py).
        lesion_loss_weight=1.0,
        # Test-time flip: laterality_flip puts the chest wall on the left, so only the up-down
        # mirror is still a plausible breast; its output is averaged with the image's own.
        test_time_flips=("vertical",),
        training_defaults=MappingProxyType({"epochs": 20, "batch_size": 32, "patience": 0}),
    ),
)


def train(config, spec: ModalitySpec) -> Path:
    """The ``train`` hook: the cell model on cached trunk features (``training.train_mil``); the bundle's folder."""
    from bcc_model.modalities.mammography.training import train_mil

    return train_mil(config, spec)


def card_context(info: Mapping, metrics: Mapping) -> dict[str, Any]:
    """The ``card_context`` hook: values of the cell-model sections of ``card.md.j2``."""
    from bcc_model.modalities.mammography.card import mammography_context

    return mammography_context(info, metrics)


def keras_objects() -> dict[str, Any]:
    """The ``keras_objects`` hook: this modality's own Keras layers, by their registered names."""
    from bcc_model.modalities.mammography.mil import CellPooling

    return {"bcc>CellPooling": CellPooling}
