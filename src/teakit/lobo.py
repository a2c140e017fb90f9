"""`tea study lobo`: choose a recipe without tuning it to the benchmark it is reported on.

Leave-one-benchmark-out: every candidate recipe (a variant of
:data:`teakit.names.VARIANTS`, one change from the `tea distill` defaults, as in
`tea study convergence`; ``default`` is the defaults themselves) is distilled on
every benchmark and seed.  Then, for each benchmark B in turn:

1. **Score** (validation only, no labels), for the model of the run's selected
   epoch (lowest validation heatmap loss, as `tea distill` selects; its ``best``
   checkpoint): the mean of two class-balanced agreements with the teacher
   (:func:`teakit.evaluate.balanced_agreement`: per class the teacher predicts,
   the share the student predicts alike, averaged over those classes), on B's
   *biased validation set* and on its *foreign-scene composites*
   (:func:`foreign_targets`: every validation image's foreground, cut by the
   segmenter teacher's own mask, on crops of scenes no benchmark shows,
   :mod:`teakit.data.foreign_scenes`, judged against the teacher's decision on
   the original image, where the teacher keeps that decision when it segments
   the composite itself).  A teacher without a segmenter has no mask to cut with:
   its score is the first agreement alone.  Agreement, not the heatmap loss, so
   that candidates whose losses differ (``mse``, ``cosine``, ``pair`` …) compare
   on one scale; class-balanced, so that on imbalanced data (glyphs-on-places) a
   rare class the student misses weighs as much as the common one; the
   composites, because every candidate agrees 98–100 % on the biased
   validation sets, which cannot tell a student that ignores unseen
   backgrounds from one that does not.
2. **Choice**: the candidate with the best mean score over the *other*
   benchmarks that are not held out (:func:`choose`; ties go to the candidate
   listed first, and with a ``tolerance`` t the first listed within t of the
   best).  B's own scores never enter B's choice, and a held-out benchmark's
   scores enter no choice at all.
3. **Report**: only now are test splits read.  B's shifted figures
   (:func:`shifted_figures`: every test split but ``id``, plus the worst-group
   accuracy where the bias attribute is the group) for the teacher and for the
   chosen candidate's runs (mean ± sd over seeds), the gap, and the student's
   agreement with the teacher on that split.  Nothing measured here flows back:
   the choices are fixed before any test split is looked at.

Writes under ``out``: ``BENCHMARK/CANDIDATE-s<SEED>/`` each run's folder (a
`tea distill` run) with ``score.json`` (its score, selected epoch and the
settings it was trained with; a run with a ``score.json`` is finished and is
reused, unless ``fresh``, and rescored from its checkpoint when its record holds
another kind of score; a run without one restarts), then ``lobo.md`` and
``lobo.csv`` (one row per benchmark and shifted figure).  Test figures are kept
(``BENCHMARK/teacher-figures.json``, a reported run's ``test-figures.json``)
and read back by a later report while the checkpoint, teacher and test data are
the same.
"""
from __future__ import annotations

import csv
import functools
import json
import shutil
import statistics
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .atomic import atomic_write_bytes, atomic_write_csv
from .config import TEAConfig, TrainConfig, command_train_config
from .study import variant_setup

CSV_FIELDS = ["benchmark", "held_out", "chosen", "chosen_on", "choice_score", "figure", "teacher",
              "student_mean", "student_sd", "seeds", "gap", "agreement"]
SCORE = "val score"  # what a candidate is chosen by (the label in the tables)
SCORE_KIND = ("mean of class-balanced agreement on val and on its foreign-scene composites "
              "(those the teacher keeps its decision on)")


# ----------------------------------------------------------------- the choice (validation scores only)


