"""The methods the demo compares, the benchmarks it runs them on, and their names in ``results.json`` and the
report.

:mod:`teakit.demo` plans and runs them; :mod:`teakit.report` reads their
results by these names and builds each benchmark's table and targets from its
:class:`Benchmark` (and must not import the demo that runs it).  Free of
imports but the standard library's dataclasses and :mod:`teakit.config` (no
torch: the command line checks ``--benchmarks`` with :func:`benchmark_list`).
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import ALL_DEMO_BENCHMARKS, DEMO_BENCHMARKS

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


_NO_ATTENTION_MODEL = ("GALS needs a local vision-language attention model file (`tea train --objective gals "
                       "--attention-model FILE`, e.g. CLIP's); the demo bundles none and downloads nothing")
_SHORTCUT_IN_MASK = "the shortcut is the stroke colour, inside the foreground mask"


@dataclass(frozen=True)
class Benchmark:
    """How the demo runs and reports one built-in benchmark.

    ``teacher``: the teacher kind (`tea train-teacher --kind`).  ``splits``: its test splits, every method
    evaluated on each.  ``shifted``: the figures that matter, ``(split, metric)`` pairs of results rows: TEA is
    held to within 3 points of the teacher on each (:mod:`teakit.report.targets`).  ``columns``: the report
    table, ``(split, metric, header)``; ``details``: a second table of the same form, titled
    ``details_title`` (none when empty); ``bars``: the accuracy-bar figure, ``(split, metric, label)``;
    ``figure_split``: the split whose images the heatmap grid shows; ``caption``: what the table shows, in
    words, under the benchmark's heading (none for the digit benchmarks, which the report's opening
    describes).  ``not_applicable``: ``(objective,
    why)`` pairs, listed as n/a.  ``rival_targets``: TEA must also be above every baseline without masks or
    groups on each shifted figure; ``erm_margin_split``: TEA's accuracy there at least ERM's + 30 points;
    ``relevance_split``: TEA's background relevance there at most a third of ERM's (None: no such target).
    ``detail_metrics``: dict-valued evaluation metrics written as one row per key, ``"metric:key"`` (groups
    named by ``group_names``; :func:`teakit.demo.result_rows`).  ``quick_options``: data options of
    ``--quick`` besides the subset (smaller images).  ``lr_selected``: whether the demo's per-stage
    learning-rate scales (``teakit.demo.LR_SCALES``) were selected on this benchmark's validation set;
    if not, every student has its base rate."""
    name: str
    teacher: str
    splits: tuple
    shifted: tuple
    columns: tuple
    bars: tuple
    figure_split: str
    not_applicable: tuple = ()
    details: tuple = ()
    details_title: str = ""
    caption: str = ""
    rival_targets: bool = False
    erm_margin_split: str | None = None
    relevance_split: str | None = None
    detail_metrics: tuple = ()
    group_names: tuple = ()
    quick_options: tuple = ()
    lr_selected: bool = False

    @property
    def why_not(self) -> dict:
        """``{objective: why}`` of the methods that cannot apply."""
        return dict(self.not_applicable)


_DIGIT_COLUMNS = (("id", "accuracy", "id accuracy"), ("ood", "accuracy", "ood accuracy"),
                  ("swapped", "accuracy", "swapped accuracy"),
                  ("swapped", "agreement_with_teacher", "swapped agreement with teacher"),
                  ("swapped", "background_relevance", "swapped background relevance"))
_DIGIT_BARS = tuple((s, "accuracy", s) for s in ("id", "ood", "swapped"))
GLYPH_GROUPS = ("round/land", "round/water", "angular/land", "angular/water")  # group 2 * y + place
EXTERNAL_HOSPITALS = ("Glenrock", "Harwick")  # phantom-xrays' hospitals never seen in training or selection

BENCHMARKS = {b.name: b for b in (
    Benchmark(name="colored-digits", teacher="debiased", splits=("id", "ood", "swapped"),
              shifted=(("ood", "accuracy"), ("swapped", "accuracy")), columns=_DIGIT_COLUMNS, bars=_DIGIT_BARS,
              figure_split="swapped",
              not_applicable=(("rrr", _SHORTCUT_IN_MASK), ("isnet", _SHORTCUT_IN_MASK),
                              ("gain", _SHORTCUT_IN_MASK), ("gals", _NO_ATTENTION_MODEL)),
              rival_targets=True, lr_selected=True),
    Benchmark(name="digits-on-scenes", teacher="segmenter", splits=("id", "ood", "swapped"),
              shifted=(("ood", "accuracy"), ("swapped", "accuracy")), columns=_DIGIT_COLUMNS, bars=_DIGIT_BARS,
              figure_split="swapped", not_applicable=(("gals", _NO_ATTENTION_MODEL),), rival_targets=True,
              erm_margin_split="swapped", relevance_split="swapped", lr_selected=True),
    # Waterbirds-shaped: one test split balanced over place within class; worst-group accuracy is what matters
    Benchmark(name="glyphs-on-places", teacher="segmenter", splits=("test",),
              shifted=(("test", "worst_group_accuracy"),),
              columns=(("test", "accuracy", "test accuracy"), ("test", "worst_group_accuracy", "worst group"),
                       ("test", "adjusted_average_accuracy", "adjusted average"))
              + tuple(("test", f"group_accuracy:{g}", g) for g in GLYPH_GROUPS)
              + (("test", "agreement_with_teacher", "agreement with teacher"),
                 ("test", "background_relevance", "background relevance")),
              bars=(("test", "accuracy", "accuracy"), ("test", "worst_group_accuracy", "worst group"),
                    ("test", "adjusted_average_accuracy", "adjusted average")),
              figure_split="test", not_applicable=(("gals", _NO_ATTENTION_MODEL),),
              caption="The `test` split, balanced over place within each class (%): accuracy, worst-group "
                      "accuracy (the figure that matters), the adjusted average (group accuracies weighted by "
                      "the training-group frequencies), each class/place group's accuracy, agreement with the "
                      "teacher and the share of |LRP-ε| relevance off the glyph (lower is better).",
              detail_metrics=("group_accuracy",), group_names=GLYPH_GROUPS, quick_options=(("size", 32),)),
    # chest-X-ray-shaped: the hospitals are the shortcut; `external` holds hospitals never seen in training
    Benchmark(name="phantom-xrays", teacher="segmenter", splits=("id", "swapped", "external"),
              shifted=(("external", "accuracy"), ("swapped", "accuracy")),
              columns=(("id", "accuracy", "id accuracy"), ("swapped", "accuracy", "swapped accuracy"),
                       ("external", "accuracy", "external accuracy"),
                       ("external", "macro_f1", "external macro-F1"), ("external", "auc", "external AUC"),
                       ("swapped", "agreement_with_teacher", "swapped agreement with teacher"),
                       ("swapped", "background_relevance", "swapped background relevance")),
              bars=tuple((s, "accuracy", s) for s in ("id", "swapped", "external")), figure_split="swapped",
              not_applicable=(("gals", _NO_ATTENTION_MODEL),),
              details=tuple(("external", f"source_{metric}:{h}", f"{h} {label}") for h in EXTERNAL_HOSPITALS
                            for metric, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"),
                                                  ("auc", "AUC"))),
              details_title="Each external hospital", relevance_split="swapped",
              caption="Accuracy (%) on `id` (the training hospitals, the training mix), `swapped` (each class "
                      "mostly from another class's hospitals) and `external` (two hospitals never seen in "
                      "training or selection); macro-F1 and ROC-AUC (the mean of the one-vs-rest AUCs) on "
                      "`external`; agreement with the teacher and the share of |LRP-ε| relevance outside the "
                      "lungs (lower is better) on `swapped`.  results.json also holds every hospital's accuracy, "
                      "macro-F1 and AUC on each split.",
              detail_metrics=("auc_per_class", "source_accuracy", "source_macro_f1", "source_auc")),
)}


def benchmark_list(benchmarks=None) -> list[str]:
    """The benchmarks a demo runs: ``benchmarks`` (names of :data:`BENCHMARKS`, each once, at least one; a
    comma-separated string is split; ``"all"``: :data:`teakit.config.ALL_DEMO_BENCHMARKS`), else
    :data:`teakit.config.DEMO_BENCHMARKS`."""
    if benchmarks is None:
        return list(DEMO_BENCHMARKS)
    if benchmarks == "all":
        return list(ALL_DEMO_BENCHMARKS)
    names = [b.strip() for b in benchmarks.split(",")] if isinstance(benchmarks, str) else list(benchmarks)
    unknown = [b for b in names if b not in BENCHMARKS]
    if not names or unknown or "" in names:
        raise ValueError(f"benchmarks={benchmarks!r}: expected one or more of {', '.join(BENCHMARKS)}"
                         + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else ""))
    if len(set(names)) != len(names):
        raise ValueError(f"benchmarks={benchmarks!r}: each benchmark once")
    return names
