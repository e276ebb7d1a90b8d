"""A frozen semantic encoder for the generators: MobileNetV2 (Sandler et al. 2018).

Colour depends on what a thing is (grass, sky, skin, a bus), and 9,000 training photos of
six scene types do not teach a colorizer that. An ImageNet classifier knows it, so the
``unet_semantic`` generator reads this network's features beside its own.

The layout is Keras's ``MobileNetV2(alpha=1.0)``, so a Keras checkpoint converts layer
by layer (``train/import_encoder.py``): the same blocks, the same names as Keras's
(``block_3_expand`` -> ``blocks.3.expand``), batch norm with eps 1e-3, and Keras's
zero padding before each stride-2 convolution (an even side gets one row or column
after it, an odd side one on each side), which keeps a stride-s feature map
ceil(H/s) x ceil(W/s) at any size, down to 1x1.

Input (B, 1, H, W) gray in [0, 1]: the stem is the RGB stem with its kernel summed over
the three colour channels, which is exactly the RGB network on a gray image (R = G = B).
With ``in_channels=3`` it is the RGB network itself, (B, 3, H, W) in [0, 1]: what the
perceptual loss of training (:class:`colorgan_hf.training.PerceptualLoss`) reads colours with.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelLoadError
from .hub import load_safetensors

# (expansion, output channels, repeats, first stride) of MobileNetV2's bottleneck stages.
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
BN_EPS = 1e-3  # Keras's default, which the converted statistics were computed with


def _pad_for_stride_2(x: torch.Tensor) -> torch.Tensor:
    """Keras's ``correct_pad``: an even side gets one row (column) after it, an odd side one on each side."""
    h, w = x.shape[-2:]
    return F.pad(x, (w % 2, 1, h % 2, 1))  # (left, right, top, bottom)


def _conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    padding = 0 if stride == 2 else kernel // 2  # stride 2 pads asymmetrically in forward (Keras's ZeroPadding2D)
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out, eps=BN_EPS))


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1, linear), with a residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.stride = stride
        self.expand = _conv_bn(c_in, hidden) if expansion != 1 else None
        self.depthwise = _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        self.project = _conv_bn(hidden, c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        if self.stride == 2:
            y = _pad_for_stride_2(y)
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class MobileNetV2Features(nn.Module):
    """MobileNetV2's convolutional trunk, returning a stride-16 and a stride-32 feature map.

    ``forward`` gives ``(mid, top)``: the output of block 12 (B, 96, H/16, W/16), the last
    stride-16 stage, and the final 1x1 convolution (B, 1280, H/32, W/32), the features the
    classifier was trained on. The layout is fixed (Keras's), so that its checkpoints load.
    """

    MID_CHANNELS = 96
    TOP_CHANNELS = 1280
    MID_BLOCK = 12  # the last block at stride 16

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        c_in = 32
        for expansion, c_out, repeats, stride in MOBILENET_V2_STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expansion))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)  # blocks[0] is Keras's expanded_conv, blocks[k] its block_k
        self.top = _conv_bn(c_in, self.TOP_CHANNELS)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load the weights ``train/import_encoder.py`` wrote; a file that does not hold exactly
        this network's tensors raises :class:`ModelLoadError` naming it."""
        try:
            missing, unexpected = self.load_state_dict(load_safetensors(str(path)), strict=False)
        except RuntimeError as error:  # a tensor of another shape: e.g. the colour stem in a gray encoder
            shapes = "; ".join(line.strip() for line in str(error).splitlines() if "size mismatch" in line)
            raise ModelLoadError(f"{path}: not a MobileNetV2 encoder of {self.stem[0].in_channels}-channel input ({shapes})") from None
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ModelLoadError(f"{path}: not a MobileNetV2 encoder ({len(missing)} tensors missing, e.g. {missing[:2]}; "
                                 f"{len(unexpected)} unexpected, e.g. {unexpected[:2]})")

    def features_after(self, gray: torch.Tensor, block: int) -> torch.Tensor:
        """The output of ``blocks[block]`` (Keras's block_k); the trunk above it is not run."""
        return self.block_features(gray, (block,))[0]

    def block_features(self, image: torch.Tensor, blocks: tuple[int, ...]) -> list[torch.Tensor]:
        """The outputs of ``blocks[k]`` for each k in ``blocks`` (ascending); the trunk above the last is not run."""
        x = F.relu6(self.stem(_pad_for_stride_2(image)))  # (B, 32, H/2, W/2)
        found = []
        for k, layer in enumerate(self.blocks[: max(blocks) + 1]):
            x = layer(x)
            if k in blocks:
                found.append(x)
        return found

    def forward(self, gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mid = x = self.features_after(gray, self.MID_BLOCK)  # (B, 96, H/16, W/16)
        for layer in self.blocks[self.MID_BLOCK + 1 :]:
            x = layer(x)
        return mid, F.relu6(self.top(x))  # and (B, 1280, H/32, W/32)
