"""Does pasting foregrounds onto other training images make a segmenter teacher hold on unseen scenes?

For each benchmark (given with a segmenter teacher folder) and each paste chance, trains the teacher's
U-Net anew (the teacher's own settings: `SEGMENTER_TRAINING`, seed 0), and reads its validation IoU and
`iou_pasted` at the selected epoch.  The chance with the best mean validation `iou_pasted` over the
benchmarks not held out is chosen; only then are test splits read: per split, the U-Net's IoU and the
teacher's accuracy with that U-Net in front of its own classifier (the classifier is the folder's).

Usage: python scripts/segmenter_paste_study.py OUT BENCHMARK=TEACHER_DIR ... [--paste 0,0.5]
       [--held-out letters-on-scenes]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from teakit.checkpoint import load_checkpoint
from teakit.commands import train
from teakit.config import SEGMENTER_TRAINING, TrainConfig
from teakit.data.load import TRAINING_SPLITS, load_data
from teakit.objectives.segmentation import mask_iou
from teakit.runs import load_model
from teakit.teachers import SegmenterTeacher


def val_scores(run_dir: Path) -> dict:
    extra = load_checkpoint(run_dir, "last").extra
    record = next(r for r in extra["history"] if r["epoch"] == extra["best_epoch"])
    return {"iou": record["val"]["iou"], "iou_pasted": record["val"]["iou_pasted"]}


@torch.no_grad()
def test_figures(benchmark: str, teacher_dir: Path, unet_dir: Path) -> dict:
    meta = json.loads((teacher_dir / "teacher.json").read_text())
    teacher = SegmenterTeacher(load_model(unet_dir)[0], load_model(teacher_dir / meta["classifier"])[0],
                               threshold=meta.get("threshold", 0.5), fill=meta.get("fill", "noise")).freeze()
    out = {}
    for split, d in load_data(benchmark, 0).items():
        if split in TRAINING_SPLITS:
            continue
        g = torch.Generator().manual_seed(0)
        ious, correct = [], 0
        for i in range(0, len(d), 256):
            x, m, y = d.x[i:i + 256], d.mask[i:i + 256], d.y[i:i + 256]
            pred = teacher.mask(x)
            ious.append(mask_iou(pred, m))
            correct += (teacher(x, generator=g).argmax(1) == y).sum().item()
        out[split] = {"iou": torch.cat(ious).mean().item(), "accuracy": correct / len(d)}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("teachers", nargs="+", help="BENCHMARK=TEACHER_DIR (segmenter teachers)")
    p.add_argument("--paste", default="0,0.5", help="comma-separated paste chances (the first is the default)")
    p.add_argument("--held-out", default="", help="comma-separated benchmarks no choice looks at")
    a = p.parse_args()
    teachers = dict(t.split("=", 1) for t in a.teachers)
    chances = [float(v) for v in a.paste.split(",")]
    held_out = {b for b in a.held_out.split(",") if b}
    out = Path(a.out)
    scores = {}
    for bench, tdir in teachers.items():
        for chance in chances:
            run = out / bench / f"paste-{chance:g}"
            if not (run / "best.json").exists():
                train(bench, "segmentation", run, cfg=TrainConfig(**SEGMENTER_TRAINING, seed=0), split="train",
                      objective_options={"paste": chance}, progress=False)
            scores[(bench, chance)] = val_scores(run)
    sources = [b for b in teachers if b not in held_out]
    mean = {c: statistics.fmean(scores[(b, c)]["iou_pasted"] for b in sources) for c in chances}
    best = max(chances, key=lambda c: (mean[c], -chances.index(c)))  # ties: the one listed first
    lines = ["Validation (selected epoch), IoU / IoU pasted, %:", "",
             "| benchmark | " + " | ".join(f"paste {c:g}" for c in chances) + " |",
             "|---" * (len(chances) + 1) + "|"]
    for bench in teachers:
        tag = " (held out)" if bench in held_out else ""
        lines.append(f"| {bench}{tag} | " + " | ".join(
            f"{100 * scores[(bench, c)]['iou']:.1f} / {100 * scores[(bench, c)]['iou_pasted']:.1f}" for c in chances)
            + " |")
    lines += ["", f"Mean validation IoU pasted over {', '.join(sources)}: "
              + ", ".join(f"paste {c:g}: {100 * mean[c]:.2f}" for c in chances) + f"; chosen: paste {best:g}", "",
              "Test (read after the choice): U-Net IoU / teacher accuracy, %:", "",
              "| benchmark | split | " + " | ".join(f"paste {c:g}" for c in chances) + " |",
              "|---|---" + "|---" * len(chances) + "|"]
    for bench, tdir in teachers.items():
        figs = {c: test_figures(bench, Path(tdir), out / bench / f"paste-{c:g}") for c in chances}
        for split in figs[chances[0]]:
            lines.append(f"| {bench} | {split} | " + " | ".join(
                f"{100 * figs[c][split]['iou']:.1f} / {100 * figs[c][split]['accuracy']:.1f}" for c in chances) + " |")
    text = "\n".join(lines) + "\n"
    (out / "paste.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
