"""Flat functional Keras 3 classifiers: SE-ResNet, DenseNet and a pretrained VGG16 trunk, by name.

Every layer sits at the top level of one functional model (no nested Sequential, no backbone
wrapped as a single layer) because tf-keras-vis 0.8.7 on Keras 3 can only compute CAMs for such
models. Inputs are float32 pixels in [0, 255]; the ``Rescaling`` layer inside the model makes the
scaling part of the saved artefact, so training and prediction cannot normalise differently.
The last 4-D feature layer is named ``last_conv`` (the Grad-CAM target) and the head is a softmax
named ``probabilities``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
from keras import layers

from bcc_model.models.trunks import vgg16_layers

__all__ = ["ARCHITECTURES", "DENSENET121", "build_model", "register_architecture", "build_se_resnet", "build_densenet", "build_vgg16",
           "feature_layer_names"]

CAM_LAYER = "last_conv"

# Huang et al. 2017, "Densely Connected Convolutional Networks", Table 1 (k = 32, 64-filter stem).
DENSENET121 = {"blocks": (6, 12, 24, 16), "growth_rate": 32, "stem_filters": 64, "compression": 0.5, "imagenet_stem": True}


def _conv_bn_relu(x, filters: int, kernel: int, strides: int, name: str):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _squeeze_excite(x, channels: int, ratio: int, name: str):
    """Channel attention of Hu et al. 2018 ("Squeeze-and-Excitation Networks", Fig. 3)."""
    s = layers.GlobalAveragePooling2D(name=f"{name}_squeeze")(x)
    s = layers.Dense(max(channels // ratio, 4), activation="relu", name=f"{name}_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", name=f"{name}_expand")(s)
    s = layers.Reshape((1, 1, channels), name=f"{name}_reshape")(s)
    return layers.Multiply(name=f"{name}_scale")([x, s])


def _se_residual_block(x, filters: int, strides: int, ratio: int, name: str, out_name: str | None = None):
    shortcut = x
    y = _conv_bn_relu(x, filters, 3, strides, f"{name}_a")
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_b_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
    y = _squeeze_excite(y, filters, ratio, f"{name}_se")
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, kernel_initializer="he_normal",
                                 name=f"{name}_proj_conv")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=out_name or f"{name}_out")(y)


def _stem_pool(x, stem_pool: bool):
    """3x3/2 max-pool after the stem (as in ResNet): quarters the cost of every later layer."""
    return layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x) if stem_pool else x


def _set_bn_momentum(model: keras.Model, momentum: float) -> keras.Model:
    """Set the moving-average momentum of every BatchNormalization layer (saved with the model).

    Keras' default 0.99 needs a few hundred updates before the moving mean and variance forget
    their initial values (0 and 1); a few hundred whole images give only ~10-30 batches an
    epoch, so at 0.99 inference would still use mostly the initial statistics (and validation
    loss, early stopping and every prediction would be wrong) long after training mode fits.
    """
    if not 0 < momentum < 1:
        raise ValueError(f"bn_momentum must be in (0, 1), got {momentum}")
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum
    return model


def _head(x, num_classes: int, dropout: float, pool: str = "avg"):
    """Global pooling, dropout, softmax.

    ``"avg"`` suits patches whose label concerns the whole field. ``"max"`` suits whole images
    whose label comes from one small lesion: the class score is taken where the evidence is
    strongest instead of being diluted by the area of normal tissue (weakly supervised
    localisation by global max pooling, Oquab et al. 2015, CVPR).
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"head_pool must be 'avg' or 'max', got {pool!r}")
    pooling = layers.GlobalAveragePooling2D(name="gap") if pool == "avg" else layers.GlobalMaxPooling2D(name="gmp")
    x = pooling(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


def _input(input_shape: Sequence[int]):
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    return inputs, layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)