def choose(scores: dict, candidates, benchmarks, held_out=(), tolerance: float = 0.0) -> dict:
    """For every benchmark B: ``{"candidate", "sources", "score"}``, the candidate with the best mean
    of ``scores[candidate][benchmark]`` over the benchmarks other than B that are not in ``held_out``
    (``sources``, in the order given; ``score``: that mean).  Ties go to the candidate listed first;
    with ``tolerance`` t, the first-listed candidate whose mean is at least the best mean minus t
    (list the cheaper recipes first: a cheaper one is chosen unless it scores more than t lower).
    With no such benchmark the choice looks at nothing: the first candidate, ``sources`` empty and
    ``score`` None."""
    candidates, benchmarks, held_out = list(candidates), list(benchmarks), set(held_out)
    if not candidates:
        raise ValueError("no candidates to choose from")
    unknown = held_out - set(benchmarks)
    if unknown:
        raise ValueError(f"held-out benchmark(s) {', '.join(sorted(unknown))} are not among {', '.join(benchmarks)}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance={tolerance} must be >= 0")
    out = {}
    for b in benchmarks:
        sources = [o for o in benchmarks if o != b and o not in held_out]
        if not sources:
            out[b] = {"candidate": candidates[0], "sources": sources, "score": None}
            continue
        means = {}
        for c in candidates:
            missing = [o for o in sources if scores.get(c, {}).get(o) is None]
            if missing:
                raise ValueError(f"no score of candidate {c!r} on {', '.join(missing)}")
            means[c] = statistics.fmean(scores[c][o] for o in sources)
        top = max(means.values())
        best = next(c for c in candidates if means[c] >= top - tolerance)  # ties: the first listed
        out[b] = {"candidate": best, "sources": sources, "score": means[best]}
    return out


