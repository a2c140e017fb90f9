"""The teacher's side of a TEA step: its heatmaps for the explained classes and ε.

:class:`TeacherMaps` is what the teacher hands the student's side.  The maps
come live (:func:`live_maps`: one LRP-ε pass of the frozen teacher, without a
graph) or from a precomputed :class:`~teakit.teachers.cache.HeatmapCache`
(:func:`cached_maps`).  :class:`ValidationMemo` keeps the validation batches'
teacher maps, which repeat exactly from epoch to epoch.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..explain import explain

VAL_MEMO_ELEMENTS = 2 ** 25  # 128 MiB of float32 teacher maps kept for validation


class TeacherMaps(NamedTuple):
    maps: torch.Tensor | None     # (reps·B, C, H, W): the teacher's input heatmaps (None: hidden layers only)
    logits: torch.Tensor          # (B, K): the teacher's logits
    target: torch.Tensor          # (reps·B,): the explained classes
    eps: torch.Tensor             # (reps·B,): the ε of each map
    hidden: torch.Tensor | tuple | None  # (reps·B, ...): relevance of a hidden ReLU layer (a tuple: of several)

    def elements(self) -> int:
        hidden = () if self.hidden is None else self.hidden if isinstance(self.hidden, tuple) else (self.hidden,)
        return (0 if self.maps is None else self.maps.numel()) + sum(h.numel() for h in hidden)


def live_maps(teacher, x: torch.Tensor, eps: torch.Tensor, pick: Callable, reps: int, rng, method: str = "lrp",
              feature_layer: int | tuple | None = None, keep: torch.Tensor | None = None,
              input_map: bool = True) -> TeacherMaps:
    """The live teacher's maps of ``x`` at per-sample ``eps`` for the classes ``pick(logits)`` chooses
    (``reps`` maps per image).  A segmenter teacher's fill is drawn once and shared by all classes;
    ``keep``: its masks of ``x`` when already known (:class:`~teakit.teachers.segmenter.MaskMemo`).
    ``input_map=False``: the hidden layer's relevance only (``maps`` is None), from a backward pass that
    stops there."""
    xt, gate = teacher.explained_input(x, rng, keep)
    classifier = teacher.explained_classifier()
    if reps > 1:
        with torch.no_grad():
            logits = classifier(xt)
        target, eps = pick(logits), eps.repeat(reps)
        out = explain(classifier, xt.repeat(reps, 1, 1, 1), target, method=method, eps=eps,
                      feature_layer=feature_layer, input_map=input_map)
        T, hidden = out if feature_layer is not None else (out, None)
        return TeacherMaps(_input_relevance(teacher, T, gate), logits, target, eps, hidden)
    chosen = {}

    def choose(logits):  # the classes are picked from the logits of the same forward pass
        chosen["target"] = pick(logits)
        return chosen["target"]
    T, logits, *hidden = explain(classifier, xt, choose, method=method, eps=eps, return_logits=True,
                                 feature_layer=feature_layer, input_map=input_map)
    return TeacherMaps(_input_relevance(teacher, T, gate), logits, chosen["target"], eps,
                       hidden[0] if hidden else None)


def _input_relevance(teacher, T, gate):
    return None if T is None else teacher.input_relevance(T, gate)


def cached_maps(cache, cache_logits: torch.Tensor, batch: dict, pick: Callable, reps: int, rng) -> TeacherMaps:
    """The cached maps of ``batch["index"]``, each at an ε drawn from the cache's grid."""
    x = batch["x"]
    logits = cache_logits[batch["index"].cpu()].to(x.device, x.dtype)
    target, index = pick(logits).cpu(), batch["index"].cpu().repeat(reps)
    e_idx = torch.randint(0, len(cache.eps_values), (x.shape[0],), generator=rng).repeat(reps)
    T = cache.get(index, target, e_idx).to(x.device, x.dtype)
    return TeacherMaps(T, logits, target.to(x.device), cache.eps_values[e_idx].to(x.device, x.dtype), None)


class ValidationMemo:
    """Teacher maps of validation batches, computed once and then reused.

    The loop seeds every validation batch the same way each epoch, so for the
    same images and generator state the teacher's maps, classes and ε repeat
    exactly.  Up to ``limit`` map elements are kept; later batches are computed
    each time."""

    def __init__(self, limit: int | None = None):
        self.limit = VAL_MEMO_ELEMENTS if limit is None else limit
        self.entries: dict = {}

    def get(self, batch: dict, rng, compute: Callable[[], TeacherMaps]) -> TeacherMaps:
        index = batch.get("index")
        if index is None:
            return compute()
        key = (rng.get_state().numpy().tobytes(), tuple(index.tolist()), tuple(batch["x"].shape))
        if key not in self.entries:
            out = compute()
            if sum(t.elements() for t in self.entries.values()) + out.elements() > self.limit:
                return out
            self.entries[key] = out
        return self.entries[key]
