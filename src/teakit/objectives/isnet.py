"""ISNet-style background-relevance penalty (after Bassi et al., Nature Communications 2024).

Loss per batch::

    CE(logits, y) + weight · mean_b  Σ_bg |R_b| / Σ |R_b|

with ``R_b`` the LRP-ε relevance (``teakit.explain``, ``create_graph=True``)
of the true class ``y_b``, channels summed after the absolute value, and
``bg`` the background pixels (``mask`` False): the share of |relevance| that
falls on the background, in [0, 1].  The heatmap and the logits come from
one forward pass.  This is a *simplified* ISNet-style penalty, not the ISNet
method itself (no segmenter in the network, none of its heatmap-loss
terms); it shows what direct mask supervision of LRP heatmaps does.
Hyper-parameters: ``weight`` = 1.0 and ``eps`` = 0.01 are our choices (not
tuned, not taken from the paper).  Uses labels and masks; no teacher;
assumes a ReLU classifier (LRP-ε).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..explain import explain
from .base import Objective, output_logs


def background_share(R: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) share of ``|R|`` (channels summed) on pixels where ``mask`` is False."""
    a = R.abs().sum(1, keepdim=True)
    if a.shape != mask.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the heatmap's (B, 1, H, W) "
                         f"{tuple(a.shape)}")
    bg = (a * (~mask).to(a.dtype)).flatten(1).sum(1)
    return bg / (a.flatten(1).sum(1) + 1e-12)


class ISNetStyle(Objective):
    name = "isnet"
    selection_key = "loss"

    def __init__(self, weight: float = 1.0, eps: float = 0.01):
        if weight < 0 or eps < 0:
            raise ValueError(f"weight and eps must be >= 0, got weight={weight!r}, eps={eps!r}")
        self.weight, self.eps = float(weight), float(eps)

    def config(self) -> dict:
        return {"name": self.name, "weight": self.weight, "eps": self.eps}

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        R, logits = explain(student, x, y, method="lrp", eps=self.eps, create_graph=train, return_logits=True)
        share = background_share(R, batch["mask"]).mean()
        ce = F.cross_entropy(logits, y)
        loss = ce + self.weight * share
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "background_share": share.detach(),
                      **output_logs(logits, y)}
