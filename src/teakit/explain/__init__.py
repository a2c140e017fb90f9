"""Heatmaps of a classifier's decision: LRP-ε, Gradient×Input, input gradient, Grad-CAM.

``explain(model, x, target, method, eps, create_graph)`` is the one entry point.
All methods share one forward pass through :func:`teakit.explain.lrp.forward_with_lrp`
and one ``torch.autograd.grad`` call; ``create_graph=True`` makes the heatmap
differentiable with respect to the model's parameters (exactly, see ``lrp.py``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lrp import LRPCall, check_supported, forward_with_lrp

METHODS = ("lrp", "gradxinput", "inputgrad", "gradcam")

__all__ = ["explain", "explain_all", "METHODS", "check_supported"]


def _check_target(target, batch):
    if not torch.is_tensor(target) or target.dim() != 1 or target.shape[0] != batch:
        raise ValueError(f"target must be a (B,) tensor of class indices with B={batch}")
    if target.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"target must hold integer class indices, got {target.dtype}")


def _check_inputs(x, target, method, eps):
    if method not in METHODS:
        raise ValueError(f"method={method!r}; expected one of {', '.join(METHODS)}")
    if not torch.is_tensor(x) or x.dim() < 2:
        raise ValueError("x must be a tensor of shape (B, C, ...)")
    if not callable(target):
        _check_target(target, x.shape[0])
    if torch.is_tensor(eps):
        if eps.dim() != 1 or eps.shape[0] != x.shape[0]:
            raise ValueError(f"eps must be a float or a ({x.shape[0]},) tensor, got shape {tuple(eps.shape)}")
        if (eps < 0).any():
            raise ValueError("eps must be >= 0")
        return eps.detach().to(device=x.device, dtype=x.dtype)
    eps = float(eps)
    if eps < 0:
        raise ValueError("eps must be >= 0")
    return eps


def explain(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str = "lrp",
            eps: float | torch.Tensor = 0.01, create_graph: bool = False,
            return_logits: bool = False, feature_layer: int | None = None, input_map: bool = True):
    """Heatmap of ``model``'s logit ``target[b]`` for each input ``x[b]``.

    Returns (B, C, H, W) relevance for ``lrp``, ``gradxinput`` and ``inputgrad``
    (channels not summed) and (B, 1, H, W) for ``gradcam``.  ``eps`` (LRP only)
    is a float or a per-sample (B,) tensor.  ``x`` is treated as a constant.
    With ``create_graph=True`` the heatmap (and the logits, if returned) stay in
    the autograd graph so a loss on them trains the model; otherwise both are
    detached.  With ``return_logits=True`` returns ``(heatmap, logits)``; the
    logits come from the same forward pass (no second forward).  ``target`` may
    also be a callable that maps those (detached) logits to the (B,) classes,
    e.g. to explain the model's own top class without a second forward pass.
    With ``feature_layer=i`` (not for ``gradcam``) the relevance of the model's
    i-th 4-D ReLU output, in the order the forward pass computes them (-1: the
    last), is appended to what is returned: ``(heatmap, [logits,] R_f)``;
    it is that activation times its modified gradient, from the same backward pass.
    A tuple of indices gives a tuple ``R_f`` of those layers' relevances, in its order.
    With ``input_map=False`` (``feature_layer`` needed) the backward pass stops at the hidden
    layers and the heatmap returned is ``None``: the layers below are never explained.
    """
    eps = _check_inputs(x, target, method, eps)
    if method != "lrp":
        eps = 0.0
    if feature_layer is not None and method == "gradcam":
        raise ValueError("feature_layer is for lrp, gradxinput and inputgrad, not gradcam")
    if not input_map and feature_layer is None:
        raise ValueError("input_map=False needs feature_layer: without either there is nothing to explain")
    several = isinstance(feature_layer, (tuple, list))  # then R_f is a tuple, one per layer
    call = LRPCall(eps, record=(method == "gradcam" or feature_layer is not None), second_order=create_graph)
    with torch.enable_grad():
        xg = call.input = x.detach().requires_grad_(True)
        logits = forward_with_lrp(model, xg, call, lrp=(method != "gradcam"))
        if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"model must return logits of shape (B, K); got {tuple(logits.shape)}")
        if callable(target):  # chosen from this very forward pass (saves a second one)
            target = target(logits.detach())
            _check_target(target, x.shape[0])
        if target.min() < 0 or target.max() >= logits.shape[1]:
            raise ValueError(f"target holds a class outside [0, {logits.shape[1]})")
        chosen = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
        try:
            if method == "gradcam":
                if not call.features:
                    raise ValueError("gradcam needs a 4-D ReLU feature map; the model has none")
                feats = call.features[-1]
                (grad,) = torch.autograd.grad(chosen, feats, create_graph=create_graph)
                weights = grad.mean(dim=(2, 3), keepdim=True)
                cam = torch.relu((weights * feats).sum(dim=1, keepdim=True))
                heatmap = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)
            elif feature_layer is not None:
                n = len(call.features)
                layers = tuple(feature_layer) if several else (feature_layer,)
                for i in layers:
                    if not -n <= i < n:
                        raise ValueError(f"feature_layer={feature_layer}: the model computes {n} 4-D ReLU "
                                         f"outputs, so each index must lie in [{-n}, {n})")
                feats = [call.features[i] for i in layers]
                wrt = (xg, *feats) if input_map else tuple(feats)
                grads = torch.autograd.grad(chosen, wrt, create_graph=create_graph)
                grad, fgrads = (grads[0], grads[1:]) if input_map else (None, grads)
                heatmap = None if grad is None else grad if method == "inputgrad" else xg * grad
                feature_R = tuple(f * g for f, g in zip(feats, fgrads))
            else:
                (grad,) = torch.autograd.grad(chosen, xg, create_graph=create_graph)
                heatmap = grad if method == "inputgrad" else xg * grad
        finally:
            call.explaining = False  # from now on every ReLU node back-propagates its true derivative
            call.features = []
    if not create_graph:
        heatmap, logits = None if heatmap is None else heatmap.detach(), logits.detach()
    out = (heatmap, logits) if return_logits else (heatmap,)
    if feature_layer is not None:
        if not create_graph:
            feature_R = tuple(R.detach() for R in feature_R)
        out = (*out, feature_R if several else feature_R[0])
    return out if len(out) > 1 else heatmap


def explain_all(model: nn.Module, x: torch.Tensor, num_classes: int, eps_values,
                return_logits: bool = False):
    """LRP-ε heatmaps of every class at every ε in ``eps_values``, from one forward pass.

    Returns (B, K, E, C, H, W) (detached; with ``return_logits`` also the (B, K)
    logits); entry ``[b, k, e]`` equals ``explain(model, x, k, "lrp", eps_values[e])[b]``.
    The modified ReLU derivative reads ε when the backward runs, so the graph of
    one forward serves K·E backward passes — for building a teacher-heatmap cache.
    """
    eps_list = [float(e) for e in eps_values]
    if not eps_list or any(e < 0 for e in eps_list):
        raise ValueError(f"eps_values must be a non-empty list of values >= 0, got {eps_list}")
    call = LRPCall(eps_list[0])
    maps = []
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = forward_with_lrp(model, xg, call, lrp=True)
        if logits.dim() != 2 or logits.shape != (x.shape[0], num_classes):
            raise ValueError(f"model must return logits of shape ({x.shape[0]}, {num_classes}); "
                             f"got {tuple(logits.shape)}")
        try:
            for k in range(num_classes):
                chosen = logits[:, k].sum()
                for e in eps_list:
                    call.eps = e
                    (grad,) = torch.autograd.grad(chosen, xg, retain_graph=True)
                    maps.append((xg * grad).detach())
        finally:
            call.explaining = False
    E = len(eps_list)
    out = torch.stack(maps, 1).view(x.shape[0], num_classes, E, *x.shape[1:])
    return (out, logits.detach()) if return_logits else out
