"""`tea study convergence`: how fast does a TEA student learn, one change at a time.

Each variant is the baseline recipe (the `tea distill` defaults,
:class:`teakit.config.TEAConfig`, or the options given on the command line)
with one change from :data:`VARIANTS`; ``input-maps-only`` drops the
hidden-layer term (the paper's objective).  Every
variant trains through :func:`teakit.commands.distill` — the same loop and
selection as any run — and after each epoch its student is probed on the
test splits.  The probe only reports: selection inside each run still uses
the biased validation heatmap loss, and nothing from the test splits flows
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
- ``study.png``: accuracy on ``ood``, agreement with the teacher on
  ``swapped`` and the validation heatmap loss, against steps and wall time;
- ``study.md``: one row per variant at its selected epoch (lowest validation
  heatmap loss, as `tea distill` selects), with its steps and wall time.
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

FIELDS = ["variant", "epoch", "step", "seconds", "split", "accuracy", "agreement", "heatmap_loss"]


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


def _probe(name: str, teacher, tests: dict, rows: list, clock: list, partial: Path | None = None):
    from .evaluate import predict

    t_pred = {s: predict(teacher, d.x).argmax(1) for s, d in tests.items()}

    def on_epoch(record, model):
        device = next(model.parameters()).device
        clock[0] += record["seconds"]
        base = {"variant": name, "epoch": record["epoch"] + 1, "step": record["step"],
                "seconds": round(clock[0], 2)}
        val = record["val"]
        rows.append({**base, "split": "val", "accuracy": val.get("acc"), "agreement": val.get("agreement"),
                     "heatmap_loss": val.get("heatmap_loss")})
        with torch.no_grad():
            for split, data in tests.items():
                pred = predict(model, data.x, device=device).argmax(1)
                rows.append({**base, "split": split, "accuracy": (pred == data.y).float().mean().item(),
                             "agreement": (pred == t_pred[split]).float().mean().item(), "heatmap_loss": None})
        if partial is not None:
            atomic_write_csv(partial, rows, FIELDS)
    return on_epoch


def read_curves(path) -> list[dict]:
    """Rows of a ``curve.csv`` / ``study.csv`` with numbers as floats (empty -> None)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in FIELDS[1:]:
            if k != "split":
                r[k] = float(r[k]) if r[k] not in ("", None) else None
    return rows


def convergence(dataset: str, teacher_dir, out, variants, *, cfg: TrainConfig | None = None,
                tea: dict | None = None, spec: dict | None = None, data_seed: int = 0,
                data_options: dict | None = None, fresh: bool = False, progress: bool = True,
                fabric: dict | None = None) -> Path:
    """Run the variants (names from :data:`VARIANTS`) and write ``study.csv`` and ``study.png``.

    ``fabric``: Lightning Fabric options for every variant's training (e.g. a GPU)."""
    from .commands import distill
    from .data.load import TRAINING_SPLITS, load_data
    from .runs import load_teacher

    variants = list(variants)
    for name in variants:
        variant_setup(name, cfg or TrainConfig(), {}, None)  # unknown names fail before any training
    base_cfg = cfg or command_train_config("study", "tea")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(dataset, data_seed, **(data_options or {}))
    tests = {s: d for s, d in data.items() if s not in TRAINING_SPLITS}
    teacher = load_teacher(teacher_dir)
    all_rows = []
    for i, name in enumerate(variants):
        run_dir, curve = out / name, out / name / "curve.csv"
        if curve.exists() and not fresh:
            print(f"[{i + 1}/{len(variants)}] {name}: finished earlier, reusing {curve}")
            all_rows += read_curves(curve)
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)  # an unfinished variant restarts: its probe clock would be incomplete
        v_cfg, v_tea, v_spec, copy_head = variant_setup(name, base_cfg, dict(tea or {}), spec)
        print(f"[{i + 1}/{len(variants)}] {name}: {v_cfg.epochs} epochs")
        rows, clock = [], [0.0]
        partial = out / name / "curve.partial.csv"
        distill(dataset, teacher_dir, run_dir, spec=v_spec, cfg=v_cfg, tea=v_tea, copy_head=copy_head,
                data_seed=data_seed, data_options=data_options, progress=progress, fabric=fabric,
                on_epoch=_probe(name, teacher, tests, rows, clock, partial))
        atomic_write_csv(curve, rows, FIELDS)
        partial.unlink(missing_ok=True)
        all_rows += read_curves(curve)
    atomic_write_csv(out / "study.csv", all_rows, FIELDS)
    plot_study(all_rows, out / "study.png")
    table = summary_table(all_rows)
    (out / "study.md").write_text(table + "\n")
    print(table)
    return out / "study.csv"


