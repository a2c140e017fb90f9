"""Teacher: the shared interface of the models whose heatmaps a TEA student matches.

A teacher owns a ReLU ``classifier`` and a rule that turns an input batch into
the image the classifier actually sees (:meth:`Teacher.classifier_input`;
identity by default).  The distillation code only uses ``forward``,
``heatmap`` and ``heatmap_and_logits``, which all take
``(x, [target, eps,] generator=None)``, so every teacher is used alike.
``generator`` (random preprocessing, e.g. a noise fill) is one
``torch.Generator`` for the batch or a sequence of one per image
(:func:`teakit.evaluate.image_generators`: the same draws for an image in any batch).

``freeze()`` puts the teacher in eval mode, turns off ``requires_grad`` on all
its parameters and returns it (``teacher = SomeTeacher(...).freeze()``); a
frozen teacher stays in eval mode even if ``.train()`` is later called on it
(e.g. by a parent module).  A frozen teacher computes its maps and logits with
a copy of its classifier whose BatchNorm is folded into the convolutions
(:mod:`teakit.explain.fold`: the same maps, cheaper; rebuilt if the weights change).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..explain import explain, explain_all
from ..explain.fold import FoldedModel


class Teacher(nn.Module):
    """Base class: wraps ``classifier`` (returns logits (B, K)); subclasses may override
    :meth:`classifier_input`."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be an nn.Module, got {type(classifier).__name__}")
        self.classifier = classifier
        self._frozen = False
        self._folded = FoldedModel()

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> "Teacher":
        """Eval mode, no parameter gradients, and stay in eval mode; returns ``self``."""
        self._frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "Teacher":
        return super().train(mode and not self._frozen)

    def explained_classifier(self) -> nn.Module:
        """The classifier that computes the teacher's maps and logits: once frozen, its copy with
        BatchNorm folded into the convolutions (the same function; :mod:`teakit.explain.fold`)."""
        return self._folded.get(self.classifier) if self._frozen else self.classifier

    def classifier_input(self, x: torch.Tensor, generator: torch.Generator | None = None,
                         keep: torch.Tensor | None = None) -> torch.Tensor:
        """The image the classifier sees for input ``x`` (identity here).  ``keep``: the
        foreground mask of ``x`` when it is already known (teachers with a segmenter only)."""
        _no_mask(self, keep)
        return x

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                keep: torch.Tensor | None = None, fills: int | None = None) -> torch.Tensor:
        """Classifier logits (B, K) of :meth:`classifier_input` ``(x)``; ``fills``: draws of a random
        preprocessing averaged (:class:`~teakit.teachers.SegmenterTeacher`; one here)."""
        return self.classifier(self.classifier_input(x, generator, keep))

    def explained_input(self, x: torch.Tensor, generator: torch.Generator | None = None,
                        keep: torch.Tensor | None = None):
        """``(classifier input, gate)``: :meth:`classifier_input` ``(x)`` and the (B, 1, H, W)
        bool mask of the pixels of ``x`` whose relevance the teacher's heatmap keeps
        (None here: all of them), from one pass of the teacher's preprocessing."""
        return self.classifier_input(x, generator, keep), None

    @staticmethod
    def input_relevance(R: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
        """The teacher's heatmap of its input: the classifier's heatmap ``R`` where ``gate``
        (from :meth:`explained_input`) is True, 0 elsewhere; rows of ``R`` may repeat the batch."""
        return R if gate is None else R * gate.repeat(len(R) // len(gate), 1, 1, 1).to(R.dtype)

    def heatmaps_all(self, x: torch.Tensor, num_classes: int, eps_values,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Every class's heatmap at every ε, (B, K, E, C, H, W), detached, from one
        :meth:`classifier_input` (one fill draw per image, shared by its maps) and
        one forward pass; entry ``[b, k, e]`` is what :meth:`heatmap` gives for the
        same classifier input."""
        xt, gate = self.explained_input(x, generator)
        R = explain_all(self.explained_classifier(), xt, num_classes, eps_values)
        B, K, E = R.shape[:3]
        rows = R.transpose(0, 2).reshape(K * E * B, *R.shape[3:])  # row (e·K + k)·B + b: x repeated
        return self.input_relevance(rows, gate).view(E, K, B, *R.shape[3:]).transpose(0, 2)

    def map_config(self) -> dict:
        """Settings that change the teacher's heatmaps but not its weights (for the cache)."""
        return {}

    def decision_config(self) -> dict:
        """Settings that change the teacher's logits (:meth:`forward`) but not its weights (for the kept
        evaluation logits)."""
        return {}

    def heatmap(self, x: torch.Tensor, target: torch.Tensor, eps: float | torch.Tensor = 0.01,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """LRP-ε heatmap (B, C, H, W) for class ``target`` (detached): the classifier's
        map of :meth:`classifier_input` ``(x)``, kept where :meth:`explained_input`'s gate is."""
        return self.heatmap_and_logits(x, target, eps, generator)[0]

    def heatmap_and_logits(self, x: torch.Tensor, target: torch.Tensor,
                           eps: float | torch.Tensor = 0.01,
                           generator: torch.Generator | None = None):
        """``(heatmap, logits)`` from one forward pass, both detached."""
        xt, gate = self.explained_input(x, generator)
        R, logits = explain(self.explained_classifier(), xt, target, method="lrp", eps=eps, create_graph=False,
                            return_logits=True)
        return self.input_relevance(R, gate), logits


def _no_mask(teacher: Teacher, keep) -> None:
    if keep is not None:
        raise ValueError(f"{type(teacher).__name__} has no segmenter, so it takes no foreground mask (keep)")
