"""Attention transfer (Zagoruyko & Komodakis, ICLR 2017), from the teacher alone.

Attention map of a feature map F (B, C, h, w): ``Q = mean_c F_c²`` (the paper's
F_sum^2 up to the constant 1/C), flattened and L2-normalised per sample.  Loss,
on the last convolutional feature map only::

    (weight / 2) · mean_{b, positions} (Q_S - Q_T)²

which is the authors' code (``β/2 · Σ_layers (at(x) - at(y)).pow(2).mean()``
with β = 1000) for a single layer; ``weight`` is β (default 1000, the paper's
value).  The teacher's map is computed on ``teacher.classifier_input(x, rng)``;
if the spatial sizes differ it is resized bilinearly to the student's before
normalising.  Channel counts may differ.  The paper adds the attention loss to
cross-entropy (and optionally KD); here it is the attention loss *alone*, a
label-free distillation baseline like TEA.  The loss never reaches the head
(``trains_head = False``), so `tea distill` gives the student the teacher's
head, frozen.  Assumes classifiers known to
:func:`teakit.models.get_feature_map`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..teachers.segmenter import MaskMemo
from .base import Objective, known_masks, output_logs, touch_all_parameters
from .feature_distill import feature_map_and_logits


def attention_map(fmap: torch.Tensor, size=None) -> torch.Tensor:
    """(B, h·w) L2-normalised channel-mean of squared activations of ``fmap`` (B, C, h, w);
    with ``size=(H, W)`` the (unnormalised) map is first resized bilinearly to that size."""
    if fmap.dim() != 4:
        raise ValueError(f"attention_map needs a (B, C, h, w) feature map, got shape {tuple(fmap.shape)}")
    a = fmap.pow(2).mean(1, keepdim=True)
    if size is not None and tuple(a.shape[-2:]) != tuple(size):
        a = F.interpolate(a, size=tuple(size), mode="bilinear", align_corners=False)
    return F.normalize(a.flatten(1), dim=1)


class AttentionTransfer(Objective):
    name = "attention"
    selection_key = "loss"
    trains_head = False

    def __init__(self, teacher, weight: float = 1000.0):
        self.teacher = teacher
        self.masks = MaskMemo.of(teacher)  # the segmenter runs once per training image
        self.weight = float(weight)

    def config(self) -> dict:
        return {"name": self.name, "weight": self.weight}

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        keep = known_masks(self.masks, batch, train)
        S, logits = feature_map_and_logits(student, x)
        with torch.no_grad():
            T, t_logits = feature_map_and_logits(self.teacher.classifier,
                                                 self.teacher.classifier_input(x, rng, keep))
            q_t = attention_map(T, size=S.shape[-2:])
        at = (attention_map(S) - q_t).pow(2).mean()
        loss = self.weight / 2 * at
        loss = touch_all_parameters(loss, logits) if train else loss.detach()
        return loss, {"loss": loss.detach(), **output_logs(logits, y, t_logits)}
