"""The training loop, the TEA objective and the commands, end to end on small data."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from teakit import commands as C
from teakit.checkpoint import load_checkpoint
from teakit.objectives.tea import TEA, sample_classes, sample_eps
from teakit.recipe import CNN_DEPTH, FEATURE_LAYER, FEATURE_WEIGHT
from teakit.runs import build_from_spec, load_model
from teakit.train import TrainConfig, epoch_batches, lr_at, make_batch

TEA_BIN = str(Path(sys.executable).parent / "tea")


def test_sample_classes_and_eps_follow_the_recipe():
    g = torch.Generator().manual_seed(0)
    top = torch.randint(0, 10, (20000,), generator=g)
    c = sample_classes(top, 10, 0.5, g)
    same = (c == top).float().mean().item()
    assert abs(same - 0.5) < 0.02
    others = c[c != top]
    counts = torch.bincount(((others - top[c != top]) % 10), minlength=10)
    assert counts[0] == 0 and (counts[1:].float() / counts[1:].sum() - 1 / 9).abs().max() < 0.02
    eps = sample_eps(20000, g)
    assert eps.min() >= 0.01 - 1e-9 and eps.max() <= 0.1 + 1e-9
    assert abs(torch.log10(eps).mean().item() + 1.5) < 0.02  # log-uniform in [-2, -1]


def test_epoch_batches_partition_and_shard():
    one = epoch_batches(100, 10, seed=3, epoch=1)
    assert len(one) == 10 and torch.equal(torch.cat(one).sort().values, torch.arange(100))
    two = [epoch_batches(100, 5, seed=3, epoch=1, rank=r, world=2) for r in range(2)]
    for s in range(10):  # the two ranks' batches together are the single-process batch
        assert torch.equal(torch.cat([two[0][s], two[1][s]]).sort().values, one[s].sort().values)
    assert not torch.equal(torch.cat(epoch_batches(100, 10, 3, 2)), torch.cat(one))


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, schedule="cosine")
    assert lr_at(0, 110, cfg) == pytest.approx(0.1)
    assert lr_at(10, 110, cfg) == pytest.approx(1.0)
    assert lr_at(60, 110, cfg) == pytest.approx(0.5)
    assert lr_at(110, 110, cfg) == pytest.approx(0.0)


def test_tea_objective_live_and_cached_agree(teacher_dir, tmp_path, make_tiny_student):
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    cache, logits = C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    idx = torch.arange(0, 16)
    batch = make_batch(data, idx, "cpu")
    student = make_tiny_student()
    obj = TEA(teacher, 10, classes="top", cache=cache, cache_logits=logits)
    T, t_logits, target, eps, T_f = obj._teacher(batch, torch.Generator().manual_seed(0), use_cache=True)
    assert T_f is None  # no feature-layer relevance unless asked for
    assert torch.equal(target, t_logits.argmax(1))
    live = teacher.heatmap(batch["x"], target, eps)
    assert torch.allclose(T, live, rtol=2e-3, atol=2e-3 * live.abs().max().item())
    loss, logs = obj(batch, student, torch.Generator().manual_seed(0))
    loss.backward()
    assert student[0].weight.grad.abs().sum() > 0
    assert {"heatmap_loss", "acc", "agreement", "kl"} <= set(logs)
    # "all" matches every class of every image
    obj_all = TEA(teacher, 10, classes="all")
    T, _, target, eps, _ = obj_all._teacher(batch, torch.Generator().manual_seed(0), use_cache=False)
    assert T.shape == (160, 3, 32, 32) and torch.equal(target.view(10, 16), torch.arange(10)[:, None].expand(10, 16))
    assert torch.equal(eps.view(10, 16)[0], eps.view(10, 16)[9])


def test_validation_reuses_the_teachers_maps_exactly(teacher_dir, make_tiny_student):
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    batch = make_batch(data, torch.arange(0, 16), "cpu")
    student = make_tiny_student()
    calls = []
    obj = TEA(teacher, 10)
    live = obj._teacher
    obj._teacher = lambda *a, **k: calls.append(1) or live(*a, **k)
    seeded = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    first = obj(batch, student, seeded(5), train=False)[1]
    again = obj(batch, student, seeded(5), train=False)[1]
    assert len(calls) == 1 and all(torch.equal(first[k], again[k]) for k in first)
    fresh = TEA(teacher, 10)(batch, student, seeded(5), train=False)[1]
    assert all(torch.equal(first[k], fresh[k]) for k in first)
    obj(batch, student, seeded(6), train=False)  # other draws: computed, not reused
    obj(make_batch(data, torch.arange(16, 32), "cpu"), student, seeded(5), train=False)
    assert len(calls) == 3
    obj(batch, student, seeded(5))  # training steps never reuse
    assert len(calls) == 4


def test_feature_weight_adds_the_loss_between_feature_layer_relevances(teacher_dir, make_tiny_student):
    import copy

    from teakit.explain import explain
    from teakit.objectives.heatmap_loss import heatmap_loss
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)  # debiased: its classifier sees x itself
    data = C.load_data("colored-digits", limit=64)["train"]
    batch = make_batch(data, torch.arange(0, 16), "cpu")
    seeded = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    obj = TEA(teacher, 10, feature_weight=2.0)
    # a student equal to the teacher's classifier (same BatchNorm statistics) matches both maps exactly
    twin = copy.deepcopy(teacher.classifier).eval().requires_grad_(True)
    _, logs = obj(batch, twin, seeded(0))
    assert logs["heatmap_loss"] < 1e-5 and logs["feature_relevance_loss"] < 1e-5
    # another student: loss = input-map loss + 2 · the loss between the two networks' feature-layer relevances
    torch.manual_seed(0)
    student = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {"depth": CNN_DEPTH}})
    loss, logs = obj(batch, student, seeded(1))
    base_loss, base_logs = TEA(teacher, 10)(batch, student, seeded(1))
    assert torch.allclose(logs["heatmap_loss"], base_logs["heatmap_loss"])  # same draws, same input maps
    assert torch.allclose(loss, base_loss + 2.0 * logs["feature_relevance_loss"])
    _, _, target, eps, _ = TEA(teacher, 10)._teacher(batch, seeded(1), use_cache=False)
    S_f = explain(student, batch["x"], target, eps=eps, feature_layer=FEATURE_LAYER)[1]
    T_f = explain(teacher.classifier, batch["x"], target, eps=eps, feature_layer=FEATURE_LAYER)[1]
    assert S_f.shape == T_f.shape == (16, 128, 8, 8)
    assert torch.allclose(logs["feature_relevance_loss"], heatmap_loss(S_f, T_f, pyramid=False), rtol=1e-4)
    assert logs["feature_relevance_loss"] > 0.1
    loss.backward()
    assert student.trunk[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"the student: feature_layer=-2: the model computes 1 4-D ReLU outputs.*"
                                         r"--feature-weight 0"):
        obj(batch, make_tiny_student(), seeded(0))  # one ReLU layer
    narrow = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {"depth": CNN_DEPTH, "width": 8}})
    with pytest.raises(ValueError, match=r"shape \(16, 64, 8, 8\), the teacher's \(16, 128, 8, 8\).*--feature-weight 0"):
        obj(batch, narrow, seeded(0))
    with pytest.raises(ValueError, match="live teacher"):
        TEA(teacher, 10, feature_weight=1.0, cache=object())
    with pytest.raises(ValueError, match="feature_weight=-1"):
        TEA(teacher, 10, feature_weight=-1.0)
    assert TEA(teacher, 10, feature_weight=0.5).config()["feature_weight"] == 0.5


def test_validation_memo_counts_the_hidden_layer_maps(teacher_dir, make_tiny_student, monkeypatch):
    import teakit.objectives.tea as tea_module
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    batch = make_batch(data, torch.arange(0, 16), "cpu")
    monkeypatch.setattr(tea_module, "VAL_MEMO_ELEMENTS", 16 * 3 * 32 * 32 + 100)  # room for input maps only
    student = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {"depth": CNN_DEPTH}})
    for weight, kept in ((0.0, 1), (1.0, 0)):
        obj = TEA(teacher, 10, feature_weight=weight)
        obj(batch, student, torch.Generator().manual_seed(5), train=False)
        assert len(obj.__dict__.get("_val_memo", {})) == kept, weight


def test_cache_for_another_teacher_is_refused(teacher_dir, tmp_path):
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=16)["train"]
    C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    with torch.no_grad():
        teacher.classifier.head.weight.add_(0.01)
    with pytest.raises(ValueError, match="teacher_hash"):
        C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)


ENV = dict(os.environ, OMP_NUM_THREADS="1")  # same thread count in every run: same float reductions


def _run(args, **kw):
    return subprocess.run([TEA_BIN, *args], capture_output=True, text=True, timeout=600, env=ENV, **kw)


@pytest.mark.parametrize("ema", ["0", "0.9"])
def test_killed_distill_resumes_bit_identical(teacher_dir, tmp_path, ema):
    common = ["distill", "--dataset", "colored-digits", "--teacher", str(teacher_dir), "--limit", "192",
              "--epochs", "3", "--batch-size", "32", "--width", "8", "--feature-weight", "0", "--no-progress", "--seed", "5",
              "--ema", ema]
    full = _run([*common, "--out", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([TEA_BIN, *common, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 300
    while not (out / "last.json").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((out / "last.json").read_text())["epoch"]
    assert killed_at < 2, "the run finished before it could be killed"
    resumed = _run([*common, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout + resumed.stderr
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(out)
    assert a.epoch == b.epoch == 2
    assert any(k.startswith("ema.") for k in a.model_state) == (ema != "0")
    for k in a.model_state:
        assert torch.equal(a.model_state[k], b.model_state[k]), k
    # history: every epoch once, the same numbers
    assert [h["val"] for h in a.extra["history"]] == [h["val"] for h in b.extra["history"]]


def test_evaluate_writes_eval_json_with_agreement(teacher_dir, tmp_path):
    r = _run(["distill", "--dataset", "colored-digits", "--teacher", str(teacher_dir), "--limit", "64",
              "--epochs", "1", "--width", "8", "--feature-weight", "0", "--no-progress", "--out", str(tmp_path / "s")])
    assert r.returncode == 0, r.stderr
    assert "agreement=" in r.stdout and "heatmap_loss=" in r.stdout and "acc=" in r.stdout
    r = _run(["evaluate", "--model", str(tmp_path / "s"), "--json", str(tmp_path / "eval.json")])
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "eval.json").read_text())
    for split in ("id", "ood", "swapped"):
        assert 0 <= res["splits"][split]["accuracy"] <= 1
        assert 0 <= res["splits"][split]["agreement_with_teacher"] <= 1
    r = _run(["explain", "--dataset", "colored-digits", "--model", str(tmp_path / "s"), "--out",
              str(tmp_path / "figs"), "--n", "3"])
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "figs" / "explain-swapped.png").stat().st_size > 1000


def _main(args, capsys):
    from teakit.cli import main
    try:
        rc = main(args)
    except SystemExit as e:  # argparse errors and --help
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_cli_errors_and_config(tmp_path, teacher_dir, capsys):
    rc, text = _main(["distill", "--dataset", "colored-digits", "--teacher", str(tmp_path / "nope"), "--out",
                      str(tmp_path / "x"), "--no-progress"], capsys)
    assert rc != 0 and "not a teacher folder" in text
    rc, text = _main(["distill", "--dataset", "colored-digits", "--teacher", "t", "--out", "o", "--bogus", "1"],
                     capsys)
    assert rc != 0 and "unrecognized arguments: --bogus" in text
    for bad in ("0", "two", "-1"):
        rc, text = _main(["demo", "--jobs", bad], capsys)
        assert rc != 0 and "--jobs: expected a positive whole number" in text, bad
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: colored-digits\nepochs: 1\nlimit: 32\nwidth: 4\nno_progress: true\n"
                   f"teacher: {teacher_dir}\n")
    # the recipe matches a hidden layer's relevance too: a width-4 student of a width-16 teacher is told what to do
    rc, text = _main(["distill", "--config", str(cfg), "--out", str(tmp_path / "f")], capsys)
    assert rc != 0 and "same width and depth needed" in text and "--feature-weight 0" in text
    rc, text = _main(["distill", "--config", str(cfg), "--cache", "--out", str(tmp_path / "f")], capsys)
    assert rc != 0 and "drop --cache, or pass --feature-weight 0" in text
    assert not (tmp_path / "f").exists()  # refused before anything was built
    rc, text = _main(["distill", "--config", str(cfg), "--width", "16", "--out", str(tmp_path / "f")], capsys)
    assert rc == 0 and "feature_relevance_loss=" in text, text
    objective = load_checkpoint(tmp_path / "f").config["objective"]
    assert (objective["feature_weight"], objective["feature_layer"]) == (FEATURE_WEIGHT, FEATURE_LAYER)
    cfg.write_text(cfg.read_text() + "feature_weight: 0\n")  # the input maps alone
    rc, text = _main(["distill", "--config", str(cfg), "--out", str(tmp_path / "y")], capsys)
    assert rc == 0, text
    ck = load_checkpoint(tmp_path / "y")
    assert ck.config["model"]["kwargs"]["width"] == 4 and ck.config["train"]["epochs"] == 1
    assert ck.config["model"]["kwargs"]["depth"] == CNN_DEPTH  # the recipe's depth, recorded
    assert ck.config["train"]["head_lr_scale"] == 10.0  # TEA's default head learning rate
    assert ck.config["objective"]["feature_weight"] == 0.0 and "feature_relevance_loss" not in text
    rc, text = _main(["distill", "--config", str(cfg), "--head-lr-scale", "2", "--out", str(tmp_path / "y2")], capsys)
    assert rc == 0 and load_checkpoint(tmp_path / "y2").config["train"]["head_lr_scale"] == 2.0
    for bad in ("1,x", "0.5", "1,-1", "flat"):
        rc, text = _main(["distill", "--config", str(cfg), "--bias-prior", bad, "--out", str(tmp_path / "p")], capsys)
        assert rc != 0 and "--bias-prior: expected uniform, none or comma-separated positive" in text, bad
    rc, text = _main(["distill", "--config", str(cfg), "--bias-prior", "1,1", "--out", str(tmp_path / "p")], capsys)
    assert rc != 0 and "expected 10 positive class frequencies" in text  # colored-digits has 10 classes
    cfg.write_text("dataset: colored-digits\nepochz: 1\n")
    rc, text = _main(["distill", "--config", str(cfg), "--out", str(tmp_path / "z")], capsys)
    assert rc != 0 and "unknown option 'epochz'" in text
    for cmd in ("train-teacher", "train", "distill", "evaluate", "explain", "bench", "demo"):
        rc, text = _main([cmd, "--help"], capsys)
        assert rc == 0 and "usage: tea " + cmd in text


@pytest.mark.parametrize("objective", ["rrr", "groupdro", "irm", "isnet"])
def test_train_baselines_through_the_cli(objective, tmp_path, capsys):
    rc, text = _main(["train", "--dataset", "colored-digits", "--objective", objective, "--limit", "64",
                      "--epochs", "1", "--width", "4", "--no-progress", "--out", str(tmp_path / "m")], capsys)
    assert rc == 0, text
    assert load_checkpoint(tmp_path / "m").config["objective"]["name"] == objective


@pytest.mark.parametrize("objective", ["kd", "feature", "attention", "gradcam"])
def test_distill_baselines_through_the_cli(objective, teacher_dir, tmp_path, capsys):
    rc, text = _main(["distill", "--dataset", "colored-digits", "--objective", objective, "--teacher",
                      str(teacher_dir), "--limit", "64", "--epochs", "1", "--no-progress",
                      "--out", str(tmp_path / "m")], capsys)
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


def test_a_students_initial_weights_are_its_own_unless_shared():
    """init="own": not the weights a teacher built from the same seed starts with, the same for the same
    seed, other for another, and the global random state is left alone; init="shared" draws from it."""
    from teakit.runs import build_student, default_spec
    spec = default_spec(10)

    def teacher_like(seed):  # how the loop builds a model: seed everything, then build
        torch.manual_seed(seed)
        return build_from_spec(spec).head.weight

    torch.manual_seed(0)
    state = torch.get_rng_state()
    own = build_student(spec, 0).head.weight
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.allclose(own, teacher_like(0))
    assert torch.equal(own, build_student(spec, 0).head.weight)
    assert not torch.allclose(own, build_student(spec, 1).head.weight)
    torch.manual_seed(0)
    assert torch.equal(build_student(spec, 0, init="shared").head.weight, teacher_like(0))
    with pytest.raises(ValueError, match="student init 'mine'"):
        build_student(spec, 0, init="mine")


def test_default_cnn_has_the_recipes_depth_and_old_configs_keep_theirs(teacher_dir):
    # the Python API (here the teacher fixture, built without a spec) writes the depth into the config
    model, config = load_model(teacher_dir / "classifier")
    assert config["model"]["kwargs"] == {"depth": CNN_DEPTH}
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == CNN_DEPTH
    # a config saved before the depth was recorded still builds the depth-4 network it was trained as
    old = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {}})
    assert CNN_DEPTH != 4 and sum(isinstance(m, torch.nn.Conv2d) for m in old.modules()) == 4


def test_jtt_needs_stage1(tmp_path, capsys):
    rc, text = _main(["train", "--dataset", "colored-digits", "--objective", "jtt", "--limit", "32",
                      "--epochs", "1", "--no-progress", "--out", str(tmp_path / "j")], capsys)
    assert rc != 0 and "stage1" in text


def test_ema_update_and_swap():
    from teakit.train import _EMA
    m = torch.nn.Linear(2, 1)
    ema = _EMA(m, 0.9)
    start = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)
    assert torch.allclose(ema.avg["weight"], start + 0.1)
    with ema.swapped_in(m):
        assert torch.allclose(m.weight, start + 0.1)
    assert torch.allclose(m.weight, start + 1.0)
    with pytest.raises(ValueError, match="ema"):
        ema.load({k: v for k, v in m.state_dict().items()})
