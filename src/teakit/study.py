"""`tea study convergence`: how fast does a TEA student learn, one change at a time,
and how fast next to other distillation objectives.

Each variant is the baseline recipe (the `tea distill` defaults,
:class:`teakit.config.TEAConfig`, or the options given on the command line)
with one change from :data:`VARIANTS`; ``input-maps-only`` drops the
hidden-layer term (the paper's objective).  Each baseline (``baselines``:
``feature``, ``kd``, ...) is another `tea distill` objective with the same
epochs, batch, schedule and seed, at its own learning rate.  Every run
trains through :func:`teakit.commands.distill` — the same loop and
selection as any run — and after each epoch its student is probed on the
test splits.  The probe only reports: selection inside each run still uses
its objective's validation loss, and nothing from the test splits flows
back into training.

Writes under ``out``:

- ``VARIANT/`` the variant's run folder, and ``VARIANT/curve.csv`` its rows;
  a variant whose ``curve.csv`` exists is finished and is not rerun
  (``fresh=True`` reruns it); while it trains, ``VARIANT/curve.partial.csv``
  holds the rows so far (rewritten after every epoch);
- ``study.csv``: ``variant, epoch, step, seconds, split, accuracy, agreement,
  heatmap_loss`` for every variant, epoch and split (``val`` is the biased
  validation set; ``seconds`` is cumulative training + validation wall time,
  probes excluded);
- ``study.png``: each shifted figure of the benchmark, the agreement with the
  teacher on its split and on the validation set, against steps and wall time
  (:func:`figure_panels`);
- ``study.md``: one row per run at its selected epoch (lowest validation
  loss of its objective, as `tea distill` selects), with its steps and wall time;
- ``reach.md``: when each run first comes within 3 points of the teacher on
  every shifted figure of the benchmark (:func:`shifted_figures`) with at least
  95 % agreement on those splits, and when each baseline first reaches the
  figures each variant had then (the wall-time ratio).
"""
from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from .atomic import atomic_write_csv
from .config import TrainConfig, command_train_config
from .names import VARIANTS
from .runs import default_spec

FIELDS = ["variant", "epoch", "step", "seconds", "split", "accuracy", "agreement", "heatmap_loss", "selection",
          "worst_group"]
# the probe's column of each metric that a benchmark's shifted figures name (teakit.methods.Benchmark.shifted)
FIGURE_COLUMNS = {"accuracy": "accuracy", "worst_group_accuracy": "worst_group"}


def time_to_reach(history: list[dict], key: str, level: float) -> dict | None:
    """The first epoch of a run's ``history`` whose validation ``key`` is at least ``level``:
    ``{"epoch"`` (counted from 1), ``"step"``, ``"seconds"}`` (training wall time, validation included,
    summed over the epochs up to it), or None if no epoch reaches it."""
    seconds = 0.0
    for record in history:
        seconds += record["seconds"]
        value = record["val"].get(key)
        if value is not None and value >= level:
            return {"epoch": record["epoch"] + 1, "step": record["step"], "seconds": seconds}
    return None


