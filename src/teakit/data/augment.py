"""Random augmentations that TEA applies identically to the student's and the teacher's input.

``random_shifts`` draws one integer offset (dy, dx) in [-s, s]² per sample;
``translate`` moves each sample by its offset and fills the uncovered border
with zeros.  ``random_channel_orders`` draws one permutation of the C channels
per sample; ``permute_channels`` reorders each sample's channels by it (with
RGB images: a colour that marks a class in training no longer does).  Both need
the live teacher: the teacher explains the augmented image itself (with
max-pooling, the heatmap of a moved image is not the moved heatmap, so cached
maps are never augmented).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shifts(batch: int, max_shift: int, generator=None) -> torch.Tensor:
    """(batch, 2) integer offsets (dy, dx), each uniform in [-max_shift, max_shift]."""
    if max_shift < 0:
        raise ValueError(f"max_shift={max_shift} must be >= 0")
    return torch.randint(-max_shift, max_shift + 1, (batch, 2), generator=generator)


def translate(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move sample b of ``x`` (B, C, H, W) down by shifts[b, 0] and right by shifts[b, 1]."""
    if x.dim() != 4 or shifts.shape != (x.shape[0], 2):
        raise ValueError(f"translate: x {tuple(x.shape)} needs shifts of shape ({x.shape[0]}, 2), "
                         f"got {tuple(shifts.shape)}")
    s = int(shifts.abs().max()) if len(shifts) else 0
    if s == 0:
        return x
    H, W = x.shape[-2:]
    padded = F.pad(x, (s, s, s, s))
    return torch.stack([padded[b, :, s - int(dy):s - int(dy) + H, s - int(dx):s - int(dx) + W]
                        for b, (dy, dx) in enumerate(shifts.tolist())])


def random_channel_orders(batch: int, channels: int, generator=None) -> torch.Tensor:
    """(batch, channels) int64: row b a uniformly random permutation of 0..channels-1."""
    if channels < 1:
        raise ValueError(f"channels={channels} must be >= 1")
    return torch.rand(batch, channels, generator=generator).argsort(dim=1)


def permute_channels(x: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) with sample b's channel c taken from its channel ``orders[b, c]``."""
    if x.dim() != 4 or orders.shape != x.shape[:2]:
        raise ValueError(f"permute_channels: x {tuple(x.shape)} needs orders of shape {tuple(x.shape[:2])}, "
                         f"got {tuple(orders.shape)}")
    return x.gather(1, orders.to(x.device)[:, :, None, None].expand_as(x))
