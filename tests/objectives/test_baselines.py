"""Baseline objectives (teakit.objectives.*) and their registry, on a tiny fixture."""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from teakit.models import SmallCNN
from teakit.objectives.attention_transfer import AttentionTransfer, attention_map
from teakit.objectives.explanation_distill import ExplanationDistillation
from teakit.objectives.feature_distill import FeatureDistillation
from teakit.objectives.group_dro import GroupDRO
from teakit.objectives.irm import IRM, irm_penalty
from teakit.objectives.jtt import JTT, error_set
from teakit.objectives.kd import KD
from teakit.objectives.registry import OBJECTIVES, build_objective
from teakit.objectives.rrr import RRR, rrr_penalty
from teakit.teachers import DebiasedTeacher

K = 4
ERRORS = torch.tensor([True, False, False, True, False, False, False, True])


def make_batch(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 3, 16, 16, generator=g),
            "y": torch.arange(n) % K,
            "mask": torch.rand(n, 1, 16, 16, generator=g) < 0.4,
            "bias": torch.arange(n) % 2,
            "index": torch.arange(n)}


def make_cnn(seed, **kw):
    torch.manual_seed(seed)
    return SmallCNN(num_classes=K, width=4, depth=2, **kw)


@pytest.fixture
def teacher():
    return DebiasedTeacher(make_cnn(1)).freeze()


def rng():
    return torch.Generator().manual_seed(0)


def build(name, teacher):
    kw = {"error_set": ERRORS} if name == "jtt" else {}
    if name == "groupdro":
        kw = {"num_groups": 2 * K}  # (label, bias) pairs, two bias values
    if name == "gals":  # a stand-in attention source: brightness (tests/objectives/test_gals.py has a file one)
        kw = {"attention_model": lambda x, y: x.mean(1, keepdim=True)}
    return build_objective(name, teacher=teacher, num_classes=K, **kw)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_loss_finite_gradients_and_logs(name, teacher):
    student = make_cnn(0)
    obj = build(name, teacher)
    loss, logs = obj(make_batch(), student, rng())
    assert torch.isfinite(loss) and loss.dim() == 0
    loss.backward()
    g = student.trunk[0].weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    assert {"loss", "acc"} <= set(logs)
    assert obj.selection_key in logs
    if OBJECTIVES[name].needs_teacher:
        assert {"agreement", "kl"} <= set(logs)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())
    assert obj.config()["name"] == name
    # validation call: no graph needed, still finite
    vloss, _ = obj(make_batch(1), student, rng(), train=False)
    assert torch.isfinite(vloss)


