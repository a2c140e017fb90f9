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

``teacher-decisions`` matches decisions instead of mean probabilities: the
student's top class is each class as often as the teacher's top class on the
same images (:func:`teacher_decisions`, :func:`decision_bias`).  The two differ
when the student is less confident than its teacher and the classes are
imbalanced: a soft student whose mean probability of a rare class is right
still ranks too few images first for it, so the rare class loses its
borderline images (docs/recipe.md has the measurement).
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


def decision_bias(logits: torch.Tensor, frequencies: torch.Tensor | None = None, sweeps: int = 50) -> torch.Tensor:
    """Offsets ``b`` (K,), mean zero, with which each class is the top class of ``logits + b`` for its
    share ``frequencies`` (default uniform) of the N rows (rounded to whole rows).

    Cyclic exact updates: for class k, with the other offsets fixed, class k wins row i exactly when
    ``b_k > max_{j≠k}(z_ij + b_j) − z_ik``, so sorting those thresholds gives the ``b_k`` that makes it
    win its count (midway between two thresholds).  Two classes need one sweep; more, a few."""
    z = logits.detach().double().cpu()
    n, K = z.shape
    frequencies = torch.full((K,), 1.0 / K, dtype=torch.float64) if frequencies is None else frequencies
    counts = torch.round(frequencies.double().cpu() * n).long()
    b = torch.zeros(K, dtype=torch.float64)
    for _ in range(sweeps):
        for k in range(K):
            others = (z + b).index_fill(1, torch.tensor([k]), float("-inf")).max(1).values
            need = (others - z[:, k]).sort().values
            c = int(counts[k])
            if c == 0:
                b[k] = need[0] - 1.0
            elif c >= n:
                b[k] = need[-1] + 1.0
            else:
                b[k] = (need[c - 1] + need[c]) / 2
        if torch.equal(torch.bincount((z + b).argmax(1), minlength=K), counts):
            break
    return (b - b.mean()).float()


@torch.no_grad()
def calibrate_head_bias(model: torch.nn.Module, data, device, prior: torch.Tensor | None = None,
                        max_images: int = 4096, batch_size: int = 64, decisions: bool = False) -> float:
    """Shift ``model``'s head bias so its mean prediction on ``data`` (the first
    ``max_images`` images; labels unused) matches ``prior`` (with ``decisions``: so
    its top classes have the frequencies ``prior``, :func:`decision_bias`).  Returns
    the size of the shift (max |Δb|).  The model is evaluated in eval mode and left
    as it was."""
    head = get_head(model)
    if head.bias is None:
        raise ValueError("the model's head has no bias to calibrate (a bias-free network)")
    was_training = model.training
    model.eval()
    n = min(len(data), max_images)
    logits = torch.cat([model(data.x[torch.arange(i, min(i + batch_size, n))].to(device)).float()
                        for i in range(0, n, batch_size)])
    model.train(was_training)
    b = (decision_bias if decisions else prior_bias)(logits, prior).to(head.bias.device, head.bias.dtype)
    head.bias.add_(b)
    return b.abs().max().item()


def calibrate_to_prior(model: torch.nn.Module, data, device, bias_prior, decisions: bool = False) -> dict:
    """TEA's after-epoch step: :func:`calibrate_head_bias` to ``bias_prior``: ``"uniform"``, ``"none"``, or K
    class frequencies (e.g. :func:`teacher_prior`'s; with ``decisions``, the frequencies of the top class,
    e.g. :func:`teacher_decisions`').  Skipped, with no logs, for ``"none"``, a model without a linear head, a head
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
    return {"bias_shift": calibrate_head_bias(model, data, device, prior=prior, decisions=decisions)}


@torch.no_grad()
def _teacher_probabilities(teacher, data, device, max_images: int, batch_size: int) -> torch.Tensor:
    """The teacher's predicted class distributions (N, K) on the first ``max_images`` images of ``data``
    (labels unused; a segmenter teacher's fill seeded)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    n = min(len(data), max_images)
    return torch.cat([torch.softmax(teacher(data.x[torch.arange(i, min(i + batch_size, n))].to(device),
                                            generator=gen).double(), 1).cpu()
                      for i in range(0, n, batch_size)])


def _valid_prior(frequencies: torch.Tensor) -> torch.Tensor:
    frequencies = frequencies.clamp_min(1e-4)  # kept away from 0, so that it is a valid prior
    return frequencies / frequencies.sum()


def teacher_prior(teacher, data, device, max_images: int = 4096, batch_size: int = 64) -> torch.Tensor:
    """The teacher's mean predicted class distribution (K,) on the first ``max_images`` images of
    ``data`` (labels unused)."""
    return _valid_prior(_teacher_probabilities(teacher, data, device, max_images, batch_size).mean(0))


def teacher_decisions(teacher, data, device, max_images: int = 4096, batch_size: int = 64) -> torch.Tensor:
    """How often each class is the teacher's top class (K,) on the first ``max_images`` images of
    ``data`` (labels unused)."""
    probs = _teacher_probabilities(teacher, data, device, max_images, batch_size)
    return _valid_prior(torch.bincount(probs.argmax(1), minlength=probs.shape[1]).double() / len(probs))
