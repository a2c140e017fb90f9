"""Results over seeds: each cell's mean, standard deviation and number of seeds, and the spread rule.

``results.json`` keeps one row per seed (its ``"seed"``; a row without one counts as seed 0).  A *cell* is
one (dataset, method, split, metric); :func:`aggregate` gathers its values over the seeds into a
:class:`Cell`: the mean, the sample standard deviation (n - 1 in the denominator; unknown for one seed) and
n, the number of seeds.  Nothing is averaged away in the rows themselves.

The spread rule (:func:`beyond_spread`): the difference of two cells' means is *larger than the seed spread*
when its size exceeds the sum of the two cells' standard deviations, ``|mean_a - mean_b| > sd_a + sd_b``
(:data:`SPREAD_RULE`).  It is a plain, conservative yardstick, not a significance test; it needs at least two
seeds on each side (with one, the spread is unknown and the rule says so rather than guessing).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

SPREAD_RULE = ("the difference of the two means counts as larger than the seed spread when its size exceeds "
               "the sum of the two standard deviations over seeds (sample sd, n - 1); with one seed the "
               "spread is unknown")
ONE_SEED = "one seed: spread unknown"


@dataclass(frozen=True)
class Cell:
    """One cell's values, one per seed (in ``seeds``' order)."""
    values: tuple[float, ...]
    seeds: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float | None:
        """The sample standard deviation over seeds; None with one seed."""
        return statistics.stdev(self.values) if self.n > 1 else None


def aggregate(rows: list[dict]) -> dict[tuple[str, str, str, str], Cell]:
    """``{(dataset, method, split, metric): Cell}`` of the rows with a value (n/a rows and unfinished stages
    have none).  Two rows of one cell with the same seed are an error: the rows of two runs mixed up."""
    cells: dict[tuple, dict[int, float]] = {}
    for r in rows:
        if r.get("value") is None:
            continue
        key = (r["dataset"], r["method"], r["split"], r["metric"])
        seed = int(r.get("seed", 0))
        if seed in cells.setdefault(key, {}):
            raise ValueError(f"two results of {key} for seed {seed}")
        cells[key][seed] = float(r["value"])
    return {key: Cell(tuple(v for _, v in sorted(by_seed.items())), tuple(sorted(by_seed)))
            for key, by_seed in cells.items()}


def fmt(cell: Cell, unit: str = "", scale: float = 100.0, digits: int = 1) -> str:
    """``"97.4"`` for one seed, ``"97.4 ± 0.3 (n=3)"`` for several (values times ``scale``)."""
    mean = f"{scale * cell.mean:.{digits}f}"
    if cell.n == 1:
        return mean + unit
    return f"{mean} ± {scale * cell.sd:.{digits}f}{unit} (n={cell.n})"


def beyond_spread(a: Cell, b: Cell) -> bool | None:
    """Whether ``|a.mean - b.mean| > a.sd + b.sd`` (:data:`SPREAD_RULE`); None when either has one seed."""
    if a.n < 2 or b.n < 2:
        return None
    return abs(a.mean - b.mean) > a.sd + b.sd


def spread_words(a: Cell, b: Cell, scale: float = 100.0, unit: str = " points") -> str:
    """The spread rule's verdict on ``a`` against ``b`` in words, with the numbers it compared."""
    beyond = beyond_spread(a, b)
    if beyond is None:
        return ONE_SEED
    diff, spread = scale * abs(a.mean - b.mean), scale * (a.sd + b.sd)
    return (f"yes: {diff:.2f} > {spread:.2f}{unit}" if beyond else
            f"no: {diff:.2f} ≤ {spread:.2f}{unit}")
