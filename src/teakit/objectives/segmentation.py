"""Segmentation: train the segmenter teacher's U-Net on the foreground masks
(binary cross-entropy + soft Dice).  Logs the IoU of the thresholded mask."""
from __future__ import annotations

import torch

from ..teachers.segmenter import dice_bce_loss
from .base import Objective


class Segmentation(Objective):
    name = "segmentation"
    selection_key = "loss"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def __call__(self, batch, model, rng, train=True):
        logits = model(batch["x"])
        mask = batch["mask"]
        loss = dice_bce_loss(logits, mask)
        pred = torch.sigmoid(logits.detach()) >= self.threshold
        inter = (pred & mask).flatten(1).sum(1).float()
        union = (pred | mask).flatten(1).sum(1).float().clamp_min(1)
        return loss, {"loss": loss.detach(), "iou": (inter / union).mean()}
