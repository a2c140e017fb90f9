"""The TEA objective (teakit.objectives.tea): ε and class draws, live and cached teacher maps, the hidden-layer
relevance term, validation reuse, shift, pair mode and the student's BatchNorm mode."""

import pytest
import torch

from teakit import commands as C
from teakit.config import CNN_DEPTH, TEAConfig
from teakit.data.augment import (
    permute_channels,
    random_channel_orders,
    random_shifts,
    translate,
)
from teakit.objectives.sampling import sample_classes, sample_eps
from teakit.objectives.tea import TEA
from teakit.runs import build_from_spec
from teakit.train import make_batch


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


def test_tea_objective_live_and_cached_agree(teacher_dir, tmp_path, make_tiny_student):
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    cache, logits = C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    idx = torch.arange(0, 16)
    batch = make_batch(data, idx, "cpu")
    student = make_tiny_student()
    obj = TEA(teacher, 10, classes="top", cache=cache, cache_logits=logits, feature_weight=0.0)
    T, t_logits, target, eps, T_f = obj.teacher_maps(batch, torch.Generator().manual_seed(0))
    assert T_f is None  # no feature-layer relevance unless asked for
    assert torch.equal(target, t_logits.argmax(1))
    live = teacher.heatmap(batch["x"], target, eps)
    assert torch.allclose(T, live, rtol=2e-3, atol=2e-3 * live.abs().max().item())
    loss, logs = obj(batch, student, torch.Generator().manual_seed(0))
    loss.backward()
    assert student[0].weight.grad.abs().sum() > 0
    assert {"heatmap_loss", "acc", "agreement", "kl"} <= set(logs)
    # "all" matches every class of every image
    obj_all = TEA(teacher, 10, classes="all", feature_weight=0.0)
    T, _, target, eps, _ = obj_all.teacher_maps(batch, torch.Generator().manual_seed(0))
    assert T.shape == (160, 3, 32, 32) and torch.equal(target.view(10, 16), torch.arange(10)[:, None].expand(10, 16))
    assert torch.equal(eps.view(10, 16)[0], eps.view(10, 16)[9])


