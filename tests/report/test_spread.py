"""Results over seeds (teakit.report.spread) from hand-made rows: each cell's mean, sd and n; the spread
rule flips exactly where the difference of the means crosses the sum of the sds; the targets decided on
the means and reported with their spread; the report's cells."""
import statistics

import pytest

from teakit.report.spread import ONE_SEED, aggregate, beyond_spread, fmt, spread_words
from teakit.report.targets import check, summary

DS = "colored-digits"


def _rows(method, values, split="ood", metric="accuracy", seeds=None):
    return [{"dataset": DS, "method": method, "split": split, "metric": metric, "value": v, "seed": s}
            for s, v in zip(seeds or range(len(values)), values)]


def test_aggregate_mean_sd_n_per_cell():
    rows = (_rows("TEA", [0.25, 0.5, 0.75]) + _rows("TEA", [0.9, 0.7], split="swapped", seeds=[2, 0])
            + _rows("ERM", [0.4]) + [{"dataset": DS, "method": "RRR", "split": "ood", "metric": "accuracy",
                                      "value": None, "seed": 0, "note": "n/a: why"}])
    cells = aggregate(rows)
    assert set(cells) == {(DS, "TEA", "ood", "accuracy"), (DS, "TEA", "swapped", "accuracy"),
                          (DS, "ERM", "ood", "accuracy")}  # the n/a row has no value
    tea = cells[DS, "TEA", "ood", "accuracy"]
    assert (tea.n, tea.mean, tea.sd, tea.seeds) == (3, 0.5, 0.25, (0, 1, 2))  # sample sd (n - 1)
    swapped = cells[DS, "TEA", "swapped", "accuracy"]
    assert swapped.seeds == (0, 2) and swapped.values == (0.7, 0.9)  # sorted by seed
    assert swapped.mean == pytest.approx(0.8) and swapped.sd == pytest.approx(statistics.stdev([0.7, 0.9]))
    erm = cells[DS, "ERM", "ood", "accuracy"]
    assert (erm.n, erm.mean, erm.sd) == (1, 0.4, None)
    assert fmt(tea) == "50.0 ± 25.0 (n=3)" and fmt(erm) == "40.0" and fmt(tea, " %") == "50.0 ± 25.0 % (n=3)"
    # rows without a seed (older results.json) count as seed 0; the same seed twice in a cell is a mix-up
    assert aggregate([{k: v for k, v in r.items() if k != "seed"} for r in _rows("ERM", [0.4])])[
        DS, "ERM", "ood", "accuracy"].seeds == (0,)
    with pytest.raises(ValueError, match="seed 0"):
        aggregate(_rows("ERM", [0.4]) + _rows("ERM", [0.5]))


@pytest.mark.parametrize("shift, beyond", [(0.5 - 2 ** -20, False), (0.5, False), (0.5 + 2 ** -20, True),
                                           (-0.5, False), (-0.5 - 2 ** -20, True), (0.0, False)])
def test_the_spread_rule_flips_where_the_difference_crosses_the_sum_of_the_sds(shift, beyond):
    """Both cells have sd 0.25 exactly: the spread is 0.5, and only a larger difference counts."""
    a = aggregate(_rows("TEA", [0.25, 0.5, 0.75]))[DS, "TEA", "ood", "accuracy"]
    b = aggregate(_rows("ERM", [0.25 + shift, 0.5 + shift, 0.75 + shift]))[DS, "ERM", "ood", "accuracy"]
    assert a.sd == b.sd == 0.25
    assert beyond_spread(a, b) is beyond and beyond_spread(b, a) is beyond
    assert spread_words(a, b).startswith("yes: " if beyond else "no: ")


def test_one_seed_leaves_the_spread_unknown():
    a = aggregate(_rows("TEA", [0.9]))[DS, "TEA", "ood", "accuracy"]
    b = aggregate(_rows("ERM", [0.1, 0.2]))[DS, "ERM", "ood", "accuracy"]
    assert beyond_spread(a, b) is None and beyond_spread(b, a) is None
    assert spread_words(a, b) == ONE_SEED == "one seed: spread unknown"


def _three_seeds(tea_ood, kd_ood):
    """Three seeds of teacher, TEA and KD on DS; TEA's and KD's ood accuracy as given."""
    return (_rows("teacher", [0.99, 0.99, 0.99]) + _rows("teacher", [0.99, 0.99, 0.99], split="swapped")
            + _rows("TEA", tea_ood) + _rows("TEA", [0.97, 0.98, 0.99], split="swapped")
            + _rows("KD", kd_ood) + _rows("KD", [0.5, 0.5, 0.5], split="swapped"))


def test_targets_are_decided_on_the_means_and_carry_the_spread():
    # TEA's ood mean 0.95 (sd 0.01) against KD's 0.94 (sd 0.01): above on the means, within the spread
    checks = {c["target"]: c for c in check(_three_seeds([0.94, 0.95, 0.96], [0.93, 0.94, 0.95]))}
    above = checks["TEA's ood accuracy above every baseline without masks or groups"]
    assert above["met"] is True and above["against"] == "KD" and above["beyond_spread"] is False
    assert above["measured"] == "95.0 ± 1.0 (n=3) against KD's 94.0 ± 1.0 (n=3)"
    assert above["spread"] == "no: 1.00 ≤ 2.00 points"
    # KD's seeds further down: the same verdict, now beyond the spread
    checks = {c["target"]: c for c in check(_three_seeds([0.94, 0.95, 0.96], [0.91, 0.92, 0.93]))}
    above = checks["TEA's ood accuracy above every baseline without masks or groups"]
    assert above["met"] is True and above["beyond_spread"] is True and above["spread"].startswith("yes: 3.00 > 2.00")
    # one seed per method decides on the value as before, and says the spread is unknown
    within = checks["TEA's ood accuracy within 3 points of the teacher's"]
    assert within["met"] is False and within["against"] == "teacher"  # 99 against a mean of 95
    assert within["spread"].startswith("yes: ")  # teacher's sd is 0: 4 points > TEA's 1
    single = check([r for r in _three_seeds([0.94, 0.95, 0.96], [0.91, 0.92, 0.93]) if r["seed"] == 0])
    assert all(c["spread"] == ONE_SEED and c["beyond_spread"] is None for c in single)
    assert summary(single) == (f"targets met: 3 of 4\n  not met — {DS}: TEA's ood accuracy within 3 points of "
                               "the teacher's (94.0 against 99.0)")  # no spread to speak of
    text = summary(check(_three_seeds([0.94, 0.95, 0.96], [0.91, 0.92, 0.93])))
    assert "differences larger than the seed spread (sum of the sds)" in text


def test_the_report_table_shows_mean_sd_and_n(tmp_path):
    from teakit.report.report import _table

    rows = _three_seeds([0.94, 0.95, 0.96], [0.91, 0.92, 0.93]) + _rows("ERM", [0.4])
    header, body = _table(rows, DS)
    by_method = {r[0]: dict(zip(header, r)) for r in body}
    assert by_method["TEA"]["ood accuracy"] == "**95.0 ± 1.0 (n=3)**"  # the best mean, bold
    assert by_method["KD"]["ood accuracy"] == "92.0 ± 1.0 (n=3)"
    assert by_method["ERM"]["ood accuracy"] == "40.0" and by_method["ERM"]["swapped accuracy"] == "–"
