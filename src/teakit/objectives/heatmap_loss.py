"""The TEA heatmap-matching loss.

Per sample b and pyramid level s (the map and its average-pooled versions with
kernel = stride = 2, 4, 8, ... while the pooled side stays >= ``min_side``):

    g = sqrt(mean|S|) * sqrt(mean|T|) + 1e-10        (means over C, H, W)
    l = mean |S/g - T/g|

and the loss is the mean over levels and samples.  ``T`` (the teacher map) is
detached; the gradient flows through the student's factor of ``g``.
Variants for ablations: ``kind="mse"`` (squared difference of the normalised
maps), ``kind="cosine"`` (1 - cosine similarity, scale-free), and
``pyramid=False`` (full resolution only).  ``joint=R`` (for R maps per image,
arranged ``r * B + b``): the scales in ``g`` are averaged over the R maps of
each image, so the maps' sizes *relative to each other* must match too — for
a conservative network those relative sizes are the logit differences.

An all-zero teacher map (e.g. a Grad-CAM map whose positive part lies only on
a masked-out background) has no scale, so its ``g`` would be the 1e-10 floor
and the loss ~1e10·|S|.  Such samples (with ``joint``: images whose maps are
all zero) are left out: their per-sample loss is 0 with zero gradient, and the
mean is taken over the other samples (0 if there are none).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("l1", "mse", "cosine")


def pyramid_levels(side: int, min_side: int = 8) -> int:
    """Number of pyramid levels for a map whose smaller side is ``side``."""
    levels, k = 1, 2
    while side // k >= min_side:
        levels, k = levels + 1, k * 2
    return levels


def _per_map(v: torch.Tensor, dims: int) -> torch.Tensor:
    """One value per map, ``v`` (B,), shaped to broadcast over (B, ...) maps of ``dims`` dimensions."""
    return v.view(-1, *([1] * (dims - 1)))


class _MapMean(torch.autograd.Function):
    """The mean of each map (over all dimensions but the first), whose gradient is the upstream one
    broadcast, never materialised.  A flattened copy, or autograd's own mean backward, would hand the
    student's backward a contiguous gradient for a channels-last map, and the mixed layouts then slow
    every later step of that backward on CPU."""

    @staticmethod
    def forward(ctx, M):
        ctx.shape = M.shape
        return M.mean(tuple(range(1, M.dim())))

    @staticmethod
    def backward(ctx, g):
        n = ctx.shape[1:].numel()
        return _per_map(g / n, len(ctx.shape)).expand(ctx.shape)


def _map_mean(M: torch.Tensor) -> torch.Tensor:
    return _MapMean.apply(M)


def _scale(M: torch.Tensor, joint: int) -> torch.Tensor:
    """mean |M| per map, or per image over its ``joint`` maps (rows r * B + b)."""
    m = _map_mean(M.abs())
    return m if joint == 1 else m.view(joint, -1).mean(0).repeat(joint)


def _level_loss(S: torch.Tensor, T: torch.Tensor, kind: str, joint: int = 1) -> torch.Tensor:
    if kind == "cosine":
        return 1 - F.cosine_similarity(S.flatten(1), T.flatten(1), dim=1, eps=1e-10)
    # clamp: an all-zero student map (dead ReLUs) must give a finite gradient, not inf·0
    g = _scale(S, joint).clamp_min(1e-30).sqrt() * _scale(T, joint).sqrt() + 1e-10
    d = (S - T) / _per_map(g, S.dim())
    return _map_mean(d.abs() if kind == "l1" else d.square())


def heatmap_loss(student_R: torch.Tensor, teacher_R: torch.Tensor, kind: str = "l1",
                 pyramid: bool = True, min_side: int = 8, reduction: str = "mean", joint: int = 1) -> torch.Tensor:
    """TEA loss between student and teacher heatmaps of shape (B, C, H, W).

    ``reduction="none"`` returns the (B,) per-sample losses.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {', '.join(KINDS)}")
    if joint != 1 and (kind == "cosine" or joint < 1 or len(student_R) % joint):
        raise ValueError(f"joint={joint}: needs kind 'l1' or 'mse' and a map count divisible by it, "
                         f"got kind {kind!r} and {len(student_R)} maps")
    if student_R.shape != teacher_R.shape:
        raise ValueError(f"student map {tuple(student_R.shape)} and teacher map "
                         f"{tuple(teacher_R.shape)} differ in shape")
    S, T = student_R, teacher_R.detach().to(student_R.dtype)
    keep = _scale(T, joint) > 0  # the teacher map has a scale; else the sample is left out
    if not bool(keep.all()):
        S = S * _per_map(keep, S.dim()).to(S.dtype)  # zero loss and zero gradient there
    n = pyramid_levels(min(S.shape[-2:]), min_side) if (pyramid and S.dim() == 4) else 1
    total = _level_loss(S, T, kind, joint)
    for _ in range(n - 1):
        S, T = F.avg_pool2d(S, 2), F.avg_pool2d(T, 2)
        total = total + _level_loss(S, T, kind, joint)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction={reduction!r}; expected 'mean' or 'none'")
    per_sample = torch.where(keep, total / n, 0.0)
    if reduction == "none":
        return per_sample
    return per_sample.sum() / keep.sum().clamp_min(1)
