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
