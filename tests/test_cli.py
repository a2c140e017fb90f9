"""The `tea` command line: errors, --config files, baselines through `tea train` / `tea distill`."""

import pytest
import torch

from teakit.checkpoint import load_checkpoint
from teakit.config import CNN_DEPTH, TEAConfig
from teakit.runs import load_model


def test_cli_errors_and_config(tmp_path, teacher_dir, capsys, tea_cli):
    rc, text = tea_cli(["distill", "--dataset", "colored-digits", "--teacher", str(tmp_path / "nope"), "--out",
                      str(tmp_path / "x"), "--no-progress"])
    assert rc != 0 and "not a teacher folder" in text
    rc, text = tea_cli(["distill", "--dataset", "colored-digits", "--teacher", "t", "--out", "o", "--bogus", "1"])
    assert rc != 0 and "unrecognized arguments: --bogus" in text
    for bad in ("0", "two", "-1"):
        rc, text = tea_cli(["demo", "--jobs", bad])
        assert rc != 0 and "--jobs: expected a positive whole number" in text, bad
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: colored-digits\nepochs: 1\nlimit: 32\nwidth: 4\nno_progress: true\n"
                   f"teacher: {teacher_dir}\n")
    # the recipe matches a hidden layer's relevance too: a width-4 student of a width-16 teacher compares it summed
    # over channels; channel by channel it is told what to do
    rc, text = tea_cli(["distill", "--config", str(cfg), "--out", str(tmp_path / "narrow")])
    assert rc == 0 and "feature_relevance_loss=" in text, text
    assert load_checkpoint(tmp_path / "narrow").config["objective"]["feature_match"] == "auto"
    rc, text = tea_cli(["distill", "--config", str(cfg), "--feature-match", "channels", "--out", str(tmp_path / "f")])
    assert rc != 0 and "the teacher's (" in text and "'auto' or 'summed'" in text
    rc, text = tea_cli(["distill", "--config", str(cfg), "--cache", "--out", str(tmp_path / "f")])
    assert rc != 0 and "drop --cache, or pass --feature-weight 0" in text
    assert not (tmp_path / "f").exists()  # refused before anything was built
    rc, text = tea_cli(["distill", "--config", str(cfg), "--precision", "bf16-mixed", "--out", str(tmp_path / "f")])
    assert rc != 0 and "objective 'tea' trains on explanations" in text and not (tmp_path / "f").exists()
    rc, text = tea_cli(["distill", "--config", str(cfg), "--width", "16", "--out", str(tmp_path / "f")])
    assert rc == 0 and "feature_relevance_loss=" in text, text
    objective = load_checkpoint(tmp_path / "f").config["objective"]
    assert (objective["feature_weight"], objective["feature_layer"]) == (TEAConfig.feature_weight, TEAConfig.feature_layer)
    cfg.write_text(cfg.read_text() + "feature_weight: 0\n")  # the input maps alone
    rc, text = tea_cli(["distill", "--config", str(cfg), "--out", str(tmp_path / "y")])
    assert rc == 0, text
    ck = load_checkpoint(tmp_path / "y")
    assert ck.config["model"]["kwargs"]["width"] == 4 and ck.config["train"]["epochs"] == 1
    assert ck.config["model"]["kwargs"]["depth"] == CNN_DEPTH  # the recipe's depth, recorded
    assert ck.config["train"]["head_lr_scale"] == 10.0  # TEA's default head learning rate
    assert ck.config["objective"]["feature_weight"] == 0.0 and "feature_relevance_loss" not in text
    rc, text = tea_cli(["distill", "--config", str(cfg), "--head-lr-scale", "2", "--out", str(tmp_path / "y2")])
    assert rc == 0 and load_checkpoint(tmp_path / "y2").config["train"]["head_lr_scale"] == 2.0
    for bad in ("1,x", "0.5", "1,-1", "flat"):
        rc, text = tea_cli(["distill", "--config", str(cfg), "--bias-prior", bad, "--out", str(tmp_path / "p")])
        assert rc != 0 and "--bias-prior: expected uniform, teacher, teacher-decisions, none or comma-separated positive" in text, bad
    rc, text = tea_cli(["distill", "--config", str(cfg), "--bias-prior", "1,1", "--out", str(tmp_path / "p")])
    assert rc != 0 and "expected 10 positive class frequencies" in text  # colored-digits has 10 classes
    cfg.write_text("dataset: colored-digits\nepochz: 1\n")
    rc, text = tea_cli(["distill", "--config", str(cfg), "--out", str(tmp_path / "z")])
    assert rc != 0 and "unknown option 'epochz'" in text
    for cmd in ("train-teacher", "train", "distill", "evaluate", "explain", "bench", "demo"):
        rc, text = tea_cli([cmd, "--help"])
        assert rc == 0 and "usage: tea " + cmd in text


@pytest.mark.parametrize("objective", ["rrr", "groupdro", "irm", "isnet"])
def test_train_baselines_through_the_cli(objective, tmp_path, capsys, tea_cli):
    extra = ["--isnet-classes", "random"] if objective == "isnet" else []  # the Stochastic ISNet
    rc, text = tea_cli(["train", "--dataset", "colored-digits", "--objective", objective, "--limit", "64",
                      "--epochs", "1", "--width", "4", "--no-progress", "--out", str(tmp_path / "m")] + extra)
    assert rc == 0, text
    config = load_checkpoint(tmp_path / "m").config["objective"]
    assert config["name"] == objective and config.get("classes") == ("random" if extra else None)
    if objective == "rrr":
        rc, text = tea_cli(["train", "--dataset", "colored-digits", "--objective", "rrr", "--isnet-classes", "all",
                            "--out", str(tmp_path / "r")])
        assert rc != 0 and "--isnet-classes is for --objective isnet" in text


@pytest.mark.parametrize("objective", ["kd", "feature", "attention", "gradcam"])
def test_distill_baselines_through_the_cli(objective, teacher_dir, tmp_path, capsys, tea_cli):
    rc, text = tea_cli(["distill", "--dataset", "colored-digits", "--objective", objective, "--teacher",
                      str(teacher_dir), "--limit", "64", "--epochs", "1", "--no-progress",
                      "--out", str(tmp_path / "m")])
    assert rc == 0, text
    assert "agreement=" in text
    # the heatmap objectives get TEA's 10x head learning rate by default, the output/feature ones 1x
    config = load_checkpoint(tmp_path / "m").config
    assert config["train"]["head_lr_scale"] == (10.0 if objective == "gradcam" else 1.0)
    # a loss that cannot train a head (feature, attention) gets the teacher's, frozen; the others train their own
    headless = objective in ("feature", "attention")
    assert config["copy_head"] is headless and config["student_init"] == "own"
    student, _ = load_model(tmp_path / "m", "last")
    from teakit.runs import load_teacher
    assert torch.equal(student.head.weight, load_teacher(teacher_dir).classifier.head.weight) is headless


def test_jtt_needs_stage1(tmp_path, capsys, tea_cli):
    rc, text = tea_cli(["train", "--dataset", "colored-digits", "--objective", "jtt", "--limit", "32",
                      "--epochs", "1", "--no-progress", "--out", str(tmp_path / "j")])
    assert rc != 0 and "stage1" in text