def summary_table(rows: list[dict]) -> str:
    """Markdown: per variant, the epoch with the lowest validation heatmap loss and its figures."""
    lines = ["| variant | selected epoch / steps / wall s | val heatmap loss | val agreement | id | ood | swapped "
             "| agreement (swapped) | last epoch: ood / agreement |", "|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]
        at = {(r["epoch"], r["split"]): r for r in mine}
        val = [r for r in mine if r["split"] == "val"]
        best = min(val, key=lambda r: r["heatmap_loss"])
        last = max(r["epoch"] for r in val)
        e = best["epoch"]
        pct = lambda split, key, epoch=e: f"{100 * at[(epoch, split)][key]:.1f}"  # noqa: E731
        lines.append(f"| {name} | {int(e)} / {int(best['step'])} / {best['seconds']:.0f} | "
                     f"{best['heatmap_loss']:.3f} | {100 * best['agreement']:.1f} | {pct('id', 'accuracy')} | "
                     f"{pct('ood', 'accuracy')} | {pct('swapped', 'accuracy')} | {pct('swapped', 'agreement')} | "
                     f"{pct('ood', 'accuracy', last)} / {pct('swapped', 'agreement', last)} |")
    return "\n".join(lines)


def plot_study(rows: list[dict], path) -> Path:
    """Accuracy (ood), agreement (swapped) and val heatmap loss against steps (top) and seconds (bottom)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("ood", "accuracy", "accuracy on ood"), ("swapped", "agreement", "agreement with teacher (swapped)"),
              ("val", "heatmap_loss", "val heatmap loss")]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    for col, (split, key, title) in enumerate(panels):
        for row, xkey in enumerate(("step", "seconds")):
            ax = axes[row][col]
            for i, name in enumerate(names):
                pts = [(r[xkey], r[key]) for r in rows
                       if r["variant"] == name and r["split"] == split and r[key] is not None]
                if pts:  # tab20 then dashed: up to 40 distinguishable lines
                    ax.plot(*zip(*pts), label=name, lw=1.2, color=plt.cm.tab20(i % 20), ls="-" if i < 20 else "--")
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
    """One run's figures at its selected epoch (lowest validation heatmap loss)."""
    val = [r for r in rows if r["split"] == "val"]
    best = min(val, key=lambda r: r["heatmap_loss"])
    at = {r["split"]: r for r in rows if r["epoch"] == best["epoch"]}
    return {"epoch": int(best["epoch"]), "last_epoch": int(max(r["epoch"] for r in val)),
            "val_loss": best["heatmap_loss"], "val_agreement": best["agreement"],
            **{s: at[s]["accuracy"] for s in ("id", "ood", "swapped")},
            "agreement": at["swapped"]["agreement"]}


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


def plot_runs(folders, path) -> Path:
    """:func:`plot_study` of every run under ``folders``, one line per run (seeds apart)."""
    rows = [{**r, "variant": name} for name, (rs, _) in _runs_under(folders).items() for r in rs]
    return plot_study(rows, path)


def seed_summary(folders, target: float = 0.93) -> str:
    """Markdown: every run under ``folders`` (each ``curve.csv``, or ``curve.partial.csv`` of a run
    stopped early) at its selected epoch, then per recipe the mean and spread over its seeds.
    A run is named by the folder above its variant folder; runs named ``R`` and ``R-s<N>`` are
    seeds of one recipe ``R`` (``default-s0``, ``default-s1`` → ``default``)."""
    import re
    import statistics

    runs = {name: (rows[0]["variant"], _selected(rows), stopped)
            for name, (rows, stopped) in _runs_under(folders).items()}
    recipe = {name: re.sub(r"-s\d+$", "", name) for name in runs}
    lines = ["| run | variant | selected / last epoch | val heatmap loss | val agreement | id | ood | swapped "
             "| agreement (swapped) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, (variant, s, partial) in runs.items():
        lines.append(f"| {name} | {variant} | {s['epoch']} / {s['last_epoch']}{' (stopped)' if partial else ''} | "
                     f"{s['val_loss']:.3f} | {100 * s['val_agreement']:.1f} | {100 * s['id']:.1f} | "
                     f"{100 * s['ood']:.1f} | {100 * s['swapped']:.1f} | {100 * s['agreement']:.1f} |")
    lines += ["", f"| recipe | seeds | val heatmap loss, mean | ood, mean ± sd | swapped, mean ± sd "
                  f"| agreement, mean (min) | runs ≥ {100 * target:.0f} % on ood and swapped |",
              "|---|---|---|---|---|---|---|"]
    for group in dict.fromkeys(recipe.values()):
        ss = [s for name, (_, s, _) in runs.items() if recipe[name] == group]
        def spread(k):  # mean ± sample sd over seeds (no sd for one seed)
            v = [100 * s[k] for s in ss]
            return f"{statistics.fmean(v):.1f}" + (f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else "")
        hit = sum(s["ood"] >= target and s["swapped"] >= target for s in ss)
        lines.append(f"| {group} | {len(ss)} | {statistics.fmean([s['val_loss'] for s in ss]):.3f} | "
                     f"{spread('ood')} | {spread('swapped')} | "
                     f"{100 * statistics.fmean([s['agreement'] for s in ss]):.1f} ({100 * min(s['agreement'] for s in ss):.1f}) | {hit} / {len(ss)} |")
    return "\n".join(lines)
