"""`tea study lobo`: the leave-one-benchmark-out choice of a recipe (teakit.lobo)."""
import json
import random
import statistics
from pathlib import Path

import pytest

from teakit.lobo import choose, read_lobo_csv, shifted_figures

A, B, C = "colored-digits", "digits-on-scenes", "glyphs-on-places"


def test_a_candidate_best_only_on_b_is_not_chosen_for_b():
    scores = {"default": {A: 0.80, B: 0.50, C: 0.80},
              "pair": {A: 0.70, B: 0.99, C: 0.70}}  # best by far on B, worse on A and C
    got = choose(scores, ["default", "pair"], [A, B, C])
    assert got[B] == {"candidate": "default", "sources": [A, C], "score": pytest.approx(0.80)}
    # B's scores do count for the others: on A, pair's mean over B and C (0.845) beats default's (0.65)
    assert got[A]["candidate"] == "pair" and got[A]["sources"] == [B, C]
    assert got[A]["score"] == pytest.approx(0.845)
    assert got[C]["candidate"] == "pair" and got[C]["sources"] == [A, B]


def test_held_out_benchmarks_never_influence_a_choice():
    cands, benches = ["default", "pair", "mse"], [A, B, C]
    rng = random.Random(0)
    base = {c: {A: rng.random(), B: rng.random()} for c in cands}
    seen = []
    for _ in range(20):  # whatever the held-out benchmark's scores, every choice stays the same
        scores = {c: {**base[c], C: rng.random()} for c in cands}
        got = choose(scores, cands, benches, held_out=[C])
        seen.append({b: got[b]["candidate"] for b in benches})
        assert got[C]["sources"] == [A, B] and got[A]["sources"] == [B] and got[B]["sources"] == [A]
    assert all(s == seen[0] for s in seen)
    assert seen[0][C] == max(cands, key=lambda c: base[c][A] + base[c][B])  # chosen on the others alone
    # without holding C out, its scores do decide: C best for a candidate that is worst elsewhere
    scores = {"default": {A: 0.9, B: 0.6, C: 0.6}, "pair": {A: 0.1, B: 0.5, C: 0.5}}
    assert choose(scores, ["default", "pair"], [A, B, C])[A]["candidate"] == "default"
    scores["pair"][C] = 1.0
    assert choose(scores, ["default", "pair"], [A, B, C])[A]["candidate"] == "pair"
    assert choose(scores, ["default", "pair"], [A, B, C], held_out=[C])[A]["candidate"] == "default"


def test_ties_go_to_the_candidate_listed_first_and_no_source_means_no_look():
    three = {"default": {A: 0.5, B: 0.7, C: 0.6}, "pair": {A: 0.7, B: 0.5, C: 0.6}}  # equal means over A, B
    assert choose(three, ["default", "pair"], [A, B, C])[C]["candidate"] == "default"
    assert choose(three, ["pair", "default"], [A, B, C])[C]["candidate"] == "pair"
    # one benchmark not held out: it has nothing else to be chosen on -> the first listed, looked at nothing
    got = choose({"pair": {A: 1.0, B: 1.0}, "default": {A: 0.0, B: 0.0}}, ["default", "pair"], [A, B],
                 held_out=[B])
    assert got[A] == {"candidate": "default", "sources": [], "score": None}
    assert got[B]["candidate"] == "pair" and got[B]["sources"] == [A]
    with pytest.raises(ValueError, match="no score of candidate 'pair' on digits-on-scenes"):
        choose({"default": {A: 1, B: 1}, "pair": {A: 1}}, ["default", "pair"], [A, B])
    with pytest.raises(ValueError, match="held-out"):
        choose({"default": {A: 1}}, ["default"], [A], held_out=["nope"])


