"""``ImageSet``: the in-memory container every teakit dataset split uses.

An ``ImageSet`` holds ``N`` RGB images with their class labels, a boolean
foreground mask (True on object / digit pixels) and an integer bias attribute
(the shortcut value an image carries, e.g. a colour or scene index; -1 when the
image carries none).  ``x`` and ``mask`` are CPU or device tensors, or -- for
datasets too large for memory -- :class:`~teakit.data.lazy.LazyImages` that decode
rows from their files when indexed.  ``norm = (mean, std)`` (three floats each)
says that ``x`` holds per-channel normalised images ``(image - mean) / std``.
``__post_init__`` checks shapes, dtypes and the value range (images in [0, 1]
before normalisation; not checked for lazy images, whose files were validated)
and raises ``TypeError`` / ``ValueError`` naming the offending field.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from .lazy import LazyImages


@dataclass
class ImageSet:
    """Images ``x`` (N, 3, H, W) float32 in [0, 1] (normalised by ``norm`` when given),
    labels ``y`` (N,) int64, foreground ``mask`` (N, 1, H, W) bool and ``bias`` attribute
    (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor
    bias: torch.Tensor
    norm: tuple | None = None

    def __post_init__(self) -> None:
        for name in ("x", "y", "mask", "bias"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) and not (name in ("x", "mask")
                                                            and isinstance(value, LazyImages)):
                raise TypeError(f"ImageSet.{name} must be a torch.Tensor, got {type(value).__name__}")
        x, y, mask, bias = self.x, self.y, self.mask, self.bias
        if x.dtype != torch.float32:
            raise TypeError(f"ImageSet.x must be float32, got {x.dtype}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ImageSet.x must have shape (N, 3, H, W), got {tuple(x.shape)}")
        n, _, h, w = x.shape
        if self.norm is not None:
            self.norm = tuple(tuple(float(v) for v in part) for part in self.norm)
            if len(self.norm) != 2 or any(len(part) != 3 for part in self.norm) or min(self.norm[1]) <= 0:
                raise ValueError(f"ImageSet.norm must be (mean, std) of 3 floats each, std > 0; got {self.norm}")
        if isinstance(x, LazyImages):
            if x.norm != self.norm:
                raise ValueError(f"ImageSet.norm {self.norm} differs from the lazy images' norm {x.norm}")
        elif x.numel() > 0:
            raw = x if self.norm is None else (x * torch.tensor(self.norm[1], device=x.device).view(1, 3, 1, 1)
                                               + torch.tensor(self.norm[0], device=x.device).view(1, 3, 1, 1))
            lo, hi = raw.min().item(), raw.max().item()
            tol = 0.0 if self.norm is None else 1e-5  # the normalisation's rounding
            if lo < -tol or hi > 1.0 + tol:
                raise ValueError(f"ImageSet.x values must lie in [0, 1]{' before normalisation' if self.norm else ''}"
                                 f", got range [{lo:.4g}, {hi:.4g}]")
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
            idx = idx.to(self.y.device)

        def pick(t):
            return t.take(idx) if isinstance(t, LazyImages) else t[idx.to(t.device) if torch.is_tensor(idx) else idx]
        return ImageSet(x=pick(self.x), y=self.y[idx], mask=pick(self.mask), bias=self.bias[idx], norm=self.norm)

    @property
    def lazy(self) -> bool:
        """True when the images are decoded from their files only when indexed."""
        return isinstance(self.x, LazyImages)

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the shapes and raw bytes of ``x``, ``y`` and
        ``mask`` (not ``bias``) and of ``norm`` when set; identical tensors give
        identical digests.  Lazy images contribute their files' paths, sizes and
        modification times instead of pixels."""
        h = hashlib.sha256()
        for name in ("x", "y", "mask"):
            t = getattr(self, name)
            if isinstance(t, LazyImages):
                t.digest(h)
                continue
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.numpy().tobytes())
        if self.norm is not None:
            h.update(f"norm:{self.norm};".encode())
        return h.hexdigest()
