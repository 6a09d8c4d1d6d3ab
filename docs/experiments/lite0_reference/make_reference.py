"""Reference 1000-class outputs of EfficientNet-Lite0 computed with PyTorch, for the Keras port's test.

Run once, in a throwaway environment that has torch (never in the project's own):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy pillow scikit-learn
    /tmp/torchenv/bin/python docs/experiments/lite0_reference/make_reference.py \
        --pth efficientnet-lite0-57934424.pth --out tests/reference/lite0_reference.npz

The network is written out here in plain torch (TF-"SAME" padding, ReLU6, no squeeze-excitation,
BatchNorm eps 1e-3) and loaded with ``torch.load``'s own reader, so nothing of the port under test
is shared with the reference. Inputs: sklearn's two sample photographs, centre-cropped to 224 px,
plus one random image, stored as uint8 beside the outputs; the network sees (x - 127) / 128.
"""

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


class SameConv(nn.Conv2d):
    """TensorFlow's SAME padding: pad so that out = ceil(in / stride), the extra pixel at the end."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


class Block(nn.Module):
    def __init__(self, cin, cout, k, s, e):
        super().__init__()
        mid = cin * e
        if e != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = SameConv(mid, mid, k, stride=s, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.e, self.skip = e, s == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.e != 1 else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class Lite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks, cin = [], 32
        for repeats, k, s, e, cout in STAGES:
            for i in range(repeats):
                blocks.append(Block(cin, cout, k, s if i == 0 else 1, e))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def inputs() -> np.ndarray:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = []
    for photo in load_sample_images().images:
        h, w, _ = photo.shape
        side = min(h, w)
        crop = photo[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
        photos.append(np.asarray(Image.fromarray(crop).resize((224, 224), Image.BILINEAR)))
    photos.append(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    return np.stack(photos)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pth", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model = Lite0().eval()
    state = torch.load(args.pth, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    images = inputs()
    x = (images.astype(np.float32) - 127.0) / 128.0
    with torch.no_grad():
        logits = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    print("top-5 per input:", np.argsort(-logits, axis=1)[:, :5].tolist())
    print("top-1 softmax:", np.round(np.exp(logits.max(1)) / np.exp(logits).sum(1), 3).tolist())
    np.savez_compressed(args.out, images=images, logits=logits.astype(np.float32))


if __name__ == "__main__":
    main()
