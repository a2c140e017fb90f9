"""Explanation distillation with another explainer: TEA's recipe, other heatmaps.

Exactly the TEA objective (:class:`~teakit.objectives.tea.TEA`: per-sample
class sampling with :func:`~teakit.objectives.tea.sample_classes`, the
:func:`teakit.heatmap_loss` pyramid L1 loss, no labels) but the teacher's and
the student's maps come from ``teakit.explain(..., method=method)`` with
``method`` one of ``"gradxinput"`` (Gradient×Input, Shrikumar et al. 2016),
``"inputgrad"`` (the input gradient / saliency, Simonyan et al. 2014) or
``"gradcam"`` (Grad-CAM, Selvaraju et al. 2017; maps (B, 1, H, W)).  The
teacher is explained on its ``classifier_input`` without a graph, the student
with ``create_graph=True``.  There is no ε (these explainers have none) and no
heatmap cache (a cache holds LRP maps).  Hyper-parameters and their defaults
are TEA's (:class:`teakit.config.TEAConfig`), without ε and the hidden-layer term.

Implementation: a subclass of :class:`TEA` that only sets ``method`` (TEA
explains teacher and student with ``self.method``).  ``num_classes`` defaults
to the teacher head's output size.
"""
from __future__ import annotations

from ..models import get_head
from .tea import TEA

EXPLANATION_METHODS = ("gradxinput", "inputgrad", "gradcam")


class ExplanationDistillation(TEA):
    name = "explanation_distill"
    selection_key = "heatmap_loss"

    def __init__(self, teacher, method: str, num_classes: int | None = None, **options):
        """``options``: TEA's (:class:`~teakit.config.TEAConfig`) but ε, which these explainers lack, and the
        hidden-layer term, which is LRP's."""
        if "eps_log_range" in options or options.get("feature_weight"):
            raise ValueError(f"explanation distillation with {method} has no ε and no hidden-layer term")
        options.pop("feature_weight", None), options.pop("feature_layer", None)
        if method not in EXPLANATION_METHODS:
            hint = " (LRP-ε is the TEA objective itself)" if method == "lrp" else ""
            raise ValueError(f"method={method!r}; expected one of {', '.join(EXPLANATION_METHODS)}{hint}")
        if num_classes is None:
            try:
                num_classes = get_head(teacher.classifier).out_features
            except TypeError as err:
                raise ValueError("cannot read the number of classes from the teacher's classifier; "
                                 "give num_classes") from err
        super().__init__(teacher, num_classes, feature_weight=0.0, **options)
        self.method = method
        self.name = method

    def config(self) -> dict:
        cfg = super().config()
        for key in ("eps_log_range", "cache", "feature_weight", "feature_layer"):
            cfg.pop(key)
        return {**cfg, "method": self.method}
