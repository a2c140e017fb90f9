"""`tea study convergence` and `tea study summary` (teakit.study)."""
from dataclasses import replace

import pytest
import torch

from teakit import commands as C
from teakit.config import CNN_DEPTH, TEAConfig
from teakit.study import VARIANTS, convergence, read_curves, variant_setup
from teakit.train import TrainConfig


def _write_curve(path, variant, per_epoch, splits=("id", "ood", "swapped")):
    """A study curve: per_epoch = [(val heatmap loss, val agreement, ood, swapped), ...]; the last of
    ``splits`` takes the swapped figure, the others the ood one."""
    from teakit.atomic import atomic_write_csv
    from teakit.study import FIELDS
    rows = []
    for e, (loss, agr, ood, swapped) in enumerate(per_epoch, start=1):
        base = {"variant": variant, "epoch": e, "step": 10 * e, "seconds": float(e)}
        rows.append({**base, "split": "val", "accuracy": agr, "agreement": agr, "heatmap_loss": loss})
        for i, split in enumerate(splits):
            acc = swapped if i == len(splits) - 1 else ood
            rows.append({**base, "split": split, "accuracy": acc, "agreement": acc - 0.01, "heatmap_loss": None})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(path, rows, FIELDS)


def test_variant_setup_changes_one_thing():
    base = TrainConfig(epochs=16, lr=2e-3, warmup_steps=100)
    cfg, tea, spec, copy = variant_setup("default", base, {"classes": "sample"}, None)
    assert cfg == base and tea == {"classes": "sample"} and spec is None and not copy
    cfg, tea, spec, copy = variant_setup("sgd-authors", base, {}, None)
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.warmup_steps, cfg.epochs) == ("sgd", 1e-2, 0.99, 0, 16)
    cfg, tea, _, _ = variant_setup("all-classes", base, {}, None)
    assert tea["classes"] == "all" and cfg.epochs == 2
    _, _, spec, _ = variant_setup("width-8", base, {}, None)
    assert spec["name"] == "cnn" and spec["kwargs"]["width"] == 8
    assert spec["kwargs"] == {"width": 8, "depth": CNN_DEPTH}  # the baseline's depth, one change only
    _, _, spec, _ = variant_setup("depth-4", base, {}, None)
    from teakit.runs import build_from_spec
    spec = {**spec, "num_classes": 10}
    model = build_from_spec(spec)
    assert spec["kwargs"] == {"depth": 4} and sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == 4
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert variant_setup("head-copied", base, {}, None)[3]
    cfg, tea, _, _ = variant_setup("lr-8x", base, {}, None)
    assert cfg == TrainConfig(epochs=16, lr=1.6e-2, warmup_steps=100) and tea == {}
    assert [variant_setup(v, base, {}, None)[0].lr for v in ("lr-2x", "lr-0.5x")] == pytest.approx([4e-3, 1e-3])
    lo, hi = TEAConfig().eps_log_range  # the default's ε range shifted a decade down, up, half up
    assert [variant_setup(v, base, {}, None)[1]["eps_log_range"] for v in ("eps-0.1x", "eps-10x", "eps-3x")] == [
        pytest.approx((lo - 1, hi - 1)), pytest.approx((lo + 1, hi + 1)), pytest.approx((lo + 0.5, hi + 0.5))]
    cfg, tea, _, _ = variant_setup("lr-8x+decision-prior", replace(base, lr=1e-3), {"classes": "sample"}, None)
    assert cfg.lr == pytest.approx(8e-3) and tea == {"classes": "sample", "bias_prior": "teacher-decisions"}
    assert variant_setup("decision-prior", base, {}, None)[:2] == (base, {"bias_prior": "teacher-decisions"})
    assert variant_setup("feature-weight-3", base, {"classes": "sample"}, None)[:2] == (
        base, {"classes": "sample", "feature_weight": 3.0})
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        variant_setup("nope", base, {}, None)


