"""Teacher: the shared interface of the models whose heatmaps a TEA student matches.

A teacher owns a ReLU ``classifier`` and a rule that turns an input batch into
the image the classifier actually sees (:meth:`Teacher.classifier_input`;
identity by default).  The distillation code only uses ``forward``,
``heatmap`` and ``heatmap_and_logits``, which all take
``(x, [target, eps,] generator=None)``, so every teacher is used alike.

``freeze()`` puts the teacher in eval mode, turns off ``requires_grad`` on all
its parameters and returns it (``teacher = SomeTeacher(...).freeze()``); a
frozen teacher stays in eval mode even if ``.train()`` is later called on it
(e.g. by a parent module).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..explain import explain, explain_all


class Teacher(nn.Module):
    """Base class: wraps ``classifier`` (returns logits (B, K)); subclasses may override
    :meth:`classifier_input`."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"classifier must be an nn.Module, got {type(classifier).__name__}")
        self.classifier = classifier
        self._frozen = False

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

    def classifier_input(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The image the classifier sees for input ``x`` (identity here)."""
        return x

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Classifier logits (B, K) of :meth:`classifier_input` ``(x)``."""
        return self.classifier(self.classifier_input(x, generator))

    def input_relevance(self, R: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The teacher's heatmap of its input ``x``, given the classifier's heatmap ``R``
        of :meth:`classifier_input` ``(x)`` (rows may repeat ``x`` several times).
        ``R`` itself here."""
        return R

    def heatmaps_all(self, x: torch.Tensor, num_classes: int, eps_values,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Every class's heatmap at every ε, (B, K, E, C, H, W), detached, from one
        :meth:`classifier_input` (one fill draw per image, shared by its maps) and
        one forward pass; entry ``[b, k, e]`` is what :meth:`heatmap` gives for the
        same classifier input."""
        R = explain_all(self.classifier, self.classifier_input(x, generator), num_classes, eps_values)
        B, K, E = R.shape[:3]
        rows = R.transpose(0, 2).reshape(K * E * B, *R.shape[3:])  # row (e·K + k)·B + b: x repeated
        return self.input_relevance(rows, x).view(E, K, B, *R.shape[3:]).transpose(0, 2)

    def map_config(self) -> dict:
        """Settings that change the teacher's heatmaps but not its weights (for the cache)."""
        return {}

    def heatmap(self, x: torch.Tensor, target: torch.Tensor, eps: float | torch.Tensor = 0.01,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """LRP-ε heatmap (B, C, H, W) for class ``target`` (detached): the classifier's
        map of :meth:`classifier_input` ``(x)``, through :meth:`input_relevance`."""
        return self.heatmap_and_logits(x, target, eps, generator)[0]

    def heatmap_and_logits(self, x: torch.Tensor, target: torch.Tensor,
                           eps: float | torch.Tensor = 0.01,
                           generator: torch.Generator | None = None):
        """``(heatmap, logits)`` from one forward pass, both detached."""
        R, logits = explain(self.classifier, self.classifier_input(x, generator), target,
                            method="lrp", eps=eps, create_graph=False, return_logits=True)
        return self.input_relevance(R, x), logits
