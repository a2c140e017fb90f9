"""The training loop (teakit.train): batches, learning-rate schedule, head learning rate, EMA, bit-identical resume."""
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
from teakit.train import TrainConfig, epoch_batches, lr_at

TEA_BIN = str(Path(sys.executable).parent / "tea")


ENV = dict(os.environ, OMP_NUM_THREADS="1")  # same thread count in every run: same float reductions


def _run(args, **kw):
    return subprocess.run([TEA_BIN, *args], capture_output=True, text=True, timeout=600, env=ENV, **kw)


def test_epoch_batches_partition_and_shard():
    one = epoch_batches(100, 10, seed=3, epoch=1)
    assert len(one) == 10 and torch.equal(torch.cat(one).sort().values, torch.arange(100))
    two = [epoch_batches(100, 5, seed=3, epoch=1, rank=r, world=2) for r in range(2)]
    for s in range(10):  # the two ranks' batches together are the single-process batch
        assert torch.equal(torch.cat([two[0][s], two[1][s]]).sort().values, one[s].sort().values)
    assert not torch.equal(torch.cat(epoch_batches(100, 10, 3, 2)), torch.cat(one))


def test_logged_means_weigh_batches_and_skip_steps_without_the_key():
    from teakit.train import _Mean
    m = _Mean()
    m.add({"loss": 1.0, "heatmap_loss": 2.0}, 10)
    m.add({"loss": 3.0}, 30)  # a step that does not log the heatmap loss (TEA's input_map_every)
    assert m.result() == pytest.approx({"loss": 2.5, "heatmap_loss": 2.0})


def test_lr_schedule():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, schedule="cosine")
    assert lr_at(0, 110, cfg) == pytest.approx(0.1)
    assert lr_at(10, 110, cfg) == pytest.approx(1.0)
    assert lr_at(60, 110, cfg) == pytest.approx(0.5)
    assert lr_at(110, 110, cfg) == pytest.approx(0.0)


@pytest.mark.parametrize("ema", ["0", pytest.param("0.9", marks=pytest.mark.slow)])  # the EMA twin: make test-all
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


def test_head_lr_scale_gives_the_head_its_own_learning_rate(tmp_path):
    from teakit.checkpoint import load_checkpoint
    from teakit.models import build_model
    from teakit.train import make_optimizer

    model = build_model("cnn", 10, width=4)
    groups = make_optimizer(model, TrainConfig(head_lr_scale=10.0)).param_groups
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0]
    assert {id(p) for p in groups[1]["params"]} == {id(model.head.weight), id(model.head.bias)}
    assert len(make_optimizer(model, TrainConfig()).param_groups) == 1
    with pytest.raises(ValueError, match="head_lr_scale"):
        TrainConfig(head_lr_scale=0)
    # in the loop: the schedule's learning rate, times the group's scale
    C.train("colored-digits", "erm", tmp_path / "r", cfg=TrainConfig(epochs=1, lr=1e-3, schedule="constant",
                                                                     head_lr_scale=10.0),
            data_options={"limit": 64}, progress=False)
    saved = load_checkpoint(tmp_path / "r", "last").optimizer_state["param_groups"]
    assert [g["lr"] for g in saved] == pytest.approx([1e-3, 1e-2])


def test_half_precision_is_refused_for_objectives_that_train_on_explanations(tmp_path):
    from teakit import commands
    from teakit.objectives.registry import OBJECTIVES
    from teakit.train import check_precision
    on_explanations = {name for name, info in OBJECTIVES.items() if info.cls.explains}
    assert on_explanations == {"tea", "gradxinput", "inputgrad", "gradcam", "rrr", "isnet", "gain", "gals"}
    for precision in ("bf16-mixed", "16-mixed", "bf16-true"):
        with pytest.raises(ValueError, match=f"--precision {precision}: objective 'rrr' trains on explanations"):
            check_precision("rrr", True, {"precision": precision})
        check_precision("erm", False, {"precision": precision})  # no explanation: the user's choice
    check_precision("tea", True, {"precision": "32-true"})
    check_precision("tea", True, None)  # the default, float32
    with pytest.raises(ValueError, match="objective 'isnet' trains on explanations"):
        commands.train("colored-digits", "isnet", tmp_path / "run", data_options={"limit": 16},
                       fabric={"precision": "bf16-mixed"}, progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    # the Python API too (teakit.fit_model), before any data is touched
    from teakit.models import SmallCNN
    from teakit.objectives.isnet import ISNet
    from teakit.train import fit_model
    with pytest.raises(ValueError, match="objective 'isnet' trains on explanations"):
        fit_model(SmallCNN(num_classes=2, width=4), ISNet(), None, None, tmp_path / "api",
                  fabric={"precision": "bf16-mixed"})
    assert not (tmp_path / "api").exists()


def test_the_objective_hears_of_every_epoch_before_its_first_step_also_after_a_resume(tmp_path):
    from teakit.data.load import load_data
    from teakit.models import build_model
    from teakit.objectives.erm import ERM
    from teakit.train import fit_model

    class Heard(ERM):
        def __init__(self):
            super().__init__()
            self.events = []

        def before_epoch(self, epoch, epochs):
            self.events.append(("epoch", epoch, epochs))

        def __call__(self, batch, student, rng, train=True):
            if train:
                self.events.append(("step",))
            return super().__call__(batch, student, rng, train)

    data = load_data("colored-digits", limit=64)
    obj = Heard()
    cfg = TrainConfig(epochs=2, batch_size=32)
    fit_model(build_model("cnn", 10, width=4), obj, data["train"], data["val"], tmp_path, cfg, progress=False)
    assert obj.events == [("epoch", 0, 2), ("step",), ("step",), ("epoch", 1, 2), ("step",), ("step",)]
    obj.events.clear()  # two more epochs, resumed after the second
    fit_model(build_model("cnn", 10, width=4), obj, data["train"], data["val"], tmp_path,
              TrainConfig(epochs=4, batch_size=32), resume=True, progress=False)
    assert [e for e in obj.events if e[0] == "epoch"] == [("epoch", 2, 4), ("epoch", 3, 4)]