def test_a_tolerance_chooses_the_first_listed_candidate_within_it_of_the_best():
    scores = {"cheap": {A: 0.960, B: 0.970, C: 0.0}, "default": {A: 0.965, B: 0.975, C: 1.0}}  # 0.5 apart on A, B
    for tolerance, want in ((0.0, "default"), (0.004, "default"), (0.006, "cheap")):
        got = choose(scores, ["cheap", "default"], [A, B, C], tolerance=tolerance)[C]
        assert got["candidate"] == want and got["score"] == pytest.approx(0.965 if want == "cheap" else 0.970)
    # the best one is still chosen when it is listed first, and C's own scores never enter C's choice
    assert choose(scores, ["default", "cheap"], [A, B, C], tolerance=0.006)[C]["candidate"] == "default"
    with pytest.raises(ValueError, match="tolerance=-0.1 must be >= 0"):
        choose(scores, ["cheap"], [A, B, C], tolerance=-0.1)


def test_shifted_figures_are_every_test_split_but_id_and_worst_group_where_groups_exist():
    res = {"accuracy": 0.9, "worst_group_accuracy": 0.5}
    digits = {"id": res, "ood": res, "swapped": res}
    assert shifted_figures("colored-digits", digits) == {"ood": ("ood", "accuracy"),
                                                        "swapped": ("swapped", "accuracy")}
    assert shifted_figures("glyphs-on-places", {"test": res}) == {
        "test": ("test", "accuracy"), "test worst-group": ("test", "worst_group_accuracy")}
    # phantom-xrays: the bias attribute is the hospital, not the group
    assert shifted_figures("phantom-xrays", {"id": res, "swapped": res, "external": res}) == {
        "swapped": ("swapped", "accuracy"), "external": ("external", "accuracy")}


def test_a_run_recorded_before_its_teachers_decision_settings_had_a_one_draw_teacher():
    from teakit.lobo import recorded_settings
    old = {"settings": {"tea": {}, "teacher_hash": "h"}}
    assert recorded_settings(old, {"fills": 16})["teacher_decision"] == {"fills": 1}  # refused against 16
    assert recorded_settings(old, {})["teacher_decision"] == {}  # a teacher without a fill: as recorded now
    new = {"settings": {"tea": {}, "teacher_hash": "h", "teacher_decision": {"fills": 16}}}
    assert recorded_settings(new, {"fills": 16})["teacher_decision"] == {"fills": 16}


@pytest.fixture(scope="module")
def glyphs_teacher(tmp_path_factory):
    from teakit import commands as C
    from teakit.train import TrainConfig

    out = tmp_path_factory.mktemp("glyphs-teacher")
    C.train_teacher("glyphs-on-places", "debiased", out, cfg=TrainConfig(epochs=1, lr=3e-3, batch_size=32),
                    data_options={"limit": 64}, progress=False)
    return out


def test_lobo_end_to_end_quick(teacher_dir, glyphs_teacher, tmp_path):
    """The protocol end to end at one seed: each benchmark's choice comes from the other's validation score, and
    its rows are the chosen runs' (the full check, two seeds, reuse and the command line: the slow test below)."""
    from teakit.config import CNN_DEPTH, command_train_config
    from teakit.lobo import lobo
    from teakit.runs import model_spec

    teachers = {A: str(teacher_dir), C: str(glyphs_teacher)}
    out = tmp_path / "lobo"
    kw = {"seeds": [0], "cfg": command_train_config("study", "tea", epochs=1, batch_size=32),
          "spec": model_spec("cnn", None, width=4, depth=CNN_DEPTH), "data_options": {"limit": 32},
          "progress": False}
    lobo([A, C], teachers, ["default", "top-class"], out, **kw)
    rows = read_lobo_csv(out / "lobo.csv")
    assert [(r["benchmark"], r["figure"]) for r in rows] == [
        (A, "ood"), (A, "swapped"), (C, "test"), (C, "test worst-group")]
    score = {(b, c): json.loads((out / b / f"{c}-s0" / "score.json").read_text())["score"]
             for b in (A, C) for c in ("default", "top-class")}
    # a run's settings name its teacher's decision settings (none for a teacher without a fill)
    assert json.loads((out / A / "default-s0" / "score.json").read_text())["settings"]["teacher_decision"] == {}
    for b, other in ((A, C), (C, A)):
        best = "top-class" if score[(other, "top-class")] > score[(other, "default")] else "default"
        mine = [r for r in rows if r["benchmark"] == b]
        assert all(r["chosen"] == best and r["chosen_on"] == other and r["seeds"] == 1 for r in mine)
        assert (out / b / f"{best}-s0" / "test-figures.json").exists()
        # the students' agreement is measured against the teacher's kept test logits (as `tea evaluate` keeps them)
        assert list((Path(teachers[b]) / "eval-logits").glob("*.safetensors"))


