"""`tea demo --quick` end to end on tiny subsets: every stage runs, results.json has
the contracted rows, the report and figures exist, and a re-run reuses stages;
`--seeds` runs a few stages once per seed and reports their spread; the two new
benchmarks (glyphs-on-places, phantom-xrays) with their own splits, metrics and figures."""
import json

import pytest
import torch

from teakit import demo


def _tiny(monkeypatch, keep=None):
    """Even smaller than --quick (48 images, 1 epoch; only the stages named in ``keep``, if given): this
    checks the plumbing, not the numbers."""
    original = demo.plan

    def tiny_plan(*args, **kwargs):
        stages = [s for s in original(*args, **kwargs) if keep is None or s.name in keep]
        for s in stages:
            s.params["data_options"] = {**s.params["data_options"], "limit": 48}
            for key in ("cfg", "seg_cfg"):
                if key in s.params:
                    s.params[key] = {**s.params[key], "epochs": 1}
        return stages
    monkeypatch.setattr(demo, "plan", tiny_plan)


DIGITS = ("colored-digits", "digits-on-scenes")


def test_quick_demo_end_to_end(tmp_path, monkeypatch, capsys):
    _tiny(monkeypatch)
    rows = demo.run_demo(tmp_path, quick=True, benchmarks=DIGITS)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == rows
    assert {r["dataset"] for r in rows} == {"colored-digits", "digits-on-scenes"}
    assert {r["method"] for r in rows} == {"teacher", "ERM", "TEA", demo.TEA_INPUT} | {m for m, _, _ in demo.BASELINES}
    for r in rows:
        if r["value"] is None:  # a method that cannot apply, with the reason
            assert (r["dataset"], r["method"]) in {("colored-digits", "RRR"), ("colored-digits", "ISNet"),
                                                   ("colored-digits", "GAIN"), ("colored-digits", "GALS"),
                                                   ("digits-on-scenes", "GALS")}
            assert r["note"].startswith("n/a: ")
            assert set(r) == {"dataset", "method", "split", "metric", "value", "seed", "note"} and r["seed"] == 0
            continue
        assert set(r) == {"dataset", "method", "split", "metric", "value", "seed"} and r["seed"] == 0
        assert 0.0 <= r["value"] <= 1.0
    scenes = {r["method"] for r in rows if r["dataset"] == "digits-on-scenes" and r["value"] is not None}
    assert {"RRR", "ISNet", "GAIN", "PGI", "GroupDRO", "JTT", "KD", "Grad-CAM distillation"} <= scenes
    metrics = {(r["method"], r["metric"]) for r in rows}
    assert ("TEA", "agreement_with_teacher") in metrics and ("ERM", "background_relevance") in metrics
    for name in ("report.md", "report.html", "figures/colored-digits-accuracy.png",
                 "figures/digits-on-scenes-heatmaps.png"):
        assert (tmp_path / name).stat().st_size > 200, name
    # every classifier of the demo, teachers' included, is the recipe's CNN at the demo's width, written into
    # its config
    from teakit.config import CNN_DEPTH, TEAConfig
    from teakit.runs import load_model
    for name in ("colored-digits-teacher", "digits-on-scenes-erm", "digits-on-scenes-tea"):
        folder = next((tmp_path / "stages").glob(f"{name}-*"))
        model, config = load_model(folder / "classifier" if name.endswith("teacher") else folder)
        assert config["model"]["kwargs"] == {"depth": CNN_DEPTH, "width": demo.WIDTH}, name
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == CNN_DEPTH and convs[0].out_channels == demo.WIDTH, name
    # TEA matches a hidden layer's relevance too, with the live teacher; the paper's objective (input maps
    # only) runs from the cache beside it
    from teakit.checkpoint import load_checkpoint
    config = load_checkpoint(next((tmp_path / "stages").glob("digits-on-scenes-tea-??????????"))).config
    assert config["objective"]["feature_weight"] == TEAConfig.feature_weight > 0
    assert config["objective"]["feature_layer"] == TEAConfig.feature_layer and config["cache"] is None
    config = load_checkpoint(next((tmp_path / "stages").glob("digits-on-scenes-tea-input-*"))).config
    assert config["objective"]["feature_weight"] == 0.0 and config["cache"] is not None
    # every student's initial weights are its own; feature distillation reads its features with the teacher's head
    for name in ("tea-??????????", "tea-input", "kd", "feature", "attention", "gradcam"):
        config = load_checkpoint(next((tmp_path / "stages").glob(f"digits-on-scenes-{name}*"))).config
        assert config["student_init"] == "own" and config["copy_head"] is (name in ("feature", "attention")), name
    # ISNet, the Stochastic variant (one drawn class per image and step), and the report says so
    assert load_checkpoint(next((tmp_path / "stages").glob("digits-on-scenes-isnet-*"))).config[
        "objective"]["classes"] == "random"
    assert ("TEA, input maps only", "agreement_with_teacher") in metrics
    report = (tmp_path / "report.md").read_text()
    assert "- `digits-on-scenes-isnet` (lr " in report and ", classes random, " in report
    assert "| TEA |" in report and "| RRR | n/a |" in report and "inside the foreground mask" in report
    assert "| GALS | n/a |" in report and "needs a local vision-language attention model" in report
    assert "with the teacher's head, frozen" in report
    # the targets, each with its measured values and a verdict (decided: every stage ran)
    assert "## Targets" in report and "| digits-on-scenes | TEA's background relevance at most a third of ERM's |" in report
    assert "not decided" not in report
    # one seed: plain values, and every target says its spread is unknown
    assert "±" not in report and report.count("| one seed: spread unknown |") == 10
    assert "targets met: " in capsys.readouterr().out
    capsys.readouterr()
    demo.run_demo(tmp_path, quick=True, benchmarks=DIGITS)  # second run: every stage reused
    assert capsys.readouterr().out.count("reused") == len(demo.plan(True, 0, benchmarks=DIGITS))
    assert "(total of the timed ones:" in (tmp_path / "report.md").read_text()
    lr = next(s for s in demo.plan(True, 0) if s.name == "colored-digits-tea").params["cfg"]["lr"]
    assert f"- `colored-digits-tea` (lr {lr:g}, " in (tmp_path / "report.md").read_text()
    command = f"tea demo --out {tmp_path} --seed 0 --quick\n"
    assert command in (tmp_path / "report.md").read_text()
    # --report-only trains nothing: an unfinished stage is listed as not run yet
    gradcam = next((tmp_path / "stages").glob("digits-on-scenes-gradcam-*"))
    (gradcam / "done.json").unlink()
    rows = demo.run_demo(tmp_path, quick=True, report_only=True, benchmarks=DIGITS)
    out = capsys.readouterr().out
    assert "digits-on-scenes-gradcam" in out and "not run yet" in out and out.count("reused") == len(
        demo.plan(True, 0, benchmarks=DIGITS)) - 1
    assert not (gradcam / "done.json").exists()
    assert not any(r["method"] == "Grad-CAM distillation" and r["dataset"] == "digits-on-scenes" for r in rows)
    assert "- `digits-on-scenes-gradcam`: not run yet" in (tmp_path / "report.md").read_text()
    # two stages at a time, in worker processes: a stage starts only after the one it builds on (JTT after ERM)
    for name in ("digits-on-scenes-erm", "digits-on-scenes-jtt", "colored-digits-kd"):
        (next((tmp_path / "stages").glob(f"{name}-*")) / "done.json").unlink()
    rows = demo.run_demo(tmp_path, quick=True, jobs=2, benchmarks=DIGITS)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "digits-on-scenes-erm " in line or "digits-on-scenes-jtt " in line]
    assert len(lines) == 2 and "-erm " in lines[0] and not any("reused" in line for line in lines)
    assert out.count("reused") == len(demo.plan(True, 0, benchmarks=DIGITS)) - 4
    for name in ("digits-on-scenes-erm", "digits-on-scenes-jtt", "colored-digits-kd", "digits-on-scenes-gradcam"):
        assert "epoch" in (tmp_path / "logs" / f"{name}.log").read_text(), name
    assert {r["method"] for r in rows} == {"teacher", "ERM", "TEA", demo.TEA_INPUT} | {m for m, _, _ in demo.BASELINES}
    assert rows == json.loads((tmp_path / "results.json").read_text())


