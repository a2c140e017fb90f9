"""Segmentation: train the segmenter teacher's U-Net on the foreground masks
(binary cross-entropy + soft Dice).  Logs the IoU of the thresholded mask.

Four options show the U-Net foregrounds on backgrounds they never sit on in
the biased training set (probabilities per training image, applied in this
order, the ground-truth mask cutting the foreground; 0 here by default, and
:data:`teakit.config.SEGMENTER_BACKGROUNDS` in `tea train-teacher`):

* ``paste``: the image's foreground over another image of its batch (the target
  is the union of both masks).  Validation always logs ``iou_pasted`` too: the
  IoU when every validation image is so composited (fixed draws).
* ``swap``: the foreground on another image's background, whose own object is
  inpainted away (:func:`~teakit.data.augment.swap_backgrounds`; the target
  stays the image's mask).
* ``synthetic``: the foreground on a synthetic dead-leaves picture (discs of
  random colours at every scale; :class:`~teakit.data.augment.NewBackgrounds`).
* ``recolour``: the background mirrored and its channels reordered
  (:func:`~teakit.data.augment.recolour_backgrounds`).

:func:`foreign_iou` measures a segmenter on backgrounds that none of these
options (nor any benchmark) shows: the foreign scenes of
:mod:`teakit.data.foreign_scenes`.
"""
from __future__ import annotations

import torch

from ..data.augment import NewBackgrounds
from ..teachers.segmenter import dice_bce_loss
from .base import Objective


def paste_onto_others(x: torch.Tensor, mask: torch.Tensor, chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``x`` (B, C, H, W) with masks (B, 1, H, W) bool: where ``chosen`` (B,) bool, image i's
    foreground is put over image i-1's (cyclically: its own background pixels are replaced by the other
    image's) and its mask becomes the union of both masks; the others are unchanged."""
    other_x, other_m = x.roll(1, 0), mask.roll(1, 0)
    c = chosen.view(-1, 1, 1, 1)
    return torch.where(c & ~mask, other_x, x), torch.where(c, mask | other_m, mask)


def mask_iou(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image IoU (B,) of two boolean masks (B, 1, H, W); an image with both masks empty counts 0."""
    inter = (pred & mask).flatten(1).sum(1).float()
    union = (pred | mask).flatten(1).sum(1).float().clamp_min(1)
    return inter / union


def foreign_iou(segment, x: torch.Tensor, mask: torch.Tensor, norm=None, batch_size: int = 256) -> float:
    """Mean IoU of ``segment`` (images -> (B, 1, H, W) bool masks) on the foreign-scene composites of
    ``x`` (:func:`~teakit.data.foreign_scenes.foreign_composites`, seed 0: each image's foreground, cut
    by its true ``mask``, on a crop of every foreign scene), against that true mask; ``norm`` as the
    images' :class:`~teakit.data.imageset.ImageSet` says."""
    from ..data.foreign_scenes import FOREIGN_SCENES, foreign_composites

    composites, target = foreign_composites(x, mask, norm=norm), mask.repeat(len(FOREIGN_SCENES), 1, 1, 1)
    with torch.no_grad():
        ious = [mask_iou(segment(composites[i:i + batch_size]), target[i:i + batch_size])
                for i in range(0, len(composites), batch_size)]
    return torch.cat(ious).mean().item()


def _iou(logits: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    return mask_iou(torch.sigmoid(logits.detach()) >= threshold, mask).mean()


class Segmentation(Objective):
    name = "segmentation"
    selection_key = "loss"

    def __init__(self, threshold: float = 0.5, paste: float = 0.0, swap: float = 0.0, recolour: float = 0.0,
                 synthetic: float = 0.0):
        for name, value in (("paste", paste), ("swap", swap), ("synthetic", synthetic), ("recolour", recolour)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} (tea train-teacher --seg-{name}) = {value!r}: expected a probability "
                                 "in [0, 1]")
        self.threshold = threshold
        self.paste, self.backgrounds = float(paste), NewBackgrounds(swap, synthetic, recolour)

    def config(self) -> dict:
        b = self.backgrounds
        return {"name": self.name, "threshold": self.threshold, "paste": self.paste, "swap": b.swap,
                "synthetic": b.synthetic, "recolour": b.recolour}

    def __call__(self, batch, model, rng, train=True):
        x, mask = batch["x"], batch["mask"]
        logs = {}
        if train and len(x) > 1:
            if self.paste > 0:
                chosen = torch.rand(len(x), generator=rng, device=rng.device).to(x.device) < self.paste
                x, mask = paste_onto_others(x, mask, chosen)
            x = self.backgrounds(x, mask, rng)
        elif not train and len(x) > 1:
            with torch.no_grad():
                px, pm = paste_onto_others(x, mask, torch.ones(len(x), dtype=torch.bool, device=x.device))
                logs["iou_pasted"] = _iou(model(px), pm, self.threshold)
        logits = model(x)
        loss = dice_bce_loss(logits, mask)
        return loss, {"loss": loss.detach(), "iou": _iou(logits, mask, self.threshold), **logs}
