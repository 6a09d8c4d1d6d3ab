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
    dicom_modalities=("SM",),
    # Outlines: a colour blend turns the stain blue-purple and hides morphology.
    overlay_style="contour",
    citation=(
        "IDC patches (IDC_regular_ps50_idx5): Cruz-Roa et al., Proc. SPIE 9041, 904103 (2014), "
        "doi:10.1117/12.2043872; Janowczyk & Madabhushi, J Pathol Inform 7:29 (2016), "
        "doi:10.4103/2153-3539.186902."
    ),
    display_names=MappingProxyType({"benign": "no IDC", "malignant": "IDC"}),
    shipped_files=MappingProxyType({
        "model.keras": "5a3211a93d35520b01e5593a21cab06f468d6b833c9ad2e54a65cc36d1eb92a0",
        "model.json": "5602311820c7fe1438116505f14d3ae8df9a20fefdd1988d28214f0e083e14c3",
        "metrics.json": "613de1bb0b672112a1c8038e9370a42e2564840cee4792b373c79854ad4305cb",
        "model.onnx": "796f6727ed3e3f02a663d6bf2af36b9605a26dd726d0e7fdef29312cf22eca9c",
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
