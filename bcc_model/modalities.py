"""The modality registry: the one place that says what each model expects.

Every other module and every page reads these specs instead of carrying its own literals, so
a new modality is one new entry here (plus its data and bundle), not edits across the code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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
        channels: 3 for RGB, 1 for greyscale (images only).
        mpp: scale the model was trained at, in µm per pixel of the model input; ``None`` when
            the modality has no fixed physical scale.
        magnification: apparent objective magnification of the training images, for the UI.
        preprocessing: names of the deterministic steps applied, in order, before the model
            (see ``preprocess.py``); identical in training and prediction.
        augmentation: names of the random training-time transforms (see ``augment.py``).
        default_arch: architecture name used by ``train`` when none is given.
        arch_params: keyword arguments per architecture for this modality's input size.
        cam_layer: name of the last 4-D feature layer, the Grad-CAM target.
        citation: where the training data came from.
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

    def __post_init__(self) -> None:
        if self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} not in labels {self.labels}")
        if self.kind == "image" and self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.default_arch not in self.arch_params:
            raise ValueError(f"default_arch {self.default_arch!r} has no arch_params entry")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Model input shape without the batch axis (HWC for images)."""
        if self.kind == "tabular":
            return (self.input_size,)
        return (self.input_size, self.input_size, self.channels)

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
    augmentation=("flip", "rot90", "hed_jitter", "brightness_contrast"),
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
)

MODALITIES: Mapping[str, ModalitySpec] = MappingProxyType({s.key: s for s in (_HISTOPATHOLOGY,)})


def modality_keys() -> tuple[str, ...]:
    return tuple(MODALITIES)


def get_modality(key: str) -> ModalitySpec:
    """Return the spec for ``key``; an unknown key fails listing the valid ones."""
    try:
        return MODALITIES[key]
    except KeyError:
        raise KeyError(f"unknown modality {key!r}; valid: {', '.join(MODALITIES)}") from None
