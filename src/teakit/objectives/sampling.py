"""What TEA draws per sample and step: the ε of LRP-ε and the explained class.

Both are drawn from the step's seeded generator, so a step is reproducible, and
the same draw serves the teacher and the student.
"""
from __future__ import annotations

import torch


def sample_eps(batch: int, generator=None, log_range=(-2.0, -1.0), device=None) -> torch.Tensor:
    """Per-sample ε = 10^u, u ~ Uniform(log_range)."""
    lo, hi = log_range
    u = torch.rand(batch, generator=generator) * (hi - lo) + lo
    return (10.0 ** u).to(device) if device is not None else 10.0 ** u


def sample_classes(top: torch.Tensor, num_classes: int, p_top: float = 0.5, generator=None) -> torch.Tensor:
    """Per sample: ``top`` with probability ``p_top``, else a uniformly drawn other class."""
    shift = torch.randint(1, num_classes, top.shape, generator=generator).to(top.device)
    keep = (torch.rand(top.shape, generator=generator) < p_top).to(top.device)
    return torch.where(keep, top, (top + shift) % num_classes)


def maps_per_image(classes: str, num_classes: int) -> int:
    """How many maps each image gets: K for ``"all"``, 2 for ``"pair"``, else 1."""
    return {"all": num_classes, "pair": 2}.get(classes, 1)


def explained_classes(teacher_logits: torch.Tensor, classes: str, num_classes: int, p_top: float,
                      generator=None) -> torch.Tensor:
    """The explained classes, ``(reps·B,)`` ordered ``r·B + b``: per ``classes`` mode ``"sample"``
    (:func:`sample_classes`), ``"top"`` (the teacher's top class), ``"pair"`` (the top class, then
    another) or ``"all"`` (every class)."""
    top = teacher_logits.argmax(1)
    if classes == "top":
        return top
    if classes == "all":
        return torch.arange(num_classes, device=top.device).repeat_interleave(len(top))
    if classes == "pair":
        return torch.cat([top, sample_classes(top, num_classes, 0.0, generator)])
    return sample_classes(top, num_classes, p_top, generator)
