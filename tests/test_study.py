"""Shift augmentation (identical for teacher, student and cached maps) and `tea study convergence`."""
import pytest
import torch

from teakit import commands as C
from teakit.data.augment import random_shifts, translate
from teakit.study import VARIANTS, convergence, read_curves, variant_setup
from teakit.train import TrainConfig, make_batch


def _slow_translate(x, shifts):
    out = torch.zeros_like(x)
    B, _, H, W = x.shape
    for b in range(B):
        dy, dx = shifts[b].tolist()
        for i in range(H):
            for j in range(W):
                si, sj = i - dy, j - dx
                if 0 <= si < H and 0 <= sj < W:
                    out[b, :, i, j] = x[b, :, si, sj]
    return out


def test_translate_matches_a_pixel_loop_and_inverts_in_the_interior():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 2, 7, 6, generator=g)
    shifts = random_shifts(5, 3, g)
    assert shifts.abs().max() <= 3 and shifts.shape == (5, 2)
    assert torch.equal(translate(x, shifts), _slow_translate(x, shifts))
    back = translate(translate(x, shifts), -shifts)
    assert torch.equal(back[:, :, 3:-3, 3:-3], x[:, :, 3:-3, 3:-3])
    assert translate(x, torch.zeros(5, 2, dtype=torch.long)) is x
    with pytest.raises(ValueError, match="shifts of shape"):
        translate(x, shifts[:3])
    with pytest.raises(ValueError):
        random_shifts(2, -1)


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
    loss, _ = TEA(teacher, 10, shift=2)(batch, student, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    shifts = random_shifts(16, 2, g)
    assert shifts.abs().sum() > 0
    moved = {**batch, "x": translate(batch["x"], shifts)}
    expected, _ = TEA(teacher, 10)(moved, student, g)
    assert torch.allclose(loss, expected)
    unmoved, _ = TEA(teacher, 10)(batch, student, torch.Generator().manual_seed(3))
    assert not torch.allclose(loss, unmoved)
    # evaluation never shifts
    val, _ = TEA(teacher, 10, shift=2)(batch, student, torch.Generator().manual_seed(3), train=False)
    val0, _ = TEA(teacher, 10)(batch, student, torch.Generator().manual_seed(3), train=False)
    assert torch.equal(val, val0)
    cache, logits = C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    with pytest.raises(ValueError, match="live teacher"):
        TEA(teacher, 10, cache=cache, cache_logits=logits, shift=2)
    with pytest.raises(ValueError, match="shift"):
        TEA(teacher, 10, shift=-1)


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
    assert variant_setup("head-copied", base, {}, None)[3]
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
    assert set(VARIANTS) >= {"sgd-authors", "all-classes", "head-copied", "fixed-eps", "mse", "cosine",
                             "no-pyramid", "width-8", "no-batchnorm", "shift-2"}


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


def test_pair_mode_explains_top_and_another_class_live_and_cached(teacher_dir, tmp_path, make_tiny_student):
    from teakit.objectives.tea import TEA
    from teakit.runs import load_teacher
    from teakit.teachers.cache import eps_grid

    teacher = load_teacher(teacher_dir)
    data = C.load_data("colored-digits", limit=32)["train"]
    idx = torch.arange(12)
    batch = make_batch(data, idx, "cpu")
    cache, logits = C.teacher_cache(teacher, data, tmp_path / "cache", eps_grid(), progress=False)
    for obj in (TEA(teacher, 10, classes="pair", joint_norm=True),
                TEA(teacher, 10, classes="pair", joint_norm=True, cache=cache, cache_logits=logits)):
        T, t_logits, target, eps = obj._teacher(batch, torch.Generator().manual_seed(0),
                                                use_cache=obj.cache is not None)
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
        TEA(teacher, 10, joint_norm=True)
