"""How should a segmenter teacher decide: from one draw of its noise fill, from many, or from a fixed fill?

Candidates, for each benchmark given with a segmenter teacher folder (its U-Net is kept throughout):

* ``draws-N``: the folder's classifier on the noise fill, its logits averaged over N draws
  (`tea train-teacher --fills N`; ``draws-1`` is one draw, the teacher before the option);
* ``zero`` / ``mean``: the classifier trained anew on that fill (the folder's settings and seed), which is
  the same every draw.

Each is scored on validation data only: the mean of its class-balanced accuracy on the validation images and
on their foreign-scene composites (each validation foreground, cut by the teacher's own U-Net mask, on every
scene of `teakit.data.foreign_scenes`, which no benchmark shows; the U-Net segments the composite anew), as
`tea study lobo` scores a student but against the labels.  Next to it, the share of images on which two
copies of the candidate that draw their fills independently decide alike (its self-agreement).  The
candidate with the best mean score over the benchmarks not held out is chosen (ties: the one listed first);
only then are test splits read, for the candidates ``--test`` names (default: the first listed and the chosen).

Usage: python scripts/teacher_decision_study.py OUT BENCHMARK=TEACHER_DIR ...
       [--candidates draws-1,draws-2,draws-4,draws-8,draws-16,zero,mean] [--held-out letters-on-scenes]
       [--test draws-1,zero]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from teakit.checkpoint import load_checkpoint
from teakit.commands import train
from teakit.config import TrainConfig
from teakit.data.foreign_scenes import FOREIGN_SCENES, foreign_composites
from teakit.data.load import TRAINING_SPLITS, load_data
from teakit.evaluate import EVAL_SEED, balanced_agreement, image_generators
from teakit.runs import load_model
from teakit.teachers import SegmenterTeacher

FIXED_FILLS = ("zero", "mean")


def candidate_teacher(teacher_dir: Path, out: Path, bench: str, name: str) -> SegmenterTeacher:
    """The candidate's teacher: ``draws-N`` the folder's classifier; a fixed fill a classifier trained anew
    into ``out/bench/fill`` (once) with the folder's settings and seed."""
    meta = json.loads((teacher_dir / "teacher.json").read_text())
    segmenter = load_model(teacher_dir / meta["segmenter"])[0]
    if name.startswith("draws-"):
        classifier = load_model(teacher_dir / meta["classifier"])[0]
        return SegmenterTeacher(segmenter, classifier, fill="noise", fills=int(name.split("-", 1)[1])).freeze()
    run = out / bench / name
    if not (run / "best.json").exists():
        own = load_checkpoint(teacher_dir / meta["classifier"], "best").config
        options = {k: v for k, v in own["objective"].items() if k not in ("name", "fill")}
        train(bench, "erm", run, spec=own["model"], cfg=TrainConfig(**own["train"]), split="train", fill=name,
              data_seed=own.get("data_seed", 0), objective_options=options, progress=False)
    return SegmenterTeacher(segmenter, load_model(run)[0], fill=name).freeze()


@torch.no_grad()
def decisions(teacher: SegmenterTeacher, x: torch.Tensor, seed: int, batch: int = 256) -> torch.Tensor:
    """The teacher's decisions, each image's fills drawn from its own generator (as evaluation draws them,
    at ``seed`` = EVAL_SEED)."""
    return torch.cat([teacher(x[i:i + batch], generator=image_generators(range(i, i + len(x[i:i + batch])),
                                                                         seed=seed)).argmax(1)
                      for i in range(0, len(x), batch)])


def figures(teacher: SegmenterTeacher, x: torch.Tensor, y: torch.Tensor) -> dict:
    first, second = decisions(teacher, x, EVAL_SEED), decisions(teacher, x, EVAL_SEED + 1)
    return {"balanced": balanced_agreement(first, y), "accuracy": (first == y).float().mean().item(),
            "self": (first == second).float().mean().item()}


