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

With several seeds (the rows' ``"seed"``) every target is decided on the
per-seed means (:func:`teakit.report.spread.aggregate`) and reported with
their spread: each target compares TEA against one method X (the teacher,
the best contender by mean, ERM) and says whether the difference of the two
means is larger than the seed spread, i.e. larger than the sum of the two
standard deviations over seeds (:func:`teakit.report.spread.beyond_spread`);
with one seed it says "one seed: spread unknown".
"""
from __future__ import annotations

from ..methods import BASELINES, TEA_INPUT
from ..objectives.registry import OBJECTIVES
from .spread import aggregate, beyond_spread, fmt, spread_words

SPLITS = ("ood", "swapped")
NOT_CONTENDERS = {"TEA", "teacher", TEA_INPUT} | {
    label for label, _, o in BASELINES if OBJECTIVES[o].needs_masks or OBJECTIVES[o].needs_groups}
BACKGROUND_BENCHMARKS = ("digits-on-scenes",)
TOL = 1e-9  # float noise at the exact boundary


def check(rows: list[dict]) -> list[dict]:
    """One dict per target: ``dataset``, ``target`` (words), ``measured`` (words: means, with ± sd and n over
    several seeds), ``met`` (bool or None, decided on the means), ``against`` (the method TEA is compared
    with, None while undecided), ``beyond_spread`` (bool, or None with one seed or undecided) and ``spread``
    (words: the spread rule's verdict with its numbers, "one seed: spread unknown", or "–")."""
    cells = aggregate(rows)
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        def get(method, split, metric="accuracy"):
            return cells.get((ds, method, split, metric))

        def add(target, measured=None, met=None, against=None, a=None, b=None):
            decided = a is not None and b is not None
            out.append({"dataset": ds, "target": target, "measured": measured if decided else "not run yet",
                        "met": met if decided else None, "against": against if decided else None,
                        "beyond_spread": beyond_spread(a, b) if decided else None,
                        "spread": spread_words(a, b) if decided else "–"})

        for split in SPLITS:
            tea, teacher = get("TEA", split), get("teacher", split)
            target = f"TEA's {split} accuracy within 3 points of the teacher's"
            if tea is None or teacher is None:
                add(target)
            else:
                add(target, f"{fmt(tea)} against {fmt(teacher)}", teacher.mean - tea.mean <= 0.03 + TOL,
                    "teacher", tea, teacher)
            rivals = {m: c for (d, m, s, metric), c in cells.items()
                      if d == ds and s == split and metric == "accuracy" and m not in NOT_CONTENDERS}
            target = f"TEA's {split} accuracy above every baseline without masks or groups"
            if tea is None or not rivals:
                add(target)
            else:
                best = max(rivals, key=lambda m: rivals[m].mean)
                add(target, f"{fmt(tea)} against {best}'s {fmt(rivals[best])}", tea.mean > rivals[best].mean,
                    best, tea, rivals[best])
        if ds in BACKGROUND_BENCHMARKS:
            tea, erm = get("TEA", "swapped"), get("ERM", "swapped")
            target = "TEA's swapped accuracy at least ERM's + 30 points"
            if tea is None or erm is None:
                add(target)
            else:
                add(target, f"{fmt(tea)} against {fmt(erm)}", tea.mean >= erm.mean + 0.30 - TOL, "ERM", tea, erm)
            tea, erm = get("TEA", "swapped", "background_relevance"), get("ERM", "swapped", "background_relevance")
            target = "TEA's background relevance at most a third of ERM's"
            if tea is None or erm is None:
                add(target)
            else:
                add(target, f"{fmt(tea, ' %')} against {fmt(erm, ' %')} ({tea.mean / erm.mean:.2f}×)",
                    tea.mean <= erm.mean / 3 + TOL, "ERM", tea, erm)
    return out


def summary(checks: list[dict]) -> str:
    """One line: how many targets are met (and, with several seeds, how many of their differences are larger
    than the seed spread), and which are not met."""
    met = sum(c["met"] is True for c in checks)
    missed = [f"{c['dataset']}: {c['target']} ({c['measured']})" for c in checks if c["met"] is False]
    open_ = sum(c["met"] is None for c in checks)
    spread = [c["beyond_spread"] for c in checks if c.get("beyond_spread") is not None]
    return (f"targets met: {met} of {len(checks)}" + (f"; {open_} not decided yet" if open_ else "")
            + (f"; {sum(spread)} of {len(spread)} differences larger than the seed spread (sum of the sds)"
               if spread else "")
            + "".join(f"\n  not met — {m}" for m in missed))