NEW_SUBSET = tuple(f"{ds}-{stage}" for ds in ("glyphs-on-places", "phantom-xrays") for stage in ("teacher", "erm", "tea")
                   ) + ("phantom-xrays-groupdro",)


def test_quick_demo_on_the_new_benchmarks(tmp_path, monkeypatch, capsys):
    """glyphs-on-places and phantom-xrays end to end (teacher, ERM, TEA; GroupDRO with the hospitals as
    groups): their own test splits and metrics in results.json, tables, targets and figures in the report."""
    _tiny(monkeypatch, keep=NEW_SUBSET)
    rows = demo.run_demo(tmp_path, quick=True, benchmarks=["glyphs-on-places", "phantom-xrays"])
    assert rows == json.loads((tmp_path / "results.json").read_text())
    cells = {(r["dataset"], r["method"], r["split"], r["metric"]) for r in rows if r["value"] is not None}
    assert {(d, s) for d, _, s, _ in cells} == {("glyphs-on-places", "test"), ("phantom-xrays", "id"),
                                                ("phantom-xrays", "swapped"), ("phantom-xrays", "external")}
    for method in ("teacher", "ERM", "TEA"):
        for metric in ("worst_group_accuracy", "adjusted_average_accuracy", "group_accuracy:round/land",
                       "group_accuracy:angular/water", "background_relevance"):
            assert ("glyphs-on-places", method, "test", metric) in cells, (method, metric)
        for metric in ("accuracy", "macro_f1", "auc", "background_relevance", "source_accuracy:Glenrock",
                       "source_macro_f1:Harwick", "source_auc:Glenrock"):
            assert ("phantom-xrays", method, "external", metric) in cells, (method, metric)
        assert ("phantom-xrays", method, "id", "source_accuracy:Ashford") in cells
    assert ("phantom-xrays", "GroupDRO", "swapped", "accuracy") in cells
    assert all(0.0 <= r["value"] <= 1.0 for r in rows if r["value"] is not None)
    na = {(r["dataset"], r["method"], r["split"]) for r in rows if r["value"] is None}
    assert na == {("glyphs-on-places", "GALS", "test")} | {("phantom-xrays", "GALS", s)
                                                           for s in ("id", "swapped", "external")}
    groupdro = next((tmp_path / "stages").glob("phantom-xrays-groupdro-*"))
    from teakit.checkpoint import load_checkpoint
    assert load_checkpoint(groupdro, "best").config["objective"]["num_groups"] == 18  # class × hospital
    report = (tmp_path / "report.md").read_text()
    assert "| glyphs-on-places | TEA's test worst-group accuracy within 3 points of the teacher's |" in report
    assert "| phantom-xrays | TEA's external accuracy within 3 points of the teacher's |" in report
    assert "| phantom-xrays | TEA's background relevance at most a third of ERM's |" in report
    assert report.count("| one seed: spread unknown |") == 4 and "not decided" not in report
    assert "| method | test accuracy | worst group | adjusted average | round/land |" in report
    assert "| method | Glenrock accuracy | Glenrock macro-F1 | Glenrock AUC |" in report
    assert "not selected on that benchmark's validation set" in report
    for name in ("glyphs-on-places-accuracy", "glyphs-on-places-heatmaps", "phantom-xrays-accuracy",
                 "phantom-xrays-heatmaps", "phantom-xrays-erm-vs-tea"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 200, name
        assert f"figures/{name}.png" in report and f"figures/{name}.png" in (tmp_path / "report.html").read_text()
    out = capsys.readouterr().out
    assert "targets met: " in out and "| test=" in out and " external=" in out


SUBSET = ("colored-digits-teacher", "colored-digits-erm", "colored-digits-tea", "colored-digits-kd")


def test_quick_demo_over_two_seeds(tmp_path, monkeypatch, tea_cli):
    """`tea demo --quick --seeds 0,1` on four stages: each seed's stages in folders of their own (seed 0's
    those of the one-seed demo), one results row per seed, mean ± sd in the report; two at a time, each
    seed's stage logs apart."""
    _tiny(monkeypatch, keep=SUBSET)
    only = ["--benchmarks", "colored-digits"]
    rc, text = tea_cli(["demo", "--quick", "--seeds", "0,1", "--jobs", "1", "--out", str(tmp_path)] + only)
    assert rc == 0, text
    rows = json.loads((tmp_path / "results.json").read_text())
    seeds = {}
    for r in rows:
        seeds.setdefault((r["dataset"], r["method"], r["split"], r["metric"], r["value"] is None), []).append(
            r["seed"])
    assert {m for (_, m, _, _, na) in seeds if not na} == {"teacher", "ERM", "TEA", "KD"}
    assert all(s == [0, 1] for s in seeds.values()), seeds  # two rows per cell, n/a ones included
    assert (("colored-digits", "TEA", "swapped", "accuracy", False) in seeds
            and ("colored-digits", "RRR", "ood", "accuracy", True) in seeds)
    folders = [demo.stage_folders(demo.plan(True, seed, benchmarks=["colored-digits"]), tmp_path) for seed in (0, 1)]
    for name in SUBSET:
        assert folders[0][name] != folders[1][name], name
        assert all((f[name] / "done.json").exists() for f in folders), name
    assert text.count(" (seed 1)") == len(SUBSET)  # progress lines name the seed
    report = (tmp_path / "report.md").read_text()
    assert "(n=2)" in report and "±" in report and "sum of the two standard deviations" in report
    assert f"tea demo --out {tmp_path} --seeds 0,1 --quick --benchmarks colored-digits\n" in report
    assert "Seed 1:" in report and "## digits-on-scenes" not in report
    within = next(line for line in report.splitlines() if "TEA's ood accuracy within 3 points" in line)
    assert "±" in within and ("| yes: " in within or "| no: " in within), within  # the spread is known
    assert "±" in (tmp_path / "report.html").read_text()
    # the one-seed form is seed 0's part of it: every stage reused, its rows the seed-0 rows
    rc, text = tea_cli(["demo", "--quick", "--jobs", "1", "--out", str(tmp_path)] + only)
    assert rc == 0 and text.count("reused") == len(SUBSET), text
    one = json.loads((tmp_path / "results.json").read_text())
    assert one == [r for r in rows if r["seed"] == 0]
    assert "one seed: spread unknown" in (tmp_path / "report.md").read_text()
    # two at a time: a stage of each seed again, each with its own log
    for f in folders:
        (f["colored-digits-erm"] / "done.json").unlink()
    rc, text = tea_cli(["demo", "--quick", "--seeds", "0,1", "--jobs", "2", "--out", str(tmp_path)] + only)
    assert rc == 0 and text.count("reused") == 2 * len(SUBSET) - 2, text
    for seed in (0, 1):
        assert "epoch" in (tmp_path / "logs" / f"seed-{seed}" / "colored-digits-erm.log").read_text()
    assert json.loads((tmp_path / "results.json").read_text())[0]["seed"] == 0


def test_seeds_option(tea_cli, tmp_path):
    from teakit.cli import build_parser
    assert build_parser().parse_args(["demo", "--seeds", "0,1,2"]).seeds == [0, 1, 2]
    assert build_parser().parse_args(["demo"]).seeds is None  # one seed, 0
    for bad in ("x", "1,-1", "", "0,,1", "1.5", "0,0", "²"):
        rc, text = tea_cli(["demo", "--seeds", bad, "--out", str(tmp_path)])
        assert rc != 0 and "--seeds:" in text and ("comma-separated non-negative" in text or "each seed once" in text), bad
    rc, text = tea_cli(["demo", "--seed", "1", "--seeds", "0,1", "--out", str(tmp_path)])
    assert rc != 0 and "not allowed with argument --seed" in text
    config = tmp_path / "c.yaml"
    config.write_text("seed: 1\nseeds: 0,1\n")
    rc, text = tea_cli(["demo", "--config", str(config), "--out", str(tmp_path)])
    assert rc == 2 and "--seed and --seeds: give one" in text
    config.write_text("seeds: [0, -1]\n")
    rc, text = tea_cli(["demo", "--config", str(config), "--out", str(tmp_path)])
    assert rc == 2 and "expected one or more non-negative whole numbers" in text
    assert not (tmp_path / "results.json").exists()
    assert demo.seed_list() == [0] and demo.seed_list(3) == [3] and demo.seed_list(seeds=(2, 0)) == [2, 0]
    for seed, seeds in ((1, [0]), (None, []), (None, [-1]), (None, [0, 0]), (None, [True])):
        with pytest.raises(ValueError):
            demo.seed_list(seed, seeds)


def test_plan_sizes_every_classifier_and_keys_follow():
    """--width/--depth reach every stage's model (teachers' included) and so its folder name;
    the full plan trains each stage for the demo's epochs."""
    default = demo.plan(False, 0, benchmarks="all")
    wide = demo.plan(False, 0, width=16, depth=4, benchmarks="all")
    assert len(default) == len(wide) == 31 + 17 + 17  # the digit benchmarks', glyphs-on-places', phantom-xrays'
    for a, b in zip(default, wide):
        assert a.params["model"] == {"depth": 6, "width": demo.WIDTH}
        assert b.params["model"] == {"depth": 4, "width": 16}
        assert a.key({}, "v") != b.key({}, "v")
        assert a.params["cfg"]["epochs"] == demo.EPOCHS
    teacher = next(s for s in default if s.name == "digits-on-scenes-teacher")
    assert teacher.params["seg_cfg"]["epochs"] == demo.SEGMENTER_EPOCHS
    from teakit.cli import build_parser
    a = build_parser().parse_args(["demo", "--width", "16", "--depth", "4"])
    assert (a.width, a.depth) == (16, 4)
    assert build_parser().parse_args(["demo"]).width is None  # → demo.WIDTH


def test_report_only_before_any_stage_names_the_options(tmp_path):
    """--report-only into an empty folder trains nothing and still writes the report, whose
    command carries --width/--depth."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "no artists" legend warning
        rows = demo.run_demo(tmp_path / "new", quick=True, report_only=True, width=16, depth=4, benchmarks=DIGITS)
    assert all(r["value"] is None for r in rows)  # only the n/a rows
    report = (tmp_path / "new" / "report.md").read_text()
    assert f"tea demo --out {tmp_path / 'new'} --seed 0 --quick --width 16 --depth 4\n" in report
    assert report.count("`: not run yet") == 31  # every stage; the targets say "not run yet" too
    assert not (tmp_path / "new" / "stages").exists()


def test_stage_folders_change_with_the_data():
    stage = demo.plan(True, 0)[0]
    v1, v2 = demo.data_version("colored-digits"), demo.data_version("digits-on-scenes")
    assert v1 == demo.data_version("colored-digits") and v1 != v2
    assert stage.key({}, v1) == stage.key({}, v1) != stage.key({}, v2)


def test_time_left_counts_only_stages_computed_in_this_run():
    assert "left" not in demo._bar(18, 26, 60.0, ran=0)  # only reused stages so far: no estimate
    assert "about 30.0 min left" in demo._bar(20, 26, 600.0, ran=2)  # 5 min per computed stage, 6 to go
    assert "about  1.7 min left" in demo._bar(5, 10, 100.0)


def test_lr_scale_multiplies_every_student_and_no_teacher(monkeypatch):
    """--lr-scale S: every student's base learning rate times S, teachers untouched; scale 1 keeps the
    keys of before; an LR_SCALES entry scales its own stage only."""
    base, double = demo.plan(False, 0, lr_scale=1.0), demo.plan(False, 0, lr_scale=2.0)
    monkeypatch.setattr(demo, "LR_SCALES", {})
    assert [s.key({}, "v") for s in demo.plan(False, 0)] == [s.key({}, "v") for s in base]
    for a, b in zip(base, double):
        if a.kind == "teacher":
            assert a.params == b.params
        else:
            # the distilled, the label-trained and TEA's base
            assert a.params["cfg"]["lr"] == (1.6e-2 if a.params.get("objective") == "tea" else
                                             3e-3 if a.kind == "train" else 2e-3), a.name
            assert b.params["cfg"]["lr"] == 2 * a.params["cfg"]["lr"]
            assert {k: v for k, v in a.params["cfg"].items() if k != "lr"} == \
                   {k: v for k, v in b.params["cfg"].items() if k != "lr"}
            assert a.key({}, "v") != b.key({}, "v")
    monkeypatch.setattr(demo, "LR_SCALES", {"digits-on-scenes-kd": 0.5})
    scaled = {s.name: s.params for s in demo.plan(False, 0)}
    assert scaled["digits-on-scenes-kd"]["cfg"]["lr"] == 1e-3
    assert scaled["colored-digits-kd"]["cfg"]["lr"] == 2e-3
    assert {s.name: s.params["cfg"]["lr"] for s in demo.plan(False, 0, lr_scale=1.0)}["digits-on-scenes-kd"] == 2e-3
    from teakit.cli import build_parser
    assert build_parser().parse_args(["demo", "--lr-scale", "0.5"]).lr_scale == 0.5
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["demo", "--lr-scale", bad])


def _fake_demo(out, scale, score):
    """Finished stage folders of a quick demo at ``scale``, each best checkpoint scoring ``score(stage)``."""
    from teakit.checkpoint import save_checkpoint
    stages = demo.plan(True, 0, lr_scale=scale)
    folders = demo.stage_folders(stages, out)
    for stage in stages:
        folder = folders[stage.name]
        if stage.kind != "teacher":
            save_checkpoint(folder, model_state={"w": torch.zeros(1)}, config={}, epoch=0, rng=False,
                            extra={"best": score(stage.name)}, name="best")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "done.json").write_text("{}")


def test_select_lr_scales_takes_the_lowest_validation_score(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "data_version", lambda dataset, **options: "v")  # the keys only need to agree
    scores = {  # per scale, per stage: the best validation selection metric
        0.5: lambda n: 1.0 if n.endswith("-tea") else 0.5,
        1.0: lambda n: 0.8 if n.endswith("-tea") else 0.9 if n.endswith("-kd") else 0.5,
        2.0: lambda n: 0.7 if n.endswith("-tea") else 0.2 if n == "digits-on-scenes-erm" else 0.5,
    }
    for scale, score in scores.items():
        _fake_demo(tmp_path / str(scale), scale, score)
    table = demo.select_lr_scales({s: tmp_path / str(s) for s in scores}, quick=True)
    assert len(table) == 29  # every student of the default demo's two benchmarks, no teacher
    assert table["colored-digits-tea"] == {"scores": {0.5: 1.0, 1.0: 0.8, 2.0: 0.7}, "selected": 2.0}
    assert table["digits-on-scenes-erm"]["selected"] == 2.0
    assert table["colored-digits-erm"]["selected"] == 1.0  # a three-way tie: the base rate
    assert table["colored-digits-kd"]["selected"] == 0.5  # a tie of 0.5 and 2: as near 1, then the smaller
    (next((tmp_path / "2.0" / "stages").glob("digits-on-scenes-gradcam-*")) / "done.json").unlink()
    with pytest.raises(FileNotFoundError, match="digits-on-scenes-gradcam.*lr-scale 2.0"):
        demo.select_lr_scales({s: tmp_path / str(s) for s in scores}, quick=True)


def test_workers_end_when_the_demo_is_killed(tmp_path):
    """A demo killed outright (SIGKILL: no cleanup runs) leaves no worker training on as an orphan."""
    import os
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "parent.py"
    script.write_text(f"""
import multiprocessing as mp, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from teakit.demo import _exit_with_parent

def work(path):
    open(path, "w").write(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=_exit_with_parent,
                               initargs=(os.getpid(), 0.1))
    pool.submit(work, {str(tmp_path / 'worker.pid')!r})
    time.sleep(120)
""")
    parent = subprocess.Popen([sys.executable, str(script)], stderr=open(tmp_path / "stderr.txt", "w"))
    pid_file = tmp_path / "worker.pid"
    deadline = time.time() + 120
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), f"no worker started: {(tmp_path / 'stderr.txt').read_text()}"
    worker = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a reaped-later zombie counts as gone
            return f.read().split(") ")[1][0] != "Z"

    deadline = time.time() + 10
    while alive(worker) and time.time() < deadline:
        time.sleep(0.1)
    try:
        assert not alive(worker), "the worker outlived the killed demo"
    finally:
        if alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_stage_folders_do_not_depend_on_where_the_demo_folder_is(tmp_path):
    """A demo folder moved or copied elsewhere is reused: keys name the dependencies' folders, not paths."""
    stages = demo.plan(True, 0)
    versions = {s.dataset: "v" for s in stages}
    here = demo.stage_folders(stages, tmp_path / "a", versions)
    there = demo.stage_folders(stages, tmp_path / "elsewhere" / "b", versions)
    assert [f.name for f in here.values()] == [f.name for f in there.values()]
    assert any(s.deps for s in stages)  # the distilled students' keys do cover their teachers' folders
    other = demo.stage_folders(demo.plan(True, 1), tmp_path / "a", versions)
    assert here["colored-digits-tea"].name != other["colored-digits-tea"].name
