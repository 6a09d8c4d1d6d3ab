"""Breast ultrasound (BUSI): whole B-mode frames, normal / benign / malignant, lesion masks.

Data only: the generic image pipeline (``training/pipeline.py``) trains it, with lesion-patch
pre-training and the lesion-map head (``models/lesion_head.py``).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from bcc_model.registry import ModalitySpec, TrainingRecipe

__all__ = ["SPEC", "CARD_TEMPLATE"]

CARD_TEMPLATE = Path(__file__).with_suffix(".md.j2")
"""This modality's model-card sections (factors, label limitations)."""

# Whole greyscale images: a strided stem and max-pool quarter the side so both architectures
# train in minutes on two CPU cores; four stages end at 1/32 of the input (12x12 at 384 px: the
# CAM and lesion-map grid). With ~10-30 batches an epoch, batch-norm statistics need momentum
# 0.9 to track the weights.
_WHOLE_IMAGE_ARCHS = {
    "se_resnet": MappingProxyType(
        {"widths": (24, 48, 96, 192), "blocks_per_stage": (1, 1, 2, 1), "se_ratio": 8, "dropout": 0.3,
         "stem_strides": 2, "stem_pool": True, "bn_momentum": 0.9}),
    "densenet": MappingProxyType(
        {"blocks": (3, 4, 6, 4), "growth_rate": 12, "stem_filters": 24, "compression": 0.5, "dropout": 0.3,
         "stem_strides": 2, "stem_pool": True, "bn_momentum": 0.9}),
}
# ImageNet-derived VGG16 trunk to conv4_3 (models/pretrained.py), blocks 1-3 frozen.
_PRETRAINED_VGG16 = MappingProxyType({"blocks": 4, "frozen_blocks": 3, "dropout": 0.3, "pretrained": True})

SPEC = ModalitySpec(
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
    appearance="b_mode",
    dicom_modalities=("US",),
    whole_image=True,
    citation=(
        "BUSI: W. Al-Dhabyani, M. Gomaa, H. Khaled, A. Fahmy, Dataset of breast ultrasound images, "
        "Data in Brief 28:104863 (2020), doi:10.1016/j.dib.2019.104863; research and academic use with citation "
        "(re-hosts label it CC BY 4.0; the authors' own licence statement was not found)."
    ),
    shipped_files=MappingProxyType({
        "model.keras": "795d5d1c66bfc9b42c6a3d202e139440e5f7bbc24501c167cda9e5e039814395",
        "model.json": "e25dc215ff2fb852032f55caa73191d8c19841d92160666c672016d310db8848",
        "metrics.json": "38ecfb81b21e4685f974bfdfbf9ff86b90fdb932f1afbfd178118dd25c563937",
        "model.onnx": "5b929787ecb8142bf4d83a03d9fac972be91087cc1b385e644e4f449f2ab31e3",
        "lesion_map.keras": "928379756f452bacde3e7623c1ebb521e8bce6c1f5c56360c314cee1fe3be49c",
    }),
    recipe=TrainingRecipe(
        augmentation=("flip_lr", "affine", "brightness_contrast", "gamma"),
        default_arch="se_resnet",
        # The shipped bundle is the VGG16 (pretrained trunk): validation ROC AUC 0.973 against
        # SE-ResNet 0.946 and DenseNet 0.922 (docs/experiments).
        arch_params=MappingProxyType({**_WHOLE_IMAGE_ARCHS, "vgg16": _PRETRAINED_VGG16}),
        # Fine-tuned at a tenth of the default learning rate; patch pre-training would overwrite the trunk.
        arch_training=MappingProxyType({"vgg16": MappingProxyType({"lr": 1e-4, "patch_pretrain": False})}),
        # A few hundred whole images: small batches give enough updates per epoch; validation loss
        # on a few dozen images is noisy, hence the long patience.
        training_defaults=MappingProxyType({"epochs": 60, "batch_size": 16, "patience": 12}),
        lesion_source="masks",
        lesion_labels=("benign", "malignant"),
        extra_binary_tasks=MappingProxyType({"abnormal_vs_normal": ("benign", "malignant")}),
        # Patches of half the input side centred on mask pixels (BUSI lesions are large): at 224 px
        # on validation they lowered log loss 0.634 -> 0.524 (DenseNet).
        patch_fraction=0.5,
        # The lesion-map head: log loss 0.626 -> 0.581 at weight 1 (SE-ResNet, 224 px); weight 3
        # was within the noise of 106 images, so the plain weight 1 is kept.
        lesion_loss_weight=1.0,
    ),
)