def foreign_targets(val, teacher, batch_size: int = 256) -> tuple | None:
    """The teacher's side of :func:`foreign_agreement`, the same for every run on ``val``:
    ``(composites, decisions)``.  The composites are the foreign-scene composites of the validation
    split ``val`` (:func:`teakit.data.foreign_scenes.foreign_composites`, seed 0: each image's
    foreground, cut by the teacher's own segmenter mask, on a crop of every foreign scene).  Each is
    paired with the teacher's decision on its original image.  Only the composites on which the
    teacher itself, segmenting them with its own segmenter, keeps that decision are kept: on the
    others the new scene hides or changes the object (a white digit on a white page), and no student
    can be asked to keep the decision.  None for a teacher without a segmenter (no mask to cut with)."""
    from .data.foreign_scenes import FOREIGN_SCENES, foreign_composites
    from .evaluate import predict
    from .teachers.segmenter import SegmenterTeacher

    if not isinstance(teacher, SegmenterTeacher):
        return None
    x = torch.as_tensor(val.x[0:len(val)])
    t_pred = predict(teacher, x, batch_size).argmax(1).repeat(len(FOREIGN_SCENES))
    keep = torch.cat([teacher.mask(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    composites = foreign_composites(x, keep, norm=val.norm)
    kept = predict(teacher, composites, batch_size).argmax(1) == t_pred
    if not bool(kept.any()):
        raise ValueError("foreign_targets: the teacher changes its decision on every composite")
    return composites[kept], t_pred[kept]


def foreign_agreement(model, targets, batch_size: int = 256) -> float | None:
    """Class-balanced agreement of ``model`` with the teacher's decisions on the foreign-scene
    composites of :func:`foreign_targets` (``targets``); None where those are None (no segmenter)."""
    from .evaluate import balanced_agreement, predict

    if targets is None:
        return None
    composites, decisions = targets
    return balanced_agreement(predict(model, composites, batch_size).argmax(1), decisions)


def run_score(run_dir, val, teacher, targets) -> dict:
    """A finished `tea distill` run's ``{"score", "val_agreement", "foreign_agreement", "agreement",
    "epoch", "heatmap_loss", "score_kind"}`` for the model of its selected epoch (its ``best``
    checkpoint): ``val_agreement``, its class-balanced agreement with ``teacher`` on the validation
    split ``val`` (an ImageSet); ``foreign_agreement``, :func:`foreign_agreement` on ``targets``
    (:func:`foreign_targets` of ``val`` and ``teacher``; None without a segmenter); ``score``, their
    mean (``val_agreement`` alone without a segmenter); ``agreement``, the top-1 agreement its history
    logged for that epoch; ``epoch``, that epoch (counted from 1)."""
    from .checkpoint import load_checkpoint
    from .evaluate import evaluate_splits
    from .runs import load_model

    extra = load_checkpoint(run_dir, "last").extra
    best = extra["best_epoch"]
    if best < 0:
        raise ValueError(f"{run_dir}: no epoch was selected (the validation loss never became finite)")
    record = next(r for r in extra["history"] if r["epoch"] == best)
    model = load_model(run_dir)[0]
    res = evaluate_splits(model, {"val": val}, teacher=teacher, relevance=False)["splits"]["val"]
    plain, foreign = res["balanced_agreement_with_teacher"], foreign_agreement(model, targets)
    return {"score": plain if foreign is None else (plain + foreign) / 2, "val_agreement": plain,
            "foreign_agreement": foreign, "agreement": res["agreement_with_teacher"], "epoch": best + 1,
            "heatmap_loss": record["val"].get("heatmap_loss"), "score_kind": SCORE_KIND}


# ----------------------------------------------------------------- the figures (test splits, reported only)


def shifted_figures(dataset: str, splits: dict) -> dict:
    """``{figure: (split, metric)}`` of the shifted test figures of ``dataset``, given the
    :func:`teakit.evaluate.evaluate_splits` results of its test ``splits``: the accuracy of every
    split but ``id``, and — where the bias attribute is the group (``BIAS_IS_GROUP``) — the
    worst-group accuracy of each of those splits."""
    from .data.load import BIAS_IS_GROUP

    figures = {}
    for split, res in splits.items():
        if split == "id":
            continue
        figures[split] = (split, "accuracy")
        if dataset in BIAS_IS_GROUP and "worst_group_accuracy" in res:
            figures[f"{split} worst-group"] = (split, "worst_group_accuracy")
    return figures


# bump when what _report_benchmark measures changes: test figures kept under an older version are recomputed
FIGURES_KIND = 1


def _kept(path: Path, key: dict, compute):
    """``compute()``'s test figures, kept in ``path`` (JSON, with ``key``) and read back while ``key`` is
    the same: the checkpoint, the teacher, the test data and :data:`FIGURES_KIND` (anything else recomputes)."""
    key = _json_roundtrip({**key, "kind": FIGURES_KIND})
    try:
        kept = json.loads(Path(path).read_text())
        if kept["key"] == key:
            return kept["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    splits = _json_roundtrip(compute())
    atomic_write_bytes(Path(path), (json.dumps({"key": key, "splits": splits}, indent=1) + "\n").encode())
    return splits


def _report_benchmark(dataset, teacher_dir, run_dirs, *, data_seed, data_options, out) -> list[dict]:
    """Rows ``{"figure", "teacher", "students", "agreements"}`` of one benchmark: the teacher (as
    `tea evaluate` takes a teacher folder) and each run (its ``best`` checkpoint) on the test splits.
    Each model's figures are kept (:func:`_kept`): the teacher's in ``out/teacher-figures.json``, a run's in
    its folder's ``test-figures.json``; a later report with the same checkpoint, teacher and data reads them."""
    from .checkpoint import model_digest
    from .data.load import TRAINING_SPLITS, load_data
    from .evaluate import evaluate_splits
    from .runs import load_evaluand, load_model, load_teacher, teacher_hash, teacher_split_logits

    data = load_data(dataset, data_seed, **(data_options or {}))
    tests = {s: d for s, d in data.items() if s not in TRAINING_SPLITS}
    teacher = load_teacher(teacher_dir)
    key = {"dataset": dataset, "tests": {s: d.fingerprint() for s, d in sorted(tests.items())},
           "teacher": teacher_hash(teacher), "decision": teacher.decision_config()}
    t_res = _kept(out / "teacher-figures.json", key,
                  lambda: evaluate_splits(load_evaluand(teacher_dir)[0], tests, relevance=False)["splits"])
    # the teacher's test logits, kept in its folder as `tea evaluate` keeps them: computed once for all runs
    t_logits = functools.cache(lambda: teacher_split_logits(teacher, teacher_dir, tests, key["teacher"]))
    s_res = [_kept(Path(d) / "test-figures.json", {**key, "model": model_digest(d, "best")},
                   lambda d=d: evaluate_splits(load_model(d)[0], tests, teacher=teacher, relevance=False,
                                               teacher_logits=t_logits())["splits"])
             for d in run_dirs]
    rows = []
    for figure, (split, metric) in shifted_figures(dataset, t_res).items():
        rows.append({"figure": figure, "teacher": t_res[split][metric],
                     "students": [r[split][metric] for r in s_res],
                     "agreements": [r[split]["agreement_with_teacher"] for r in s_res]})
    return rows


# ----------------------------------------------------------------- the protocol


def _json_roundtrip(obj):
    return json.loads(json.dumps(obj))


def recorded_settings(record: dict, decision: dict | None = None) -> dict:
    """A finished run's settings, with every TEA option it does not name off, as the run trained
    them: options added to :class:`~teakit.config.TEAConfig` after the run was trained were off by
    default when they were added (``swap_backgrounds`` and ``recolour_backgrounds`` were; they are on
    by default since).  A run recorded before its teacher's decision settings were (``decision``: the
    teacher's ``decision_config()``) had a teacher of one fill draw."""
    settings = record["settings"]
    added_off = {**_json_roundtrip(asdict(TEAConfig())), "swap_backgrounds": 0.0, "recolour_backgrounds": 0.0}
    return {"teacher_decision": {k: 1 for k in decision or {}}, **settings, "tea": {**added_off, **settings["tea"]}}


def lobo(benchmarks, teachers: dict, candidates, out, *, seeds=(0,), held_out=(), cfg: TrainConfig | None = None,
         tea: dict | None = None, spec: dict | None = None, data_seed: int = 0, data_options: dict | None = None,
         fresh: bool = False, progress: bool = True, fabric: dict | None = None, tolerance: float = 0.0) -> Path:
    """Run the protocol (module docstring) and write ``lobo.md`` / ``lobo.csv`` under ``out``.

    ``benchmarks``: built-in dataset names; ``teachers``: ``{benchmark: teacher folder}``;
    ``candidates``: names from :data:`teakit.names.VARIANTS`; ``seeds``: training seeds; ``held_out``:
    benchmarks no choice may look at; ``cfg`` (default `tea study`'s), ``tea``, ``spec``: the baseline
    recipe the candidates change; ``tolerance``: :func:`choose`'s (a score, 0.01 = one point).  Returns the
    path of ``lobo.md``."""
    from .atomic import atomic_write_bytes
    from .commands import distill
    from .data.load import load_data
    from .data.names import BUILTIN
    from .runs import load_evaluand, load_teacher, teacher_hash

    benchmarks, candidates, seeds = list(benchmarks), list(candidates), [int(s) for s in seeds]
    held_out = list(held_out)
    for name, what in ((benchmarks, "benchmarks"), (candidates, "candidates"), (seeds, "seeds")):
        if not name:
            raise ValueError(f"tea study lobo: no {what} given")
        if len(set(name)) != len(name):
            raise ValueError(f"tea study lobo: {what} listed twice: {', '.join(map(str, name))}")
    for b in benchmarks:
        if b not in BUILTIN:
            raise ValueError(f"benchmark {b!r}: expected built-in names ({', '.join(BUILTIN)})")
    missing = [b for b in benchmarks if b not in teachers]
    if missing:
        raise ValueError(f"no teacher folder for {', '.join(missing)} (give BENCHMARK=DIR for each)")
    extra = sorted(set(teachers) - set(benchmarks))
    if extra:
        raise ValueError(f"teacher folder(s) for {', '.join(extra)}, which are not among the benchmarks")
    bad = [h for h in held_out if h not in benchmarks]
    if bad:
        raise ValueError(f"held-out benchmark(s) {', '.join(bad)} are not among {', '.join(benchmarks)}")
    base_cfg = cfg or command_train_config("study", "tea")
    for c in candidates:
        variant_setup(c, base_cfg, {}, None)  # unknown names fail before any training
    hashes, loaded = {}, {}
    for b in benchmarks:
        trained_on = load_evaluand(teachers[b])[1].get("dataset")
        if trained_on and trained_on != b:
            raise ValueError(f"the teacher for {b}, {teachers[b]}, was trained on {trained_on}")
        loaded[b] = load_teacher(teachers[b])
        hashes[b] = teacher_hash(loaded[b])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. train (or reuse) every run; its score is read from its validation history only
    scores, total, i = {c: {} for c in candidates}, len(benchmarks) * len(candidates) * len(seeds), 0
    parts = {c: {} for c in candidates}  # the two agreements each score is the mean of
    for b in benchmarks:
        val = load_data(b, data_seed, **(data_options or {}))["val"]
        # the teacher's side of the score, once per benchmark, and only if a run is scored
        targets = functools.cache(lambda val=val, teacher=loaded[b]: foreign_targets(val, teacher))
        for c in candidates:
            per_seed = []
            for seed in seeds:
                i += 1
                v_cfg, v_tea, v_spec, copy_head = variant_setup(c, replace(base_cfg, seed=seed), dict(tea or {}),
                                                                spec)
                settings = _json_roundtrip({
                    "benchmark": b, "candidate": c, "seed": seed, "train": asdict(v_cfg),
                    "tea": {**asdict(TEAConfig()), **v_tea}, "spec": v_spec, "copy_head": copy_head,
                    "data_seed": data_seed, "data_options": data_options or {}, "teacher_hash": hashes[b],
                    "teacher_decision": loaded[b].decision_config()})
                run_dir, done = out / b / f"{c}-s{seed}", out / b / f"{c}-s{seed}" / "score.json"
                if done.exists() and not fresh:
                    record = json.loads(done.read_text())
                    recorded = recorded_settings(record, loaded[b].decision_config())
                    if recorded != settings:
                        changed = sorted(k for k in settings if recorded.get(k) != settings[k])
                        raise ValueError(f"{run_dir} was trained with other settings ({', '.join(changed)}); "
                                         "use another --out, or --fresh to retrain")
                    print(f"[{i}/{total}] {b} / {c} / seed {seed}: finished earlier, reusing {done}")
                    if record.get("score_kind") != SCORE_KIND:  # scored by an earlier protocol
                        record = {**run_score(run_dir, val, loaded[b], targets()), "settings": record["settings"]}
                        atomic_write_bytes(done, (json.dumps(record, indent=2) + "\n").encode())
                        print(f"    rescored: {SCORE} {100 * record['score']:.1f}")
                else:
                    if run_dir.exists():
                        shutil.rmtree(run_dir)  # an unfinished run restarts from scratch
                    print(f"[{i}/{total}] {b} / {c} / seed {seed}: {v_cfg.epochs} epochs")
                    distill(b, teachers[b], run_dir, spec=v_spec, cfg=v_cfg, tea=v_tea, copy_head=copy_head,
                            data_seed=data_seed, data_options=data_options, progress=progress, fabric=fabric)
                    record = {**run_score(run_dir, val, loaded[b], targets()), "settings": settings}
                    atomic_write_bytes(done, (json.dumps(record, indent=2) + "\n").encode())
                per_seed.append(record)
            scores[c][b] = statistics.fmean(r["score"] for r in per_seed)
            foreign = [r["foreign_agreement"] for r in per_seed]
            parts[c][b] = (statistics.fmean(r["val_agreement"] for r in per_seed),
                           None if None in foreign else statistics.fmean(foreign))

    # 2. choose, from the validation scores alone (no test split has been evaluated yet)
    choices = choose(scores, candidates, benchmarks, held_out, tolerance)

    # 3. report each benchmark's shifted test figures of its chosen candidate
    rows = []
    for b in benchmarks:
        ch = choices[b]
        run_dirs = [out / b / f"{ch['candidate']}-s{s}" for s in seeds]
        for f in _report_benchmark(b, teachers[b], run_dirs, data_seed=data_seed, data_options=data_options,
                                   out=out / b):
            mean = statistics.fmean(f["students"])
            rows.append({"benchmark": b, "held_out": b in held_out, "chosen": ch["candidate"],
                         "chosen_on": ",".join(ch["sources"]), "choice_score": ch["score"],
                         "figure": f["figure"], "teacher": f["teacher"], "student_mean": mean,
                         "student_sd": statistics.stdev(f["students"]) if len(seeds) > 1 else None,
                         "seeds": len(seeds), "gap": f["teacher"] - mean,
                         "agreement": statistics.fmean(f["agreements"])})
    atomic_write_csv(out / "lobo.csv", rows, CSV_FIELDS)
    text = lobo_table(rows) + "\n\n" + score_table(scores, candidates, benchmarks, held_out, parts) + "\n"
    (out / "lobo.md").write_text(text)
    print(text, end="")
    return out / "lobo.md"


def read_lobo_csv(path) -> list[dict]:
    """Rows of a ``lobo.csv``: numbers as floats (empty: None), ``held_out`` a bool, ``seeds`` an int."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["held_out"] = r["held_out"] == "True"
        r["seeds"] = int(r["seeds"])
        for k in ("choice_score", "teacher", "student_mean", "student_sd", "gap", "agreement"):
            r[k] = float(r[k]) if r[k] not in ("", None) else None
    return rows


def lobo_table(rows: list[dict]) -> str:
    """Markdown: per benchmark and shifted figure, the chosen candidate, teacher, student, gap, agreement
    (percent; gap = teacher - student mean, in points)."""
    lines = ["| benchmark | held out? | chosen candidate (chosen on …: mean " + SCORE + ") | figure | teacher "
             "| student (mean ± sd over seeds) | gap | agreement with teacher |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        on = (f"{r['chosen_on'].replace(',', ', ')}: {100 * r['choice_score']:.1f}" if r["chosen_on"]
              else "no other benchmark: first listed")
        sd = f" ± {100 * r['student_sd']:.1f}" if r["student_sd"] is not None else ""
        lines.append(f"| {r['benchmark']} | {'yes' if r['held_out'] else 'no'} | {r['chosen']} ({on}) | "
                     f"{r['figure']} | {100 * r['teacher']:.1f} | {100 * r['student_mean']:.1f}{sd} "
                     f"(n={r['seeds']}) | {100 * r['gap']:+.1f} | {100 * r['agreement']:.1f} |")
    return "\n".join(lines)


def score_table(scores: dict, candidates, benchmarks, held_out=(), parts: dict | None = None) -> str:
    """Markdown: the scores the choices were made from (mean over seeds, percent); a held-out
    benchmark's column is marked unused.  With ``parts`` (``{candidate: {benchmark: (val, foreign)}}``,
    foreign None without a segmenter), each cell also shows the two agreements its score averages."""
    head = [f"{b} (held out: unused)" if b in held_out else b for b in benchmarks]

    def cell(c, b):
        text = f"{100 * scores[c][b]:.1f}"
        if parts is None:
            return text
        val, foreign = parts[c][b]
        return text + (f" ({100 * val:.1f} / {100 * foreign:.1f})" if foreign is not None else " (val only)")

    lines = [f"Scores ({SCORE}: {SCORE_KIND}, at the selected epoch, mean over seeds, %"
             + ("; in brackets: val / composites" if parts is not None else "") + "):", "",
             "| candidate | " + " | ".join(head) + " |", "|---" * (len(benchmarks) + 1) + "|"]
    for c in candidates:
        lines.append(f"| {c} | " + " | ".join(cell(c, b) for b in benchmarks) + " |")
    return "\n".join(lines)
