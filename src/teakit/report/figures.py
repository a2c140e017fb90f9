"""PNG figures: heatmap grids (image | teacher map | student maps) and accuracy bars.

Heatmaps are summed over colour channels and shown with a diverging colour map
centred at zero (red positive, blue negative), each map scaled by its own
largest absolute value.  Uses matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

from pathlib import Path

import torch


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def heatmap_grid(images: torch.Tensor, maps: dict[str, torch.Tensor], path, titles: list[str] | None = None):
    """One row per image: the image, then one heatmap per entry of ``maps`` (B,C,H,W)."""
    plt = _plt()
    n, cols = len(images), 1 + len(maps)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.6 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy())
        if titles:
            axes[i, 0].set_ylabel(titles[i], fontsize=7)
        for j, (name, m) in enumerate(maps.items(), start=1):
            h = m[i].sum(0).numpy()
            v = max(abs(h).max(), 1e-12)
            axes[i, j].imshow(h, cmap="bwr", vmin=-v, vmax=v)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def model_maps(model, x, target, eps: float = 0.01) -> torch.Tensor:
    from ..explain import explain
    return explain(model.eval(), x, target, eps=eps)


def explain_figure(dataset: str, model_dir, out_dir, teacher_dir=None, split: str = "swapped", n: int = 8,
                   eps: float = 0.01):
    """`tea explain`: the first ``n`` images of ``split`` with the teacher's and the
    model's LRP-ε maps of the image's true class."""
    from ..commands import load_data
    from ..runs import load_model, load_teacher

    model, config = load_model(model_dir)
    data = load_data(dataset, config.get("data_seed", 0), **config.get("data_options", {}))[split]
    x, y = data.x[:n], data.y[:n]
    maps = {}
    teacher_dir = teacher_dir or config.get("teacher")
    if teacher_dir:
        teacher = load_teacher(teacher_dir)
        maps["teacher"] = teacher.heatmap(x, y, eps, generator=torch.Generator().manual_seed(0))
    maps[Path(model_dir).name] = model_maps(model, x, y, eps)
    return heatmap_grid(x, maps, Path(out_dir) / f"explain-{split}.png", [f"class {int(c)}" for c in y])


def accuracy_bars(rows: list[dict], path, splits=("id", "ood", "swapped"), title: str = ""):
    """Grouped bars: accuracy per split (groups) per method (bars)."""
    plt = _plt()
    rows = [r for r in rows if r["value"] is not None]  # methods that do not apply have no bars
    methods = list(dict.fromkeys(r["method"] for r in rows))
    acc = {(r["method"], r["split"]): r["value"] for r in rows if r["metric"] == "accuracy"}
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(splits) * max(1, len(methods)) / 3, 3))
    w = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        xs = [k + i * w for k in range(len(splits))]
        ax.bar(xs, [100 * acc.get((m, s), float("nan")) for s in splits], w, label=m)
    ax.set_xticks([k + 0.4 - w / 2 for k in range(len(splits))])
    ax.set_xticklabels(splits)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    if methods:  # nothing finished yet (--report-only): empty axes, no legend
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def training_curves(runs: dict, path, keys=("agreement", "heatmap_loss")):
    """Validation curves (per epoch, from each run's ``last.json`` history) of several runs,
    one panel per key, x = optimisation steps."""
    from ..checkpoint import load_checkpoint

    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for label, run_dir in runs.items():
        hist = load_checkpoint(run_dir).extra["history"]
        steps = [h["step"] for h in hist]
        for ax, key in zip(axes[0], keys):
            ax.plot(steps, [h["val"].get(key, float("nan")) for h in hist], label=label)
    for ax, key in zip(axes[0], keys):
        ax.set_xlabel("optimisation steps")
        ax.set_ylabel(f"validation {key.replace('_', ' ')}")
        if "loss" in key:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
