"""GALS: guiding visual attention with language specification (Petryk, Dunlap, Nasseri,
Gonzalez, Darrell & Rohrbach, CVPR 2022).

A vision-language model says where the class is: published, the Grad-CAM attention of
CLIP (ResNet-50) for the text prompt(s), e.g. "an image of a bird".  The classifier is
then trained with its input gradients suppressed outside that attention::

    A_b    = (a_b − min a_b) / max a_b           the model's map a_b, normalised per image
                                                 (max 0: divided by 1), resized to H × W
    g      = ∂ CE(logits, y) / ∂x                gradient of the batch's mean cross-entropy
    L_out  = mean_{b ∈ V, c, h, w} | g_{b,c,h,w} · (1 − A_{b,h,w}) |
    loss   = CE(logits, y) + λ · L_out

V holds the images whose attention is not all zeros (the others add nothing, as in the
authors' code).  λ = 10000 is the value of the authors' GALS configurations (Waterbirds,
Food-101, COCO-gender), with the L1 criterion of their "gradient outside" loss.

The attention source is pluggable and local: nothing is downloaded.  ``attention_model``
is a file — a ``torch.export`` program (``*.pt2``, ``torch.export.save``) or a TorchScript
module (``torch.jit.save``) — or a callable; it is called as
``model(images, class_ids)`` on the batch's images exactly as the classifier receives
them and the labels, under ``torch.no_grad``, and must return (B, 1, h, w) (or (B, h, w))
non-negative attention maps; any resolution, resized bilinearly.  It owns its own
preprocessing (e.g. CLIP's resize and normalisation) and its prompts.  Without one the
objective refuses to build: ground-truth masks are not a substitute (that would be a mask
method such as RRR).

Departures from the published method:

* The attention is computed on the fly for each batch from the given model, where the
  authors precompute it once per image.
* Which vision-language model, which prompts and how several prompts' maps are combined
  (the authors average the non-zero ones) is up to the file; nothing here checks that it
  is CLIP's Grad-CAM.

Uses labels and the attention model; no masks, no groups, no teacher.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .base import Objective, output_logs

NO_MODEL = ("objective 'gals' needs a vision-language attention model: give attention_model=FILE "
            "(`tea train --attention-model FILE`), a torch.export program (*.pt2) or TorchScript module "
            "mapping (images (B, C, H, W), class ids (B,)) to (B, 1, h, w) attention maps, e.g. CLIP's "
            "Grad-CAM for each class's text prompt; none is bundled, nothing is downloaded, and "
            "ground-truth masks are no substitute")


def load_attention_model(source):
    """A callable ``(images, class_ids) -> attention maps`` from a file — ``*.pt2``: a program saved
    with ``torch.export.save`` (export it with a dynamic batch dimension); otherwise a TorchScript
    module (``torch.jit.save``) — or ``source`` itself when it is already callable."""
    if callable(source):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"attention model file {str(path)!r} does not exist")
    if path.suffix == ".pt2":
        try:
            return torch.export.load(str(path)).module()
        except Exception as err:
            raise ValueError(f"{path}: not a program saved with torch.export.save; {err}") from err
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise ValueError(f"{path}: not a TorchScript module (save one with torch.jit.save, or a "
                         f"torch.export program as *.pt2); {err}") from err
    return model.eval()


def normalise_attention(a: torch.Tensor, size) -> torch.Tensor:
    """(B, 1, H, W) maps in [0, 1]: ``(a − min) / max`` per image (max 0 → 1), resized to ``size``."""
    if a.dim() == 3:
        a = a.unsqueeze(1)
    if a.dim() != 4 or a.shape[1] != 1:
        raise ValueError(f"the attention model must return (B, 1, h, w) or (B, h, w) maps, got {tuple(a.shape)}")
    a = a.float()
    if a.shape[-2:] != tuple(size):
        a = F.interpolate(a, size=tuple(size), mode="bilinear", align_corners=False)
    flat = a.flatten(1)
    top = flat.amax(1, keepdim=True)
    top = torch.where(top == 0, torch.ones_like(top), top)
    return ((flat - flat.amin(1, keepdim=True)) / top).view_as(a)


class GALS(Objective):
    explains = True  # (Objective)
    name = "gals"
    memory_format = torch.contiguous_format  # its plain double backward is faster so (Objective)
    selection_key = "loss"

    def __init__(self, attention_model=None, weight: float = 10000.0):
        if attention_model is None:
            raise ValueError(NO_MODEL)
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight!r}")
        self.source = attention_model if callable(attention_model) else str(attention_model)
        self.weight = float(weight)
        self._model = load_attention_model(attention_model)  # fails early on a bad file

    def config(self) -> dict:
        source = self.source if isinstance(self.source, str) else type(self.source).__name__
        return {"name": self.name, "weight": self.weight, "attention_model": source, "criterion": "l1"}

    def __getstate__(self):  # a loaded TorchScript module does not pickle; reload it from the file
        state = dict(self.__dict__)
        if isinstance(self.source, str):
            state["_model"] = None
        return state

    def attention(self, x: torch.Tensor, y: torch.Tensor):
        """``(A, valid)``: (B, 1, H, W) normalised attention of the model for the batch's classes, and
        (B,) whether each raw map has a non-zero value."""
        if self._model is None:
            self._model = load_attention_model(self.source)
        if isinstance(self._model, torch.nn.Module):
            self._model = self._model.to(x.device)
        with torch.no_grad():
            a = self._model(x, y)
        if not torch.is_tensor(a) or a.shape[0] != x.shape[0]:
            raise ValueError(f"the attention model must return a tensor with {x.shape[0]} maps")
        a = a.to(x.device)
        valid = (a.flatten(1) != 0).any(1)
        return normalise_attention(a, x.shape[-2:]).to(x.dtype), valid

    def __call__(self, batch, student, rng, train=True):
        x, y = batch["x"], batch["y"]
        A, valid = self.attention(x, y)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = student(xg)
            ce = F.cross_entropy(logits, y)
            (g,) = torch.autograd.grad(ce, xg, create_graph=train)
        outside = (g * (1 - A)).abs()[valid]
        penalty = outside.mean() if valid.any() else g.new_zeros(())
        if not train:
            logits, ce, penalty = logits.detach(), ce.detach(), penalty.detach()
        loss = ce + self.weight * penalty
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "gradient_outside": penalty.detach(),
                      "attention_images": valid.float().mean(), **output_logs(logits, y)}
