"""Which new backgrounds make a segmenter teacher's U-Net hold on unseen scenes?

For each benchmark (given with a segmenter teacher folder), candidate and seed, trains the teacher's U-Net
anew (the teacher's own settings, `SEGMENTER_TRAINING`, with the candidate's `Segmentation` options) and
reads two validation figures at its selected epoch: the IoU on the validation images, and the IoU on their
foreign-scene composites (`teakit.objectives.segmentation.foreign_iou`: each validation foreground on
pictures that no benchmark and no candidate shows).  It also reports, not for the choice, how often the
teacher with that U-Net keeps its decision on such composites (`teakit.lobo.foreign_targets`).  The
candidate with the best mean foreign-scene IoU over the benchmarks not held out is chosen; only then are
test splits read: per split, the U-Net's IoU and the teacher's accuracy with that U-Net in front of its
own classifier (the classifier is the folder's).

Usage: python scripts/segmenter_study.py OUT BENCHMARK=TEACHER_DIR ... [--candidates default,recolour]
       [--seeds 0,1] [--held-out letters-on-scenes]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from teakit.checkpoint import load_checkpoint
from teakit.commands import train
from teakit.config import SEGMENTER_BACKGROUNDS, SEGMENTER_TRAINING, TrainConfig
from teakit.data.foreign_scenes import FOREIGN_SCENES
from teakit.data.load import TRAINING_SPLITS, load_data
from teakit.lobo import foreign_targets
from teakit.objectives.segmentation import foreign_iou, mask_iou
from teakit.runs import load_model, model_spec
from teakit.teachers import SegmenterTeacher

# each candidate: Segmentation options over SEGMENTER_BACKGROUNDS (`tea train-teacher --seg-*`), and under "unet"
# the U-Net's own options (teakit.models.UNet; default: the one `tea train-teacher` builds)
CANDIDATES = {
    "default": {},
    "paste": {"paste": 0.5},
    "swap": {"swap": 0.5},
    "recolour": {"recolour": 0.5},
    "swap+recolour": {"swap": 0.5, "recolour": 0.5},
    "swap+synthetic+recolour": {"swap": 0.5, "synthetic": 0.5, "recolour": 0.5},
    "swap+synthetic-0.25+recolour": {"swap": 0.5, "synthetic": 0.25, "recolour": 0.5},
    # the default backgrounds and a larger U-Net: one more resolution (a receptive field of about 60 pixels
    # instead of 30), or twice the channels
    "unet-depth-3": {"unet": {"depth": 3}},
    "unet-base-16": {"unet": {"base": 16}},
}


def teacher_with(teacher_dir: Path, unet_dir: Path) -> SegmenterTeacher:
    meta = json.loads((teacher_dir / "teacher.json").read_text())
    return SegmenterTeacher(load_model(unet_dir)[0], load_model(teacher_dir / meta["classifier"])[0],
                            threshold=meta.get("threshold", 0.5), fill=meta.get("fill", "noise"),
                            fills=meta.get("fills", 1)).freeze()


def val_scores(benchmark: str, teacher_dir: Path, run_dir: Path) -> dict:
    scores = run_dir / "scores.json"
    recorded = json.loads(scores.read_text()) if scores.exists() else {}
    if {"iou", "iou_foreign", "keeps_decision"} <= recorded.keys():  # else: none yet, or from an older script
        return recorded
    extra = load_checkpoint(run_dir, "last").extra
    record = next(r for r in extra["history"] if r["epoch"] == extra["best_epoch"])
    val = load_data(benchmark, 0)["val"]
    teacher = teacher_with(teacher_dir, run_dir)
    out = {"iou": record["val"]["iou"],
           "iou_foreign": foreign_iou(teacher.mask, torch.as_tensor(val.x[0:len(val)]),
                                      torch.as_tensor(val.mask[0:len(val)]), norm=val.norm),
           "keeps_decision": len(foreign_targets(val, teacher)[1]) / (len(FOREIGN_SCENES) * len(val))}
    scores.write_text(json.dumps(out))
    return out


@torch.no_grad()
def test_figures(benchmark: str, teacher_dir: Path, unet_dir: Path) -> dict:
    teacher = teacher_with(teacher_dir, unet_dir)
    out = {}
    for split, d in load_data(benchmark, 0).items():
        if split in TRAINING_SPLITS:
            continue
        g = torch.Generator().manual_seed(0)
        ious, correct = [], 0
        for i in range(0, len(d), 256):
            x, m, y = d.x[i:i + 256], d.mask[i:i + 256], d.y[i:i + 256]
            ious.append(mask_iou(teacher.mask(x), m))
            correct += (teacher(x, generator=g).argmax(1) == y).sum().item()
        out[split] = {"iou": torch.cat(ious).mean().item(), "accuracy": correct / len(d)}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("teachers", nargs="+", help="BENCHMARK=TEACHER_DIR (segmenter teachers)")
    p.add_argument("--candidates", default="default,recolour", help=f"comma-separated, of {', '.join(CANDIDATES)}")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--held-out", default="", help="comma-separated benchmarks no choice looks at")
    a = p.parse_args()
    teachers = {b: Path(t) for b, t in (t.split("=", 1) for t in a.teachers)}
    names = a.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {', '.join(unknown)}; expected {', '.join(CANDIDATES)}")
    seeds = [int(s) for s in a.seeds.split(",")]
    held_out = {b for b in a.held_out.split(",") if b}
    out = Path(a.out)
    scores = {}
    for bench, tdir in teachers.items():
        for name in names:
            for seed in seeds:
                run = out / bench / f"{name}-s{seed}"
                if not (run / "best.json").exists():
                    options = dict(CANDIDATES[name])
                    spec = model_spec("unet", 1, **options.pop("unet", {}))
                    train(bench, "segmentation", run, spec=spec, cfg=TrainConfig(**SEGMENTER_TRAINING, seed=seed),
                          split="train", objective_options={**SEGMENTER_BACKGROUNDS, **options}, progress=False)
                scores[(bench, name, seed)] = val_scores(bench, tdir, run)

    def mean(bench, name, key):
        return statistics.fmean(scores[(bench, name, s)][key] for s in seeds)

    sources = [b for b in teachers if b not in held_out]
    overall = {n: statistics.fmean(mean(b, n, "iou_foreign") for b in sources) for n in names}
    best = max(names, key=lambda n: (overall[n], -names.index(n)))  # ties: the one listed first
    lines = [f"Validation (selected epoch, mean of seeds {a.seeds}), IoU / IoU on foreign-scene composites, %:", "",
             "| benchmark | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for bench in teachers:
        tag = " (held out)" if bench in held_out else ""
        lines.append(f"| {bench}{tag} | " + " | ".join(
            f"{100 * mean(bench, n, 'iou'):.1f} / {100 * mean(bench, n, 'iou_foreign'):.1f}" for n in names) + " |")
    lines += ["", "The teacher with each U-Net: how often it keeps its decision on the foreign-scene composites of "
              "its validation images (cut by its own mask, segmented anew; not a selection figure), %:", "",
              "| benchmark | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {bench} | " + " | ".join(f"{100 * mean(bench, n, 'keeps_decision'):.1f}" for n in names) + " |"
              for bench in teachers]
    lines += ["", f"Mean foreign-scene IoU over {', '.join(sources)}: "
              + ", ".join(f"{n}: {100 * overall[n]:.2f}" for n in names) + f"; chosen: {best}", "",
              f"Test (read after the choice; mean of seeds {a.seeds}): U-Net IoU / teacher accuracy, %:", "",
              "| benchmark | split | " + " | ".join(names) + " |", "|---|---" + "|---" * len(names) + "|"]
    for bench, tdir in teachers.items():
        figs = {}
        for n in names:
            per_seed = [test_figures(bench, tdir, out / bench / f"{n}-s{s}") for s in seeds]
            figs[n] = {split: {k: statistics.fmean(f[split][k] for f in per_seed) for k in ("iou", "accuracy")}
                       for split in per_seed[0]}
        for split in figs[names[0]]:
            lines.append(f"| {bench} | {split} | " + " | ".join(
                f"{100 * figs[n][split]['iou']:.1f} / {100 * figs[n][split]['accuracy']:.1f}" for n in names) + " |")
    text = "\n".join(lines) + "\n"
    (out / "segmenter.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