def test_convergence_study_writes_curves_and_reuses_finished_variants(teacher_dir, tmp_path, capsys):
    out = tmp_path / "study"
    with pytest.raises(ValueError, match="unknown variant"):
        convergence("colored-digits", teacher_dir, out, ["default", "bogus"])
    assert not (out / "default").exists()  # refused before any training
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=32)
    path = convergence("colored-digits", teacher_dir, out, ["default", "top-class"], cfg=cfg,
                       data_options={"limit": 64}, progress=False)
    rows = read_curves(path)
    assert {r["variant"] for r in rows} == {"default", "top-class"}
    assert {r["split"] for r in rows} == {"val", "id", "ood", "swapped"}
    for name in ("default", "top-class"):
        mine = [r for r in rows if r["variant"] == name and r["split"] == "ood"]
        assert [r["epoch"] for r in mine] == [1, 2] and [r["step"] for r in mine] == [2, 4]
        assert mine[0]["seconds"] < mine[1]["seconds"]
        assert all(0 <= r["accuracy"] <= 1 and 0 <= r["agreement"] <= 1 for r in mine)
    assert all(r["heatmap_loss"] > 0 for r in rows if r["split"] == "val")
    assert (out / "study.png").stat().st_size > 10_000
    table = (out / "study.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| default | ") and table[3].startswith("| top-class | ")
    val = [r for r in rows if r["variant"] == "default" and r["split"] == "val"]
    best = min(val, key=lambda r: r["heatmap_loss"])
    ood = next(r for r in rows if r["variant"] == "default" and r["split"] == "ood" and r["epoch"] == best["epoch"])
    assert f"| {100 * ood['accuracy']:.1f} |" in table[2] and f"{best['heatmap_loss']:.3f}" in table[2]
    # the probe reports the saved "last" model: its ood accuracy equals a fresh evaluation
    from teakit.evaluate import predict
    from teakit.runs import load_model
    model, _ = load_model(out / "default", "last")
    ood = C.load_data("colored-digits", limit=64)["ood"]
    acc = (predict(model, ood.x).argmax(1) == ood.y).float().mean().item()
    assert acc == pytest.approx([r for r in rows if r["variant"] == "default" and r["split"] == "ood"][-1]["accuracy"])
    capsys.readouterr()
    convergence("colored-digits", teacher_dir, out, ["default"], cfg=cfg, data_options={"limit": 64}, progress=False)
    assert "finished earlier" in capsys.readouterr().out
    assert not list(out.rglob("curve.partial.csv"))  # a finished variant leaves only curve.csv
    assert set(VARIANTS) >= {"sgd-authors", "all-classes", "head-copied", "fixed-eps", "mse", "cosine",
                             "no-pyramid", "width-8", "no-batchnorm", "shift-2"}


