"""UNet: a small U-Net for binary (or multi-channel) segmentation of small images.

Encoder: a double-conv block (3×3 conv → BatchNorm (optional) → ReLU, twice)
at full resolution, then ``depth`` steps of 2×2 max-pool + double-conv, doubling
the channels (``base``, 2·base, …, 2**depth·base).  Decoder: per step a 2×2
stride-2 transposed conv halving the channels, concatenation with the encoder
map of the same resolution (skip connection), and a double-conv.  A final 1×1
conv gives ``out_channels`` logits per pixel.

Assumes inputs (B, in_channels, H, W) with H and W divisible by 2**depth;
returns logits (B, out_channels, H, W) (apply a sigmoid for probabilities).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def _double_conv(c_in: int, c_out: int, batchnorm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers.append(nn.Conv2d(c, c_out, kernel_size=3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Small U-Net returning per-pixel logits (B, out_channels, H, W)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, base: int = 8,
                 depth: int = 2, batchnorm: bool = True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("base", base), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.depth = depth
        self.out_channels = out_channels
        self.inc = _double_conv(in_channels, base, batchnorm)
        self.down = nn.ModuleList(
            _double_conv(base * 2 ** i, base * 2 ** (i + 1), batchnorm) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.upconv = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            c_high, c_low = base * 2 ** (i + 1), base * 2 ** i
            self.upconv.append(nn.ConvTranspose2d(c_high, c_low, kernel_size=2, stride=2))
            self.up.append(_double_conv(2 * c_low, c_low, batchnorm))
        self.out = nn.Conv2d(base, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
        k = 2 ** self.depth
        if x.shape[2] % k or x.shape[3] % k:
            raise ValueError(f"x has spatial size {tuple(x.shape[2:])}; UNet(depth={self.depth}) "
                             f"needs H and W divisible by {k}")
        h = self.inc(x)
        skips = [h]
        for block in self.down:
            h = block(self.pool(h))
            skips.append(h)
        skips.pop()  # the bottleneck is h itself
        for upconv, block in zip(self.upconv, self.up):
            h = block(torch.cat([skips.pop(), upconv(h)], dim=1))
        return self.out(h)
