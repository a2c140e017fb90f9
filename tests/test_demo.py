"""`tea demo --quick` end to end on tiny subsets: every stage runs, results.json has
the contracted rows, the report and figures exist, and a re-run reuses stages."""
import json

from teakit import demo


def test_quick_demo_end_to_end(tmp_path, monkeypatch, capsys):
    # even smaller than --quick: this checks the plumbing, not the numbers
    original = demo.plan

    def tiny_plan(quick, seed):
        stages = original(quick, seed)
        for s in stages:
            s.params["data_options"] = {"limit": 48}
            for key in ("cfg", "seg_cfg"):
                if key in s.params:
                    s.params[key] = {**s.params[key], "epochs": 1}
        return stages
    monkeypatch.setattr(demo, "plan", tiny_plan)
    rows = demo.run_demo(tmp_path, quick=True)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == rows
    assert {r["dataset"] for r in rows} == {"colored-digits", "digits-on-scenes"}
    assert {r["method"] for r in rows} == {"teacher", "ERM", "TEA"}
    for r in rows:
        assert set(r) == {"dataset", "method", "split", "metric", "value"}
        assert 0.0 <= r["value"] <= 1.0
    metrics = {(r["method"], r["metric"]) for r in rows}
    assert ("TEA", "agreement_with_teacher") in metrics and ("ERM", "background_relevance") in metrics
    for name in ("report.md", "report.html", "figures/colored-digits-accuracy.png",
                 "figures/digits-on-scenes-heatmaps.png"):
        assert (tmp_path / name).stat().st_size > 200, name
    assert "| TEA |" in (tmp_path / "report.md").read_text()
    capsys.readouterr()
    demo.run_demo(tmp_path, quick=True)  # second run: every stage reused
    assert capsys.readouterr().out.count("reused") == 6
