"""Group DRO, online algorithm (Sagawa, Koh, Hashimoto & Liang, ICLR 2020, Algorithm 1).

Groups: ``(label, bias attribute)`` pairs, the paper's standard choice, when
``num_classes`` is given — group ``g = y · (num_groups / num_classes) + bias`` —
and the bias attribute alone (``g = bias``) when ``num_classes`` is None.
Per training step, with ``L_g`` the mean cross-entropy of group g in the batch
(0 for a group absent from it, as in the authors' code)::

    q_g ← q_g · exp(step_size · L_g),  q ← q / Σ q,      loss = Σ_g q_g · L_g

``step_size`` η = 0.01 is the paper's value.  (The paper's group adjustment
term and its strong ℓ2 penalty are left out / left to the optimiser.)

State: the weights ``q`` live on the objective and change on every
``train=True`` call (validation calls leave them alone).  They are not
written by the training loop's checkpoint; :meth:`state_dict` /
:meth:`load_state_dict` let a caller save and restore them.  Under DDP each
process updates its own ``q`` from its own batches (not synchronised).
Model selection: ``worst_group_loss`` (mean over validation batches of the
largest per-group mean CE in the batch), in the spirit of the paper's
worst-group selection.  Assumes bias attribute values in
``[0, num_groups / num_classes)`` (``-1``, "no attribute", has no group).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, output_logs


def group_options(num_classes: int | None, num_bias: int | None = None, bias_is_group: bool = False,
                  **kw) -> dict:
    """GroupDRO's options ``kw`` with its groups decided: the one place that decides them.

    Groups are (label, bias) pairs, ``num_classes`` labels times ``num_bias`` bias
    values (default: one bias value per class, as in the built-in benchmarks), or,
    with ``bias_is_group`` (a dataset whose bias attribute already is the group,
    e.g. Waterbirds), the bias value alone (``num_classes`` None).  A
    ``num_classes`` or ``num_groups`` given in ``kw`` wins."""
    classes = kw.get("num_classes", None if bias_is_group else num_classes)
    n_bias = num_classes if num_bias is None else num_bias
    if n_bias is None:
        raise ValueError("GroupDRO: give num_bias (the number of bias values) or num_classes")
    groups = kw.get("num_groups", n_bias if classes is None else n_bias * classes)
    return {**kw, "num_classes": classes, "num_groups": groups}


class GroupDRO(Objective):
    name = "groupdro"
    selection_key = "worst_group_loss"

    def __init__(self, num_groups: int, step_size: float = 0.01, num_classes: int | None = None):
        if not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
        if num_classes is not None and (num_classes < 1 or num_groups % num_classes):
            raise ValueError(f"num_groups={num_groups} must be a multiple of num_classes={num_classes} "
                             "((label, bias) pairs: num_classes × number of bias values)")
        if step_size < 0:
            raise ValueError(f"step_size must be >= 0, got {step_size!r}")
        self.num_groups, self.step_size, self.num_classes = num_groups, float(step_size), num_classes
        self.q = torch.full((num_groups,), 1.0 / num_groups)

    def config(self) -> dict:
        return {"name": self.name, "num_groups": self.num_groups, "step_size": self.step_size,
                "num_classes": self.num_classes,
                "groups": "label_bias" if self.num_classes is not None else "bias"}

    def state_dict(self) -> dict:
        return {"q": self.q.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        q = torch.as_tensor(state["q"], dtype=torch.float32)
        if q.shape != (self.num_groups,):
            raise ValueError(f"state q has shape {tuple(q.shape)}; expected ({self.num_groups},)")
        self.q = q.clone()

    def groups(self, y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """(B,) group index of each sample."""
        n_bias = self.num_groups if self.num_classes is None else self.num_groups // self.num_classes
        if bias.min() < 0 or bias.max() >= n_bias:
            raise ValueError(f"bias attribute values must lie in [0, {n_bias}) for {self.num_groups} "
                             f"groups; got range [{int(bias.min())}, {int(bias.max())}]")
        if self.num_classes is None:
            return bias.long()
        if y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes})")
        return y.long() * n_bias + bias.long()

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        logits = student(x)
        ce = F.cross_entropy(logits, y, reduction="none")
        onehot = F.one_hot(self.groups(y, batch["bias"]), self.num_groups).to(ce.dtype)  # (B, G)
        counts = onehot.sum(0)
        group_loss = (onehot.t() @ ce) / counts.clamp_min(1)
        q = self.q.to(ce.device, ce.dtype)
        if train:
            with torch.no_grad():
                q = q * torch.exp(self.step_size * group_loss.detach())
                q = q / q.sum()
            self.q = q.detach()
        loss = (q * group_loss).sum()
        return loss, {"loss": loss.detach(), "ce": ce.mean().detach(),
                      "worst_group_loss": group_loss[counts > 0].max().detach(),
                      **output_logs(logits, y)}