def test_validation_reuses_the_teachers_maps_exactly(teacher_dir, make_tiny_student, monkeypatch):
    import teakit.objectives.tea as tea_module
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    batch = make_batch(data, torch.arange(0, 16), "cpu")
    student = make_tiny_student()
    calls = []
    obj = TEA(teacher, 10, feature_weight=0.0)
    live = tea_module.live_maps
    monkeypatch.setattr(tea_module, "live_maps", lambda *a, **k: calls.append(1) or live(*a, **k))
    seeded = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    first = obj(batch, student, seeded(5), train=False)[1]
    again = obj(batch, student, seeded(5), train=False)[1]
    assert len(calls) == 1 and all(torch.equal(first[k], again[k]) for k in first)
    fresh = TEA(teacher, 10, feature_weight=0.0)(batch, student, seeded(5), train=False)[1]  # its own memo
    assert all(torch.equal(first[k], fresh[k]) for k in first) and len(calls) == 2
    obj(batch, student, seeded(6), train=False)  # other draws: computed, not reused
    obj(make_batch(data, torch.arange(16, 32), "cpu"), student, seeded(5), train=False)
    assert len(calls) == 4
    obj(batch, student, seeded(5))  # training steps never reuse
    assert len(calls) == 5


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
    # a student equal to the teacher's classifier (same BatchNorm statistics) matches both maps, up to
    # float32 rounding (the frozen teacher explains a copy with its BatchNorm folded into the convolutions)
    twin = copy.deepcopy(teacher.classifier).eval().requires_grad_(True)
    _, logs = obj(batch, twin, seeded(0))
    assert logs["heatmap_loss"] < 1e-4 and logs["feature_relevance_loss"] < 1e-4
    # another student: loss = input-map loss + 2 · the loss between the two networks' feature-layer relevances
    torch.manual_seed(0)
    student = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {"depth": CNN_DEPTH}})
    loss, logs = obj(batch, student, seeded(1))
    base_loss, base_logs = TEA(teacher, 10, feature_weight=0.0)(batch, student, seeded(1))
    assert torch.allclose(logs["heatmap_loss"], base_logs["heatmap_loss"])  # same draws, same input maps
    assert torch.allclose(loss, base_loss + 2.0 * logs["feature_relevance_loss"])
    _, _, target, eps, _ = TEA(teacher, 10, feature_weight=0.0).teacher_maps(batch, seeded(1))
    S_f = explain(student, batch["x"], target, eps=eps, feature_layer=TEAConfig.feature_layer)[1]
    T_f = explain(teacher.classifier, batch["x"], target, eps=eps, feature_layer=TEAConfig.feature_layer)[1]
    assert S_f.shape == T_f.shape == (16, 128, 8, 8)
    assert torch.allclose(logs["feature_relevance_loss"], heatmap_loss(S_f, T_f, pyramid=False), rtol=1e-4)
    assert logs["feature_relevance_loss"] > 0.1
    loss.backward()
    assert student.trunk[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"the student: feature_layer=-2: the model computes 1 4-D ReLU outputs.*"
                                         r"--feature-weight 0"):
        obj(batch, make_tiny_student(), seeded(0))  # one ReLU layer
    # a narrower student: its relevance is compared summed over channels (feature_match "auto")
    narrow = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {"depth": CNN_DEPTH, "width": 8}})
    loss, logs = obj(batch, narrow, seeded(1))
    S_f = explain(narrow, batch["x"], target, eps=eps, feature_layer=TEAConfig.feature_layer)[1]
    assert S_f.shape == (16, 64, 8, 8)
    summed = heatmap_loss(S_f.sum(1, keepdim=True), T_f.sum(1, keepdim=True), pyramid=False)
    assert torch.allclose(logs["feature_relevance_loss"], summed, rtol=1e-4)
    with pytest.raises(ValueError, match=r"shape \(16, 64, 8, 8\), the teacher's \(16, 128, 8, 8\).*'channels'"):
        TEA(teacher, 10, feature_weight=2.0, feature_match="channels")(batch, narrow, seeded(0))
    with pytest.raises(ValueError, match="live teacher"):
        TEA(teacher, 10, feature_weight=1.0, cache=object())
    with pytest.raises(ValueError, match="feature_weight=-1"):
        TEA(teacher, 10, feature_weight=-1.0)
    assert TEA(teacher, 10, feature_weight=0.5).config()["feature_weight"] == 0.5


def _seeded(seed):
    return torch.Generator().manual_seed(seed)


def _teacher_batch_and_student(teacher_dir):
    """The test teacher, a batch of 16 colored-digits training images and a fresh student of the commands'
    depth (seed 0)."""
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)
    batch = make_batch(C.load_data("colored-digits", limit=64)["train"], torch.arange(0, 16), "cpu")
    torch.manual_seed(0)
    return teacher, batch, build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {"depth": CNN_DEPTH}})


def test_several_feature_layers_add_the_mean_of_their_losses(teacher_dir):
    from teakit.explain import explain
    from teakit.objectives.heatmap_loss import heatmap_loss

    teacher, batch, student = _teacher_batch_and_student(teacher_dir)
    obj = TEA(teacher, 10, feature_weight=2.0, feature_layer=(-2, -4))
    loss, logs = obj(batch, student, _seeded(1))
    base_loss, _ = TEA(teacher, 10, feature_weight=0.0)(batch, student, _seeded(1))
    t = TEA(teacher, 10, feature_weight=0.0).teacher_maps(batch, _seeded(1))
    per_layer = []
    for layer in (-2, -4):
        S_f = explain(student, batch["x"], t.target, eps=t.eps, feature_layer=layer)[1]
        T_f = explain(teacher.classifier, batch["x"], t.target, eps=t.eps, feature_layer=layer)[1]
        per_layer.append(heatmap_loss(S_f, T_f, pyramid=False))
    assert abs(per_layer[0] - per_layer[1]) > 1e-3  # two different layers
    assert torch.allclose(logs["feature_relevance_loss"], (per_layer[0] + per_layer[1]) / 2, rtol=1e-4)
    assert torch.allclose(loss, base_loss + 2.0 * logs["feature_relevance_loss"], rtol=1e-5)