def test_seed_summary_selects_by_validation_loss_and_averages_seeds(tmp_path, capsys):
    from teakit.study import seed_summary
    with pytest.raises(FileNotFoundError, match="no curve"):
        seed_summary([tmp_path])
    # seed 0: the lowest val loss is epoch 2 (not the best test epoch 3); seed 1 stopped early
    _write_curve(tmp_path / "a" / "default-s0" / "default" / "curve.csv", "default",
                 [(0.9, 0.5, 0.50, 0.40), (0.4, 0.9, 0.94, 0.96), (0.5, 0.95, 0.99, 0.99)])
    _write_curve(tmp_path / "b" / "default-s1" / "default" / "curve.partial.csv", "default",
                 [(0.8, 0.6, 0.70, 0.80), (0.6, 0.7, 0.90, 0.92)])
    _write_curve(tmp_path / "a" / "pair" / "pair" / "curve.csv", "pair", [(0.3, 0.9, 0.95, 0.97)])
    lines = seed_summary([tmp_path / "a", tmp_path / "b"]).splitlines()
    run_rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ") and " / " in line
                and "±" not in line and "recipe" not in line}
    assert "| 2 / 3 | 0.400 | 90.0 | 94.0 | 94.0 | 96.0 | 93.0 | 95.0 |" in run_rows["default-s0"]
    assert "2 / 2 (stopped)" in run_rows["default-s1"]
    recipes = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ") and "±" in line}
    # default: ood mean of 94 and 90 = 92.0, sample sd = 2.83; swapped 96 and 92; lowest agreement of each run
    # (ood's, one point under its accuracy): 93 and 89; one of two runs ≥ 93 % on both
    assert recipes["default"] == "| default | 2 | 0.500 | 92.0 ± 2.8 | 94.0 ± 2.8 | 91.0 (89.0) | 1 / 2 |"
    assert "| pair | 1 | 0.300 | 95.0 | 97.0 | 94.0 (94.0) | 1 / 1 |" in lines
    # the command line writes the same table, and names what is missing
    from teakit.cli import main
    assert main(["study", "summary", "--runs", str(tmp_path / "a"), str(tmp_path / "b"),
                 "--out", str(tmp_path / "t.md"), "--plot", str(tmp_path / "runs.png")]) == 0
    assert (tmp_path / "t.md").read_text().splitlines() == lines
    assert (tmp_path / "runs.png").stat().st_size > 10_000
    assert main(["study", "summary"]) == 2
    assert main(["study", "convergence", "--teacher", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "--dataset is required" in capsys.readouterr().err


def test_seed_summary_follows_the_runs_splits(tmp_path):
    """Runs of a benchmark with other splits (phantom-xrays: swapped and external) get those columns, and
    the lowest agreement is the lower of the two."""
    from teakit.study import seed_summary
    for seed, figures in ((0, (0.96, 0.90)), (1, (0.98, 0.94))):
        _write_curve(tmp_path / f"default-s{seed}" / "default" / "curve.csv", "default",
                     [(0.5, 0.9, *figures)], splits=("external", "swapped"))
    lines = seed_summary([tmp_path]).splitlines()
    assert lines[0] == ("| run | variant | selected / last epoch | val loss | val agreement | external | swapped | "
                        "agreement (external) | agreement (swapped) |")
    assert lines[2].endswith("| 96.0 | 90.0 | 95.0 | 89.0 |") and "ood" not in "\n".join(lines)
    assert lines[-1] == "| default | 2 | 0.500 | 97.0 ± 1.4 | 92.0 ± 2.8 | 91.0 (89.0) | 1 / 2 |"


def test_probe_rewrites_the_partial_curve_after_every_epoch(teacher_dir, tmp_path, make_tiny_student):
    from teakit.runs import load_teacher
    from teakit.study import _probe
    data = C.load_data("colored-digits", limit=32)
    tests = {s: data[s] for s in ("id", "ood", "swapped")}
    rows, clock, partial = [], [0.0], tmp_path / "curve.partial.csv"
    from teakit.evaluate import predict
    teacher = load_teacher(teacher_dir)
    t_pred = {s: predict(teacher, d.x).argmax(1) for s, d in tests.items()}
    on_epoch = _probe("default", t_pred, tests, rows, clock, partial)
    model = make_tiny_student()
    for epoch in range(2):
        on_epoch({"epoch": epoch, "step": 4 * (epoch + 1), "seconds": 1.5,
                  "val": {"acc": 0.5, "agreement": 0.25, "heatmap_loss": 0.7}}, model)
        written = read_curves(partial)
        assert len(written) == 4 * (epoch + 1) and written[-1]["epoch"] == epoch + 1
    assert written[-1]["seconds"] == 3.0 and {r["split"] for r in written} == {"val", "id", "ood", "swapped"}
    # each test split's worst group: the lowest accuracy over its bias groups, counted here image by image
    sw = tests["swapped"]
    pred = predict(model, sw.x).argmax(1)
    accs = [(pred[sw.bias == g] == sw.y[sw.bias == g]).float().mean().item() for g in set(sw.bias.tolist()) if g >= 0]
    at = {r["split"]: r for r in written if r["epoch"] == 2}
    assert len(accs) > 1 and at["swapped"]["worst_group"] == pytest.approx(min(accs))
    assert at["ood"]["worst_group"] is None and at["swapped"]["selection"] is None  # ood: no groups (bias -1)
    assert next(r for r in written if r["split"] == "val" and r["epoch"] == 2)["selection"] == 0.7


def test_time_to_reach_sums_the_wall_time_up_to_the_first_epoch_at_the_level():
    from teakit.study import time_to_reach
    hist = [{"epoch": e, "step": 10 * (e + 1), "seconds": s, "val": {"agreement": a}}
            for e, (s, a) in enumerate([(2.0, 0.5), (3.0, 0.94), (1.5, 0.96), (1.0, 0.99)])]
    assert time_to_reach(hist, "agreement", 0.95) == {"epoch": 3, "step": 30, "seconds": 6.5}
    assert time_to_reach(hist, "agreement", 0.5) == {"epoch": 1, "step": 10, "seconds": 2.0}
    assert time_to_reach(hist, "agreement", 0.995) is None
    assert time_to_reach(hist, "acc", 0.1) is None   # a key never logged is never reached


def test_curves_command_plots_against_wall_time_and_prints_when_a_level_is_reached(teacher_dir, tmp_path, tea_cli):
    from teakit.checkpoint import load_checkpoint
    from teakit.study import time_to_reach
    run = tmp_path / "run"
    C.distill("colored-digits", teacher_dir, run, cfg=C.distill_config(epochs=2, batch_size=32),
              tea={"feature_weight": 0.0}, data_options={"limit": 64}, progress=False)
    level = max(h["val"]["agreement"] for h in load_checkpoint(run).extra["history"])
    rc, text = tea_cli(["curves", f"TEA={run}", "--out", str(tmp_path / "c.png"), "--x", "seconds",
                        "--keys", "agreement,acc", "--reach", str(level)])
    assert rc == 0 and (tmp_path / "c.png").stat().st_size > 0
    hit = time_to_reach(load_checkpoint(run).extra["history"], "agreement", level)
    assert f"| TEA | {hit['epoch']} | {hit['step']} | {hit['seconds']:.1f} |" in text
    rc, text = tea_cli(["curves", f"TEA={run}", "--out", str(tmp_path / "d.png"), "--reach", "1.01"])
    assert rc == 0 and "| TEA | not reached |" in text


def _probe_rows(variant, per_epoch, seconds_per_epoch):
    """Probe rows: per_epoch = [(ood accuracy, swapped accuracy, agreement on both), ...]."""
    rows = []
    for e, (ood, sw, agr) in enumerate(per_epoch, start=1):
        base = {"variant": variant, "epoch": float(e), "step": 5.0 * e, "seconds": seconds_per_epoch * e,
                "heatmap_loss": None, "selection": None, "worst_group": None}
        rows.append({**base, "split": "val", "accuracy": agr, "agreement": agr, "selection": 1.0 / e})
        rows += [{**base, "split": s, "accuracy": acc, "agreement": agr} for s, acc in (("ood", ood), ("swapped", sw))]
    return rows


def test_time_to_teacher_needs_every_figure_and_the_agreement_and_baselines_are_timed_to_the_same_figures():
    from teakit.study import reach_table, time_to_figures, time_to_teacher
    teacher = {"ood": {"accuracy": 0.95}, "swapped": {"accuracy": 0.90}}
    figures = (("ood", "accuracy"), ("swapped", "accuracy"))
    # default: epoch 1 too low; epoch 2 within 3 points on both (0.93 >= 0.92, 0.88 >= 0.87) at 96 % agreement
    tea = _probe_rows("default", [(0.80, 0.85, 0.90), (0.93, 0.88, 0.96), (0.95, 0.90, 0.97)], 10.0)
    # slow: the figures at epoch 2, but 94 % agreement; epoch 3 has both
    slow = _probe_rows("slow", [(0.80, 0.85, 0.90), (0.93, 0.88, 0.94), (0.93, 0.88, 0.95)], 10.0)
    # feature: epoch 1 has ood but not swapped (0.87 < default's 0.88); epoch 2 has both
    fd = _probe_rows("feature", [(0.93, 0.87, 0.99), (0.94, 0.89, 0.99), (0.96, 0.91, 0.99)], 4.0)
    t = time_to_teacher(tea, teacher, figures)
    assert (t["epoch"], t["step"], t["seconds"]) == (2, 10, 20.0)
    assert time_to_teacher(slow, teacher, figures)["epoch"] == 3
    assert time_to_teacher(tea, teacher, figures, points=1.0)["epoch"] == 3  # 0.93 < 0.95 - 0.01
    assert time_to_teacher(tea, teacher, figures, agreement=0.98) is None
    assert time_to_figures(fd, {("ood", "accuracy"): 0.93, ("swapped", "accuracy"): 0.88})["seconds"] == 8.0
    assert time_to_figures(fd, {("ood", "accuracy"): 0.97}) is None
    lines = reach_table(tea + slow + fd, teacher, figures, baselines=["feature"]).splitlines()
    assert lines[2] == "| teacher | – | 95.0 | 90.0 | – | – |"
    assert lines[3] == "| default | 2 / 10 / 20.0 s | 93.0 | 88.0 | 2 / 10 / 8.0 s | 2.5× |"
    assert lines[4] == "| slow | 3 / 15 / 30.0 s | 93.0 | 88.0 | 2 / 10 / 8.0 s | 3.8× |"
    assert lines[5] == "| feature | 1 / 5 / 4.0 s | 93.0 | 87.0 | – | – |"  # 0.87 >= 0.90 - 0.03


def test_shifted_figures_are_the_benchmarks_and_otherwise_every_split_but_id():
    from teakit.study import shifted_figures
    assert shifted_figures("glyphs-on-places", ["test"]) == (("test", "worst_group"),)
    assert shifted_figures("phantom-xrays", ["id", "swapped", "external"]) == (("external", "accuracy"),
                                                                                ("swapped", "accuracy"))
    assert shifted_figures("folder", ["id", "ood"]) == (("ood", "accuracy"),)
    assert shifted_figures("folder", ["id"]) == (("id", "accuracy"),)


def test_convergence_trains_and_probes_a_baseline_beside_the_variants(teacher_dir, tmp_path):
    from teakit.cli import _baseline_list
    from teakit.study import baseline_setup
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=32, warmup_steps=3, head_lr_scale=10.0)
    b_cfg, key = baseline_setup("feature", 0.016, cfg)
    assert key == "loss" and b_cfg == replace(cfg, lr=0.016, head_lr_scale=1.0)
    assert baseline_setup("kd", None, cfg)[0].lr == 2e-3  # its own `tea study` rate
    for name, match in (("tea", "other than tea"), ("erm", "expected a distillation"), ("kdd", "expected a")):
        with pytest.raises(ValueError, match=match):
            baseline_setup(name, None, cfg)
    with pytest.raises(ValueError, match="must be positive"):
        baseline_setup("kd", 0.0, cfg)
    assert _baseline_list("feature=0.016,kd") == {"feature": 0.016, "kd": None}
    import argparse
    for bad in ("kd,kd", "feature=fast", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            _baseline_list(bad)
    out = tmp_path / "study"
    path = convergence("colored-digits", teacher_dir, out, ["default"], cfg=cfg, data_options={"limit": 64},
                       progress=False, baselines={"kd": None})
    rows = read_curves(path)
    kd_val = [r for r in rows if r["variant"] == "kd" and r["split"] == "val"]
    assert [r["epoch"] for r in kd_val] == [1, 2] and all(r["heatmap_loss"] is None for r in kd_val)
    assert all(r["selection"] > 0 for r in kd_val)  # KD's own validation loss selects
    from teakit.runs import load_model
    assert load_model(out / "kd", "last")[1]["objective"]["name"] == "kd"
    reach = (out / "reach.md").read_text().splitlines()
    assert reach[0].startswith("| run | within 3 points") and "| run ÷ kd (time) |" in reach[0]
    assert [line.split(" | ")[0] for line in reach[2:]] == ["| teacher", "| default", "| kd"]
    table = (out / "study.md").read_text().splitlines()
    assert table[3].startswith("| kd | ") and (out / "study.png").stat().st_size > 10_000
