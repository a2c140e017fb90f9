"""Objective registry: every training objective by name, with what it needs.

``OBJECTIVES[name]`` is an :class:`ObjectiveInfo` (the class, whether it needs
a teacher, foreground masks, group / bias attributes, and a one-line
description).  ``build_objective(name, teacher=None, num_classes=10, **kw)``
builds one; ``kw`` go to the class (its hyper-parameters).  A teacher given to
an objective that does not use one is ignored.  ``jtt`` needs
``error_set=...`` (see :func:`teakit.objectives.jtt.error_set`);
``groupdro`` defaults to (label, bias) groups with ``num_classes`` bias values
(as in the built-in benchmarks), i.e. ``num_groups = num_classes²``.  ``gals``
needs ``attention_model=FILE`` (a local vision-language attention model; see
:mod:`teakit.objectives.gals`) and refuses to build without one.
"""
from __future__ import annotations

from typing import NamedTuple

from .attention_transfer import AttentionTransfer
from .erm import ERM
from .explanation_distill import EXPLANATION_METHODS, ExplanationDistillation
from .feature_distill import FeatureDistillation
from .gain import GAIN
from .gals import GALS
from .group_dro import GroupDRO, group_options
from .irm import IRM
from .isnet import ISNet
from .jtt import JTT
from .kd import KD
from .pgi import PGI
from .rrr import RRR
from .tea import TEA


class ObjectiveInfo(NamedTuple):
    cls: type
    needs_teacher: bool
    needs_masks: bool
    needs_groups: bool
    description: str


OBJECTIVES: dict[str, ObjectiveInfo] = {
    "erm": ObjectiveInfo(ERM, False, False, False, "cross-entropy on the labels"),
    "tea": ObjectiveInfo(TEA, True, False, False, "match the teacher's LRP-ε heatmaps only (TEA)"),
    "kd": ObjectiveInfo(KD, True, False, False, "Hinton logit distillation from the teacher, no labels"),
    "feature": ObjectiveInfo(FeatureDistillation, True, False, False,
                             "match the teacher's last conv feature map (normalised L1), no labels"),
    "attention": ObjectiveInfo(AttentionTransfer, True, False, False,
                               "attention transfer (Zagoruyko & Komodakis) from the teacher, no labels"),
    "gradxinput": ObjectiveInfo(ExplanationDistillation, True, False, False,
                                "TEA's recipe with Gradient×Input maps"),
    "inputgrad": ObjectiveInfo(ExplanationDistillation, True, False, False,
                               "TEA's recipe with input-gradient maps"),
    "gradcam": ObjectiveInfo(ExplanationDistillation, True, False, False, "TEA's recipe with Grad-CAM maps"),
    "rrr": ObjectiveInfo(RRR, False, True, False,
                         "Right for the Right Reasons: CE + background input-gradient penalty"),
    "isnet": ObjectiveInfo(ISNet, False, True, False,
                           "ISNet (Bassi et al. 2024): CE + its loss on the LRP-ε heatmaps of every class, or of "
                           "one drawn class per image with classes='random' (the Stochastic ISNet) "
                           "(background relevance off, foreground relevance in range)"),
    "gain": ObjectiveInfo(GAIN, False, True, False,
                          "GAIN_ext (Li et al. 2018): CE + attention mining on the Grad-CAM-erased image + "
                          "Grad-CAM matched to the mask"),
    "groupdro": ObjectiveInfo(GroupDRO, False, False, True, "online group DRO over (label, bias) groups"),
    "irm": ObjectiveInfo(IRM, False, False, True, "IRMv1 with bias attribute values as environments"),
    "pgi": ObjectiveInfo(PGI, False, False, True,
                         "predictive group invariance (Ahmed et al. 2021): CE + KL between the groups' mean "
                         "predictions within each class"),
    "jtt": ObjectiveInfo(JTT, False, False, False,
                         "Just Train Twice stage 2: CE with a stage-1 ERM error set up-weighted "
                         "(needs error_set=...)"),
    "gals": ObjectiveInfo(GALS, False, False, False,
                          "GALS (Petryk et al. 2022): CE + input gradients suppressed outside a vision-language "
                          "model's attention (needs attention_model=FILE)"),
}


def distill_objectives() -> list[str]:
    """The objectives `tea distill` runs: those trained from a teacher."""
    return [k for k, v in OBJECTIVES.items() if v.needs_teacher]


def build_objective(name: str, teacher=None, num_classes: int = 10, **kw):
    """The objective ``name`` with hyper-parameters ``kw`` (see :data:`OBJECTIVES`)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; expected one of {', '.join(OBJECTIVES)}")
    info = OBJECTIVES[name]
    if info.needs_teacher and teacher is None:
        raise ValueError(f"objective {name!r} needs a teacher; pass teacher=...")
    if name == "tea":
        return TEA(teacher, num_classes, **kw)
    if name in EXPLANATION_METHODS:
        return ExplanationDistillation(teacher, name, num_classes=num_classes, **kw)
    if name == "groupdro":  # num_classes=None in kw: groups = bias attribute alone
        return GroupDRO(**group_options(num_classes, **kw))
    if name == "jtt" and "error_set" not in kw:
        raise ValueError("objective 'jtt' needs error_set=... (a (N,) bool tensor of stage-1 mistakes; "
                         "see teakit.objectives.jtt.error_set)")
    if info.needs_teacher:
        return info.cls(teacher, **kw)
    return info.cls(**kw)
