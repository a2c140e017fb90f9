"""PNG figures: heatmap grids (image | teacher map | student maps), one image beside two students' maps
with the outline of the region that should matter (:func:`side_by_side`), and accuracy bars.

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
            _show_map(axes[i, j], m[i])
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=8)
    return _save(fig, axes.flat, path)


def _show_map(ax, heatmap: torch.Tensor) -> None:
    """A (C, H, W) heatmap summed over channels, red positive and blue negative, symmetric scale."""
    r = heatmap.sum(0).numpy()
    v = max(abs(r).max(), 1e-12)
    ax.imshow(r, cmap="bwr", vmin=-v, vmax=v)


def _save(fig, axes, path) -> Path:
    """Axes without ticks; the figure written to ``path`` (folders made) and closed."""
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return Path(path)


def model_maps(model, x, target, eps: float = 0.01) -> torch.Tensor:
    from ..explain import explain
    return explain(model.eval(), x, target, eps=eps)


def pick_across_classes(y: torch.Tensor, n: int, seed: int = 0) -> list[int]:
    """Up to ``n`` indices of ``y`` spread over its classes, deterministic for ``seed``:
    the classes in a seeded random order, each class's images in a seeded random order,
    then one image of each class in turn (round robin) until ``n`` are picked, so
    min(``n``, number of classes) classes are shown.  Returned sorted by class, then by
    turn."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    classes = sorted(int(c) for c in torch.as_tensor(y).unique())
    pools = {}
    for c in classes:  # drawn in class order: the same draws whatever n is
        members = (torch.as_tensor(y) == c).nonzero().flatten()
        pools[c] = members[torch.randperm(len(members), generator=g)].tolist()
    order = [classes[i] for i in torch.randperm(len(classes), generator=g).tolist()]
    picked, turn = [], 0
    while len(picked) < n and any(turn < len(pools[c]) for c in classes):
        for c in order:
            if turn < len(pools[c]) and len(picked) < n:
                picked.append((c, turn, pools[c][turn]))
        turn += 1
    return [i for _, _, i in sorted(picked)]


def class_label(names, c: int) -> str:
    """The name of class ``c`` from ``names`` (a reader's ``info["classes"]``), else its index."""
    return str(names[c]) if names and 0 <= c < len(names) else str(c)


def _default_split(splits) -> str:
    from ..data.load import TRAINING_SPLITS
    for name in ("swapped", "test"):
        if name in splits:
            return name
    return next((s for s in splits if s not in TRAINING_SPLITS), next(iter(splits)))


def explain_figure(dataset: str | None, model_dir, out_dir, teacher_dir=None, split: str | None = None, n: int = 8,
                   eps: float = 0.01, seed: int = 0):
    """`tea explain`: ``n`` images of ``split`` (any split of the dataset; default
    ``swapped``, else ``test``, else its first test split) picked across the classes
    by :func:`pick_across_classes`, each row labelled with its class name, with the
    teacher's and the model's LRP-ε maps of the image's true class.  ``model_dir``: a
    run folder, or a teacher folder (its maps alone); the data are read as the run was
    trained; ``dataset`` defaults to the run's.  A segmenter teacher's noise fill is
    seeded per image as in evaluation (:func:`teakit.evaluate.image_generators`)."""
    from ..data.load import load_data
    from ..evaluate import image_generators
    from ..runs import load_evaluand, load_teacher

    model, config, kind = load_evaluand(model_dir)
    dataset = dataset or config.get("dataset")
    if dataset is None:
        raise ValueError(f"{model_dir}: its config names no dataset; give --dataset")
    data, info = load_data(dataset, config.get("data_seed", 0), with_info=True, **(config.get("data_options") or {}))
    split = split or _default_split(data)
    if split not in data:
        raise ValueError(f"--split {split!r}: {dataset} has no such split; its splits: {', '.join(data)}")
    part = data[split]
    if not len(part):
        raise ValueError(f"--split {split!r} of {dataset} holds no images")
    idx = pick_across_classes(part.y, n, seed)
    chosen = part.subset(torch.tensor(idx, dtype=torch.long))
    x, y = (chosen.x if torch.is_tensor(chosen.x) else chosen.x[:]), chosen.y
    if kind != "run":
        if teacher_dir:
            raise ValueError(f"--teacher: {model_dir} is a teacher folder itself; its maps are shown")
        teacher_dir = model_dir
    else:
        teacher_dir = teacher_dir or config.get("teacher")
    maps = {}
    if teacher_dir:
        teacher = load_teacher(teacher_dir)
        maps["teacher"] = teacher.heatmap(x, y, eps, generator=image_generators(idx))
    if kind == "run":
        maps[Path(model_dir).name] = model_maps(model, x, y, eps)
    shown = x
    if part.norm is not None:  # show the images as read, not normalised
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in part.norm)
        shown = x * std + mean
    names = info.get("classes")
    return heatmap_grid(shown, maps, Path(out_dir) / f"explain-{split}.png",
                        [class_label(names, c) for c in y.tolist()])


