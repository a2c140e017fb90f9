"""The demo's readable report: ``report.md`` and ``report.html`` with the targets
it is held to (met or not, :mod:`teakit.report.targets`), one results table
per benchmark with the columns its :class:`teakit.methods.Benchmark` declares
(best value per column in bold; phantom-xrays also a table of each external
hospital), accuracy bars per benchmark, a grid of heatmaps (teacher, TEA,
ERM), for phantom-xrays one X-ray with the ERM and the TEA student's heatmaps
side by side, and the commands and seeds that produced it.

With several seeds every cell of the table is the mean ± the sample standard
deviation over seeds with n (:func:`teakit.report.spread.aggregate`; one seed:
the plain value), the bold best is the best mean, and every target says whether
the difference of the means is larger than the seed spread (the sum of the two
standard deviations, :data:`teakit.report.spread.SPREAD_RULE`)."""
from __future__ import annotations

import html
from pathlib import Path

import torch

from ..methods import BENCHMARKS, method_label
from .figures import accuracy_bars, heatmap_grid, side_by_side
from .spread import SPREAD_RULE, aggregate, fmt
from .targets import check

LOWER_IS_BETTER = {"background_relevance"}


def _options(stage) -> str:
    """``", classes random"``: a `tea train` stage's objective options (the demo's ``TRAIN_OPTIONS``), else ""."""
    return "".join(f", {k} {v}" for k, v in (stage.params.get("objective_options") or {}).items())


def _table(rows: list[dict], dataset: str, columns=None) -> tuple[list[str], list[list[str]]]:
    """A results table of the dataset: one row per method, one column per ``(split, metric, header)`` of
    ``columns`` (default: the benchmark's own, :attr:`teakit.methods.Benchmark.columns`); each cell the
    plain value (one seed) or mean ± sd (n) over seeds, the best student's mean per column in bold."""
    columns = BENCHMARKS[dataset].columns if columns is None else columns
    figures = [(s, m) for s, m, _ in columns]
    methods = list(dict.fromkeys(r["method"] for r in rows if r["dataset"] == dataset))
    val = {(m, s, metric): c for (d, m, s, metric), c in aggregate(rows).items() if d == dataset}
    na = {r["method"] for r in rows if r["dataset"] == dataset and r["value"] is None}
    header = ["method"] + [h for _, _, h in columns]
    body = []
    best = {}
    for s, m in figures:
        vals = [val[(k, s, m)].mean for k in methods if (k, s, m) in val and k != "teacher"]
        if vals:
            best[(s, m)] = min(vals) if m in LOWER_IS_BETTER else max(vals)
    for k in methods:
        cells = [k]
        for s, m in figures:
            c = val.get((k, s, m))
            if c is None:
                cells.append("n/a" if k in na else "–")
                continue
            text = fmt(c)
            cells.append(f"**{text}**" if k != "teacher" and c.mean == best.get((s, m)) else text)
        body.append(cells)
    return header, body


def _md_table(header, body) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _html_table(header, body) -> str:
    def cell(c):
        c = html.escape(c)
        return f"<td><b>{c[2:-2]}</b></td>" if c.startswith("**") else f"<td>{c}</td>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in body)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _heatmaps(dataset, folders, stages, figs: Path, n=6) -> list[Path]:
    """The benchmark's heatmap figures: the grid of the first ``n`` images of its ``figure_split`` (teacher,
    TEA, ERM), and for phantom-xrays one X-ray of that split with the ERM and the TEA student's maps side by
    side, the lungs outlined."""
    from ..data.load import load_data
    from ..runs import load_model, load_teacher
    from .figures import class_label, model_maps, pick_across_classes

    split = BENCHMARKS[dataset].figure_split
    by_method = {method_label(s): folders[s.name] for s in stages if s.dataset == dataset}
    teacher = load_teacher(by_method["teacher"])
    tea, cfg = load_model(by_method["TEA"])
    erm, _ = load_model(by_method["ERM"])
    splits, info = load_data(dataset, cfg.get("data_seed", 0), with_info=True, **cfg.get("data_options", {}))
    data = splits[split]
    x, y = data.x[:n], data.y[:n]
    maps = {"teacher": teacher.heatmap(x, y, 0.01, generator=torch.Generator().manual_seed(0)),
            "TEA": model_maps(tea, x, y), "ERM": model_maps(erm, x, y)}
    out = [heatmap_grid(x, maps, figs / f"{dataset}-heatmaps.png", [f"class {int(c)}" for c in y])]
    if dataset == "phantom-xrays":
        i = pick_across_classes(data.y, 1)[0]  # one X-ray, seeded
        x1, y1 = data.x[i:i + 1], data.y[i:i + 1]
        out.append(side_by_side(x1[0], data.mask[i], {"ERM": model_maps(erm, x1, y1)[0],
                                                     "TEA": model_maps(tea, x1, y1)[0]},
                                figs / f"{dataset}-erm-vs-tea.png",
                                f"{split} image {i}: {class_label(info.get('classes'), int(y1))}"))
    return out


