"""The demo's benchmarks (teakit.methods.BENCHMARKS): each declares its test splits, figures and targets, and
the plan runs every method that applies to it; results rows of the new metrics; `--benchmarks`.  Nothing is
trained here (the quick demo on the new benchmarks: tests/test_demo.py)."""
import pytest

from teakit import demo
from teakit.config import ALL_DEMO_BENCHMARKS, DEMO_BENCHMARKS
from teakit.data import names
from teakit.data.load import TRAINING_SPLITS
from teakit.methods import BASELINES, BENCHMARKS, TEA_INPUT, method_label

NEW = ("glyphs-on-places", "phantom-xrays")
OLD = ("colored-digits", "digits-on-scenes")


def test_every_builtin_benchmark_is_declared_with_its_own_test_splits():
    from teakit.data import GLYPHS_ON_PLACES_SPLITS
    from teakit.data import SPLITS as DIGIT_SPLITS
    from teakit.data import glyphs_on_places, phantom_xrays

    assert ALL_DEMO_BENCHMARKS == OLD + NEW and set(BENCHMARKS) == set(names.BUILTIN) - set(names.HELD_OUT)
    assert names.HELD_OUT == ("letters-on-scenes",)  # a held-out test of the recipe is in no demo
    assert DEMO_BENCHMARKS == OLD  # the default: what fits the demo's time budget
    tests = {"colored-digits": DIGIT_SPLITS, "digits-on-scenes": DIGIT_SPLITS,
             "glyphs-on-places": GLYPHS_ON_PLACES_SPLITS, "phantom-xrays": phantom_xrays.SPLITS}
    for name, bench in BENCHMARKS.items():
        assert bench.splits == tuple(s for s in tests[name] if s not in TRAINING_SPLITS), name
        # every figure, column and bar reads a test split of its own benchmark
        for split, *_ in bench.shifted + bench.columns + bench.details + bench.bars:
            assert split in bench.splits, (name, split)
        assert bench.figure_split in bench.splits
    assert BENCHMARKS["glyphs-on-places"].shifted == (("test", "worst_group_accuracy"),)
    assert BENCHMARKS["phantom-xrays"].shifted == (("external", "accuracy"), ("swapped", "accuracy"))
    assert BENCHMARKS["digits-on-scenes"].shifted == (("ood", "accuracy"), ("swapped", "accuracy"))
    # the names the rows and the report use are the builders' own
    assert BENCHMARKS["glyphs-on-places"].group_names == glyphs_on_places.GROUP_NAMES
    ext = tuple(phantom_xrays.HOSPITAL_NAMES[h] for h in phantom_xrays.EXTERNAL_HOSPITALS)
    assert {h for _, m, _ in BENCHMARKS["phantom-xrays"].details for h in [m.split(":")[1]]} == set(ext)


def test_the_plan_runs_every_method_that_applies_on_each_benchmark():
    stages = demo.plan(False, 0, benchmarks="all")
    assert len(stages) == 31 + 17 + 17 and len(demo.plan(False, 0)) == 31
    everything = {"teacher", "ERM", "TEA", TEA_INPUT} | {m for m, _, _ in BASELINES}
    for ds in NEW:
        mine = [s for s in stages if s.dataset == ds]
        assert {method_label(s) for s in mine} == everything - {"GALS"}, ds  # GALS: no attention model here
        assert BENCHMARKS[ds].why_not.keys() == {"gals"}
        teacher = next(s for s in mine if s.kind == "teacher")
        assert teacher.params["kind"] == "segmenter" and teacher.params["heatmap_of"] == "input"
        for s in mine:
            assert s.params["data_options"] == {}  # the full data, at the builders' 64 px
            assert s.params["model"] == {"depth": 6, "width": demo.WIDTH}
            assert s.params["cfg"]["epochs"] == demo.EPOCHS
            if s.kind != "teacher":  # no learning-rate scale selected on the new benchmarks: the base rates
                base = 1.6e-2 if s.params.get("objective") == "tea" else 3e-3 if s.kind == "train" else 2e-3
                assert s.name not in demo.LR_SCALES and s.params["cfg"]["lr"] == base, s.name
            if s.kind == "distill":
                assert s.deps == (teacher.name,)
        assert next(s for s in mine if s.params.get("objective") == "jtt").deps == (f"{ds}-erm",)
    assert not BENCHMARKS["glyphs-on-places"].lr_selected and BENCHMARKS["colored-digits"].lr_selected
    # order: teacher, ERM and the TEA students of every benchmark first
    first = [s.name for s in stages[:16]]
    assert first[-4:] == ["phantom-xrays-teacher", "phantom-xrays-erm", "phantom-xrays-tea", "phantom-xrays-tea-input"]
    # a subset plans those benchmarks only, with the same stages (so the same folders) as the full plan
    glyphs = demo.plan(False, 0, benchmarks=["glyphs-on-places"])
    assert [s.key({}, "v") for s in glyphs] == [s.key({}, "v") for s in stages if s.dataset == "glyphs-on-places"]
    old = demo.plan(False, 0, benchmarks=OLD)
    assert [s.key({}, "v") for s in old] == [s.key({}, "v") for s in stages if s.dataset in OLD]