def accuracy_bars(rows: list[dict], path, splits=("id", "ood", "swapped"), title: str = "", figures=None):
    """Grouped bars: one group per figure, one bar per method.  ``figures``: ``(split, metric, label)``
    triples (default: accuracy on each of ``splits``, labelled by the split).  Rows of several seeds (their
    ``"seed"``) give each bar the mean over seeds and an error bar of ± the sample standard deviation
    (:func:`teakit.report.spread.aggregate`)."""
    from .spread import aggregate

    figures = tuple(figures) if figures is not None else tuple((s, "accuracy", s) for s in splits)
    plt = _plt()
    rows = [r for r in rows if r["value"] is not None]  # methods that do not apply have no bars
    methods = list(dict.fromkeys(r["method"] for r in rows))
    val = {(m, s, metric): c for (_, m, s, metric), c in aggregate(rows).items()}
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(figures) * max(1, len(methods)) / 3, 3))
    w = 0.8 / max(1, len(methods))
    for i, m in enumerate(methods):
        xs = [k + i * w for k in range(len(figures))]
        cells = [val.get((m, s, metric)) for s, metric, _ in figures]
        sds = [100 * c.sd if c is not None and c.sd is not None else 0.0 for c in cells]
        ax.bar(xs, [100 * c.mean if c is not None else float("nan") for c in cells], w, label=m,
               yerr=sds if any(sds) else None, capsize=2 if any(sds) else 0)
    ax.set_xticks([k + 0.4 - w / 2 for k in range(len(figures))])
    ax.set_xticklabels([label for _, _, label in figures])
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


def outside_share(heatmap: torch.Tensor, mask: torch.Tensor) -> float:
    """The share of ``heatmap``'s |relevance| (C, H, W; channels summed) outside ``mask`` (1, H, W or H, W)."""
    r = heatmap.abs().sum(0)
    return float(r[~mask.reshape(r.shape)].sum() / r.sum().clamp_min(1e-30))


def side_by_side(image: torch.Tensor, mask: torch.Tensor, maps: dict[str, torch.Tensor], path, title: str = ""):
    """One image (C, H, W) with the outline of ``mask`` (the region that should matter, e.g. the lungs), and
    each map of ``maps`` (name: C, H, W) beside it with the same outline, titled with the share of its
    |relevance| outside the mask (:func:`outside_share`)."""
    plt = _plt()
    m = mask.reshape(image.shape[-2:]).float().numpy()
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(2.4 * (1 + len(maps)), 2.7), squeeze=False)
    axes = axes[0]
    axes[0].imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0].set_title(title or "image", fontsize=8)
    for ax, (name, h) in zip(axes[1:], maps.items()):
        _show_map(ax, h)
        ax.set_title(f"{name}: {100 * outside_share(h, mask):.0f} % outside", fontsize=8)
    for ax in axes:
        ax.contour(m, levels=[0.5], colors="k", linewidths=0.6)
    return _save(fig, axes, path)


def training_curves(runs: dict, path, keys=("agreement", "heatmap_loss"), x: str = "steps"):
    """Validation curves (per epoch, from each run's ``last.json`` history) of several runs,
    one panel per key; ``x``: ``steps`` (optimisation steps) or ``seconds`` (training wall time,
    validation included, summed over the epochs)."""
    import itertools

    from ..checkpoint import load_checkpoint

    if x not in ("steps", "seconds"):
        raise ValueError(f"x={x!r}; expected steps or seconds")
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for label, run_dir in runs.items():
        hist = load_checkpoint(run_dir).extra["history"]
        xs = ([h["step"] for h in hist] if x == "steps"
              else list(itertools.accumulate(h["seconds"] for h in hist)))
        for ax, key in zip(axes[0], keys):
            ax.plot(xs, [h["val"].get(key, float("nan")) for h in hist], label=label)
    for ax, key in zip(axes[0], keys):
        ax.set_xlabel("optimisation steps" if x == "steps" else "training wall time (s)")
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
