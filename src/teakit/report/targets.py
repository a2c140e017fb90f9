"""The targets the demo is held to, checked from its ``results.json`` rows.

Each benchmark declares its own (:class:`teakit.methods.Benchmark`).  On each
of its *shifted* figures (the ones that matter: ``ood`` and ``swapped``
accuracy on the digit benchmarks, ``test`` worst-group accuracy on
glyphs-on-places, ``external`` and ``swapped`` accuracy on phantom-xrays),
TEA's value must be within 3 points of the teacher's.  On the digit
benchmarks (``rival_targets``) it must also be higher than that of every
baseline that uses neither masks nor groups, as
:data:`teakit.objectives.registry.OBJECTIVES` records them (ERM, JTT, which
trains on an ERM run's mistakes, and the distillations; not RRR, ISNet, GAIN,
GroupDRO, IRM, and not TEA's own input-only variant).  On digits-on-scenes
(``erm_margin_split``) TEA's ``swapped`` accuracy must be at least ERM's + 30
points, and on digits-on-scenes and phantom-xrays (``relevance_split``) TEA's
``swapped`` background relevance at most a third of ERM's.  Values are
fractions, as in the rows; a method without a value (not run yet) leaves its
target undecided (``met`` is None).  Rows of a dataset that is not a built-in
benchmark get no targets.

With several seeds (the rows' ``"seed"``) every target is decided on the
per-seed means (:func:`teakit.report.spread.aggregate`) and reported with
their spread: each target compares TEA against one method X (the teacher,
the best contender by mean, ERM) and says whether the difference of the two
means is larger than the seed spread, i.e. larger than the sum of the two
standard deviations over seeds (:func:`teakit.report.spread.beyond_spread`);
with one seed it says "one seed: spread unknown".
"""
from __future__ import annotations

from ..methods import BASELINES, BENCHMARKS, TEA_INPUT
from ..objectives.registry import OBJECTIVES
from .spread import aggregate, beyond_spread, fmt, spread_words

NOT_CONTENDERS = {"TEA", "teacher", TEA_INPUT} | {
    label for label, _, o in BASELINES if OBJECTIVES[o].needs_masks or OBJECTIVES[o].needs_groups}
METRIC_WORDS = {"accuracy": "accuracy", "worst_group_accuracy": "worst-group accuracy",
                "adjusted_average_accuracy": "adjusted average accuracy", "macro_f1": "macro-F1"}
TOL = 1e-9  # float noise at the exact boundary


def figure_words(split: str, metric: str) -> str:
    """A shifted figure in words, e.g. ``"ood accuracy"``, ``"test worst-group accuracy"``."""
    return f"{split} {METRIC_WORDS.get(metric, metric.replace('_', ' '))}"


def check(rows: list[dict]) -> list[dict]:
    """One dict per target: ``dataset``, ``target`` (words), ``measured`` (words: means, with ± sd and n over
    several seeds), ``met`` (bool or None, decided on the means), ``against`` (the method TEA is compared
    with, None while undecided), ``beyond_spread`` (bool, or None with one seed or undecided) and ``spread``
    (words: the spread rule's verdict with its numbers, "one seed: spread unknown", or "–")."""
    cells = aggregate(rows)
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        bench = BENCHMARKS.get(ds)
        if bench is None:
            continue

        def get(method, split, metric="accuracy"):
            return cells.get((ds, method, split, metric))

        def add(target, measured=None, met=None, against=None, a=None, b=None):
            decided = a is not None and b is not None
            out.append({"dataset": ds, "target": target, "measured": measured if decided else "not run yet",
                        "met": met if decided else None, "against": against if decided else None,
                        "beyond_spread": beyond_spread(a, b) if decided else None,
                        "spread": spread_words(a, b) if decided else "–"})

        for split, metric in bench.shifted:
            words = figure_words(split, metric)
            tea, teacher = get("TEA", split, metric), get("teacher", split, metric)
            target = f"TEA's {words} within 3 points of the teacher's"
            if tea is None or teacher is None:
                add(target)
            else:
                add(target, f"{fmt(tea)} against {fmt(teacher)}", teacher.mean - tea.mean <= 0.03 + TOL,
                    "teacher", tea, teacher)
            if not bench.rival_targets:
                continue
            rivals = {m: c for (d, m, s, mt), c in cells.items()
                      if d == ds and s == split and mt == metric and m not in NOT_CONTENDERS}
            target = f"TEA's {words} above every baseline without masks or groups"
            if tea is None or not rivals:
                add(target)
            else:
                best = max(rivals, key=lambda m: rivals[m].mean)
                add(target, f"{fmt(tea)} against {best}'s {fmt(rivals[best])}", tea.mean > rivals[best].mean,
                    best, tea, rivals[best])
        if bench.erm_margin_split:
            split = bench.erm_margin_split
            tea, erm = get("TEA", split), get("ERM", split)
            target = f"TEA's {split} accuracy at least ERM's + 30 points"
            if tea is None or erm is None:
                add(target)
            else:
                add(target, f"{fmt(tea)} against {fmt(erm)}", tea.mean >= erm.mean + 0.30 - TOL, "ERM", tea, erm)
        if bench.relevance_split:
            split = bench.relevance_split
            tea, erm = get("TEA", split, "background_relevance"), get("ERM", split, "background_relevance")
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
