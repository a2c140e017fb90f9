"""JTT: Just Train Twice (Liu et al., ICML 2021), stage 2.

Two-stage use::

    stage1 = train an ERM model for a few epochs (the "identification" model)
    errors = error_set(stage1, train_data)          # (N,) bool: stage-1 mistakes
    objective = JTT(errors, upweight=20.0)          # stage 2: a fresh model

Stage 2 is cross-entropy in which training examples in the error set count
``upweight`` (λ_up) times.  The paper upsamples the error set λ_up times; here
each batch is weighted instead — ``Σ w_i CE_i / Σ w_i`` with ``w_i = λ_up`` for
``batch["index"][i]`` in the error set and 1 otherwise, the batch estimate of
the upsampled set's mean loss.  λ_up = 20 is our default (the paper tunes it
per data set, from 6 to 100, along with the stage-1 length).  On validation
batches (``train=False``) ``index`` does not refer to the training set, so
the loss is plain cross-entropy.  Uses labels only: no groups, no teacher.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, output_logs


@torch.no_grad()
def error_set(model, data, batch_size: int = 256, device=None) -> torch.Tensor:
    """(N,) bool on the CPU: True where ``model`` misclassifies ``data`` (anything with
    ``x`` and ``y``, e.g. an ImageSet).  Runs in eval mode and restores the model's mode."""
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        pred = torch.cat([model(data.x[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(data.x), batch_size)])
    finally:
        model.train(was_training)
    return pred != data.y.cpu()


class JTT(Objective):
    name = "jtt"
    selection_key = "loss"

    def __init__(self, error_set: torch.Tensor, upweight: float = 20.0):
        error_set = torch.as_tensor(error_set)
        if error_set.dtype != torch.bool or error_set.dim() != 1:
            raise ValueError(f"error_set must be a 1-D bool tensor over the training set, "
                             f"got {error_set.dtype} of shape {tuple(error_set.shape)}")
        if upweight <= 0:
            raise ValueError(f"upweight must be > 0, got {upweight!r}")
        self.error_set, self.upweight = error_set, float(upweight)

    def config(self) -> dict:
        return {"name": self.name, "upweight": self.upweight,
                "error_set_size": int(self.error_set.sum()), "train_size": len(self.error_set)}

    def weights(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) per-example weights: ``upweight`` in the error set, 1 elsewhere."""
        if index.max() >= len(self.error_set) or index.min() < 0:
            raise ValueError(f"batch index outside the error set's {len(self.error_set)} training examples")
        if self.error_set.device != index.device:
            self.error_set = self.error_set.to(index.device)
        return torch.where(self.error_set[index], self.upweight, 1.0)

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        logits = student(x)
        ce = F.cross_entropy(logits, y, reduction="none")
        if train:
            w = self.weights(batch["index"]).to(ce.dtype)
            loss = (w * ce).sum() / w.sum()
        else:
            loss = ce.mean()
        return loss, {"loss": loss.detach(), "ce": ce.mean().detach(), **output_logs(logits, y)}
