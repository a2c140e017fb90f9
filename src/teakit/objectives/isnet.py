"""ISNet: LRP heatmap optimisation against background bias (Bassi, Dertkigil & Cavalli,
"Improving deep neural network generalization and robustness to background bias via
layer-wise relevance propagation optimization", Nature Communications 15, 291, 2024).

The classifier is trained on its labels while LRP-ε heatmaps are pushed off the background:
with ``classes="all"`` (the default) the heatmaps of *every* class, the original ISNet; with
``classes="random"`` one class per image, drawn uniformly at every step, the Stochastic ISNet of
Bassi, Decherchi & Cavalli ("Faster ISNet for background bias mitigation on deep neural
networks", IEEE Access 12, 2024), whose step costs one heatmap instead of K.  With ``H_{b,k}``
the (C, H, W) LRP-ε relevance of class k for image b (:mod:`teakit.explain`, one forward
pass, one backward pass with ``create_graph`` per explained class), ``m`` the foreground mask
(1 on the object, broadcast over channels) and ``δ`` = 1e-10 (the means over k run over the
explained classes: all K, or the one drawn)::

    loss   = (1 − P) · CE(logits, y) + P · L_heat,     L_heat = mean_b [ w1 · L_bg + w2 · L_fg ]

    background loss (per image, averaged over classes k and channels c):
        μ_{b,k} = Σ_{c,h,w} |H| · m / (Σ_{c,h,w} m + δ)              mean |relevance| on the foreground
        Z_{b,k,c} = GWRP_d( (1 − m) · |H| / (μ_{b,k} + δ) )         over the H·W pixels of channel c
        L_bg = mean_{k,c} −log(1 − Z / (Z + E))   (= log(1 + Z / E); Z/(Z+E) clamped below 1 − 1e-7)

    foreground loss (per image, averaged over classes k):
        F_{b,k} = Σ_{c,h,w} |H| · m                                  raw foreground relevance
        L_fg = mean_k (min(F/C1, 1) − 1)² + mean_k (max(F/C1, C2/C1) − C2/C1)²

``GWRP_d(v)`` (global weighted rank pooling) sorts the n values in descending order and
takes ``Σ_i d^i v_(i) / Σ_i d^i`` (i = 0 … n−1): the largest background relevances
weigh most.  The per-map normalisation by the foreground mean makes the background
loss blind to the heatmap's scale; the foreground loss keeps the raw foreground
relevance inside [C1, C2] so the heatmaps cannot shrink to zero instead.

Defaults are those of the authors' synthetically biased MNIST runs (their code,
``RunISNet.py``): P = 0.7, w1 = 1, w2 = 3, E = 1, d = 0.9, ε = 0.01, C1 = 1, C2 = 25.

Departures from the published method:

* LRP-ε at every layer (:mod:`teakit.explain`: the modified-gradient form), where the
  ISNet's LRP block uses the z^B rule at the input layer; biases take part in the
  heatmap's gradient here (the ISNet detaches them when propagating relevance).
* C1 and C2 are fixed hyper-parameters; the paper sets them from the heatmap
  statistics of a short training run without the heatmap loss
  (C1 = max(mean/5, mean − 3·sd), C2 = min(25·C1, mean + 3·sd) of the total |relevance|).
* Relevance is propagated to the input only (no LRP deep supervision of hidden layers);
  the authors' gradient clipping (norm 1) is left to the training configuration
  (teakit's default clips at 1 too).
* Masks are bool (B, 1, H, W) at the input resolution; an image whose mask is empty
  gets, as in the authors' code, the normalisation δ (its background loss saturates).

* The Stochastic variant draws each image's class uniformly over the K classes from the step's
  seeded generator (reproducible); the Selective variant (a softmax-based quantity of the top
  class) is not implemented.

Uses labels and masks; no teacher.  Assumes a ReLU classifier (LRP-ε).  Cost: K backward
passes with graph per step (K = number of classes) for ``"all"``, one for ``"random"``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..explain.lrp import LRPCall, forward_with_lrp
from .base import Objective, output_logs

_DELTA = 1e-10
# the explained classes: every class (the original ISNet) or one drawn per image (the Stochastic ISNet)
CLASSES = ("all", "random")


def all_class_heatmaps(model, x: torch.Tensor, eps: float, create_graph: bool, classes=None):
    """``(H, logits)``: LRP-ε relevance (B, K, C, H, W) of every class, from one forward pass
    (K backward passes); with ``create_graph`` both stay in the graph (as :func:`teakit.explain.explain`).
    ``classes``: instead, a function of the logits (B, K) giving one class per image (B,); then H is
    (B, 1, C, H, W), the relevance of class ``classes(logits)[b]`` of image b, from one backward pass."""
    call = LRPCall(float(eps), second_order=create_graph)
    with torch.enable_grad():
        xg = call.input = x.detach().requires_grad_(True)
        logits = forward_with_lrp(model, xg, call, lrp=True)
        if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"model must return logits of shape (B, K); got {tuple(logits.shape)}")
        if classes is None:
            outputs = [logits[:, k].sum() for k in range(logits.shape[1])]
        else:
            drawn = classes(logits.detach())
            if drawn.shape != (x.shape[0],):
                raise ValueError(f"classes must give (B,) = ({x.shape[0]},) class ids, got {tuple(drawn.shape)}")
            outputs = [logits.gather(1, drawn.to(logits.device).view(-1, 1)).sum()]
        maps = []
        try:
            for out in outputs:
                (grad,) = torch.autograd.grad(out, xg, create_graph=create_graph, retain_graph=True)
                maps.append(xg * grad)
        finally:
            call.explaining = False  # the outer backward sees true ReLU derivatives on the forward path
    H = torch.stack(maps, 1)
    if not create_graph:
        H, logits = H.detach(), logits.detach()
    return H, logits


def uniform_classes(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One class per row of ``logits`` (B, K), drawn uniformly from ``generator`` (on its own device)."""
    B, K = logits.shape
    return torch.randint(0, K, (B,), generator=generator, device=generator.device).to(logits.device)


