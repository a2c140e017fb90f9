"""Select each demo student's learning-rate scale on the biased validation set.

Usage: first run the full demo once per scale, e.g.

    tea demo --out runs/lr-0.5 --lr-scale 0.5
    tea demo --out runs/lr-1   --lr-scale 1
    tea demo --out runs/lr-2   --lr-scale 2

then ``python scripts/select_lr.py 0.5=runs/lr-0.5 1=runs/lr-1 2=runs/lr-2 [--seed N] [--benchmarks A,B]``
(``--benchmarks``: the demos' own, e.g. ``colored-digits,digits-on-scenes``; default all).  It prints, per
student stage, its best validation selection metric at each scale (lower is better; no test split is read)
and the selected scale, then the ``teakit.demo.LR_SCALES`` entries that differ from 1.
"""
from __future__ import annotations

import argparse

from teakit.demo import select_lr_scales


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="SCALE=FOLDER", help="a demo folder run with --lr-scale SCALE")
    p.add_argument("--seed", type=int, default=0, help="the demos' --seed")
    p.add_argument("--benchmarks", default=None, help="the demos' --benchmarks (default: all)")
    a = p.parse_args(argv)
    runs = {}
    for item in a.runs:
        scale, sep, folder = item.partition("=")
        try:
            if not (sep and folder):
                raise ValueError(item)
            runs[float(scale)] = folder
        except ValueError:
            p.error(f"{item!r}: expected SCALE=FOLDER, e.g. 2=runs/lr-2")
    table = select_lr_scales(runs, seed=a.seed, benchmarks=a.benchmarks)
    scales = sorted(runs)
    print("| stage | " + " | ".join(f"×{s:g}" for s in scales) + " | selected |")
    print("|---|" + "---|" * len(scales) + "---|")
    for name, entry in table.items():
        cells = [f"**{entry['scores'][s]:.4g}**" if s == entry["selected"] else f"{entry['scores'][s]:.4g}"
                 for s in scales]
        print(f"| {name} | " + " | ".join(cells) + f" | ×{entry['selected']:g} |")
    chosen = {name: entry["selected"] for name, entry in table.items() if entry["selected"] != 1.0}
    print("\nLR_SCALES = {" + ", ".join(f'"{n}": {s:g}' for n, s in chosen.items()) + "}")


if __name__ == "__main__":
    main()
