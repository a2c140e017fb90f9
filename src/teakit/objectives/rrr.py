"""RRR: Right for the Right Reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017).

Loss per batch::

    CE(logits, y) + l2_grads · mean_b Σ_{c,h,w} (A · ∂/∂x Σ_k log p_k(x))²

with ``A`` the "irrelevant" annotation: 1 on background pixels (``mask``
False), 0 on the foreground, broadcast over channels.  ``l2_grads`` is the
paper's λ1; Ross et al. set it so both terms have similar magnitudes (1000 on
their data).  The default here, 10, is our choice for inputs in [0, 1] at
32×32 (not from the paper, not tuned).  The paper's λ2 (L2 weight decay) is
left to the optimiser.  Uses labels and masks; no teacher.  The input gradient
is plain autograd (``create_graph=True`` while training), so any
differentiable classifier works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, output_logs


def rrr_penalty(student, x: torch.Tensor, mask: torch.Tensor, create_graph: bool = True):
    """``(penalty, logits)``: per-sample Σ over background pixels of the squared input gradient
    of the summed log-probabilities, averaged over the batch; logits from the same forward."""
    if mask.dtype != torch.bool or mask.shape[0] != x.shape[0] or mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"mask must be a bool (B, 1, H, W) tensor matching x {tuple(x.shape)}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = student(xg)
        (grad,) = torch.autograd.grad(F.log_softmax(logits, 1).sum(), xg, create_graph=create_graph)
    background = (~mask).to(grad.dtype)
    return (background * grad).square().flatten(1).sum(1).mean(), logits


class RRR(Objective):
    explains = True  # (Objective)
    name = "rrr"
    memory_format = torch.contiguous_format  # its plain double backward is faster so (Objective)
    selection_key = "loss"

    def __init__(self, l2_grads: float = 10.0):
        if l2_grads < 0:
            raise ValueError(f"l2_grads must be >= 0, got {l2_grads!r}")
        self.l2_grads = float(l2_grads)

    def config(self) -> dict:
        return {"name": self.name, "l2_grads": self.l2_grads}

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        penalty, logits = rrr_penalty(student, x, batch["mask"], create_graph=train)
        if not train:
            penalty, logits = penalty.detach(), logits.detach()
        ce = F.cross_entropy(logits, y)
        loss = ce + self.l2_grads * penalty
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "rrr_penalty": penalty.detach(),
                      **output_logs(logits, y)}
