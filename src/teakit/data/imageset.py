"""``ImageSet``: the in-memory container every teakit dataset split uses.

An ``ImageSet`` holds ``N`` RGB images with their class labels, a boolean
foreground mask (True on object / digit pixels) and an integer bias attribute
(the shortcut value an image carries, e.g. a colour or scene index; -1 when the
image carries none).  It assumes everything fits in memory as CPU or device
tensors; ``__post_init__`` checks shapes, dtypes and the [0, 1] value range and
raises ``TypeError`` / ``ValueError`` naming the offending field.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """Images ``x`` (N, 3, H, W) float32 in [0, 1], labels ``y`` (N,) int64,
    foreground ``mask`` (N, 1, H, W) bool and ``bias`` attribute (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    bias: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("x", "y", "mask", "bias"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"ImageSet.{name} must be a torch.Tensor, got {type(value).__name__}")
        x, y, mask, bias = self.x, self.y, self.mask, self.bias
        if x.dtype != torch.float32:
            raise TypeError(f"ImageSet.x must be float32, got {x.dtype}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ImageSet.x must have shape (N, 3, H, W), got {tuple(x.shape)}")
        n, _, h, w = x.shape
        if x.numel() > 0 and (x.min().item() < 0.0 or x.max().item() > 1.0):
            raise ValueError(f"ImageSet.x values must lie in [0, 1], got range "
                             f"[{x.min().item():.4g}, {x.max().item():.4g}]")
        if y.dtype != torch.int64:
            raise TypeError(f"ImageSet.y must be int64, got {y.dtype}")
        if tuple(y.shape) != (n,):
            raise ValueError(f"ImageSet.y must have shape ({n},) to match x, got {tuple(y.shape)}")
        if y.numel() > 0 and y.min().item() < 0:
            raise ValueError(f"ImageSet.y must hold non-negative class labels, got min {y.min().item()}")
        if mask.dtype != torch.bool:
            raise TypeError(f"ImageSet.mask must be bool, got {mask.dtype}")
        if tuple(mask.shape) != (n, 1, h, w):
            raise ValueError(f"ImageSet.mask must have shape ({n}, 1, {h}, {w}) to match x, "
                             f"got {tuple(mask.shape)}")
        if bias.dtype != torch.int64:
            raise TypeError(f"ImageSet.bias must be int64, got {bias.dtype}")
        if tuple(bias.shape) != (n,):
            raise ValueError(f"ImageSet.bias must have shape ({n},) to match x, got {tuple(bias.shape)}")
        if bias.numel() > 0 and bias.min().item() < -1:
            raise ValueError(f"ImageSet.bias must be >= -1 (-1 means 'no bias attribute'), "
                             f"got min {bias.min().item()}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, idx) -> "ImageSet":
        """The images selected by ``idx``: a slice, a sequence / tensor of
        integer indices, or a boolean tensor of length N."""
        if not isinstance(idx, slice):
            idx = torch.as_tensor(idx)
            if idx.dtype == torch.bool:
                if tuple(idx.shape) != (len(self),):
                    raise ValueError(f"subset: boolean idx must have shape ({len(self)},), "
                                     f"got {tuple(idx.shape)}")
            elif idx.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
                idx = idx.long().reshape(-1)
                if idx.numel() > 0 and (idx.min().item() < -len(self) or idx.max().item() >= len(self)):
                    raise IndexError(f"subset: idx out of range for an ImageSet of length {len(self)}")
            elif idx.numel() == 0:
                idx = idx.long()
            else:
                raise TypeError(f"subset: idx must hold integers or booleans, got {idx.dtype}")
            idx = idx.to(self.x.device)
        return ImageSet(x=self.x[idx], y=self.y[idx], mask=self.mask[idx], bias=self.bias[idx])

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the shapes and raw bytes of ``x``, ``y`` and
        ``mask`` (not ``bias``); identical tensors give identical digests."""
        h = hashlib.sha256()
        for name in ("x", "y", "mask"):
            t = getattr(self, name).detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()
