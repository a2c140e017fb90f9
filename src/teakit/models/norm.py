"""Which statistics a network's normalisation layers use while a heatmap is computed."""
from __future__ import annotations

import contextlib

import torch

from .cnn import ScaleNorm2d


@contextlib.contextmanager
def batchnorm_eval(model: torch.nn.Module):
    """Inside: every BatchNorm (and ScaleNorm) layer of ``model`` uses, and does not update, its running
    statistics."""
    norms = (torch.nn.modules.batchnorm._BatchNorm, ScaleNorm2d)
    layers = [m for m in model.modules() if isinstance(m, norms) and m.training]
    for m in layers:
        m.eval()
    try:
        yield
    finally:
        for m in layers:
            m.train()


def heatmap_statistics(model: torch.nn.Module, x: torch.Tensor, mode: str, train: bool):
    """The context in which ``model``'s training heatmap of ``x`` is computed: ``"batch"`` statistics (as
    in any training forward pass: nothing to do) or ``"running"`` ones (as at test time; a no-grad
    training-mode pass first keeps the running statistics following the batches)."""
    if not (train and mode == "running"):
        return contextlib.nullcontext()
    with torch.no_grad():
        model(x)
    return batchnorm_eval(model)
