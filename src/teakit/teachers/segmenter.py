"""SegmenterTeacher: mask the background with a segmenter, classify (and explain) what is left.

* :func:`dice_bce_loss` trains the segmenter (per-pixel logits against a
  binary foreground mask).
* :func:`fill_background` replaces the pixels outside a mask (noise, zero,
  mean colour or a strong blur).
* :class:`SegmenterTeacher` thresholds ``sigmoid(segmenter(x))`` into a
  foreground mask, fills the background, and runs/explains the classifier on
  that masked image.  With the random ``"noise"`` fill its logits are the mean
  over ``fills`` draws, so that its decision hardly depends on the draw; each
  heatmap is one draw's.

Assumes images with values in [0, 1] (the ``"noise"`` fill draws uniform
[0, 1) noise) and a segmenter returning logits of shape (B, 1, H, W).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TEACHER_FILL, TEACHER_FILLS
from ..data.augment import gaussian_blur
from ..names import FILLS, HEATMAP_OF
from .base import Teacher


def dice_bce_loss(logits: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean of binary cross-entropy (with logits) and soft Dice loss.

    Dice loss per sample: ``1 - (2·Σ p·m + smooth) / (Σ p + Σ m + smooth)`` with
    ``p = sigmoid(logits)``, averaged over the batch.  ``mask``: (B, 1, H, W)
    bool or float in [0, 1], same shape as ``logits``.
    """
    if logits.shape != mask.shape:
        raise ValueError(f"logits shape {tuple(logits.shape)} and mask shape "
                         f"{tuple(mask.shape)} differ")
    m = mask.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, m)
    p = torch.sigmoid(logits).flatten(1)
    m = m.flatten(1)
    dice = 1 - (2 * (p * m).sum(1) + smooth) / (p.sum(1) + m.sum(1) + smooth)
    return 0.5 * (bce + dice.mean())