def val_figures(bench: str, teacher: SegmenterTeacher) -> dict:
    val = load_data(bench, 0)["val"]
    x, y = torch.as_tensor(val.x[0:len(val)]), torch.as_tensor(val.y[0:len(val)])
    keep = torch.cat([teacher.mask(x[i:i + 256]) for i in range(0, len(x), 256)])
    composites = foreign_composites(x, keep, norm=val.norm)
    res = {"val": figures(teacher, x, y), "foreign": figures(teacher, composites, y.repeat(len(FOREIGN_SCENES)))}
    return {**res, "score": (res["val"]["balanced"] + res["foreign"]["balanced"]) / 2}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("teachers", nargs="+", help="BENCHMARK=TEACHER_DIR (segmenter teachers)")
    p.add_argument("--candidates", default="draws-1,draws-2,draws-4,draws-8,draws-16,zero,mean")
    p.add_argument("--held-out", default="", help="comma-separated benchmarks no choice looks at")
    p.add_argument("--test", default="", help="candidates read on the test splits, besides the first and the chosen")
    a = p.parse_args()
    teachers = {b: Path(t) for b, t in (t.split("=", 1) for t in a.teachers)}
    names = a.candidates.split(",")
    bad = [n for n in names if n not in FIXED_FILLS and not (n.startswith("draws-") and n[6:].isdigit()
                                                             and int(n[6:]) > 0)]
    if bad:
        p.error(f"unknown candidate(s) {', '.join(bad)}; expected draws-N (N >= 1) or one of {', '.join(FIXED_FILLS)}")
    held_out = {b for b in a.held_out.split(",") if b}
    extra = [n for n in a.test.split(",") if n]
    if set(extra) - set(names):
        p.error(f"--test: {', '.join(sorted(set(extra) - set(names)))} not among the candidates")
    out = Path(a.out)
    scores = {}
    for bench, tdir in teachers.items():
        for name in names:
            kept = out / bench / f"{name}.val.json"
            if not kept.exists():
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(json.dumps(val_figures(bench, candidate_teacher(tdir, out, bench, name))))
            scores[bench, name] = json.loads(kept.read_text())
            print(f"{bench} {name}: score {100 * scores[bench, name]['score']:.2f}", flush=True)
    sources = [b for b in teachers if b not in held_out]
    overall = {n: statistics.fmean(scores[b, n]["score"] for b in sources) for n in names}
    best = max(names, key=lambda n: (overall[n], -names.index(n)))
    lines = ["Validation: score (class-balanced accuracy on val / on its foreign-scene composites; "
             "self-agreement of two independent draws on val / composites), %:", "",
             "| benchmark | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for bench in teachers:
        tag = " (held out)" if bench in held_out else ""
        lines.append(f"| {bench}{tag} | " + " | ".join(
            "{:.2f} ({:.1f} / {:.1f}; {:.1f} / {:.1f})".format(
                100 * s["score"], 100 * s["val"]["balanced"], 100 * s["foreign"]["balanced"],
                100 * s["val"]["self"], 100 * s["foreign"]["self"])
            for s in (scores[bench, n] for n in names)) + " |")
    lines += ["", f"Mean score over {', '.join(sources)}: " + ", ".join(f"{n} {100 * overall[n]:.2f}" for n in names)
              + f"; chosen: {best}", "",
              "Test (read after the choice): accuracy (self-agreement), %:", ""]
    names = [n for n in names if n in {names[0], best, *extra}]
    lines += ["| benchmark | split | " + " | ".join(names) + " |", "|---|---" + "|---" * len(names) + "|"]
    for bench, tdir in teachers.items():
        tests = {s: d for s, d in load_data(bench, 0).items() if s not in TRAINING_SPLITS}
        figs = {}
        for n in names:
            teacher = candidate_teacher(tdir, out, bench, n)
            figs[n] = {s: figures(teacher, torch.as_tensor(d.x[0:len(d)]), torch.as_tensor(d.y[0:len(d)]))
                       for s, d in tests.items()}
        for split in tests:
            lines.append(f"| {bench} | {split} | " + " | ".join(
                f"{100 * figs[n][split]['accuracy']:.1f} ({100 * figs[n][split]['self']:.1f})" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    (out / "decision.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
