"""The reference architecture: the pix2pix U-Net generator, from Isola et al. 2017 (appendix 6.1.1).

Encoder C64-C128-C256-C512-C512-C512-C512-C512 (4x4 convolutions, stride 2, BatchNorm except
on the first, LeakyReLU 0.2), decoder CD512-CD512-CD512-C512-C256-C128-C64 (4x4 transposed
convolutions, stride 2, BatchNorm, ReLU, dropout 0.5 on the first three), skip connections
between mirrored layers, and a last transposed convolution to the output channels with tanh.
Here it maps L (1 channel) to ab (2 channels), as in the paper's colorization experiments.
Used only by the benchmark, with random weights.
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER = (64, 128, 256, 512, 512, 512, 512, 512)


class Pix2PixUNet(nn.Module):
    def __init__(self, in_channels: int = 1, out_channels: int = 2) -> None:
        super().__init__()
        self.downs = nn.ModuleList()
        c_in = in_channels
        for i, c in enumerate(ENCODER):
            layers: list[nn.Module] = [nn.Conv2d(c_in, c, 4, stride=2, padding=1, bias=i == 0)]
            if 0 < i < len(ENCODER) - 1:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            self.downs.append(nn.Sequential(*layers))
            c_in = c
        self.ups = nn.ModuleList()
        decoder = ENCODER[-2::-1]  # 512, 512, 512, 512, 256, 128, 64
        for i, c in enumerate(decoder):
            c_up_in = c_in if i == 0 else 2 * c_in
            layers = [nn.ConvTranspose2d(c_up_in, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c)]
            if i < 3:
                layers.append(nn.Dropout(0.5))
            layers.append(nn.ReLU(inplace=True))
            self.ups.append(nn.Sequential(*layers))
            c_in = c
        self.head = nn.Sequential(nn.ConvTranspose2d(2 * c_in, out_channels, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the innermost output is the bottleneck itself
        for i, up in enumerate(self.ups):
            x = up(x if i == 0 else torch.cat([x, skips.pop()], dim=1))
        return self.head(torch.cat([x, skips.pop()], dim=1))
