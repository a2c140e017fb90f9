"""The step-cost benchmark runs and reports what it promises (tiny settings)."""
import json

from teakit.bench import run_step_cost


def test_step_cost_writes_all_keys(tmp_path, capsys):
    res = run_step_cost(str(tmp_path / "sc.json"), batch=2, size=32, rounds=1, warmup=1)
    saved = json.loads((tmp_path / "sc.json").read_text())
    for key in ("erm_step_s", "tea_live_step_s", "tea_cached_step_s", "tea_all_cached_step_s",
                "tea_live_over_erm", "tea_cached_over_erm", "tea_all_cached_over_erm", "torch_version", "threads"):
        assert key in saved and saved[key] == res[key]
    assert all(saved[k] > 0 for k in ("erm_step_s", "tea_cached_step_s"))
    assert "tea_cached" in capsys.readouterr().out
    assert "tea_all_sequential" in saved.__repr__() and saved["tea_all_sequential_step_s"] > 0
    assert saved["tea_live_features_step_s"] > 0 and saved["tea_live_features_over_erm"] > 0
    assert saved["tea_hidden_only_step_s"] > 0 and saved["feature_distill_over_erm"] > 0
    assert saved["tea_live_features_over_feature_distill"] > 0
    assert saved["tea_input_maps_every_2_over_feature_distill"] > 0
    for k in ("erm", "feature_distill", "tea_live", "tea_cached", "tea_live_features", "tea_hidden_only",
              "tea_all_cached", "tea_all_sequential"):
        assert abs(saved[f"{k}_images_per_s"] * saved[f"{k}_step_s"] - 2) < 1e-6  # batch / median seconds
        assert saved[f"{k}_peak_mb"] > 0
    assert saved["device"] == "cpu"


def test_step_cost_refuses_an_unknown_accelerator():
    import pytest
    with pytest.raises(ValueError, match="--accelerator"):
        run_step_cost(None, batch=2, size=32, rounds=1, warmup=0, accelerator="tpu")


def test_all_classes_in_one_pass_equals_k_sequential_passes():
    """TEA's classes="all" replicates the batch K times (one vectorised pass); its
    gradient must equal the average of K one-class passes — BatchNorm included,
    since replication leaves the batch statistics unchanged."""
    import torch

    from teakit.explain import explain
    from teakit.models import build_model
    from teakit.objectives.heatmap_loss import heatmap_loss

    torch.manual_seed(0)
    K, B = 4, 3
    student = build_model("cnn", K, width=4, depth=2).double().train()
    x = torch.rand(B, 3, 16, 16, dtype=torch.float64)
    T = torch.randn(K * B, 3, 16, 16, dtype=torch.float64)
    target = torch.arange(K).repeat_interleave(B)
    eps = torch.rand(B, dtype=torch.float64).repeat(K) * 0.1 + 0.01
    params = [p for n, p in student.named_parameters() if n != "head.bias"]  # no heatmap depends on it
    S = explain(student, x.repeat(K, 1, 1, 1), target, eps=eps, create_graph=True)
    one_pass = torch.autograd.grad(heatmap_loss(S, T), params)
    seq = [torch.zeros_like(p) for p in params]
    for k in range(K):
        rows = slice(k * B, (k + 1) * B)
        S_k = explain(student, x, target[rows], eps=eps[rows], create_graph=True)
        for acc, g in zip(seq, torch.autograd.grad(heatmap_loss(S_k, T[rows]) / K, params)):
            acc += g
    for a, b in zip(one_pass, seq):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_step_cost_in_the_channels_last_layout(tmp_path, capsys):
    res = run_step_cost(None, batch=2, size=32, rounds=1, warmup=0)  # the default: the layout `tea` trains in
    assert res["channels_last"] is True and res["tea_live_step_s"] > 0
    assert "channels-last" in capsys.readouterr().out
    assert run_step_cost(None, batch=2, size=32, rounds=1, warmup=0, channels_last=False)["channels_last"] is False


def test_interleaved_calls_every_variant_once_per_round_in_turn():
    import torch

    from teakit.bench import _interleaved
    calls = []
    times = _interleaved({"a": lambda r: calls.append(("a", r)), "b": lambda r: calls.append(("b", r))},
                         rounds=2, warmup=1, device=torch.device("cpu"))
    assert calls == [("a", -1), ("b", -1), ("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2} and all(t >= 0 for v in times.values() for t in v)


def test_distill_step_cost_times_full_training_steps_of_each_objective(teacher_dir, tmp_path, monkeypatch, capsys):
    """Every objective runs warm-up + rounds full steps (one optimizer step each), on batches of the
    benchmark, and feature distillation is always timed as the reference."""
    import pytest

    from teakit import bench, train
    from teakit.bench import run_distill_step_cost
    made = []

    def counting(model, cfg):  # every objective's optimizer, its steps counted
        opt = make(model, cfg)
        entry, step = [0, opt.param_groups], opt.step
        made.append(entry)

        def counted(*args, **kw):
            entry[0] += 1
            return step(*args, **kw)
        opt.step = counted
        return opt
    make = train.make_optimizer
    monkeypatch.setattr(train, "make_optimizer", counting)
    res = run_distill_step_cost(str(tmp_path / "d.json"), dataset="colored-digits", teacher_dir=teacher_dir,
                                objectives=["tea", "kd"], batch=8, rounds=2, warmup=1)  # the teacher's width
    assert res["objectives"] == ["tea", "kd", "feature"] and [n for n, _ in made] == [3, 3, 3]
    # each at its `tea distill` rate: TEA's is 8x the others' (teakit.config.TEA_LR)
    assert made[0][1][0]["lr"] == pytest.approx(8 * made[1][1][0]["lr"])
    for k in res["objectives"]:
        assert abs(res[f"{k}_images_per_s"] * res[f"{k}_step_s"] - 8) < 1e-6
    assert res["tea_over_feature"] > 0 and res["kd_over_feature"] > 0 and "feature_over_feature" not in res
    assert res["batch"] == [8, 3, 32, 32] and bench.json.loads((tmp_path / "d.json").read_text()) == res
    assert "× feature" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown objective 'erm'"):
        run_distill_step_cost(None, dataset="colored-digits", teacher_dir=teacher_dir, objectives=["erm"])
    with pytest.raises(ValueError, match="--batch 100000"):
        run_distill_step_cost(None, dataset="colored-digits", teacher_dir=teacher_dir, batch=100000)


def test_bench_distill_step_names_what_is_missing(tea_cli):
    code, out = tea_cli(["bench", "distill-step", "--teacher", "x"])
    assert code == 2 and "--dataset is required" in out