def _lr_words(datasets: list[str]) -> str:
    """The benchmarks whose students keep their base learning rate (no scale selected on them yet)."""
    base = [ds for ds in datasets if not BENCHMARKS[ds].lr_selected]
    if not base:
        return ""
    return (f"  On {' and '.join(base)} every student has its base learning rate (scale 1), not selected "
            "on that benchmark's validation set (TEA's base rate is the one the leave-one-benchmark-out "
            "study chose over the four benchmarks).")


def _seed_words(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return (f"One seed ({seeds[0]}): every cell is that run's value; the spread over seeds is unknown "
                "(`tea demo --seeds 0,1,2` measures it).")
    return (f"Seeds {', '.join(map(str, seeds))}: every cell is the mean ± the sample standard deviation over "
            "the seeds that finished, with their number n; bold compares the means.")


def write_report(out: Path, rows: list[dict], runs: dict, quick: bool, seconds: dict | None = None,
                 options: str = "") -> list[dict]:
    """``runs``: ``{seed: (stages, folders)}``, each seed's planned stages and their folders (by stage name),
    in the order the seeds were given; ``seconds``: ``{seed: {stage name: seconds}}``, training + evaluation
    time of each finished stage (stages absent from it are reported as not run yet); ``options``: the other
    `tea demo` options that made it (e.g. ``"--width 16"``), shown in its command.  Table cells and targets
    are means over the seeds, with their spread (module docstring).  Returns the target checks it reports
    (:func:`teakit.report.targets.check`)."""
    seeds = list(runs)
    if not seeds:
        raise ValueError("write_report needs the stages of at least one seed")
    seconds = seconds if seconds is not None else {
        seed: {s.name: float("nan") for s in stages} for seed, (stages, _) in runs.items()}
    stages, folders = runs[seeds[0]]  # the heatmaps show the first seed's models
    out = Path(out)
    figs = out / "figures"
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    md = ["# teakit demo report", "",
          "Accuracy (%) per test split; agreement with the teacher and the share of |LRP-ε| relevance on the "
          "background (lower is better) on the `swapped` split.  Bold: best student per column "
          "(the teacher is the reference, not a contender).  Every distilled student starts from initial "
          "weights of its own; feature distillation and attention transfer, whose losses cannot train a head, "
          "read their features with the teacher's head, frozen.  Each student's learning rate was selected on "
          "the biased validation set (listed at the end)." + _lr_words(datasets) + "  " + _seed_words(seeds), ""]
    checks = check(rows)
    verdict = {True: "yes", False: "**no**", None: "not decided"}
    header = ["benchmark", "target", "measured (%)", "met", "difference larger than the seed spread"]
    body = [[c["dataset"], c["target"], c["measured"], verdict[c["met"]], c["spread"]] for c in checks]
    rule = (f"Each target is decided on the means over seeds and compares TEA with one method; its last column "
            f"applies the spread rule: {SPREAD_RULE}.")
    md += ["## Targets", "", rule, "", _md_table(header, body), ""]
    parts_html = [f"<h2>Targets</h2><p>{html.escape(rule)}</p>{_html_table(header, body)}"]
    for ds in datasets:
        bench = BENCHMARKS[ds]
        header, body = _table(rows, ds)
        bars = accuracy_bars([r for r in rows if r["dataset"] == ds], figs / f"{ds}-accuracy.png", title=ds,
                             figures=bench.bars)
        core = {method_label(s): s.name for s in stages if s.dataset == ds
                and method_label(s) in ("teacher", "TEA", "ERM")}
        grids = (_heatmaps(ds, folders, stages, figs)
                 if len(core) == 3 and all(name in seconds[seeds[0]] for name in core.values()) else [])
        notes = dict.fromkeys(f"{r['method']} — {r['note']}" for r in rows
                              if r["dataset"] == ds and r.get("note"))
        caption = [bench.caption, ""] if bench.caption else []
        md += [f"## {ds}", ""] + caption + [_md_table(header, body), ""] + [f"- {n}" for n in notes]
        html_part = (f"<h2>{html.escape(ds)}</h2>" + (f"<p>{html.escape(bench.caption)}</p>" if bench.caption else "")
                     + _html_table(header, body) + "".join(f"<p>{html.escape(n)}</p>" for n in notes))
        if bench.details:
            detail = _table(rows, ds, bench.details)
            md += ["", f"{bench.details_title}:", "", _md_table(*detail)]
            html_part += f"<p>{html.escape(bench.details_title)}:</p>{_html_table(*detail)}"
        md += ["", f"![accuracy]({bars.relative_to(out)})", ""]
        html_part += f"<p><img src='{bars.relative_to(out)}'></p>"
        if grids:
            md += [f"Heatmaps (LRP-ε, ε = 0.01) of the true class on `{bench.figure_split}` images: teacher, TEA "
                   "student, ERM" + (f" (seed {seeds[0]})." if len(seeds) > 1 else "."),
                   "", f"![heatmaps]({grids[0].relative_to(out)})", ""]
            html_part += f"<p><img src='{grids[0].relative_to(out)}'></p>"
        if len(grids) > 1:
            md += [f"One `{bench.figure_split}` X-ray, the lungs outlined: where the ERM and the TEA student look "
                   "(LRP-ε of the true class; each title gives the share of |relevance| outside the lungs).", "",
                   f"![ERM and TEA]({grids[1].relative_to(out)})", ""]
            html_part += f"<p><img src='{grids[1].relative_to(out)}'></p>"
        parts_html.append(html_part)
    seed_opt = f"--seed {seeds[0]}" if len(seeds) == 1 else f"--seeds {','.join(map(str, seeds))}"
    cmd = f"tea demo --out {out} {seed_opt}" + (" --quick" if quick else "") + (f" {options}" if options else "")
    done = [t for times in seconds.values() for t in times.values() if t == t]  # nan: time unknown
    md += ["## How this was made", "", f"    {cmd}", "",
           f"Stages, with their learning rate, any option their objective does not take by default, and "
           f"training + evaluation time (total of the timed ones: "
           f"{sum(done) / 60:.1f} min; each folder holds its run config, checkpoints and logs):", ""]
    for seed, (seed_stages, seed_folders) in runs.items():
        if len(seeds) > 1:
            md += [f"Seed {seed}:", ""]
        times = seconds.get(seed, {})
        md += [f"- `{s.name}` (lr {s.params['cfg']['lr']:g}{_options(s)}, {times[s.name]:.0f} s): "
               f"`{seed_folders[s.name]}`" if s.name in times else f"- `{s.name}`: not run yet" for s in seed_stages]
        if len(seeds) > 1:
            md += [""]
    (out / "report.md").write_text("\n".join(md) + "\n")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>teakit demo report</title>"
            "<style>body{font-family:sans-serif;max-width:960px;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>"
            f"<h1>teakit demo report</h1><p>{html.escape(md[2])}</p>{''.join(parts_html)}"
            f"<h2>How this was made</h2><pre>{html.escape(cmd)}</pre></body></html>")
    (out / "report.html").write_text(page)
    return checks
