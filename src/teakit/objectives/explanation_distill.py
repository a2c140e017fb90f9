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
are TEA's (``classes="sample"``, ``p_top=0.5``, ``loss="l1"``,
``pyramid=True``, ``min_side=8``).

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

    def __init__(self, teacher, method: str, num_classes: int | None = None, classes: str = "sample",
                 p_top: float = 0.5, loss: str = "l1", pyramid: bool = True, min_side: int = 8,
                 label_weight: float = 0.0, kd_weight: float = 0.0, shift: int = 0, bias_prior: str = "uniform"):
        if method not in EXPLANATION_METHODS:
            hint = " (LRP-ε is the TEA objective itself)" if method == "lrp" else ""
            raise ValueError(f"method={method!r}; expected one of {', '.join(EXPLANATION_METHODS)}{hint}")
        if num_classes is None:
            try:
                num_classes = get_head(teacher.classifier).out_features
            except TypeError as err:
                raise ValueError("cannot read the number of classes from the teacher's classifier; "
                                 "give num_classes") from err
        super().__init__(teacher, num_classes, classes=classes, p_top=p_top, loss=loss, pyramid=pyramid,
                         min_side=min_side, label_weight=label_weight, kd_weight=kd_weight, shift=shift,
                         bias_prior=bias_prior)
        self.method = method
        self.name = method

    def config(self) -> dict:
        cfg = super().config()
        for key in ("eps_log_range", "cache"):
            cfg.pop(key)
        return {**cfg, "method": self.method}