def gwrp(v: torch.Tensor, d: float) -> torch.Tensor:
    """Global weighted rank pooling over the last dimension: descending sort, weights d^i, normalised."""
    v, _ = torch.sort(v, dim=-1, descending=True)
    w = d ** torch.arange(v.shape[-1], device=v.device, dtype=v.dtype)
    return (v * w).sum(-1) / w.sum()


def isnet_heatmap_loss(H: torch.Tensor, mask: torch.Tensor, c1: float = 1.0, c2: float = 25.0,
                       w_bg: float = 1.0, w_fg: float = 3.0, E: float = 1.0, d: float = 0.9):
    """``(loss (B,), background loss (B,), foreground loss (B,))`` of heatmaps ``H`` (B, K, C, H, W)
    against the bool foreground ``mask`` (B, 1, H, W) (formulas: module docstring)."""
    if H.dim() != 5:
        raise ValueError(f"heatmaps must be (B, K, C, H, W), got {tuple(H.shape)}")
    if mask.dtype != torch.bool or mask.shape != (H.shape[0], 1, *H.shape[-2:]):
        raise ValueError(f"mask must be a bool (B, 1, H, W) tensor matching the heatmaps {tuple(H.shape)}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")
    m = mask.to(H.dtype).unsqueeze(1).expand(-1, H.shape[1], H.shape[2], -1, -1)  # (B, K, C, H, W)
    A = H.abs()
    mu = (A * m).sum((-3, -2, -1), keepdim=True) / (m.sum((-3, -2, -1), keepdim=True) + _DELTA)
    Z = gwrp(((1 - m) * A / (mu + _DELTA)).flatten(-2), d)                     # (B, K, C)
    bg = -torch.log(1 - (Z / (Z + E)).clamp(max=1 - 1e-7))
    background = bg.mean((1, 2))
    Fg = (A * m).sum((-3, -2, -1)) / c1                                         # (B, K), in units of C1
    low = (Fg.clamp(max=1.0) - 1).square().mean(1)
    high = (Fg.clamp(min=c2 / c1) - c2 / c1).square().mean(1)
    foreground = low + high
    return w_bg * background + w_fg * foreground, background, foreground


class ISNet(Objective):
    explains = True  # (Objective)
    name = "isnet"
    selection_key = "loss"

    def __init__(self, P: float = 0.7, c1: float = 1.0, c2: float = 25.0, w_bg: float = 1.0,
                 w_fg: float = 3.0, E: float = 1.0, d: float = 0.9, eps: float = 0.01, classes: str = "all"):
        if not 0.0 <= P <= 1.0:
            raise ValueError(f"P must lie in [0, 1], got {P!r}")
        if not 0.0 < c1 <= c2:
            raise ValueError(f"need 0 < c1 <= c2, got c1={c1!r}, c2={c2!r}")
        if w_bg < 0 or w_fg < 0 or E <= 0 or not 0.0 < d <= 1.0 or eps < 0:
            raise ValueError(f"need w_bg, w_fg >= 0, E > 0, 0 < d <= 1, eps >= 0; got w_bg={w_bg!r}, "
                             f"w_fg={w_fg!r}, E={E!r}, d={d!r}, eps={eps!r}")
        if classes not in CLASSES:
            raise ValueError(f"classes must be one of {', '.join(CLASSES)}, got {classes!r}")
        self.classes = classes
        self.P, self.c1, self.c2 = float(P), float(c1), float(c2)
        self.w_bg, self.w_fg, self.E, self.d, self.eps = float(w_bg), float(w_fg), float(E), float(d), float(eps)

    def config(self) -> dict:
        return {"name": self.name, "P": self.P, "c1": self.c1, "c2": self.c2, "w_bg": self.w_bg,
                "w_fg": self.w_fg, "E": self.E, "d": self.d, "eps": self.eps, "classes": self.classes}

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        # the Stochastic ISNet: one uniformly drawn class per image
        drawn = (lambda logits: uniform_classes(logits, rng)) if self.classes == "random" else None
        H, logits = all_class_heatmaps(student, x, self.eps, create_graph=train, classes=drawn)
        heat, background, foreground = isnet_heatmap_loss(H, batch["mask"], self.c1, self.c2, self.w_bg,
                                                          self.w_fg, self.E, self.d)
        heat = heat.mean()
        ce = F.cross_entropy(logits, y)
        loss = (1 - self.P) * ce + self.P * heat
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "heatmap_loss": heat.detach(),
                      "background_loss": background.mean().detach(),
                      "foreground_loss": foreground.mean().detach(), **output_logs(logits, y)}
