"""Which training images make a segmenter teacher's classifier hold on unseen scenes?

For each benchmark (given with a segmenter teacher folder: its U-Net is kept) and candidate, trains the
teacher's classifier anew with the folder's own settings and seed (`tea train-teacher --cls-*`: the masks
that cut the background, true or the U-Net's own, and new backgrounds first), except the `true` candidate,
which is the folder's classifier (today's default pipeline).  Two validation figures of the whole teacher
(that U-Net, then the candidate classifier): its accuracy on the validation images, and its accuracy on their
foreign-scene composites (each validation foreground, cut by its true mask, on every foreign scene of
`teakit.data.foreign_scenes`, which no benchmark and no candidate shows; the U-Net segments them anew).
The candidate with the best mean foreign-scene accuracy over the benchmarks not held out is chosen (ties:
the one listed first); only then are test splits read.

Usage: python scripts/teacher_classifier_study.py OUT BENCHMARK=TEACHER_DIR ...
       [--candidates true,segmenter+new] [--held-out letters-on-scenes]
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
from teakit.evaluate import predict
from teakit.runs import load_model
from teakit.teachers import SegmenterTeacher

# each candidate: `tea train-teacher --cls-*` options over teakit.config.TEACHER_CLASSIFIER
CANDIDATES = {
    "true": None,  # the folder's own classifier
    "segmenter": {"masks": "segmenter"},
    "segmenter+new": {"masks": "segmenter", "swap": 0.5, "recolour": 0.5},
}


def classifier_dir(teacher_dir: Path, out: Path, bench: str, name: str) -> Path:
    if CANDIDATES[name] is None:
        return teacher_dir / json.loads((teacher_dir / "teacher.json").read_text())["classifier"]
    run = out / bench / name
    if not (run / "best.json").exists():
        own = load_checkpoint(teacher_dir / "classifier", "best").config
        options = dict(CANDIDATES[name])
        if options.get("masks") == "segmenter":
            options["segmenter"] = load_model(teacher_dir / "segmenter")[0]
        options.pop("masks", None)
        train(bench, "erm", run, spec=own["model"], cfg=TrainConfig(**own["train"]), split="train",
              fill=own["objective"]["fill"], objective_options=options, progress=False)
    return run


def teacher_with(teacher_dir: Path, cls_dir: Path) -> SegmenterTeacher:
    meta = json.loads((teacher_dir / "teacher.json").read_text())
    return SegmenterTeacher(load_model(teacher_dir / meta["segmenter"])[0], load_model(cls_dir)[0],
                            threshold=meta.get("threshold", 0.5), fill=meta.get("fill", "noise")).freeze()


def accuracy(teacher, x: torch.Tensor, y: torch.Tensor) -> float:
    torch.manual_seed(0)  # the noise fill
    return (predict(teacher, x).argmax(1) == y).float().mean().item()


@torch.no_grad()
def val_scores(bench: str, teacher: SegmenterTeacher) -> dict:
    val = load_data(bench, 0)["val"]
    x, y, mask = torch.as_tensor(val.x[0:len(val)]), val.y, torch.as_tensor(val.mask[0:len(val)])
    composites = foreign_composites(x, mask, norm=val.norm)
    return {"accuracy": accuracy(teacher, x, y),
            "foreign": accuracy(teacher, composites, y.repeat(len(FOREIGN_SCENES)))}


@torch.no_grad()
def test_scores(bench: str, teacher: SegmenterTeacher) -> dict:
    return {split: accuracy(teacher, torch.as_tensor(d.x[0:len(d)]), d.y)
            for split, d in load_data(bench, 0).items() if split not in TRAINING_SPLITS}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("teachers", nargs="+", help="BENCHMARK=TEACHER_DIR (segmenter teachers)")
    p.add_argument("--candidates", default="true,segmenter+new", help=f"comma-separated, of {', '.join(CANDIDATES)}")
    p.add_argument("--held-out", default="", help="comma-separated benchmarks no choice looks at")
    a = p.parse_args()
    teachers = {b: Path(t) for b, t in (t.split("=", 1) for t in a.teachers)}
    names = a.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {', '.join(unknown)}; expected {', '.join(CANDIDATES)}")
    held_out = {b for b in a.held_out.split(",") if b}
    out = Path(a.out)
    scores, runs = {}, {}
    for bench, tdir in teachers.items():
        for name in names:
            runs[bench, name] = classifier_dir(tdir, out, bench, name)
            cached = out / bench / f"{name}.val.json"
            if not cached.exists():
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps(val_scores(bench, teacher_with(tdir, runs[bench, name]))))
            scores[bench, name] = json.loads(cached.read_text())
    sources = [b for b in teachers if b not in held_out]
    overall = {n: statistics.fmean(scores[b, n]["foreign"] for b in sources) for n in names}
    best = max(names, key=lambda n: (overall[n], -names.index(n)))
    header = ["| benchmark | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines = ["Validation, teacher accuracy on the validation images / on their foreign-scene composites, %:", "",
             *header]
    for bench in teachers:
        tag = " (held out)" if bench in held_out else ""
        lines.append(f"| {bench}{tag} | " + " | ".join(
            f"{100 * scores[bench, n]['accuracy']:.1f} / {100 * scores[bench, n]['foreign']:.1f}" for n in names)
            + " |")
    lines += ["", f"Mean foreign-scene accuracy over {', '.join(sources)}: "
              + ", ".join(f"{n}: {100 * overall[n]:.2f}" for n in names) + f"; chosen: {best}", "",
              "Test (read after the choice), teacher accuracy, %:", "",
              "| benchmark | split | " + " | ".join(names) + " |", "|---|---" + "|---" * len(names) + "|"]
    for bench, tdir in teachers.items():
        figs = {n: test_scores(bench, teacher_with(tdir, runs[bench, n])) for n in names}
        for split in figs[names[0]]:
            lines.append(f"| {bench} | {split} | " + " | ".join(f"{100 * figs[n][split]:.1f}" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    (out / "classifier.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
