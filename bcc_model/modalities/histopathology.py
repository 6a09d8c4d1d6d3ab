"""H&E histopathology: 50 px IDC patches at 2.5x, whole slides tiled by ``analysis/wsi.py``.

Data only: the generic image pipeline (``training/pipeline.py``) trains it.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from bcc_model.registry import ModalitySpec, TrainingRecipe

__all__ = ["SPEC", "CARD_TEMPLATE"]

CARD_TEMPLATE = Path(__file__).with_suffix(".md.j2")
"""This modality's model-card sections (factors, label limitations)."""

_AUGMENTATION = ("flip", "rot90", "hed_jitter", "brightness_contrast", "jpeg")
_STRONG_AUGMENTATION = ("flip", "rot90", "hed_jitter_strong", "brightness_contrast", "jpeg")
_MACENKO = ("to_rgb", "resize", "stain_normalise")

SPEC = ModalitySpec(
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
    # Outlines: a colour blend turns the stain blue-purple and hides morphology.
    overlay_style="contour",
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
    recipe=TrainingRecipe(
        augmentation=_AUGMENTATION,
        # Patients contribute 2 to 700 patches: each is weighted equally.
        patient_weighting=True,
        # The 7 complete slides are test patients: region mode is validated on whole slides nobody trained on.
        test_always=("coverage", "complete"),
        # 19 patients kept every IDC patch but 27.1 % of their IDC-negative ones (the data's PROVENANCE):
        # those negatives count 1 / 0.271 so loss, calibration and metrics see the tissue's real mix.
        sampled_fraction=("coverage", "all-idc", "benign", 0.271),
        # Stain and scanner robustness compared by patient-grouped CV (train --cv-folds): the shipped
        # recipe, Macenko normalisation to a fixed reference (imaging/stain.py), HED jitter four
        # times stronger, and both.
        cv_candidates=MappingProxyType({
            "se_resnet": MappingProxyType({}),
            "se_resnet+macenko": MappingProxyType({"preprocessing": _MACENKO}),
            "se_resnet+hed_strong": MappingProxyType({"augmentation": _STRONG_AUGMENTATION}),
            "se_resnet+macenko+hed_strong": MappingProxyType(
                {"preprocessing": _MACENKO, "augmentation": _STRONG_AUGMENTATION}),
        }),
        default_arch="se_resnet",
        arch_params=MappingProxyType({
            "se_resnet": MappingProxyType(
                {"widths": (32, 64, 128), "blocks_per_stage": (2, 2, 2), "se_ratio": 8, "dropout": 0.3}),
            "densenet": MappingProxyType(
                {"blocks": (3, 4, 6), "growth_rate": 12, "stem_filters": 24, "compression": 0.5, "dropout": 0.3}),
        }),
    ),
)
