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