class Fixed(nn.Module):
    """Returns the same logits for every input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_kd_hand_value():
    T = 3.0
    teacher = DebiasedTeacher(Fixed([0.0, T * math.log(3.0)])).freeze()  # softmax(t/T) = (1/4, 3/4)
    student = Fixed([0.0, 0.0])                                         # softmax = (1/2, 1/2)
    batch = {"x": torch.zeros(2, 3, 4, 4), "y": torch.tensor([0, 1])}
    loss, logs = KD(teacher, temperature=T)(batch, student, rng())
    expected = T * T * (0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logs["acc"].item() == 0.5 and logs["agreement"].item() == 0.0


def test_feature_distillation_zero_for_copy_and_channel_check(teacher):
    student = copy.deepcopy(teacher.classifier).eval().requires_grad_(True)
    loss, _ = FeatureDistillation(teacher)(make_batch(), student, rng())
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    other = make_cnn(0)
    assert FeatureDistillation(teacher)(make_batch(), other, rng())[0].item() > 0.1
    wide = SmallCNN(num_classes=K, width=8, depth=2)
    with pytest.raises(ValueError, match="channel"):
        FeatureDistillation(teacher)(make_batch(), wide, rng())


def test_attention_map_hand_and_zero_for_identical(teacher):
    f = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]], [[3.0, 0.0], [1.0, 1.0]]]])  # (1, 2, 2, 2)
    a = torch.tensor([(1 + 9) / 2, (4 + 0) / 2, (0 + 1) / 2, (1 + 1) / 2])
    assert torch.allclose(attention_map(f), (a / a.norm()).unsqueeze(0))
    student = copy.deepcopy(teacher.classifier).eval().requires_grad_(True)
    loss, _ = AttentionTransfer(teacher)(make_batch(), student, rng())
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    # different spatial sizes (16×16 teacher map vs 8×8 student map) and channel counts
    shallow = DebiasedTeacher(SmallCNN(num_classes=K, width=3, depth=1)).freeze()
    student, batch = make_cnn(0).eval(), make_batch()
    loss, _ = AttentionTransfer(shallow, weight=1000.0)(batch, student, rng())
    S, T = student.trunk(batch["x"]), shallow.classifier.trunk(batch["x"])  # 8×8 and 16×16 maps
    qt = F.normalize(F.interpolate(T.pow(2).mean(1, keepdim=True), size=(8, 8), mode="bilinear").flatten(1))
    hand = 1000.0 / 2 * (attention_map(S) - qt).pow(2).mean()
    assert loss.item() > 0 and loss.item() == pytest.approx(hand.item(), rel=1e-5)


def test_explanation_distillation_zero_for_copy(teacher):
    student = copy.deepcopy(teacher.classifier).eval().requires_grad_(True)
    for method in ("gradxinput", "inputgrad", "gradcam"):
        obj = ExplanationDistillation(teacher, method, classes="top")
        loss, logs = obj(make_batch(), student, rng())
        assert logs["heatmap_loss"].item() == pytest.approx(0.0, abs=1e-5), method
        assert logs["agreement"].item() == 1.0
    obj = ExplanationDistillation(teacher, "gradcam", classes="all")
    loss, _ = obj(make_batch(), make_cnn(0), rng())
    assert torch.isfinite(loss) and obj.num_classes == K
    with pytest.raises(ValueError, match="TEA"):
        ExplanationDistillation(teacher, "lrp")


def test_rrr_penalty_zero_on_foreground_only():
    student, batch = make_cnn(0).eval(), make_batch()
    zero, _ = rrr_penalty(student, batch["x"], torch.ones_like(batch["mask"]))
    assert zero.item() == 0.0
    pos, logits = rrr_penalty(student, batch["x"], batch["mask"])
    assert pos.item() > 0
    loss, logs = RRR(l2_grads=10.0)(batch, student, rng())
    expected = F.cross_entropy(logits, batch["y"]) + 10.0 * pos
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_group_dro_moves_weight_to_worse_group():
    student, batch = make_cnn(0), make_batch()
    obj = GroupDRO(num_groups=2 * K, step_size=0.5, num_classes=K)
    q0 = obj.q.clone()
    loss, _ = obj(batch, student, rng())
    with torch.no_grad():
        ce = F.cross_entropy(student(batch["x"]), batch["y"], reduction="none")
    g = batch["y"] * 2 + batch["bias"]
    L = torch.stack([ce[g == k].mean() if (g == k).any() else torch.tensor(0.0) for k in range(2 * K)])
    present = [k for k in range(2 * K) if (g == k).any()]
    worst = max(present, key=lambda k: L[k])
    best = min(present, key=lambda k: L[k])
    assert obj.q[worst] > q0[worst] and obj.q[worst] > obj.q[best]
    assert obj.q.sum().item() == pytest.approx(1.0)
    # BatchNorm in train mode: recomputed logits match since the batch is the same
    assert loss.item() == pytest.approx((obj.q * L).sum().item(), rel=1e-4)
    state = obj.state_dict()
    fresh = GroupDRO(num_groups=2 * K, num_classes=K)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.q, obj.q)
    q_before = obj.q.clone()
    obj(batch, student, rng(), train=False)
    assert torch.equal(obj.q, q_before)  # validation leaves q alone
    with pytest.raises(ValueError, match="bias"):
        obj({**batch, "bias": batch["bias"] + 5}, student, rng())


def test_irm_penalty_finite_difference_and_optimum():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(6, K, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])

    def risk(s):
        return F.cross_entropy(logits * s, y).item()
    h = 1e-5
    fd = (risk(1 + h) - risk(1 - h)) / (2 * h)
    assert irm_penalty(logits, y).item() == pytest.approx(fd ** 2, rel=1e-5)
    # the CE-optimal scale s*: d/ds CE(s·logits) is increasing (convex in s); bisect for its zero
    lo, hi = 1e-3, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if (risk(mid + h) - risk(mid - h)) > 0:
            hi = mid
        else:
            lo = mid
    assert irm_penalty(logits * lo, y).item() < 1e-12
    assert irm_penalty(logits, y).item() > 1e-6


def test_irm_objective_and_annealing():
    student, batch = make_cnn(0).eval(), make_batch()
    obj = IRM(penalty_weight=100.0, anneal_steps=1)
    loss1, logs1 = obj(batch, student, rng())
    logits = student(batch["x"])
    envs = [batch["bias"] == e for e in (0, 1)]
    risk = torch.stack([F.cross_entropy(logits[s], batch["y"][s]) for s in envs]).mean()
    pen = torch.stack([irm_penalty(logits[s], batch["y"][s]) for s in envs]).mean()
    assert loss1.item() == pytest.approx((risk + pen).item(), rel=1e-5)           # annealing: λ' = 1
    loss2, _ = obj(batch, student, rng())
    assert loss2.item() == pytest.approx(((risk + 100 * pen) / 100).item(), rel=1e-5)
    assert obj.steps == 2 and logs1["irm_penalty"].item() == pytest.approx(pen.item(), rel=1e-5)


def test_jtt_upweights_error_set():
    student, batch = make_cnn(0).eval(), make_batch()
    loss, _ = JTT(ERRORS, upweight=20.0)(batch, student, rng())
    ce = F.cross_entropy(student(batch["x"]), batch["y"], reduction="none")
    w = torch.where(ERRORS, 20.0, 1.0)
    assert loss.item() == pytest.approx(((w * ce).sum() / w.sum()).item(), rel=1e-5)
    vloss, _ = JTT(ERRORS, upweight=20.0)(batch, student, rng(), train=False)
    assert vloss.item() == pytest.approx(ce.mean().item(), rel=1e-5)
    # stage 1 helper: exactly the mistakes, model mode restored
    student.train()

    class Data:
        x, y = batch["x"], batch["y"]
    errs = error_set(student, Data, batch_size=3)
    with torch.no_grad():
        pred = student.eval()(batch["x"]).argmax(1)
    assert errs.dtype == torch.bool and torch.equal(errs, pred != batch["y"])
    with pytest.raises(ValueError, match="bool"):
        JTT(torch.zeros(8))


def test_registry_errors_and_records(teacher):
    for name, info in OBJECTIVES.items():
        obj = build(name, teacher if info.needs_teacher else None)
        assert isinstance(obj, info.cls) and info.description
    assert OBJECTIVES["rrr"].needs_masks and OBJECTIVES["groupdro"].needs_groups
    assert not OBJECTIVES["jtt"].needs_groups and OBJECTIVES["tea"].needs_teacher
    with pytest.raises(ValueError, match="unknown objective"):
        build_objective("nope")
    with pytest.raises(ValueError, match="needs a teacher"):
        build_objective("kd")
    with pytest.raises(ValueError, match="error_set"):
        build_objective("jtt")
    assert build_objective("groupdro", num_classes=10).num_groups == 100


def test_train_objective_choices_are_the_registry_s():
    """`tea train --objective` lists every registered objective without a teacher (the list is written out
    in teakit.cli so that --help needs no torch; this keeps it equal to the registry)."""
    from teakit.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    action = next(a for a in sub.choices["train"]._actions if a.dest == "objective")
    assert sorted(action.choices) == sorted(n for n, info in OBJECTIVES.items() if not info.needs_teacher)


@pytest.mark.parametrize("objective", ["pgi", "gain", "isnet", "gals"])
def test_new_baselines_through_tea_train(objective, tmp_path, tea_cli):
    from teakit.checkpoint import load_checkpoint
    args = ["train", "--dataset", "digits-on-scenes", "--objective", objective, "--limit", "32", "--epochs", "1",
            "--width", "4", "--depth", "2", "--no-progress", "--out", str(tmp_path / "m")]
    if objective == "gals":
        rc, text = tea_cli(args)  # no attention model: refused, with the reason
        assert rc != 0 and "needs a vision-language attention model" in text
        path = tmp_path / "attention.pt"
        torch.jit.script(Brightness()).save(str(path))
        args += ["--attention-model", str(path)]
    else:
        rc, text = tea_cli(args + ["--attention-model", "x.pt"])
        assert rc != 0 and "--attention-model is for --objective gals" in text
    rc, text = tea_cli(args)
    assert rc == 0, text
    config = load_checkpoint(tmp_path / "m").config["objective"]
    assert config["name"] == objective
    if objective == "gals":
        assert config["attention_model"] == str(tmp_path / "attention.pt")


class Brightness(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.mean(1, keepdim=True)


def test_irm_takes_the_environment_part_of_a_group_index():
    """Waterbirds-style groups g = 2y + place: with bias_per_class=2 IRM's environments are the places, each
    holding both classes, so its loss equals the one computed with the places as the bias attribute."""
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    y = torch.tensor([0, 0, 1, 1, 0, 1, 1, 0])
    place = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    x = torch.randn(8, 3, 2, 2)
    by_group = IRM(bias_per_class=2)({"x": x, "y": y, "bias": 2 * y + place}, student, None, train=False)
    by_place = IRM()({"x": x, "y": y, "bias": place}, student, None, train=False)
    by_class = IRM()({"x": x, "y": y, "bias": 2 * y + place}, student, None, train=False)
    assert torch.allclose(by_group[0], by_place[0])
    assert not torch.allclose(by_group[0], by_class[0])
    with pytest.raises(ValueError, match="bias_per_class"):
        IRM(bias_per_class=0)
