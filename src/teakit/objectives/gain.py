"""GAIN with external (mask) supervision, GAIN_ext (Li, Wu, Peng, Ernst & Fu, "Tell me where
to look: Guided Attention Inference Network", CVPR 2018).

Three terms, for each image with label c = y::

    A^c   = ReLU(Σ_k w_k^c f_k),  w_k^c = mean_{h,w} ∂s^c/∂f_k     Grad-CAM of the last conv
                                                                  feature map f (upsampled to the input)
    T(A)  = sigmoid(ω · (A^c − σ))                                soft mask of the attended region
    I*    = I − T(A) ⊙ I                                          the image with that region erased

    L_cl  = CE(s(I), y)
    L_am  = mean_b softmax(s(I*_b))[c_b]      attention mining: the class must not survive the erasure
    L_e   = mean_{b,h,w} (A^c − H)²           external supervision: attention = ground-truth mask H ∈ {0, 1}

    loss  = L_cl + α · L_am + w_e · L_e

Gradients flow through A^c (Grad-CAM with ``create_graph``, :mod:`teakit.explain`) into
both T(A) and L_e, and through the classifier's second pass on I*, which shares its
weights.  Defaults as in the paper: α = 1, σ = 0.5, ω = 10, and the external-supervision
weight (also written ω in the paper) w_e = 10.

Departures from the published method:

* Single-label classification: the class score on I* is the softmax probability of
  the label (the paper's VOC setting is multi-label, one A^c and one I* per label);
* every training image has a mask, so L_e covers the whole batch (the paper applies it
  to the images that have pixel-level labels).

A^c enters T and L_e as the equations give it (some re-implementations rescale it per
image before the threshold σ; this one does not).  The second pass on I* runs in the
classifier's current mode, so in training it updates BatchNorm's running statistics too.

Uses labels and masks; no teacher.  The classifier needs a 4-D ReLU feature map (Grad-CAM).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..explain import explain
from .base import Objective, output_logs


def soft_mask(A: torch.Tensor, omega: float, sigma: float) -> torch.Tensor:
    """T(A) = sigmoid(ω (A − σ))."""
    return torch.sigmoid(omega * (A - sigma))


class GAIN(Objective):
    explains = True  # (Objective)
    name = "gain"
    selection_key = "loss"

    def __init__(self, alpha: float = 1.0, omega: float = 10.0, sigma: float = 0.5, mask_weight: float = 10.0):
        if alpha < 0 or omega <= 0 or mask_weight < 0:
            raise ValueError(f"need alpha >= 0, omega > 0, mask_weight >= 0; got alpha={alpha!r}, "
                             f"omega={omega!r}, mask_weight={mask_weight!r}")
        self.alpha, self.omega, self.sigma, self.mask_weight = (float(alpha), float(omega), float(sigma),
                                                                float(mask_weight))

    def config(self) -> dict:
        return {"name": self.name, "alpha": self.alpha, "omega": self.omega, "sigma": self.sigma,
                "mask_weight": self.mask_weight}

    def __call__(self, batch, student, rng, train=True):
        x, y, mask = batch["x"], batch["y"], batch["mask"]
        A, logits = explain(student, x, y, method="gradcam", create_graph=train, return_logits=True)
        if mask.shape != A.shape:
            raise ValueError(f"mask must be (B, 1, H, W) like the attention map {tuple(A.shape)}, "
                             f"got {tuple(mask.shape)}")
        erased = x - soft_mask(A, self.omega, self.sigma) * x
        with torch.set_grad_enabled(train):
            am_logits = student(erased)
        mining = F.softmax(am_logits, 1).gather(1, y.view(-1, 1)).mean()
        external = (A - mask.to(A.dtype)).square().mean()
        ce = F.cross_entropy(logits, y)
        loss = ce + self.alpha * mining + self.mask_weight * external
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "attention_mining": mining.detach(),
                      "mask_loss": external.detach(), **output_logs(logits, y)}
