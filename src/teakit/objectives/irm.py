"""IRMv1 (Arjovsky, Bottou, Gulrajani & Lopez-Paz, 2019).

Environments: the bias attribute values present in the batch, or, where the
bias attribute is a group index ``g = y · P + e`` (Waterbirds-style data:
``bias_per_class`` = P), its environment part ``e = g − y · P`` (the place,
not the class × place group, which would hold one class each).  Per
environment e, ``R_e`` = mean cross-entropy and the penalty
``P_e = (∂/∂w R_e(w · logits))² at w = 1`` (a dummy scalar classifier).
Loss::

    λ' = penalty_weight if step >= anneal_steps else 1
    loss = mean_e R_e + λ' · mean_e P_e,   divided by λ' when λ' > 1

Means over environments (not sums) and the division by λ' follow the
authors' reference code (so the loss is independent of how many
environments a batch holds, and the gradient scale stays sane).
``penalty_weight`` λ = 100 is our default (the paper's colored-MNIST run
used ~9·10⁴ after annealing; it is a tuned value); ``anneal_steps`` = 0
turns the full penalty on from the first step (the paper anneals for ~190
steps).  State: the step counter ``steps`` counts ``train=True`` calls and is
not checkpointed (:meth:`state_dict` / :meth:`load_state_dict` save and
restore it).  Uses labels and the bias attribute; no teacher.

On a fully biased training set (the built-in benchmarks: bias attribute =
class) every environment holds one class, and its penalty, the square of the mean over the environment's
images of ``E_softmax(z)[z] - z_y``, is zero only when the true class's logit
equals, on average, the softmax-weighted mean of the logits, which confident
correct predictions cannot meet.  So IRM flattens its logits and can rank the true class below the
top (docs/results.md shows it in the demo).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, output_logs


def irm_penalty(logits: torch.Tensor, y: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Squared derivative of ``CE(w · logits, y)`` with respect to the scalar w at w = 1."""
    with torch.enable_grad():
        w = torch.ones((), device=logits.device, dtype=logits.dtype, requires_grad=True)
        (g,) = torch.autograd.grad(F.cross_entropy(logits * w, y), w, create_graph=create_graph)
    return g.square()


class IRM(Objective):
    name = "irm"
    selection_key = "loss"

    def __init__(self, penalty_weight: float = 100.0, anneal_steps: int = 0, bias_per_class: int | None = None):
        if penalty_weight < 0 or anneal_steps < 0:
            raise ValueError(f"penalty_weight and anneal_steps must be >= 0, got "
                             f"{penalty_weight!r}, {anneal_steps!r}")
        if bias_per_class is not None and bias_per_class < 1:
            raise ValueError(f"bias_per_class must be a positive int, got {bias_per_class!r}")
        self.penalty_weight, self.anneal_steps = float(penalty_weight), int(anneal_steps)
        self.bias_per_class = bias_per_class
        self.steps = 0

    def config(self) -> dict:
        return {"name": self.name, "penalty_weight": self.penalty_weight, "anneal_steps": self.anneal_steps,
                "bias_per_class": self.bias_per_class}

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])

    def __call__(self, batch, student, rng, train=True):
        x, y, env = batch["x"], batch["y"], batch["bias"]
        if self.bias_per_class is not None:
            env = env - y * self.bias_per_class  # group y·P + e → environment e
        logits = student(x)
        if not train:
            logits = logits.detach()
        risks, penalties = [], []
        for e in torch.unique(env):
            sel = env == e
            risks.append(F.cross_entropy(logits[sel], y[sel]))
            penalties.append(irm_penalty(logits[sel], y[sel], create_graph=train))
        risk, penalty = torch.stack(risks).mean(), torch.stack(penalties).mean()
        weight = self.penalty_weight if self.steps >= self.anneal_steps else 1.0
        loss = risk + weight * penalty
        if weight > 1.0:
            loss = loss / weight
        if train:
            self.steps += 1
        return loss, {"loss": loss.detach(), "ce": risk.detach(), "irm_penalty": penalty.detach(),
                      **output_logs(logits, y)}