def build_se_resnet(input_shape: Sequence[int], num_classes: int, *, widths: Sequence[int] = (32, 64, 128),
                    blocks_per_stage: Sequence[int] = (2, 2, 2), se_ratio: int = 8, dropout: float = 0.3,
                    stem_filters: int | None = None, stem_strides: int = 1, stem_pool: bool = False,
                    head_pool: str = "avg", bn_momentum: float = 0.99) -> keras.Model:
    """SE-ResNet (He et al. 2016 residual blocks + Hu et al. 2018 squeeze-and-excitation).

    Args:
        input_shape: (H, W, C) in px; pixels float32 in [0, 255].
        num_classes: softmax outputs.
        widths: filters per stage; every stage after the first halves the resolution.
        blocks_per_stage: residual blocks per stage.
        se_ratio: SE reduction ratio r.
        dropout: dropout before the classifier.
        stem_filters: stem width (default: first stage width).
        stem_strides: stride of the 3x3 stem convolution; 2 halves the resolution of whole images
            (224 px and up) so they train on a CPU; 1 keeps small patches' detail.
        stem_pool: add a 3x3/2 max-pool after the stem (another halving).
        head_pool: global ``"avg"`` or ``"max"`` pooling before the classifier (see ``_head``).
        bn_momentum: moving-average momentum of batch normalisation (see ``_set_bn_momentum``).

    The network is fully convolutional up to global average pooling, so its weights fit any input
    size: a model built for patches can hand its weights to one built for whole images.
    """
    if len(widths) != len(blocks_per_stage):
        raise ValueError(f"widths {tuple(widths)} and blocks_per_stage {tuple(blocks_per_stage)} differ in length")
    inputs, x = _input(input_shape)
    x = _stem_pool(_conv_bn_relu(x, stem_filters or widths[0], 3, stem_strides, "stem"), stem_pool)
    last_stage = len(widths) - 1
    for stage, (filters, n_blocks) in enumerate(zip(widths, blocks_per_stage)):
        for block in range(n_blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            is_last = stage == last_stage and block == n_blocks - 1
            x = _se_residual_block(x, filters, strides, se_ratio, f"s{stage + 1}b{block + 1}",
                                   out_name=CAM_LAYER if is_last else None)
    model = keras.Model(inputs, _head(x, num_classes, dropout, head_pool), name="se_resnet")
    return _set_bn_momentum(model, bn_momentum)


def _dense_layer(x, growth_rate: int, name: str):
    """BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k) bottleneck layer (DenseNet-B)."""
    y = layers.BatchNormalization(name=f"{name}_bn1")(x)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(4 * growth_rate, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv1")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Activation("relu", name=f"{name}_relu2")(y)
    y = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv2")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x, compression: float, name: str):
    filters = max(int(x.shape[-1] * compression), 8)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, padding="same", name=f"{name}_pool")(x)


def build_densenet(input_shape: Sequence[int], num_classes: int, *, blocks: Sequence[int] = (4, 6, 8),
                   growth_rate: int = 16, stem_filters: int = 32, compression: float = 0.5, dropout: float = 0.3,
                   imagenet_stem: bool = False, stem_strides: int = 1, stem_pool: bool = False,
                   head_pool: str = "avg", bn_momentum: float = 0.99) -> keras.Model:
    """DenseNet-BC (Huang et al. 2017). ``DENSENET121`` gives the 121-layer configuration.

    Args:
        input_shape: (H, W, C) in px; pixels float32 in [0, 255].
        num_classes: softmax outputs.
        blocks: dense layers per dense block.
        growth_rate: k, filters added by each dense layer.
        stem_filters: filters of the stem convolution.
        compression: theta, channel reduction at each transition.
        dropout: dropout before the classifier.
        imagenet_stem: 7x7/2 conv + 3x3/2 max-pool stem for large inputs (as in DenseNet121);
            otherwise a 3x3 stem of ``stem_strides``, optionally followed by a max-pool.
        stem_strides: stride of the 3x3 stem (ignored with ``imagenet_stem``); 1 keeps the
            resolution of small patches, 2 halves that of whole images.
        stem_pool: 3x3/2 max-pool after the 3x3 stem (ignored with ``imagenet_stem``).
        head_pool: global ``"avg"`` or ``"max"`` pooling before the classifier (see ``_head``).
        bn_momentum: moving-average momentum of batch normalisation (see ``_set_bn_momentum``).
    """
    if not 0 < compression <= 1:
        raise ValueError(f"compression must be in (0, 1], got {compression}")
    inputs, x = _input(input_shape)
    if imagenet_stem:
        x = _conv_bn_relu(x, stem_filters, 7, 2, "stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = layers.Conv2D(stem_filters, 3, strides=stem_strides, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name="stem_conv")(x)
        x = _stem_pool(x, stem_pool)
    for b, n_layers in enumerate(blocks):
        for i in range(n_layers):
            x = _dense_layer(x, growth_rate, f"d{b + 1}l{i + 1}")
        if b < len(blocks) - 1:
            x = _transition(x, compression, f"t{b + 1}")
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.Activation("relu", name=CAM_LAYER)(x)
    model = keras.Model(inputs, _head(x, num_classes, dropout, head_pool), name="densenet")
    return _set_bn_momentum(model, bn_momentum)


def build_vgg16(input_shape: Sequence[int], num_classes: int, *, blocks: int = 4, frozen_blocks: int = 3,
                dropout: float = 0.3, head_pool: str = "avg", pretrained: bool = True) -> keras.Model:
    """VGG16 trunk (Simonyan & Zisserman 2015) started from ImageNet-derived weights (``pretrained.py``).

    A few hundred whole images do not teach a network from scratch what edges and textures are;
    an ImageNet trunk brings that, and only its deeper blocks are fitted to the new images.

    Args:
        input_shape: (H, W, C) in px, C = 1 or 3; pixels float32 in [0, 255] (no rescaling layer:
            the mean subtraction is folded into the first convolution).
        num_classes: softmax outputs.
        blocks: VGG16 blocks kept; 4 ends at conv4_3, 1/8 of the input (28x28 cells at 224 px,
            finer heatmaps than conv5_3's 1/16, and 7 M fewer weights).
        frozen_blocks: leading blocks whose weights stay as loaded (generic filters; fewer weights
            to fit and no backward pass through the costliest, full-resolution layers).
        dropout: dropout before the classifier.
        head_pool: global ``"avg"`` or ``"max"`` pooling before the classifier (see ``_head``).
        pretrained: False keeps the random initialisation (tests; no weights file needed).
    """
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = vgg16_layers(inputs, input_shape[-1], blocks=blocks, frozen_blocks=frozen_blocks, pretrained=pretrained,
                     last_name=CAM_LAYER)
    return keras.Model(inputs, _head(x, num_classes, dropout, head_pool), name="vgg16")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"se_resnet": build_se_resnet, "densenet": build_densenet,
                                                        "vgg16": build_vgg16}
"""Name -> builder; a modality adds its own (``register_architecture``) when it is imported."""


def register_architecture(name: str) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
    """Decorator adding a builder ``(input_shape, num_classes, **params) -> keras.Model`` under ``name``.

    Why: modality-specific networks (the mammography cell model) live with their modality, and the
    core must not import them; they register here when their module is imported.
    """
    def add(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if ARCHITECTURES.get(name, builder) is not builder:
            raise ValueError(f"architecture {name!r} is already registered")
        ARCHITECTURES[name] = builder
        return builder
    return add


def build_model(name: str, input_shape: Sequence[int], num_classes: int, **params) -> keras.Model:
    """Build architecture ``name``; an unknown name fails listing the valid ones."""
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name](input_shape, num_classes, **params)


def feature_layer_names(model: keras.Model) -> list[str]:
    """Names of layers with 4-D outputs (candidate CAM targets), deepest first."""
    names = [layer.name for layer in model.layers
             if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4
             and layer.name != "rescale"]
    return names[::-1]