@pytest.mark.slow  # make test-all; test_lobo_end_to_end_quick is its quick version
def test_lobo_end_to_end_reports_each_benchmarks_choice_from_the_other(teacher_dir, glyphs_teacher, tmp_path,
                                                                        capsys, tea_cli, monkeypatch):
    from teakit.commands import evaluate_run
    from teakit.config import CNN_DEPTH, CNN_WIDTH, command_train_config
    from teakit.lobo import lobo
    from teakit.runs import model_spec

    teachers = {A: str(teacher_dir), C: str(glyphs_teacher)}
    out = tmp_path / "lobo"
    # what the command line passes (so that its call below reuses these runs)
    cfg = command_train_config("study", "tea", epochs=1, batch_size=32)
    spec = model_spec("cnn", None, width=CNN_WIDTH, depth=CNN_DEPTH)
    kw = {"seeds": [0, 1], "cfg": cfg, "spec": spec, "data_options": {"limit": 64}, "progress": False}
    with pytest.raises(ValueError, match="trained on colored-digits"):
        lobo([A, C], {A: str(teacher_dir), C: str(teacher_dir)}, ["default"], out, **kw)
    with pytest.raises(ValueError, match="unknown variant"):
        lobo([A, C], teachers, ["default", "bogus"], out, **kw)
    assert not out.exists()  # refused before any training
    md = lobo([A, C], teachers, ["default", "top-class"], out, **kw)
    rows = read_lobo_csv(out / "lobo.csv")
    assert [(r["benchmark"], r["figure"]) for r in rows] == [
        (A, "ood"), (A, "swapped"), (C, "test"), (C, "test worst-group")]
    score = {(b, c): statistics.fmean(json.loads((out / b / f"{c}-s{s}" / "score.json").read_text())["score"]
                                      for s in (0, 1))
             for b in (A, C) for c in ("default", "top-class")}
    # a run's score is the class-balanced agreement of its best checkpoint on the validation split
    from teakit.data.load import load_data
    from teakit.evaluate import predict
    from teakit.runs import load_model, load_teacher
    val = load_data(C, 0, limit=64)["val"]
    t_pred = predict(load_teacher(teachers[C]), val.x).argmax(1)
    s_pred = predict(load_model(out / C / "default-s0")[0], val.x).argmax(1)
    by_class = [(s_pred[t_pred == k] == k).float().mean().item() for k in t_pred.unique()]
    recorded = json.loads((out / C / "default-s0" / "score.json").read_text())
    # a teacher without a segmenter has no composites: the score is the validation agreement alone
    assert recorded["score"] == recorded["val_agreement"] == pytest.approx(statistics.fmean(by_class))
    assert recorded["foreign_agreement"] is None
    for b, other in ((A, C), (C, A)):
        mine = [r for r in rows if r["benchmark"] == b]
        best = "top-class" if score[(other, "top-class")] > score[(other, "default")] else "default"
        assert all(r["chosen"] == best and r["chosen_on"] == other and not r["held_out"] for r in mine)
        assert mine[0]["choice_score"] == pytest.approx(score[(other, best)])
        # the figures are those `tea evaluate` gives for the teacher and the chosen runs
        t = evaluate_run(b, teachers[b], data_options={"limit": 64}, relevance=False)["splits"]
        s = [evaluate_run(None, out / b / f"{best}-s{seed}", relevance=False)["splits"] for seed in (0, 1)]
        for r in mine:
            split, metric = ("test", "worst_group_accuracy") if r["figure"] == "test worst-group" else (
                r["figure"], "accuracy")
            assert r["teacher"] == pytest.approx(t[split][metric])
            vals = [x[split][metric] for x in s]
            assert r["student_mean"] == pytest.approx(statistics.fmean(vals))
            assert r["student_sd"] == pytest.approx(statistics.stdev(vals))
            assert r["gap"] == pytest.approx(r["teacher"] - r["student_mean"])
            assert r["agreement"] == pytest.approx(statistics.fmean(x[split]["agreement_with_teacher"] for x in s))
            assert r["seeds"] == 2
    table = md.read_text()
    first = table.splitlines()[2]
    assert first.startswith(f"| {A} | no | {rows[0]['chosen']} ({C}: {100 * rows[0]['choice_score']:.1f}) | ood | ")
    assert f"| {100 * rows[0]['teacher']:.1f} |" in first and f"(n=2) | {100 * rows[0]['gap']:+.1f} |" in first
    assert "Scores (val score: mean of class-balanced agreement" in table and "(val only)" in table
    printed = capsys.readouterr().out
    assert printed.count(": 1 epochs") == 8 and "| benchmark | held out?" in printed

    # every reported model's test figures are kept; a later report reads them back, unless the checkpoint
    # changed: then they are computed again
    import teakit.lobo as lobo_module
    kept = out / C / "default-s0" / "test-figures.json"
    assert kept.exists() and (out / C / "teacher-figures.json").exists()
    figures = json.loads(kept.read_text())
    s_c = figures["splits"]["test"]["accuracy"]
    stale = {**figures, "splits": {**figures["splits"], "test": {**figures["splits"]["test"], "accuracy": 0.123}}}
    kept.write_text(json.dumps(stale))
    rows_c = [r for r in lobo_module._report_benchmark(C, teachers[C], [out / C / "default-s0"], data_seed=0,
                                                       data_options={"limit": 64}, out=out / C)
              if r["figure"] == "test"]
    assert rows_c[0]["students"] == [0.123]  # read back, not recomputed
    kept.write_text(json.dumps({**stale, "key": {**stale["key"], "model": "another checkpoint"}}))
    rows_c = [r for r in lobo_module._report_benchmark(C, teachers[C], [out / C / "default-s0"], data_seed=0,
                                                       data_options={"limit": 64}, out=out / C)
              if r["figure"] == "test"]
    assert rows_c[0]["students"] == [pytest.approx(s_c)]  # recomputed
    assert json.loads(kept.read_text())["key"]["model"] != "another checkpoint"

    # a run recorded before a TEA option existed is reused when the option is off by default; one that
    # names another value of it is not, nor one from before swapping became the default
    done = out / A / "default-s0" / "score.json"
    record = json.loads(done.read_text())

    def without(option):
        return {**record, "settings": {**record["settings"], "tea": {
            k: v for k, v in record["settings"]["tea"].items() if k != option}}}
    done.write_text(json.dumps(without("synthetic_backgrounds")))
    assert lobo([A], {A: teachers[A]}, ["default"], out, **kw) is not None
    other = {**record, "settings": {**record["settings"], "tea": {**record["settings"]["tea"],
                                                                  "synthetic_backgrounds": 0.5}}}
    for older in (other, without("swap_backgrounds")):
        done.write_text(json.dumps(older))
        with pytest.raises(ValueError, match=r"other settings \(tea\)"):
            lobo([A], {A: teachers[A]}, ["default"], out, **kw)
    done.write_text(json.dumps(record))
    capsys.readouterr()

    # a run scored by an earlier protocol is rescored from its checkpoint, its settings kept: with a
    # segmenter teacher the score is the mean of the two agreements (here one stands in for it)
    old_kind = {k: record[k] for k in ("score", "agreement", "epoch", "heatmap_loss", "settings")}
    done.write_text(json.dumps({**old_kind, "score": 0.0}))
    import teakit.lobo as lobo_module
    monkeypatch.setattr(lobo_module, "foreign_agreement", lambda model, targets: 0.25)
    lobo([A], {A: teachers[A]}, ["default"], out, **kw)
    rescored = json.loads(done.read_text())
    assert rescored["score_kind"] == lobo_module.SCORE_KIND and rescored["settings"] == record["settings"]
    assert rescored["val_agreement"] == pytest.approx(record["score"]) and rescored["foreign_agreement"] == 0.25
    assert rescored["score"] == pytest.approx((record["score"] + 0.25) / 2)
    assert "rescored: val score" in capsys.readouterr().out
    monkeypatch.undo()
    done.write_text(json.dumps(record))

    # a run trained with other settings is not silently reused
    with pytest.raises(ValueError, match=r"other settings \(train\)"):
        lobo([A, C], teachers, ["default"], out, **{**kw, "cfg": command_train_config("study", "tea", epochs=2,
                                                                                      batch_size=32)})

    # the command line reuses every run (its options make the same settings); holding glyphs-on-places out
    # leaves colored-digits nothing to be chosen on
    rc, text = tea_cli(["study", "lobo", "--benchmarks", f"{A},{C}", "--teachers",
                        f"{A}={teacher_dir},{C}={glyphs_teacher}", "--candidates", "default,top-class",
                        "--seeds", "0,1", "--held-out", C, "--epochs", "1", "--batch-size", "32", "--limit", "64",
                        "--out", str(out), "--no-progress"])
    assert rc == 0, text
    assert text.count("finished earlier") == 8 and ": 1 epochs" not in text and f"wrote {out / 'lobo.md'}" in text
    held = read_lobo_csv(out / "lobo.csv")
    assert [(r["benchmark"], r["figure"]) for r in held] == [(r["benchmark"], r["figure"]) for r in rows]
    assert all(r["chosen"] == "default" and r["chosen_on"] == "" and r["choice_score"] is None and not r["held_out"]
               for r in held if r["benchmark"] == A)
    best_on_a = "top-class" if score[(A, "top-class")] > score[(A, "default")] else "default"
    assert all(r["held_out"] and r["chosen"] == best_on_a and r["chosen_on"] == A
               for r in held if r["benchmark"] == C)
    for r, before in zip(held, rows):  # the same runs, the same figures where the choice is the same
        if r["chosen"] == before["chosen"]:
            assert r["student_mean"] == pytest.approx(before["student_mean"])
    table = (out / "lobo.md").read_text()
    assert "| glyphs-on-places | yes |" in table and "no other benchmark: first listed" in table
    assert "glyphs-on-places (held out: unused)" in table

    rc, text = tea_cli(["study", "lobo", "--benchmarks", A, "--teachers", f"{A}={teacher_dir}", "--out", str(out)])
    assert rc == 2 and "--candidates is required" in text
    rc, text = tea_cli(["study", "lobo", "--benchmarks", A, "--teachers", str(teacher_dir), "--candidates",
                        "default", "--out", str(out)])
    assert rc == 2 and "expected BENCHMARK=DIR" in text