def test_validation_memo_counts_the_hidden_layer_maps(teacher_dir, make_tiny_student, monkeypatch):
    import teakit.objectives.teacher_maps as maps_module
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=64)["train"]
    batch = make_batch(data, torch.arange(0, 16), "cpu")
    monkeypatch.setattr(maps_module, "VAL_MEMO_ELEMENTS", 16 * 3 * 32 * 32 + 100)  # room for input maps only
    student = build_from_spec({"name": "cnn", "num_classes": 10, "kwargs": {"depth": CNN_DEPTH}})
    for weight, kept in ((0.0, 1), (1.0, 0)):
        obj = TEA(teacher, 10, feature_weight=weight)
        obj(batch, student, torch.Generator().manual_seed(5), train=False)
        assert len(obj.val_memo.entries) == kept, weight


def test_shift_moves_teacher_and_student_inputs_alike(teacher_dir, tmp_path, make_tiny_student):
    from teakit.objectives.tea import TEA
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=32)["train"]
    idx = torch.arange(16)
    batch = make_batch(data, idx, "cpu")
    torch.manual_seed(0)
    student = make_tiny_student()
    # with shift: offsets are drawn first from the step's generator, then the usual draws
    loss, _ = TEA(teacher, 10, shift=2, feature_weight=0.0)(batch, student, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    shifts = random_shifts(16, 2, g)
    assert shifts.abs().sum() > 0
    moved = {**batch, "x": translate(batch["x"], shifts)}
    expected, _ = TEA(teacher, 10, feature_weight=0.0)(moved, student, g)
    assert torch.allclose(loss, expected)
    unmoved, _ = TEA(teacher, 10, feature_weight=0.0)(batch, student, torch.Generator().manual_seed(3))
    assert not torch.allclose(loss, unmoved)
    # evaluation never shifts
    val, _ = TEA(teacher, 10, shift=2, feature_weight=0.0)(batch, student, torch.Generator().manual_seed(3), train=False)
    val0, _ = TEA(teacher, 10, feature_weight=0.0)(batch, student, torch.Generator().manual_seed(3), train=False)
    assert torch.equal(val, val0)
    cache, logits = C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    with pytest.raises(ValueError, match="live teacher"):
        TEA(teacher, 10, cache=cache, cache_logits=logits, shift=2, feature_weight=0.0)
    with pytest.raises(ValueError, match="shift"):
        TEA(teacher, 10, shift=-1, feature_weight=0.0)


def test_permute_channels_reorders_teacher_and_student_inputs_alike(teacher_dir, tmp_path, make_tiny_student):
    from teakit.objectives.tea import TEA
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=32)["train"]
    batch = make_batch(data, torch.arange(16), "cpu")
    torch.manual_seed(0)
    student = make_tiny_student()
    # the orders are drawn first from the step's generator, then the usual draws
    loss, _ = TEA(teacher, 10, permute_channels=True, feature_weight=0.0)(
        batch, student, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    reordered = {**batch, "x": permute_channels(batch["x"], random_channel_orders(16, 3, g))}
    expected, _ = TEA(teacher, 10, feature_weight=0.0)(reordered, student, g)
    assert torch.allclose(loss, expected)
    unchanged, _ = TEA(teacher, 10, feature_weight=0.0)(batch, student, torch.Generator().manual_seed(3))
    assert not torch.allclose(loss, unchanged)
    # evaluation never reorders
    val, _ = TEA(teacher, 10, permute_channels=True, feature_weight=0.0)(
        batch, student, torch.Generator().manual_seed(3), train=False)
    val0, _ = TEA(teacher, 10, feature_weight=0.0)(batch, student, torch.Generator().manual_seed(3), train=False)
    assert torch.equal(val, val0)
    cache, logits = C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    with pytest.raises(ValueError, match="live teacher"):
        TEA(teacher, 10, cache=cache, cache_logits=logits, permute_channels=True, feature_weight=0.0)


def test_pair_mode_explains_top_and_another_class_live_and_cached(teacher_dir, tmp_path, make_tiny_student):
    from teakit.objectives.tea import TEA
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=32)["train"]
    idx = torch.arange(12)
    batch = make_batch(data, idx, "cpu")
    cache, logits = C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    for obj in (TEA(teacher, 10, classes="pair", joint_norm=True, feature_weight=0.0),
                TEA(teacher, 10, classes="pair", joint_norm=True, cache=cache, cache_logits=logits, feature_weight=0.0)):
        T, t_logits, target, eps, _ = obj.teacher_maps(batch, torch.Generator().manual_seed(0))
        top, other = target[:12], target[12:]
        assert torch.equal(top, t_logits.argmax(1)) and (other != top).all()
        assert T.shape == (24, 3, 32, 32) and torch.equal(eps[:12], eps[12:])  # one ε per image
        live = teacher.heatmap(batch["x"].repeat(2, 1, 1, 1), target, eps)
        assert torch.allclose(T, live, rtol=2e-3, atol=2e-3 * live.abs().max().item())
        student = make_tiny_student()
        loss, logs = obj(batch, student, torch.Generator().manual_seed(0))
        loss.backward()
        assert torch.isfinite(loss) and logs["acc"].numel() == 1
    with pytest.raises(ValueError, match="joint_norm needs several maps"):
        TEA(teacher, 10, joint_norm=True, feature_weight=0.0)


