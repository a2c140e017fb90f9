"""Segmentation: train the segmenter teacher's U-Net on the foreground masks
(binary cross-entropy + soft Dice).  Logs the IoU of the thresholded mask.

``paste`` (a probability, default 0): during training each image is, with that
chance, composited onto another image of its batch (its foreground pixels over
the other image; the target is the union of both masks), so the U-Net sees
foregrounds on scenes they never sit on in the biased training set.  Validation
also logs ``iou_pasted``: the IoU when every validation image is so composited
(fixed draws), an estimate of the IoU on scenes unseen with that foreground.
"""
from __future__ import annotations

import torch

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


def _iou(logits: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    return mask_iou(torch.sigmoid(logits.detach()) >= threshold, mask).mean()


class Segmentation(Objective):
    name = "segmentation"
    selection_key = "loss"

    def __init__(self, threshold: float = 0.5, paste: float = 0.0):
        if not 0.0 <= float(paste) <= 1.0:
            raise ValueError(f"paste (tea train-teacher --seg-paste) = {paste!r}: expected a probability in [0, 1]")
        self.threshold = threshold
        self.paste = float(paste)

    def config(self) -> dict:
        return {"name": self.name, "threshold": self.threshold, "paste": self.paste}

    def __call__(self, batch, model, rng, train=True):
        x, mask = batch["x"], batch["mask"]
        logs = {}
        if train and self.paste > 0 and len(x) > 1:
            chosen = torch.rand(len(x), generator=rng, device=rng.device).to(x.device) < self.paste
            x, mask = paste_onto_others(x, mask, chosen)
        elif not train and len(x) > 1:
            with torch.no_grad():
                px, pm = paste_onto_others(x, mask, torch.ones(len(x), dtype=torch.bool, device=x.device))
                logs["iou_pasted"] = _iou(model(px), pm, self.threshold)
        logits = model(x)
        loss = dice_bce_loss(logits, mask)
        return loss, {"loss": loss.detach(), "iou": _iou(logits, mask, self.threshold), **logs}
