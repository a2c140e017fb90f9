"""Feature distillation: match the student's last conv feature map to the teacher's, no labels.

Loss: :func:`teakit.heatmap_loss` (TEA's normalised L1, ``pyramid=False``)
between the student's last convolutional feature map on ``x`` and the teacher
classifier's on the teacher's input (``teacher.classifier_input(x, rng)``),
i.e. a FitNets-style hint loss (Romero et al., 2015) on the final feature map,
without a regressor, using the TEA loss so the comparison with TEA isolates
*what* is matched (features vs. heatmaps), not *how*.  No hyper-parameters.

Assumes both networks are classifiers known to
:func:`teakit.models.get_feature_map` (SmallCNN, torchvision ResNet, or a
model with ``forward_features_map``) with the same channel count and spatial
size of that map (a ``ValueError`` says otherwise).  The loss never reaches the
head (``trains_head = False``), so `tea distill` gives the student the teacher's
head, frozen: the student's features are trained to be the teacher's, and the
teacher's head reads them.  The feature map and the
logits come from one forward pass (a hook on the global pooling layer), which
also keeps a DDP / Fabric wrapper's forward in the loop.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models import ResNet

from ..models import SmallCNN, get_feature_map
from ..models.parts import forward_with_input_of
from ..teachers.segmenter import MaskMemo
from .base import Objective, known_masks, output_logs, touch_all_parameters
from .heatmap_loss import heatmap_loss


def _pooling_layer(model: nn.Module):
    if isinstance(model, SmallCNN):
        return model.pool
    if isinstance(model, ResNet):
        return model.avgpool
    return None


def feature_map_and_logits(model: nn.Module, x: torch.Tensor):
    """``(feature map (B, C', h, w), logits (B, K))`` of ``model`` on ``x``.

    For SmallCNN and torchvision ResNets (possibly wrapped by Fabric / DDP,
    reached through ``.module``) both come from the one call ``model(x)``; for
    other models with ``forward_features_map`` it takes a second forward pass.
    """
    inner = getattr(model, "module", model)
    pool = _pooling_layer(inner)
    if pool is None:
        return get_feature_map(inner, x), model(x)
    logits, feature_map = forward_with_input_of(model, pool, x)
    if feature_map is None:
        raise ValueError("the model's pooling layer was not called in its forward pass")
    return feature_map, logits


class FeatureDistillation(Objective):
    name = "feature"
    selection_key = "loss"
    trains_head = False

    def __init__(self, teacher):
        self.teacher = teacher
        self.masks = MaskMemo.of(teacher)  # the segmenter runs once per training image

    def config(self) -> dict:
        return {"name": self.name, "loss": "l1", "pyramid": False}

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        keep = known_masks(self.masks, batch, train)
        with torch.no_grad():
            T, t_logits = feature_map_and_logits(self.teacher.classifier,
                                                 self.teacher.classifier_input(x, rng, keep))
        S, logits = feature_map_and_logits(student, x)
        if S.shape[1] != T.shape[1]:
            raise ValueError(f"feature distillation needs equal channel counts: the student's last "
                             f"feature map has {S.shape[1]} channels, the teacher's {T.shape[1]}")
        if S.shape != T.shape:
            raise ValueError(f"student feature map {tuple(S.shape)} and teacher feature map "
                             f"{tuple(T.shape)} differ in shape")
        fl = heatmap_loss(S, T, pyramid=False)
        loss = touch_all_parameters(fl, logits) if train else fl.detach()
        return loss, {"loss": loss.detach(), **output_logs(logits, y, t_logits)}
