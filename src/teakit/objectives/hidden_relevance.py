"""TEA's hidden-layer term: the student's and the teacher's LRP-ε relevance of a hidden ReLU layer,
compared with the heatmap loss (no pyramid); of several layers, the mean of their losses.

Both relevances come from the same backward pass as the input maps (``explain(...,
feature_layer=i)``).  Equal shapes are compared channel by channel; other shapes (a
narrower or shallower student) are summed over the channels and the larger map is
sum-pooled to the smaller one's side, which keeps each region's total relevance.
"""
from __future__ import annotations

import torch.nn.functional as F

from ..config import TEAConfig
from .heatmap_loss import heatmap_loss


def hidden_relevance_loss(S_hidden, T_hidden, cfg: TEAConfig):
    """The heatmap loss (no pyramid) between the student's and the teacher's hidden-layer relevance:
    channel by channel, or (``feature_match`` ``summed``, or ``auto`` with unequal shapes) summed over the
    channels with the larger map sum-pooled to the smaller one's side (:func:`summed_relevance`).  Tuples
    (several layers, ``feature_layer`` a tuple): the mean of the layers' losses, each normalised alike."""
    if isinstance(S_hidden, tuple):
        losses = [hidden_relevance_loss(S, T, cfg) for S, T in zip(S_hidden, T_hidden, strict=True)]
        return sum(losses) / len(losses)
    if cfg.feature_match == "summed" or (cfg.feature_match == "auto" and S_hidden.shape != T_hidden.shape):
        side = min(S_hidden.shape[-2:], T_hidden.shape[-2:])
        S_hidden, T_hidden = summed_relevance(S_hidden, side), summed_relevance(T_hidden, side)
    if S_hidden.shape != T_hidden.shape:
        raise ValueError(f"feature_weight: the student's relevance at feature_layer={cfg.feature_layer} has shape "
                         f"{tuple(S_hidden.shape)}, the teacher's {tuple(T_hidden.shape)} (feature_match "
                         f"{cfg.feature_match!r} needs the same shape; 'auto' or 'summed' compare any two networks)")
    return heatmap_loss(S_hidden, T_hidden, kind=cfg.loss, pyramid=False)


def summed_relevance(R, side):
    """Relevance ``R`` (B, C, H, W) summed over channels and over ``H/h × W/w`` cells to ``side = (h, w)``:
    (B, 1, h, w), the total kept (each side must divide the larger one's)."""
    R = R.sum(1, keepdim=True)
    if tuple(R.shape[-2:]) == tuple(side):
        return R
    H, W = R.shape[-2:]
    if H % side[0] or W % side[1]:
        raise ValueError(f"feature_match: a {H}x{W} relevance map cannot be pooled to {side[0]}x{side[1]}")
    return F.avg_pool2d(R, (H // side[0], W // side[1])) * (H // side[0]) * (W // side[1])
