"""PGI: predictive group invariance (Ahmed, Bengio, van Seijen & Courville, "Systematic
generalisation with group invariant predictions", ICLR 2021).

Within each class, the images of every group should receive, on average, the same
predictive distribution.  With ``p(x) = softmax(logits(x))`` over the K classes,
``p̄_{c,g}`` its mean over the batch's images of class c in group g, and ``M_c`` the
class's majority group (the most frequent in the batch; ties: the smaller bias value)::

    loss = CE(logits, y) + λ · Σ_c Σ_{g ≠ M_c} (1/K) · KL( p̄_{c,g} ‖ p̄_{c,M_c} )

    KL(q ‖ p) = Σ_j q_j log(q_j / p_j)       (means clamped to ≥ 1e-12)

A class with a single group in the batch adds nothing.  With two groups this is the
paper's penalty Σ_c KL(E_Q[p] ‖ E_P[p]), P the majority ("easy", biased) partition and
Q the minority one: the minority's mean prediction against the majority's, in the
direction of the paper and the authors' code.  The penalty's gradient reaches the feature
extractor only: it is computed from the head's input through a detached copy of the
last linear layer, so the head learns from the cross-entropy alone, as in the authors'
code (there the penalty's gradient is applied to the feature extractor only).

Groups come from the bias attribute, as GroupDRO's: the (label, bias) pairs — within a
class, one group per bias value (on data whose bias attribute already is the group,
e.g. Waterbirds, this is the same partition).  Images without an attribute (bias −1)
count in the cross-entropy only.  ``penalty_weight`` λ = 50 is the authors' value for
Coloured MNIST (their code's ``-wc 50``; 100 for COCO-on-colours, 50 for COCO-on-places).

Departures from the published method:

* Groups are the given bias attribute; the paper infers a two-way partition per class
  (an EIIL-style partition network on a reference ERM model's predictions).
* More than two groups per class are compared each with the class's majority group;
  the majority is the batch's largest group, not the partition's size in the data.
* The KL is divided by K, as the authors' code computes it (so their λ carries over).
* Plain mean cross-entropy as in the paper's formula; the authors' code averages the
  two partitions' mean cross-entropies (a group-balanced risk).
* No ramp-up: λ applies from the first step (the authors start the penalty after one
  epoch and ramp λ linearly over 5 epochs on Coloured MNIST); their L2 penalty is left
  to the optimiser.

Uses labels and the bias attribute; no teacher.  The classifier needs a final linear
layer (:func:`teakit.models.parts.get_head`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.parts import forward_with_input_of, get_head
from .base import Objective, output_logs


def logits_and_head_input(model, x: torch.Tensor):
    """``(logits, h)`` of one forward pass, ``h`` the input of the model's final linear layer
    (a Fabric / DDP wrapper is reached through ``.module``)."""
    head = get_head(getattr(model, "module", model))
    logits, h = forward_with_input_of(model, head, x)
    if h is None:
        raise ValueError("the model's final linear layer was not called in its forward pass")
    return logits, h, head


def pgi_penalty(probs: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Σ over classes c of Σ over non-majority groups g of KL(p̄_{c,g} ‖ p̄_{c,majority}) / K;
    ``probs`` (B, K), ``y`` and ``group`` (B,) (group −1: ignored)."""
    K = probs.shape[1]
    total = probs.new_zeros(())
    for c in torch.unique(y):
        in_class = (y == c) & (group >= 0)
        values, counts = torch.unique(group[in_class], return_counts=True)
        if len(values) < 2:
            continue
        majority = values[counts.argmax()]  # first maximum: the smaller bias value on ties
        p = probs[in_class & (group == majority)].mean(0).clamp_min(1e-12)
        for g in values:
            if g == majority:
                continue
            q = probs[in_class & (group == g)].mean(0).clamp_min(1e-12)
            total = total + (q * (q / p).log()).sum() / K
    return total


class PGI(Objective):
    name = "pgi"
    selection_key = "loss"

    def __init__(self, penalty_weight: float = 50.0):
        if penalty_weight < 0:
            raise ValueError(f"penalty_weight must be >= 0, got {penalty_weight!r}")
        self.penalty_weight = float(penalty_weight)

    def config(self) -> dict:
        return {"name": self.name, "penalty_weight": self.penalty_weight, "groups": "label_bias"}

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        logits, h, head = logits_and_head_input(student, x)
        if not train:
            logits, h = logits.detach(), h.detach()
        ce = F.cross_entropy(logits, y)
        bias = head.bias.detach() if head.bias is not None else None
        probs = F.softmax(F.linear(h, head.weight.detach(), bias), 1)  # the penalty leaves the head alone
        penalty = pgi_penalty(probs, y, batch["bias"])
        loss = ce + self.penalty_weight * penalty
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "pgi_penalty": penalty.detach(),
                      **output_logs(logits, y)}
