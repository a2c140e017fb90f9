"""ERM: cross-entropy on the labels.  The baseline that learns the shortcut."""
from __future__ import annotations

import torch.nn.functional as F

from .base import Objective, output_logs


class ERM(Objective):
    name = "erm"
    selection_key = "loss"

    def __call__(self, batch, student, rng, train=True):
        logits = student(batch["x"])
        loss = F.cross_entropy(logits, batch["y"])
        return loss, {"loss": loss.detach(), **output_logs(logits, batch["y"])}