def fill_background(x: torch.Tensor, keep: torch.Tensor, fill: str = "noise",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Copy of ``x`` (B, C, H, W) whose pixels where ``keep`` (B, 1, H, W, bool) is False
    are replaced; pixels where it is True are kept bit-identical.

    ``fill``: ``"noise"`` uniform [0, 1) noise per pixel and channel (drawn with
    ``generator``, which must live on ``x``'s device; or a sequence of one generator
    per image, each image's noise drawn from its own, so that an image gets the same
    fill whatever batch it is in -- see :func:`teakit.evaluate.image_generators`), ``"zero"``, ``"mean"``
    (each image's per-channel mean over all its pixels), ``"blur"`` (Gaussian
    blur of the whole image with σ = max(H, W) / 8).
    """
    if fill not in FILLS:
        raise ValueError(f"fill={fill!r}; expected one of {', '.join(FILLS)}")
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    if keep.dtype != torch.bool:
        raise ValueError(f"keep must be a bool tensor, got {keep.dtype}")
    if keep.shape != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"keep must have shape {(x.shape[0], 1, *x.shape[2:])}, "
                         f"got {tuple(keep.shape)}")
    if fill == "noise" and isinstance(generator, (list, tuple)):
        if len(generator) != len(x):
            raise ValueError(f"{len(generator)} generators for a batch of {len(x)} images; give one per image")
        filler = torch.stack([torch.rand(x.shape[1:], generator=g, device=g.device, dtype=x.dtype).to(x.device)
                              for g in generator]) if len(x) else torch.empty_like(x)
    elif fill == "noise":
        # drawn where the generator lives (a CPU generator also serves a batch on the GPU)
        where = generator.device if generator is not None else x.device
        filler = torch.rand(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)
    elif fill == "zero":
        filler = torch.zeros_like(x)
    elif fill == "mean":
        filler = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    else:
        filler = gaussian_blur(x, sigma=max(x.shape[2:]) / 8)
    return torch.where(keep, x, filler)


class SegmenterTeacher(Teacher):
    """Classifier on the segmenter-masked image.

    ``mask(x)`` = ``sigmoid(segmenter(x)) >= threshold`` (no grad);
    ``masked(x)`` = :func:`fill_background` of ``x`` outside the mask;
    ``forward``/``heatmap``/``heatmap_and_logits`` run and explain the
    classifier on ``masked(x)``.  ``heatmap_of`` says which heatmap:

    * ``"input"`` (default): the whole teacher's heatmap of its input ``x``,
      with the mask taken as a fixed gate: kept pixels get the classifier's
      relevance, filled pixels none (their relevance belongs to the fill,
      which does not depend on ``x``).
    * ``"masked"``: the classifier's heatmap of the masked image; filled
      background pixels (e.g. noise) carry whatever relevance the classifier
      gives them, although they are not pixels of ``x`` and a student cannot
      predict them.  Measured on digits-on-scenes (30 epochs of TEA), a
      student of ``"input"`` maps reached 75 % on ``swapped``, one of
      ``"masked"`` maps 64 %.

    With ``fill="noise"`` pass the same ``generator`` state to get the same
    masked image twice.

    ``fills`` (noise fill only; the other fills are deterministic and draw once): ``forward``
    returns the classifier's logits averaged over that many draws of the fill (each image's
    draws one after the other from its generator), the teacher's decision in evaluation,
    calibration and lobo's scores.  With one draw the decision is a random function of the
    image (docs/recipe.md).  A heatmap (and the logits :meth:`heatmap_and_logits` returns
    with it) is one draw's: the map of the averaged logit is the mean of the draws' maps,
    so one draw is an unbiased estimate of it at 1/``fills`` of the cost, and training
    steps draw anew each time.

    Use as ``SegmenterTeacher(seg, clf).freeze()``.
    """

    def __init__(self, segmenter: nn.Module, classifier: nn.Module, threshold: float = 0.5,
                 fill: str = TEACHER_FILL, heatmap_of: str = "input", fills: int = TEACHER_FILLS):
        super().__init__(classifier)
        if not isinstance(segmenter, nn.Module):
            raise TypeError(f"segmenter must be an nn.Module, got {type(segmenter).__name__}")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
        if fill not in FILLS:
            raise ValueError(f"fill={fill!r}; expected one of {', '.join(FILLS)}")
        if heatmap_of not in HEATMAP_OF:
            raise ValueError(f"heatmap_of={heatmap_of!r}; expected one of {', '.join(HEATMAP_OF)}")
        if isinstance(fills, bool) or not isinstance(fills, int) or fills < 1:
            raise ValueError(f"fills must be a positive integer (draws of the noise fill averaged), got {fills!r}")
        self.segmenter = segmenter
        self.threshold = float(threshold)
        self.fill = fill
        self.heatmap_of = heatmap_of
        self.fills = fills if fill == "noise" else 1  # other fills are the same every draw

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                keep: torch.Tensor | None = None, fills: int | None = None) -> torch.Tensor:
        """The classifier's logits (B, K), averaged over ``fills`` (default ``self.fills``) draws of the
        fill of the background outside :meth:`mask` (or ``keep``); one classifier pass per draw."""
        n = self.fills if fills is None else fills
        if keep is None:
            keep = self.mask(x)
        return sum(self.classifier(self.classifier_input(x, generator, keep)) for _ in range(n)) / n

    @torch.no_grad()
    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground mask (B, 1, H, W) bool."""
        logits = self.segmenter(x)
        expected = (x.shape[0], 1, *x.shape[2:])
        if logits.shape != expected:
            raise ValueError(f"segmenter must return logits of shape {expected}, "
                             f"got {tuple(logits.shape)}")
        return torch.sigmoid(logits) >= self.threshold

    def masked(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` with its background (outside :meth:`mask`) filled with ``self.fill``."""
        return self.classifier_input(x, generator)

    def classifier_input(self, x: torch.Tensor, generator: torch.Generator | None = None,
                         keep: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`masked`, or ``x`` filled outside ``keep`` when its mask is already known."""
        return self.explained_input(x, generator, keep)[0]

    def explained_input(self, x: torch.Tensor, generator: torch.Generator | None = None,
                        keep: torch.Tensor | None = None):
        if keep is None:
            keep = self.mask(x)  # one segmenter pass serves the fill and the gate
        return fill_background(x, keep, self.fill, generator), (keep if self.heatmap_of == "input" else None)

    def map_config(self) -> dict:
        return {"kind": "segmenter", "threshold": self.threshold, "fill": self.fill,
                "heatmap_of": self.heatmap_of}

    def decision_config(self) -> dict:
        return {"fills": self.fills}


class MaskMemo:
    """A segmenter teacher's masks of the training images, by image index.

    The teacher is frozen, so an image's mask never changes: the segmenter runs
    once per training image instead of once per step.  ``keep(batch)`` gives the
    masks of ``batch["x"]`` (rows ``batch["index"]`` of the training set),
    computing those not seen yet.  Valid only for unchanged training images: an
    objective that augments its images, and every validation batch (whose
    indices name other images), must not use it; nor may another training set
    (an objective holds one memo, so build a new objective for each training
    set, as every `tea` command does).  Holds one bool per pixel of
    each training image seen, in CPU memory (224×224 images: 49 KB each).
    """

    def __init__(self, teacher: SegmenterTeacher):
        self.teacher = teacher
        self.masks: dict[int, torch.Tensor] = {}

    @classmethod
    def of(cls, teacher) -> MaskMemo | None:
        """A memo for a segmenter teacher, None for any other (nothing to keep)."""
        return cls(teacher) if isinstance(teacher, SegmenterTeacher) else None

    def keep(self, batch: dict) -> torch.Tensor:
        x, index = batch["x"], batch["index"].tolist()
        missing = [i for i, k in enumerate(index) if k not in self.masks]
        if missing:
            for i, m in zip(missing, self.teacher.mask(x[missing]).cpu()):
                self.masks[index[i]] = m
        return torch.stack([self.masks[k] for k in index]).to(x.device)