def test_lobo_options_from_a_config_file_may_be_lists(tmp_path, tea_cli):
    cfg = tmp_path / "lobo.yaml"
    cfg.write_text(f"benchmarks: [{A}, {C}]\nteachers: {{{A}: t1, {C}: t2}}\ncandidates: [default, bogus]\n"
                   f"seeds: [0, 1]\nheld-out: [{C}]\nout: {tmp_path / 'out'}\n")
    rc, text = tea_cli(["study", "lobo", "--config", str(cfg)])
    assert rc == 2 and "unknown variant 'bogus'" in text  # every list reached teakit.lobo (names checked first)
    cfg.write_text(cfg.read_text().replace("held-out: [", "held-out: [nope, "))
    rc, text = tea_cli(["study", "lobo", "--config", str(cfg)])
    assert rc == 2 and "held-out benchmark(s) nope are not among" in text
    rc, text = tea_cli(["study", "lobo", "--config", str(cfg), "--tolerance", "-1"])
    assert rc == 2 and "--tolerance: expected a non-negative number, got '-1'" in text
    assert not (tmp_path / "out").exists()


def test_lobo_tolerance_is_given_in_points(tmp_path, tea_cli, monkeypatch):
    import teakit.lobo
    seen = {}
    monkeypatch.setattr(teakit.lobo, "lobo", lambda *a, **k: seen.update(k) or tmp_path / "lobo.md")
    args = ["study", "lobo", "--benchmarks", A, "--teachers", f"{A}=t", "--candidates", "default", "--out",
            str(tmp_path)]
    assert tea_cli(args + ["--tolerance", "0.3"])[0] == 0 and seen["tolerance"] == pytest.approx(0.003)
    assert tea_cli(args)[0] == 0 and seen["tolerance"] == 0.0


