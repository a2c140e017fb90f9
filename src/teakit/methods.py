"""The methods the demo compares and their names in ``results.json`` and the report.

:mod:`teakit.demo` plans and runs them; :mod:`teakit.report` reads their
results by these names (and must not import the demo that runs it).  Free of
imports.
"""
from __future__ import annotations

# the demo's test splits
SPLITS = ("id", "ood", "swapped")

# (method label, `tea train` or `tea distill`, objective); hyper-parameters: each objective's defaults
BASELINES = [
    ("KD", "distill", "kd"), ("feature distillation", "distill", "feature"),
    ("attention transfer", "distill", "attention"),
    ("RRR", "train", "rrr"), ("ISNet", "train", "isnet"), ("GAIN", "train", "gain"), ("GALS", "train", "gals"),
    ("GroupDRO", "train", "groupdro"), ("IRM", "train", "irm"), ("PGI", "train", "pgi"), ("JTT", "train", "jtt"),
    ("Grad×Input distillation", "distill", "gradxinput"), ("input-gradient distillation", "distill", "inputgrad"),
    ("Grad-CAM distillation", "distill", "gradcam"),
]
# TEA on the input maps alone (no hidden-layer relevance): the paper's objective
TEA_INPUT = "TEA, input maps only"


def method_label(stage) -> str:
    """The method's name in results.json and the report, of a demo stage
    (:class:`teakit.demo.Stage`: its ``kind`` and ``params``)."""
    if stage.kind == "teacher":
        return "teacher"
    objective = stage.params["objective"]
    if objective == "tea" and not stage.params.get("tea", {}).get("feature_weight"):
        return TEA_INPUT
    return {"erm": "ERM", "tea": "TEA"}.get(objective) or next(m for m, _, o in BASELINES if o == objective)
