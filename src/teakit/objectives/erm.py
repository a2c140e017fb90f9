"""ERM: cross-entropy on the labels — the baseline that learns the shortcut.

With ``fill`` set (``"noise"``, ``"zero"``, ``"mean"``, ``"blur"``) the
background pixels (``batch["mask"]`` False) are replaced first: that is how the
segmenter teacher's classifier is trained on ground-truth-masked images.
"""
from __future__ import annotations

import torch.nn.functional as F

from ..teachers.segmenter import fill_background
from .base import Objective, output_logs


class ERM(Objective):
    name = "erm"
    selection_key = "loss"

    def __init__(self, fill: str | None = None):
        self.fill = fill

    def config(self) -> dict:
        return {"name": self.name, "fill": self.fill}

    def __call__(self, batch, student, rng, train=True):
        x = batch["x"]
        if self.fill:
            x = fill_background(x, batch["mask"], self.fill, generator=rng)
        logits = student(x)
        loss = F.cross_entropy(logits, batch["y"])
        return loss, {"loss": loss.detach(), **output_logs(logits, batch["y"])}
