"""The demo's learning-rate selection for a few of its stages, without running whole demos.

For each scale S, the named stages of `tea demo --lr-scale S` (seed 0, the demo's width and epochs; the
stages they build on too) run into OUT/lr-S; then each stage's score at each scale is the best value of its
own validation selection metric on the biased validation set (what `teakit.demo.select_lr_scales` reads from
whole demos), and the lowest wins, ties to the scale nearest 1.  No test split is read.  A finished stage is
reused.  Scales run two at a time, one thread each.

    python scripts/select_lr_stages.py OUT --stages digits-on-scenes-pgi,digits-on-scenes-isnet \
        [--scales 0.5,1,2,4,8] [--benchmarks all]
"""
from __future__ import annotations

import argparse
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from teakit import demo
from teakit.checkpoint import load_checkpoint


def _needed(stages, names):
    by_name = {s.name: s for s in stages}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"no such demo stage: {', '.join(unknown)}")
    need, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n not in need:
            need.add(n)
            todo.extend(by_name[n].deps)
    return [s for s in stages if s.name in need]  # in plan order: what a stage builds on comes first


def run_scale(out: str, scale: float, names: list[str], benchmarks) -> dict[str, float]:
    stages = demo.plan(False, 0, lr_scale=scale, benchmarks=benchmarks)
    folders = demo.stage_folders(stages, Path(out) / f"lr-{scale:g}")
    for stage in _needed(stages, names):
        folder = folders[stage.name]
        if not (folder / "done.json").exists():
            demo._execute(stage, folder, folders, False, folder.parent / f"{stage.name}.log", threads=1)
    return {n: float(load_checkpoint(folders[n], "best", map_location="cpu").extra["best"]) for n in names}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--stages", required=True, help="comma-separated demo stage names")
    p.add_argument("--scales", default="0.5,1,2,4,8")
    p.add_argument("--benchmarks", default=None, help="the demo's --benchmarks (default: its default)")
    a = p.parse_args()
    names = [n.strip() for n in a.stages.split(",") if n.strip()]
    scales = [float(s) for s in a.scales.split(",")]
    with ProcessPoolExecutor(2) as pool:
        scores = dict(zip(scales, pool.map(run_scale, [a.out] * len(scales), scales, [names] * len(scales),
                                           [a.benchmarks] * len(scales))))
    print("| stage | " + " | ".join(f"×{s:g}" for s in scales) + " | selected |")
    print("|---|" + "---|" * (len(scales) + 1))
    for n in names:
        row = {s: scores[s][n] for s in scales}
        best = min(row, key=lambda s: (row[s], abs(math.log(s)), s))
        cells = [f"**{row[s]:.4g}**" if s == best else f"{row[s]:.4g}" for s in scales]
        print(f"| {n} | " + " | ".join(cells) + f" | ×{best:g} |")


if __name__ == "__main__":
    main()
