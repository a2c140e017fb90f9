"""ERM: cross-entropy on the labels — the baseline that learns the shortcut.

With ``fill`` set (``"noise"``, ``"zero"``, ``"mean"``, ``"blur"``) the
background pixels are replaced first: that is how the segmenter teacher's
classifier is trained.  By default the background is where ``batch["mask"]``
(the true mask) is False.  With a ``segmenter`` (a trained U-Net returning
(B, 1, H, W) logits; frozen here) it is where the U-Net's own thresholded
mask is False, in training and validation, as the teacher will see it; and
``swap`` / ``recolour`` (chances per training image, in that order, the true
mask cutting the foreground: :mod:`teakit.data.augment`, as the U-Net's own
training does) first put the image on new backgrounds, so the classifier meets
the U-Net's mistakes on scenes the biased training set does not show.  Without
a segmenter they would change nothing (the true mask fills every pixel they
change), so they need one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.augment import NewBackgrounds
from ..teachers.segmenter import fill_background
from .base import Objective, output_logs


class ERM(Objective):
    name = "erm"
    selection_key = "loss"

    def __init__(self, fill: str | None = None, segmenter=None, threshold: float = 0.5, swap: float = 0.0,
                 recolour: float = 0.0):
        if segmenter is not None and not fill:
            raise ValueError("ERM: the segmenter's mask says which pixels to fill; give fill too")
        if (swap or recolour) and segmenter is None:
            raise ValueError("ERM: swap and recolour change only pixels that the true mask fills; they need a "
                             "segmenter (tea train-teacher --cls-masks segmenter)")
        for name, value in (("swap", swap), ("recolour", recolour)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"ERM: {name}={value!r}, expected a probability in [0, 1]")
        if segmenter is not None:
            segmenter.eval().requires_grad_(False)
        self.fill, self.segmenter, self.threshold = fill, segmenter, float(threshold)
        self.backgrounds = NewBackgrounds(swap=swap, recolour=recolour)

    def config(self) -> dict:
        config = {"name": self.name, "fill": self.fill}
        if self.segmenter is not None:
            config.update(masks="segmenter", threshold=self.threshold, swap=self.backgrounds.swap,
                          recolour=self.backgrounds.recolour)
        return config

    def __call__(self, batch, student, rng, train=True):
        x = batch["x"]
        if self.fill:
            keep = batch["mask"]
            if self.segmenter is not None:
                if train and len(x) > 1:
                    x = self.backgrounds(x, keep, rng)
                with torch.no_grad():
                    keep = torch.sigmoid(self.segmenter.to(x.device)(x)) >= self.threshold
            x = fill_background(x, keep, self.fill, generator=rng)
        logits = student(x)
        loss = F.cross_entropy(logits, batch["y"])
        return loss, {"loss": loss.detach(), **output_logs(logits, batch["y"])}