def test_quick_plan_uses_small_subsets_and_smaller_glyphs():
    for s in demo.plan(True, 0, benchmarks=NEW):
        assert s.params["data_options"] == ({"limit": 192, "size": 32} if s.dataset == "glyphs-on-places"
                                            else {"limit": 192}), s.name
        assert s.params["cfg"]["epochs"] == 2
    for s in demo.plan(True, 0, benchmarks=OLD):
        assert s.params["data_options"] == {"limit": 192}


def test_benchmark_list_and_option():
    assert demo.benchmark_list() == list(DEMO_BENCHMARKS)
    assert demo.benchmark_list("phantom-xrays, colored-digits") == ["phantom-xrays", "colored-digits"]
    assert demo.benchmark_list("all") == list(ALL_DEMO_BENCHMARKS)
    for bad in ("", "mnist", "colored-digits,colored-digits", ["glyphs-on-places", "x"], []):
        with pytest.raises(ValueError, match="benchmarks="):
            demo.benchmark_list(bad)
    from teakit.cli import build_parser
    assert build_parser().parse_args(["demo"]).benchmarks is None  # → DEMO_BENCHMARKS
    parsed = build_parser().parse_args(["demo", "--benchmarks", "glyphs-on-places,phantom-xrays"])
    assert parsed.benchmarks == ["glyphs-on-places", "phantom-xrays"]
    assert build_parser().parse_args(["demo", "--benchmarks", "all"]).benchmarks == list(ALL_DEMO_BENCHMARKS)
    for bad in ("waterbirds", "glyphs-on-places,glyphs-on-places", ""):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["demo", "--benchmarks", bad])


def _split(**metrics):
    return {"accuracy": 0.5, "n": 10, "macro_f1": 0.4, **metrics}


def test_result_rows_of_the_new_metrics():
    glyphs = {"splits": {"test": _split(auc=0.6, group_accuracy={"0": 1.0, "1": 0.25, "2": 0.0, "3": 0.75},
                                        worst_group_accuracy=0.0, adjusted_average_accuracy=0.9,
                                        background_relevance=0.3)}}
    rows = demo.result_rows("glyphs-on-places", "ERM", glyphs, seed=2)
    got = {(r["split"], r["metric"]): r["value"] for r in rows}
    assert got == {("test", "accuracy"): 0.5, ("test", "macro_f1"): 0.4, ("test", "auc"): 0.6,
                   ("test", "worst_group_accuracy"): 0.0, ("test", "adjusted_average_accuracy"): 0.9,
                   ("test", "background_relevance"): 0.3, ("test", "group_accuracy:round/land"): 1.0,
                   ("test", "group_accuracy:round/water"): 0.25, ("test", "group_accuracy:angular/land"): 0.0,
                   ("test", "group_accuracy:angular/water"): 0.75}
    assert all(set(r) == {"dataset", "method", "split", "metric", "value", "seed"} and r["seed"] == 2
               and r["dataset"] == "glyphs-on-places" for r in rows)
    xray = {"splits": {"external": _split(auc_per_class={"0": 0.9, "1": 0.6, "2": 0.6},
                                          source_accuracy={"Glenrock": 0.4, "Harwick": 0.6},
                                          source_macro_f1={"Glenrock": 0.3, "Harwick": 0.5},
                                          source_auc={"Glenrock": {"0": 1.0, "1": 0.5, "2": 0.6}, "Harwick": None},
                                          group_accuracy={"6": 0.4, "7": 0.6})}}
    got = {r["metric"]: r["value"] for r in demo.result_rows("phantom-xrays", "TEA", xray)}
    assert got == {"accuracy": 0.5, "macro_f1": 0.4, "auc": pytest.approx(0.7),
                   "source_accuracy:Glenrock": 0.4, "source_accuracy:Harwick": 0.6,
                   "source_macro_f1:Glenrock": 0.3, "source_macro_f1:Harwick": 0.5,
                   "source_auc:Glenrock": pytest.approx(0.7)}  # a single-class hospital has no AUC row
    # the digit benchmarks' rows are as before: float metrics only
    digits = {"splits": {"ood": _split(group_accuracy={"0": 1.0}, auc_per_class={"0": 0.5})}}
    assert {r["metric"] for r in demo.result_rows("colored-digits", "TEA", digits)} == {"accuracy", "macro_f1"}
