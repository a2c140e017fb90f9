"""How much a segmenter teacher's decision depends on the random fill of its background.

    python scripts/teacher_fills.py DATASET TEACHER_DIR SPLIT [SPLIT ...] [--fills 5]

Classifies each split's images ``teacher.classifier_input(x, generator)`` under FILLS generator seeds and
prints the teacher's accuracy over the fills, the mean agreement of two fills (its self-agreement), and the
share of images whose decision changes with the fill.  A student's agreement with one fill of the teacher
can hardly exceed that self-agreement (docs/recipe.md, "Why the held-out agreement stops near 89 %").
"""
import argparse
import itertools

import torch

from teakit.commands import load_data
from teakit.runs import load_teacher


def decisions(teacher, x: torch.Tensor, seed: int, batch: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return torch.cat([teacher.classifier(teacher.classifier_input(x[i:i + batch], g)).argmax(1)
                          for i in range(0, len(x), batch)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("teacher")
    p.add_argument("splits", nargs="+")
    p.add_argument("--fills", type=int, default=5, help="generator seeds (default 5)")
    a = p.parse_args()
    if a.fills < 2:
        p.error("--fills: need at least 2 to compare")
    data, teacher = load_data(a.dataset), load_teacher(a.teacher)
    for split in a.splits:
        if split not in data:
            p.error(f"{a.dataset} has no split {split!r}; it has {', '.join(data)}")
        x, y = data[split].x, data[split].y
        P = torch.stack([decisions(teacher, x, seed) for seed in range(a.fills)])
        acc = (P == y).float().mean(1)
        pairs = torch.stack([(P[i] == P[j]).float().mean() for i, j in itertools.combinations(range(a.fills), 2)])
        changes = (P != P[0]).any(0).float().mean()
        print(f"{a.dataset} {split}: accuracy over {a.fills} fills {100 * acc.mean():.1f} "
              f"({100 * acc.min():.1f}–{100 * acc.max():.1f}); self-agreement of two fills {100 * pairs.mean():.1f}; "
              f"decision changes with the fill on {100 * changes:.1f} % of the images")


if __name__ == "__main__":
    main()