def test_foreign_agreement_judges_the_composites_the_teacher_keeps_its_decision_on():
    """Against a written-out loop: each validation image's foreground (the teacher's own mask) on a crop of
    every foreign scene; a composite counts when the teacher, segmenting it itself, keeps its decision on
    the original image, and the student is judged against that decision, class-balanced."""
    import torch

    from teakit.data.foreign_scenes import FOREIGN_SCENES, foreign_backgrounds
    from teakit.data.imageset import ImageSet
    from teakit.lobo import foreign_agreement, foreign_targets
    from teakit.models import SmallCNN
    from teakit.teachers import DebiasedTeacher, SegmenterTeacher

    class RedSegmenter(torch.nn.Module):  # foreground where the red channel exceeds 0.5
        def forward(self, x):
            return 20.0 * (x[:, :1] - 0.5)

    torch.manual_seed(0)
    k, n = 3, 24
    teacher = SegmenterTeacher(RedSegmenter(), SmallCNN(num_classes=k, width=4, depth=2), fill="zero").freeze()
    student = SmallCNN(num_classes=k, width=4, depth=2).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(n, 3, 16, 16, generator=g)
    val = ImageSet(x=x, y=torch.arange(n) % k, mask=torch.zeros(n, 1, 16, 16, dtype=torch.bool),
                   bias=torch.zeros(n, dtype=torch.long))
    with torch.no_grad():
        t_plain = teacher(x).argmax(1)
        crops, _ = foreign_backgrounds(len(FOREIGN_SCENES) * n, 16)
        pairs = []
        for b in range(n):
            keep = x[b, 0] > 0.5
            for s in range(len(FOREIGN_SCENES)):
                comp = torch.where(keep, x[b], crops[b * len(FOREIGN_SCENES) + s])[None]
                if teacher(comp).argmax(1).item() == t_plain[b].item():
                    pairs.append((student(comp).argmax(1).item(), t_plain[b].item()))
    assert 0 < len(pairs) < len(FOREIGN_SCENES) * n  # some composites change the teacher's decision
    per_class = [statistics.fmean(p == t for p, t in pairs if t == c) for c in sorted({t for _, t in pairs})]
    assert foreign_agreement(student, foreign_targets(val, teacher)) == pytest.approx(statistics.fmean(per_class))
    assert foreign_targets(val, DebiasedTeacher(SmallCNN(num_classes=k, width=4, depth=2)).freeze()) is None
    assert foreign_agreement(student, None) is None
