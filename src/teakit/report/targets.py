"""The targets the demo is held to, checked from its ``results.json`` rows.

On every benchmark, TEA's ``ood`` and ``swapped`` accuracy must be within 3
points of the teacher's and higher than that of every baseline that uses
neither masks nor groups, as :data:`teakit.objectives.registry.OBJECTIVES`
records them (ERM, JTT, which trains on an ERM run's mistakes, and the
distillations; not RRR, ISNet, GAIN, GroupDRO, IRM, and not TEA's own
input-only variant).  On a
background-bias benchmark TEA's ``swapped`` accuracy must also be at least
ERM's + 30 points, and its ``swapped`` background relevance at most a third
of ERM's.  Values are fractions, as in the rows; a method without a value
(not run yet) leaves its target undecided (``met`` is None).
"""
from __future__ import annotations

from ..methods import BASELINES, TEA_INPUT
from ..objectives.registry import OBJECTIVES

SPLITS = ("ood", "swapped")
NOT_CONTENDERS = {"TEA", "teacher", TEA_INPUT} | {
    label for label, _, o in BASELINES if OBJECTIVES[o].needs_masks or OBJECTIVES[o].needs_groups}
BACKGROUND_BENCHMARKS = ("digits-on-scenes",)
TOL = 1e-9  # float noise at the exact boundary


def check(rows: list[dict]) -> list[dict]:
    """One dict per target: ``dataset``, ``target`` (words), ``measured`` (words), ``met`` (bool or None)."""
    value = {(r["dataset"], r["method"], r["split"], r["metric"]): r["value"] for r in rows
             if r["value"] is not None}
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        def get(method, split, metric="accuracy"):
            return value.get((ds, method, split, metric))

        def add(target, measured, met):
            out.append({"dataset": ds, "target": target, "measured": measured, "met": met})

        for split in SPLITS:
            tea, teacher = get("TEA", split), get("teacher", split)
            target = f"TEA's {split} accuracy within 3 points of the teacher's"
            if tea is None or teacher is None:
                add(target, "not run yet", None)
            else:
                add(target, f"{100 * tea:.1f} against {100 * teacher:.1f}", teacher - tea <= 0.03 + TOL)
            rivals = {m: v for (d, m, s, metric), v in value.items()
                      if d == ds and s == split and metric == "accuracy" and m not in NOT_CONTENDERS}
            target = f"TEA's {split} accuracy above every baseline without masks or groups"
            if tea is None or not rivals:
                add(target, "not run yet", None)
            else:
                best = max(rivals, key=rivals.get)
                add(target, f"{100 * tea:.1f} against {best}'s {100 * rivals[best]:.1f}", tea > rivals[best])
        if ds in BACKGROUND_BENCHMARKS:
            tea, erm = get("TEA", "swapped"), get("ERM", "swapped")
            target = "TEA's swapped accuracy at least ERM's + 30 points"
            if tea is None or erm is None:
                add(target, "not run yet", None)
            else:
                add(target, f"{100 * tea:.1f} against {100 * erm:.1f}", tea >= erm + 0.30 - TOL)
            tea, erm = get("TEA", "swapped", "background_relevance"), get("ERM", "swapped", "background_relevance")
            target = "TEA's background relevance at most a third of ERM's"
            if tea is None or erm is None:
                add(target, "not run yet", None)
            else:
                add(target, f"{100 * tea:.1f} % against {100 * erm:.1f} % ({tea / erm:.2f}×)", tea <= erm / 3 + TOL)
    return out


def summary(checks: list[dict]) -> str:
    """One line: how many targets are met, and which are not."""
    met = sum(c["met"] is True for c in checks)
    missed = [f"{c['dataset']}: {c['target']} ({c['measured']})" for c in checks if c["met"] is False]
    open_ = sum(c["met"] is None for c in checks)
    return (f"targets met: {met} of {len(checks)}" + (f"; {open_} not decided yet" if open_ else "")
            + "".join(f"\n  not met — {m}" for m in missed))