def variant_setup(name: str, cfg: TrainConfig, tea: dict, spec: dict | None) -> tuple[TrainConfig, dict, dict | None, bool]:
    """The (train config, TEA options, model spec, copy_head) of variant ``name``."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    v = VARIANTS[name]
    epochs = max(1, round(cfg.epochs * v.get("epochs_scale", 1.0)))
    cfg = replace(cfg, **{**v.get("train", {}), "epochs": epochs})
    cfg = replace(cfg, lr=cfg.lr * v.get("lr_scale", 1.0))
    tea = {**tea, **v.get("tea", {})}
    if v.get("spec"):
        spec = dict(spec or default_spec())
        if spec["name"] != "cnn":
            raise ValueError(f"variant {name!r} changes the small cnn; the baseline model is {spec['name']!r}")
        spec["kwargs"] = {**spec.get("kwargs", {}), **v["spec"]}
    return cfg, tea, spec, bool(v.get("copy_head", False))


def _probe(name: str, teacher_pred: dict, tests: dict, rows: list, clock: list, partial: Path | None = None,
           key: str = "heatmap_loss"):
    """An ``on_epoch`` hook that appends the epoch's rows: the validation record (``selection``: its ``key``,
    the objective's selection loss) and, for every test split, accuracy, worst-group accuracy (None when the
    split has no groups) and agreement with ``teacher_pred`` (the teacher's classes on that split)."""
    from .evaluate import predict

    def on_epoch(record, model):
        device = next(model.parameters()).device
        clock[0] += record["seconds"]
        base = {"variant": name, "epoch": record["epoch"] + 1, "step": record["step"],
                "seconds": round(clock[0], 2)}
        val = record["val"]
        rows.append({**base, "split": "val", "accuracy": val.get("acc"), "agreement": val.get("agreement"),
                     "heatmap_loss": val.get("heatmap_loss"), "selection": val.get(key)})
        with torch.no_grad():
            for split, data in tests.items():
                pred = predict(model, data.x, device=device).argmax(1)
                rows.append({**base, "split": split, "accuracy": (pred == data.y).float().mean().item(),
                             "agreement": (pred == teacher_pred[split]).float().mean().item(),
                             "worst_group": _worst_group(pred == data.y, data.bias)})
        if partial is not None:
            atomic_write_csv(partial, rows, FIELDS)
    return on_epoch


def read_curves(path) -> list[dict]:
    """Rows of a ``curve.csv`` / ``study.csv`` with numbers as floats (empty -> None)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in FIELDS[1:]:
            if k != "split":  # files written before a column existed read it as empty
                r[k] = float(r[k]) if r.get(k) not in ("", None) else None
    return rows


def shifted_figures(dataset: str, splits) -> tuple:
    """The ``(split, column)`` figures a student is held to on ``dataset``: a built-in benchmark's
    shifted figures (:data:`teakit.methods.BENCHMARKS`), else the accuracy of every test split in
    ``splits`` but ``id`` (of them all if that leaves none)."""
    from .methods import BENCHMARKS

    if dataset in BENCHMARKS:
        return tuple((s, FIGURE_COLUMNS[m]) for s, m in BENCHMARKS[dataset].shifted)
    return tuple((s, "accuracy") for s in splits if s != "id") or tuple((s, "accuracy") for s in splits)


def _first_epoch(rows: list[dict], ok) -> dict | None:
    """The first epoch of one run's ``rows`` whose rows by split, ``{split: row}``, pass ``ok``:
    ``{"epoch", "step", "seconds", "at"}`` (``at``: those rows), or None."""
    epochs: dict = {}
    for r in rows:
        epochs.setdefault(r["epoch"], {})[r["split"]] = r
    for epoch in sorted(epochs):
        at = epochs[epoch]
        if ok(at):
            any_row = next(iter(at.values()))
            return {"epoch": int(epoch), "step": int(any_row["step"]), "seconds": any_row["seconds"], "at": at}
    return None


def time_to_teacher(rows: list[dict], teacher: dict, figures, points: float = 3.0,
                    agreement: float = 0.95) -> dict | None:
    """The first epoch of one run's probe ``rows`` at which every figure ``(split, column)`` is at most
    ``points`` percentage points below ``teacher[split][column]`` and the run agrees with the teacher on at
    least ``agreement`` of each figure's split (see :func:`_first_epoch`), or None."""
    def ok(at):
        return all(s in at and at[s][c] is not None and at[s][c] >= teacher[s][c] - points / 100
                   and at[s]["agreement"] >= agreement for s, c in figures)
    return _first_epoch(rows, ok)


def time_to_figures(rows: list[dict], targets: dict) -> dict | None:
    """The first epoch of one run's probe ``rows`` at which every figure ``(split, column)`` of ``targets``
    is at least its value there, or None."""
    return _first_epoch(rows, lambda at: all(s in at and at[s][c] is not None and at[s][c] >= v
                                             for (s, c), v in targets.items()))


def reach_table(rows: list[dict], teacher: dict, figures, baselines=(), points: float = 3.0,
                agreement: float = 0.95) -> str:
    """Markdown: the teacher's figures, then per run when it first comes within ``points`` of the teacher on
    every figure with ``agreement`` (:func:`time_to_teacher`); for a run that is not one of ``baselines``, when
    each baseline first reaches the figures that run had then (:func:`time_to_figures`), and the ratio of the
    two wall times (run ÷ baseline)."""
    fmt = lambda t: "not reached" if t is None else f"{t['epoch']} / {t['step']} / {t['seconds']:.1f} s"  # noqa: E731
    names = list(dict.fromkeys(r["variant"] for r in rows))
    head = (["run", f"within {points:g} points, agreement ≥ {100 * agreement:.0f} %: epoch / step / s"]
            + [_figure_label(s, c) for s, c in figures]
            + [x for b in baselines for x in (f"{b}: the same figures, epoch / step / s", f"run ÷ {b} (time)")])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             "| teacher | – | " + " | ".join(f"{100 * teacher[s][c]:.1f}" for s, c in figures)
             + " | – | –" * len(baselines) + " |"]
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        t = time_to_teacher(mine, teacher, figures, points, agreement)
        cells = [name, fmt(t)] + [f"{100 * t['at'][s][c]:.1f}" if t else "–" for s, c in figures]
        for b in baselines:
            if t is None or name in baselines:
                cells += ["–", "–"]
                continue
            tb = time_to_figures([r for r in rows if r["variant"] == b], {(s, c): t["at"][s][c] for s, c in figures})
            cells += [fmt(tb), f"{t['seconds'] / tb['seconds']:.1f}×" if tb else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def baseline_setup(name: str, lr: float | None, cfg: TrainConfig) -> tuple[TrainConfig, str]:
    """The (train config, selection key) of baseline objective ``name``: ``cfg`` (a variant's epochs, batch,
    schedule and seed) with the objective's own head learning-rate scale and learning rate ``lr`` (None:
    its `tea study` default, :func:`teakit.config.command_train_config`)."""
    from .objectives.registry import OBJECTIVES, distill_objectives

    others = [k for k in distill_objectives() if k != "tea"]
    if name not in others:
        raise ValueError(f"baseline {name!r}: expected a distillation objective other than tea, one of "
                         + ", ".join(others))
    if name in VARIANTS:
        raise ValueError(f"baseline {name!r} is also a variant's name; their run folders would collide")
    if lr is not None and not lr > 0:
        raise ValueError(f"baseline {name!r}: learning rate {lr} must be positive")
    own = command_train_config("study", name)
    return replace(cfg, lr=own.lr if lr is None else lr, head_lr_scale=own.head_lr_scale), \
        OBJECTIVES[name].cls.selection_key


def convergence(dataset: str, teacher_dir, out, variants, *, cfg: TrainConfig | None = None,
                tea: dict | None = None, spec: dict | None = None, data_seed: int = 0,
                data_options: dict | None = None, fresh: bool = False, progress: bool = True,
                fabric: dict | None = None, baselines: dict | None = None) -> Path:
    """Run the variants (names from :data:`VARIANTS`) and the ``baselines`` (objective name to its learning
    rate, None for its default; :func:`baseline_setup`), and write ``study.csv``, ``study.png``, ``study.md``
    and ``reach.md``.

    ``fabric``: Lightning Fabric options for every run's training (e.g. a GPU)."""
    from .commands import distill
    from .data.load import TRAINING_SPLITS, load_data
    from .runs import load_teacher, teacher_hash, teacher_split_logits

    variants, baselines = list(variants), dict(baselines or {})
    base_cfg = cfg or command_train_config("study", "tea")
    jobs = []  # (name, train config, TEA options, spec, copy_head, objective, selection key)
    for name in variants:  # unknown names fail before any training
        v_cfg, v_tea, v_spec, copy_head = variant_setup(name, base_cfg, dict(tea or {}), spec)
        jobs.append((name, v_cfg, v_tea, v_spec, copy_head, "tea", "heatmap_loss"))
    for name, lr in baselines.items():
        b_cfg, key = baseline_setup(name, lr, base_cfg)
        jobs.append((name, b_cfg, None, spec, None, name, key))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(dataset, data_seed, **(data_options or {}))
    tests = {s: d for s, d in data.items() if s not in TRAINING_SPLITS}
    teacher = load_teacher(teacher_dir)
    t_logits = teacher_split_logits(teacher, teacher_dir, tests, teacher_hash(teacher))
    t_pred = {s: t_logits[s].argmax(1) for s in tests}
    all_rows = []
    for i, (name, j_cfg, j_tea, j_spec, copy_head, objective, key) in enumerate(jobs):
        run_dir, curve = out / name, out / name / "curve.csv"
        if curve.exists() and not fresh:
            print(f"[{i + 1}/{len(jobs)}] {name}: finished earlier, reusing {curve}")
            all_rows += read_curves(curve)
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished run restarts: its probe clock would be incomplete
        print(f"[{i + 1}/{len(jobs)}] {name}: {j_cfg.epochs} epochs")
        rows, clock = [], [0.0]
        partial = out / name / "curve.partial.csv"
        distill(dataset, teacher_dir, run_dir, spec=j_spec, cfg=j_cfg, tea=j_tea, copy_head=copy_head,
                data_seed=data_seed, data_options=data_options, progress=progress, fabric=fabric,
                objective=objective, on_epoch=_probe(name, t_pred, tests, rows, clock, partial, key))
        atomic_write_csv(curve, rows, FIELDS)
        partial.unlink(missing_ok=True)
        all_rows += read_curves(curve)
    atomic_write_csv(out / "study.csv", all_rows, FIELDS)
    figures = shifted_figures(dataset, tests)
    t_figures = {s: {"accuracy": (t_pred[s] == d.y).float().mean().item(),
                     "worst_group": _worst_group(t_pred[s] == d.y, d.bias)} for s, d in tests.items()}
    plot_study(all_rows, out / "study.png", panels=figure_panels(figures), teacher=t_figures)
    table = summary_table(all_rows, figures)
    (out / "study.md").write_text(table + "\n")
    reach = reach_table(all_rows, t_figures, figures, baselines=list(baselines))
    (out / "reach.md").write_text(reach + "\n")
    print(table + "\n\n" + reach)
    return out / "study.csv"


def _worst_group(correct: torch.Tensor, group: torch.Tensor) -> float | None:
    """The lowest accuracy over the groups of ``group`` (None when no image has one)."""
    from .evaluate import group_accuracies
    groups = group_accuracies(correct, group)
    return min(groups.values()) if groups else None


def _figure_label(split: str, column: str) -> str:
    """``ood accuracy``, ``test worst group``: a figure's name in the tables."""
    return f"{split} {'worst group' if column == 'worst_group' else column}"


def _best_row(val: list[dict]) -> tuple[dict, float]:
    """The validation row a run selects and its loss: lowest ``selection`` (its objective's loss; files
    written before that column existed: ``heatmap_loss``)."""
    key = "selection" if all(r.get("selection") is not None for r in val) else "heatmap_loss"
    best = min(val, key=lambda r: r[key])
    return best, best[key]


def summary_table(rows: list[dict], figures=(("ood", "accuracy"), ("swapped", "accuracy"))) -> str:
    """Markdown: per run, the epoch with the lowest validation loss of its objective and its figures there:
    each test split's accuracy, the worst group of each ``figures`` entry that names it, the agreement on
    each figure's split, and the figures and agreement at the last epoch."""
    tests = list(dict.fromkeys(r["split"] for r in rows if r["split"] != "val"))
    fig_splits = list(dict.fromkeys(s for s, _ in figures))
    worst = [s for s, c in figures if c == "worst_group"]
    head = (["variant", "selected epoch / steps / wall s", "val loss", "val agreement"] + tests
            + [_figure_label(s, "worst_group") for s in worst] + [f"agreement ({s})" for s in fig_splits]
            + ["last epoch: " + " / ".join(s if c == "accuracy" else _figure_label(s, c) for s, c in figures)
               + " / agreement"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        at = {(r["epoch"], r["split"]): r for r in mine}
        val = [r for r in mine if r["split"] == "val"]
        best, loss = _best_row(val)
        last = max(r["epoch"] for r in val)
        e = best["epoch"]
        pct = lambda split, key, epoch=e: f"{100 * at[(epoch, split)][key]:.1f}"  # noqa: E731
        cells = ([name, f"{int(e)} / {int(best['step'])} / {best['seconds']:.0f}", f"{loss:.3f}",
                  f"{100 * best['agreement']:.1f}"] + [pct(s, "accuracy") for s in tests]
                 + [pct(s, "worst_group") for s in worst] + [pct(s, "agreement") for s in fig_splits]
                 + [" / ".join([pct(s, c, last) for s, c in figures] + [pct(fig_splits[0], "agreement", last)])])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure_panels(figures) -> list[tuple]:
    """:func:`plot_study` panels for ``figures``: each figure, the agreement on each figure's split, and the
    validation agreement."""
    name = lambda s, c: f"{'worst-group accuracy' if c == 'worst_group' else c} on {s}"  # noqa: E731
    return ([(s, c, name(s, c)) for s, c in figures]
            + [(s, "agreement", f"agreement with teacher ({s})") for s in dict.fromkeys(s for s, _ in figures)]
            + [("val", "agreement", "agreement with teacher (val)")])


DIGIT_PANELS = [("ood", "accuracy", "accuracy on ood"), ("swapped", "agreement", "agreement with teacher (swapped)"),
                ("val", "heatmap_loss", "val heatmap loss")]


def plot_study(rows: list[dict], path, panels=None, teacher: dict | None = None) -> Path:
    """``panels`` (``(split, column, title)``; default :data:`DIGIT_PANELS`: accuracy on ood, agreement on
    swapped, val heatmap loss) against steps (top) and seconds (bottom), one line per run; ``teacher``
    (``{split: {column: value}}``) draws the teacher's figures as dotted lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = panels or DIGIT_PANELS
    names = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 8), squeeze=False)
    for col, (split, key, title) in enumerate(panels):
        for row, xkey in enumerate(("step", "seconds")):
            ax = axes[row][col]
            for i, name in enumerate(names):
                pts = [(r[xkey], r[key]) for r in rows
                       if r["variant"] == name and r["split"] == split and r[key] is not None]
                if pts:  # tab10 for up to 10 lines, else tab20 then dashed: up to 40 distinguishable lines
                    color = plt.cm.tab10(i) if len(names) <= 10 else plt.cm.tab20(i % 20)
                    ax.plot(*zip(*pts), label=name, lw=1.2, color=color, ls="-" if i < 20 else "--")
            level = (teacher or {}).get(split, {}).get(key)
            if level is not None:
                ax.axhline(level, color="black", ls=":", lw=1, label="teacher")
            ax.set_title(title)
            if key == "heatmap_loss":
                ax.set_yscale("log")  # the first epochs are an order of magnitude above the rest
            ax.set_xlabel("optimisation steps" if xkey == "step" else "wall time (s)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _selected(rows: list[dict]) -> dict:
    """One run's figures at its selected epoch (lowest validation loss of its objective, :func:`_best_row`):
    ``accuracy`` and ``agreement`` by test split."""
    val = [r for r in rows if r["split"] == "val"]
    best, loss = _best_row(val)
    at = {r["split"]: r for r in rows if r["epoch"] == best["epoch"] and r["split"] != "val"}
    return {"epoch": int(best["epoch"]), "last_epoch": int(max(r["epoch"] for r in val)),
            "val_loss": loss, "val_agreement": best["agreement"],
            "accuracy": {k: r["accuracy"] for k, r in at.items()},
            "agreement": {k: r["agreement"] for k, r in at.items()}}


def _runs_under(folders) -> dict:
    """``{run name: (rows, stopped)}`` for every curve file under ``folders`` (see :func:`seed_summary`)."""
    runs = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("curve*.csv")):
            rows = read_curves(path)
            if rows and any(r["split"] == "val" for r in rows):
                runs[path.parent.parent.name] = (rows, path.name != "curve.csv")
    if not runs:
        raise FileNotFoundError(f"no curve.csv or curve.partial.csv under {', '.join(map(str, folders))}")
    return runs


def _test_splits(runs) -> tuple[list, list]:
    """``(test splits, shifted splits)`` of runs' rows, in the order first seen: the shifted ones are all
    but ``id`` (all of them if that leaves none), as :func:`shifted_figures` takes them for a dataset on disk."""
    tests = list(dict.fromkeys(r["split"] for rows in runs for r in rows if r["split"] != "val"))
    return tests, [s for s in tests if s != "id"] or tests


def plot_runs(folders, path) -> Path:
    """:func:`plot_study` of every run under ``folders``, one line per run (seeds apart), with a panel for
    each shifted split's accuracy and agreement."""
    runs = _runs_under(folders)
    _, shifted = _test_splits(rs for rs, _ in runs.values())
    rows = [{**r, "variant": name} for name, (rs, _) in runs.items() for r in rs]
    return plot_study(rows, path, panels=figure_panels(tuple((s, "accuracy") for s in shifted)))


def seed_summary(folders, target: float = 0.93) -> str:
    """Markdown: every run under ``folders`` (each ``curve.csv``, or ``curve.partial.csv`` of a run
    stopped early) at its selected epoch, then per recipe the mean and spread over its seeds.
    A run is named by the folder above its variant folder; runs named ``R`` and ``R-s<N>`` are
    seeds of one recipe ``R`` (``default-s0``, ``default-s1`` → ``default``).  The columns follow the
    runs' test splits; the recipe table gives the shifted splits (all but ``id``), each run's lowest
    agreement with the teacher on them, and how many runs reach ``target`` on every one."""
    import re
    import statistics

    found = _runs_under(folders)
    tests, shifted = _test_splits(rows for rows, _ in found.values())
    runs = {name: (rows[0]["variant"], _selected(rows), stopped) for name, (rows, stopped) in found.items()}
    recipe = {name: re.sub(r"-s\d+$", "", name) for name in runs}

    def pct(values: dict, split: str) -> str:
        return f"{100 * values[split]:.1f}" if split in values else "–"
    lines = ["| run | variant | selected / last epoch | val loss | val agreement | " + " | ".join(tests)
             + "".join(f" | agreement ({t})" for t in shifted) + " |", "|---" * (5 + len(tests) + len(shifted)) + "|"]
    for name, (variant, s, partial) in runs.items():
        lines.append(f"| {name} | {variant} | {s['epoch']} / {s['last_epoch']}{' (stopped)' if partial else ''} | "
                     f"{s['val_loss']:.3f} | {100 * s['val_agreement']:.1f} | "
                     + " | ".join(pct(s["accuracy"], t) for t in tests)
                     + "".join(f" | {pct(s['agreement'], t)}" for t in shifted) + " |")
    lines += ["", "| recipe | seeds | val loss, mean | " + " | ".join(f"{t}, mean ± sd" for t in shifted)
              + f" | lowest agreement, mean (min) | runs ≥ {100 * target:.0f} % on {' and '.join(shifted)} |",
              "|---" * (5 + len(shifted)) + "|"]
    for group in dict.fromkeys(recipe.values()):
        ss = [s for name, (_, s, _) in runs.items() if recipe[name] == group]

        def spread(split):  # mean ± sample sd over the seeds that have the split (no sd for one seed)
            v = [100 * s["accuracy"][split] for s in ss if split in s["accuracy"]]
            if not v:
                return "–"
            return f"{statistics.fmean(v):.1f}" + (f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else "")
        hit = sum(all(s["accuracy"].get(t, 0.0) >= target for t in shifted) for s in ss)
        low = [min(s["agreement"][t] for t in shifted if t in s["agreement"]) for s in ss]  # each run's lowest
        lines.append(f"| {group} | {len(ss)} | {statistics.fmean([s['val_loss'] for s in ss]):.3f} | "
                     + " | ".join(spread(t) for t in shifted)
                     + f" | {100 * statistics.fmean(low):.1f} ({100 * min(low):.1f}) | {hit} / {len(ss)} |")
    return "\n".join(lines)
