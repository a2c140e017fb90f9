"""Per-channel input normalisation of a dataset's splits (``--normalize``).

``none`` leaves images in [0, 1]; ``imagenet`` uses torchvision's ImageNet mean
and std (what ``--pretrained`` weights were trained with); ``dataset`` uses the
mean and std of every pixel of the ``train`` split only (so no val/test image
leaks into them).  Normalised splits hold ``(x - mean) / std`` with
``ImageSet.norm = (mean, std)``; lazy splits normalise each decoded batch.
"""
from __future__ import annotations

import torch

from .imageset import ImageSet
from .names import NORMALIZE_MODES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def channel_stats(x, batch_size: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std over all pixels of ``x`` (N, C, H, W),
    a tensor or lazy images (decoded ``batch_size`` rows at a time)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0
    for i in range(0, len(x), batch_size):
        b = x[i:i + batch_size].to(torch.float64)
        total += b.sum(dim=(0, 2, 3))
        squares += (b * b).sum(dim=(0, 2, 3))
        count += b.shape[0] * b.shape[2] * b.shape[3]
    if count == 0:
        raise ValueError("cannot compute channel statistics of an empty split")
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0.0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def normalize_splits(splits: dict[str, ImageSet], mode: str, stats_split: str = "train"
                     ) -> tuple[dict[str, ImageSet], dict | None]:
    """``splits`` normalised by ``mode`` (one of ``NORMALIZE_MODES``) and a record
    ``{"mode", "mean", "std"}`` (``None`` for ``none``)."""
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize={mode!r}; expected one of {', '.join(NORMALIZE_MODES)}")
    if mode == "none":
        return splits, None
    for name, ds in splits.items():
        if ds.norm is not None:
            raise ValueError(f"split {name!r} is already normalised (norm={ds.norm})")
    if mode == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        if stats_split not in splits:
            raise ValueError(f"normalize=dataset needs a {stats_split!r} split for its statistics")
        mean, std = channel_stats(splits[stats_split].x)
        flat = [c for c, s in enumerate(std) if s < 1e-6]
        if flat:
            raise ValueError(f"normalize=dataset: channel(s) {flat} of the {stats_split} split are constant "
                             f"(std 0); use --normalize none or imagenet")
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    out = {}
    for name, ds in splits.items():
        x = ds.x.with_norm(mean, std) if ds.lazy else (ds.x - m.to(ds.x.device)) / s.to(ds.x.device)
        out[name] = ImageSet(x=x, y=ds.y, mask=ds.mask, bias=ds.bias, norm=(mean, std))
    return out, {"mode": mode, "mean": list(mean), "std": list(std)}