def test_student_bn_running_explains_with_the_running_statistics(teacher_dir):
    """student_bn="running": one training-mode pass updates the statistics, then the map
    (and so the loss) is the eval-mode map; the student is left in training mode."""
    import copy

    from teakit.models import SmallCNN
    from teakit.models.norm import batchnorm_eval
    from teakit.objectives.tea import TEA
    from teakit.runs import load_teacher

    teacher = load_teacher(teacher_dir)
    batch = make_batch(C.load_data("colored-digits", limit=32)["train"], torch.arange(16), "cpu")
    torch.manual_seed(0)
    student = SmallCNN(width=4, depth=2).train()
    ref = copy.deepcopy(student)
    loss, _ = TEA(teacher, 10, student_bn="running", feature_weight=0.0)(batch, student, torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref(batch["x"])  # the one training-mode pass the running mode makes
    stats = [k for k in student.state_dict() if "running" in k]
    assert stats and all(torch.equal(student.state_dict()[k], ref.state_dict()[k]) for k in stats)
    assert not torch.equal(student.state_dict()[stats[0]], SmallCNN(width=4, depth=2).state_dict()[stats[0]])
    assert all(m.training for m in student.modules())
    expected, _ = TEA(teacher, 10, feature_weight=0.0)(batch, copy.deepcopy(ref).eval(), torch.Generator().manual_seed(3))
    assert torch.allclose(loss, expected, rtol=1e-6)
    batch_mode, _ = TEA(teacher, 10, feature_weight=0.0)(batch, ref, torch.Generator().manual_seed(3))
    assert not torch.allclose(loss, batch_mode, rtol=1e-3)
    # validation is in eval mode anyway: the setting changes nothing there
    with batchnorm_eval(ref):
        assert not any(m.training for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(m.training for m in ref.modules())
    with pytest.raises(ValueError, match="student_bn"):
        TEA(teacher, 10, student_bn="frozen", feature_weight=0.0)


def test_summed_relevance_pools_to_the_smaller_side_and_keeps_the_total():
    from teakit.objectives.hidden_relevance import summed_relevance

    R = torch.randn(2, 5, 8, 12, generator=torch.Generator().manual_seed(0))
    out = summed_relevance(R, (4, 3))
    slow = torch.zeros(2, 1, 4, 3)
    for i in range(8):
        for j in range(12):
            slow[:, 0, i // 2, j // 4] += R[:, :, i, j].sum(1)
    assert out.shape == (2, 1, 4, 3) and torch.allclose(out, slow, atol=1e-5)
    assert torch.allclose(out.sum((1, 2, 3)), R.sum((1, 2, 3)), atol=1e-4)
    assert torch.equal(summed_relevance(R, (8, 12)), R.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="cannot be pooled"):
        summed_relevance(R, (3, 3))


def test_input_maps_every_n_steps_and_the_hidden_layer_alone_between(teacher_dir):
    from teakit.explain import explain
    from teakit.objectives.hidden_relevance import hidden_relevance_loss

    teacher, batch, student = _teacher_batch_and_student(teacher_dir)
    obj = TEA(teacher, 10, feature_weight=3.0, input_map_every=2)
    kinds = {}
    for s in range(8):  # each step draws whether it matches input maps: about one in two
        g = _seeded(s)
        full = int(torch.randint(2, (1,), generator=g)) == 0
        kinds.setdefault(full, s)
    assert set(kinds) == {True, False}
    every_step = TEA(teacher, 10, feature_weight=3.0)
    for full, s in kinds.items():
        student.zero_grad()
        loss, logs = obj(batch, student, _seeded(s))
        loss.backward()
        got = [p.grad.clone() for p in student.parameters()]
        # the same draws by hand: the step's coin, then the teacher's ε and classes as every step draws them
        g = _seeded(s)
        torch.randint(2, (1,), generator=g)
        t = every_step.teacher_maps(batch, g)
        student.zero_grad()
        _, S_f = explain(student, batch["x"], t.target, eps=t.eps, feature_layer=-2, create_graph=True)
        fr = hidden_relevance_loss(S_f, t.hidden, every_step.cfg)
        assert torch.allclose(logs["feature_relevance_loss"], fr, rtol=1e-5)
        if full:  # the input maps at twice their weight, so that the mean objective is every step's
            assert torch.allclose(loss, 2 * logs["heatmap_loss"] + 3 * fr, rtol=1e-5)
        else:  # the hidden layer alone: no input maps, and the same gradient as its term of a full step
            assert "heatmap_loss" not in logs and torch.allclose(loss, 3 * fr, rtol=1e-5)
            (3 * fr).backward()
            want = [torch.zeros_like(p) if p.grad is None else p.grad for p in student.parameters()]
            assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(got, want))
            assert got[0].abs().sum() > 0  # the first layer learns from the hidden layer's relevance too
    # validation matches every map, whatever the draw
    assert all("heatmap_loss" in obj(batch, student, _seeded(s), train=False)[1] for s in kinds.values())
    assert obj.config()["input_map_every"] == 2
    for bad, match in ((0, "input_map_every=0 must be a whole number"), (1.5, "must be a whole number")):
        with pytest.raises(ValueError, match=match):
            TEAConfig(input_map_every=bad)
    with pytest.raises(ValueError, match="input_map_every=2 needs feature_weight > 0"):
        TEAConfig(input_map_every=2, feature_weight=0.0)


def test_hidden_first_epochs_match_the_hidden_layer_alone_then_every_map(teacher_dir):
    teacher, batch, student = _teacher_batch_and_student(teacher_dir)
    obj = TEA(teacher, 10, feature_weight=3.0, hidden_first=0.5)
    every_step = TEA(teacher, 10, feature_weight=3.0)
    assert obj.input_share == 1.0  # no epoch announced (a bare call): every map, as the default
    for epoch, hidden in ((0, True), (1, True), (2, False), (3, False)):  # the first half of 4 epochs
        obj.before_epoch(epoch, 4)
        assert (obj.input_share == 0.0) == hidden
        loss, logs = obj(batch, student, _seeded(epoch))
        _, want = every_step(batch, student, _seeded(epoch))  # the same draws of ε and classes
        assert torch.allclose(logs["feature_relevance_loss"], want["feature_relevance_loss"], rtol=1e-5)
        if hidden:
            assert "heatmap_loss" not in logs and torch.allclose(loss, 3 * want["feature_relevance_loss"], rtol=1e-5)
        else:
            assert torch.allclose(logs["heatmap_loss"], want["heatmap_loss"], rtol=1e-5)
            assert torch.allclose(loss, want["loss"], rtol=1e-5)
        obj.before_epoch(0, 4)  # validation matches every map, in any epoch
        assert "heatmap_loss" in obj(batch, student, _seeded(epoch), train=False)[1]
    phases = []
    for epoch in range(5):  # round(0.5 * 5) = 2 hidden epochs of 5
        obj.before_epoch(epoch, 5)
        phases.append(obj.input_share == 0.0)
    assert phases == [True, True, False, False, False]
    assert obj.config()["hidden_first"] == 0.5
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=f"hidden_first={bad} must lie in"):
            TEAConfig(hidden_first=bad)
    with pytest.raises(ValueError, match="hidden_first=0.25 needs feature_weight > 0"):
        TEAConfig(hidden_first=0.25, feature_weight=0.0)


def test_input_map_ramp_phases_the_input_maps_in_one_even_step_per_epoch(teacher_dir):
    teacher, batch, student = _teacher_batch_and_student(teacher_dir)
    shares = []
    obj = TEA(teacher, 10, feature_weight=3.0, hidden_first=0.25, input_map_ramp=0.5)
    for epoch in range(8):  # 2 hidden-only epochs, then round(0.5 * 8) = 4 ramp epochs: 1/5 ... 4/5, then all
        obj.before_epoch(epoch, 8)
        shares.append(obj.input_share)
    assert shares == pytest.approx([0, 0, 1 / 5, 2 / 5, 3 / 5, 4 / 5, 1, 1])
    obj = TEA(teacher, 10, feature_weight=3.0, input_map_ramp=0.5)
    obj.before_epoch(0, 4)  # the first of 2 ramp epochs of 4: input maps on a third of the steps
    assert obj.input_share == pytest.approx(1 / 3)
    drawn = []
    for seed in range(24):
        # the step's first draw decides, with chance 1/3 (the generator's own uniform draw, replayed here)
        want_maps = float(torch.rand((1,), generator=_seeded(seed))) < 1 / 3
        loss, logs = obj(batch, student, _seeded(seed))
        assert ("heatmap_loss" in logs) == want_maps
        hidden = 3 * logs["feature_relevance_loss"]
        # a step with input maps has them at their usual weight (not 3x), the others the hidden layer alone
        assert torch.allclose(loss, hidden + logs["heatmap_loss"] if want_maps else hidden, rtol=1e-5)
        drawn.append(want_maps)
    assert 0 < sum(drawn) < len(drawn)  # both kinds of step were checked
    assert "heatmap_loss" in obj(batch, student, _seeded(0), train=False)[1]  # validation: every map
    obj.before_epoch(2, 4)
    assert obj.input_share == 1.0 and "heatmap_loss" in obj(batch, student, _seeded(0))[1]
    assert obj.config()["input_map_ramp"] == 0.5
    for bad in ({"input_map_ramp": -0.1}, {"input_map_ramp": 1.0}, {"input_map_ramp": 0.6, "hidden_first": 0.5}):
        with pytest.raises(ValueError, match="must lie in \\[0, 1\\), and with hidden_first"):
            TEAConfig(**bad)
    with pytest.raises(ValueError, match="input_map_ramp=0.25 needs feature_weight > 0"):
        TEAConfig(input_map_ramp=0.25, feature_weight=0.0)
