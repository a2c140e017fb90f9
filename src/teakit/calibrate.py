"""Head-bias calibration to a class prior: the part of the decision heatmaps cannot teach.

An LRP-ε heatmap (any gradient-based map) never depends on the last linear
layer's bias, and a BatchNorm student also carries per-class logit offsets
that LRP attributes to no pixel.  A student trained only on heatmaps therefore
learns the shapes of the teacher's explanations but not the offsets between
its class logits, and a few classes' logits can sit too low to ever win
(docs/recipe.md has the measurement).

:func:`prior_bias` finds the per-class offsets ``b`` with which the student's
mean predicted class distribution over a set of images equals a prior ``π``:
``mean_i softmax(z_i + b) = π``, by the fixed-point iteration
``b ← b − log(p̄ / π)`` (the prior-adjustment step of Saerens et al., 2002).
:func:`calibrate_head_bias` adds those offsets to the head's bias, using the
student's logits on unlabelled training images; it uses no labels and leaves
every weight, and therefore every heatmap, unchanged.  The prior is TEA's
``bias_prior``: by default the teacher's mean predicted distribution on the
same images (:func:`teacher_prior`: one teacher pass, no labels; it assumes
the teacher is right about the class frequencies on average), or the uniform
one (balanced classes), or one you know.
"""
from __future__ import annotations

import torch

from .models import get_head


def prior_bias(logits: torch.Tensor, prior: torch.Tensor | None = None, iters: int = 2000,
               tol: float = 1e-6) -> torch.Tensor:
    """Offsets ``b`` (K,), mean zero, with ``softmax(logits + b).mean(0) ≈ prior``.

    ``logits``: (N, K); ``prior``: (K,) positive, summing to 1 (default uniform).
    Stops when every ``|log(p̄_k / π_k)|`` is below ``tol``."""
    logits = logits.detach().double()
    K = logits.shape[1]
    prior = torch.full((K,), 1.0 / K, dtype=torch.float64) if prior is None else prior.double().cpu()
    if prior.shape != (K,) or (prior <= 0).any() or abs(prior.sum().item() - 1) > 1e-6:
        raise ValueError(f"prior must be {K} positive numbers summing to 1, got {prior.tolist()}")
    logits = logits.cpu()
    b = torch.zeros(K, dtype=torch.float64)
    for _ in range(iters):
        gap = torch.log(torch.softmax(logits + b, 1).mean(0) / prior)
        if gap.abs().max() < tol:
            break
        b -= gap
    return (b - b.mean()).float()


@torch.no_grad()
def calibrate_head_bias(model: torch.nn.Module, data, device, prior: torch.Tensor | None = None,
                        max_images: int = 4096, batch_size: int = 64) -> float:
    """Shift ``model``'s head bias so its mean prediction on ``data`` (the first
    ``max_images`` images; labels unused) matches ``prior``.  Returns the size of
    the shift (max |Δb|).  The model is evaluated in eval mode and left as it was."""
    head = get_head(model)
    if head.bias is None:
        raise ValueError("the model's head has no bias to calibrate (a bias-free network)")
    was_training = model.training
    model.eval()
    n = min(len(data), max_images)
    logits = torch.cat([model(data.x[torch.arange(i, min(i + batch_size, n))].to(device)).float()
                        for i in range(0, n, batch_size)])
    model.train(was_training)
    b = prior_bias(logits, prior).to(head.bias.device, head.bias.dtype)
    head.bias.add_(b)
    return b.abs().max().item()


def calibrate_to_prior(model: torch.nn.Module, data, device, bias_prior) -> dict:
    """TEA's after-epoch step: :func:`calibrate_head_bias` to ``bias_prior``: ``"uniform"``, ``"none"``, or K
    class frequencies (e.g. :func:`teacher_prior`'s).  Skipped, with no logs, for ``"none"``, a model without a linear head, a head
    without a bias and a frozen (copied) head."""
    if bias_prior == "none":
        return {}
    try:
        head = get_head(model)
    except TypeError:
        return {}
    if head.bias is None or not head.bias.requires_grad:
        return {}
    prior = None if isinstance(bias_prior, str) else torch.as_tensor(bias_prior, dtype=torch.float64)
    return {"bias_shift": calibrate_head_bias(model, data, device, prior=prior)}


@torch.no_grad()
def teacher_prior(teacher, data, device, max_images: int = 4096, batch_size: int = 64) -> torch.Tensor:
    """The teacher's mean predicted class distribution (K,) on the first ``max_images`` images of
    ``data`` (labels unused; a segmenter teacher's fill seeded), kept away from 0 so that it is a
    valid prior."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    n = min(len(data), max_images)
    probs = torch.cat([torch.softmax(teacher(data.x[torch.arange(i, min(i + batch_size, n))].to(device),
                                             generator=gen).double(), 1).cpu()
                       for i in range(0, n, batch_size)]).mean(0)
    probs = probs.clamp_min(1e-4)
    return probs / probs.sum()
