"""Evaluation of a trained classifier on a dataset's test splits.

Per split: ``accuracy``, ``macro_f1`` (scikit-learn), and over the groups of
the bias attribute (colour, scene, (label, place) for Waterbirds, source
hospital for X-rays) ``group_accuracy`` (a dict), ``worst_group_accuracy`` and
``average_group_accuracy``; given the source (hospital / dataset of origin) of
every image, ``source_accuracy``, ``source_macro_f1`` and ``source_auc`` per source (an ``external``
split of X-rays holds its own sources, so they are reported apart; AUC is None
for a source with a single class); ``agreement_with_teacher`` (top-1 agreement)
and ``balanced_agreement_with_teacher`` (:func:`balanced_agreement`) when a teacher is given; ``background_relevance`` — the share of the total |LRP-ε|
relevance (ε = 0.01 by default, explaining the model's own top class, channels
summed) that falls on background pixels (``mask`` False) — when the split has
masks with some background.  No gradient reaches the model.

Evaluation is deterministic: a teacher (:class:`~teakit.teachers.Teacher`; the
model evaluated, or the one agreement is measured against) whose input is drawn
at random -- a segmenter teacher's noise fill -- gets one generator per image,
seeded from ``EVAL_SEED`` and the image's index in its split
(:func:`image_generators`), so two evaluations give the same numbers and an
image's fill does not depend on the batch it falls in.
"""
from __future__ import annotations

import torch

from .explain import explain
from .teachers import Teacher

EVAL_SEED = 0


def image_generators(indices, device="cpu", seed: int = EVAL_SEED) -> list[torch.Generator]:
    """One generator per image index of ``indices`` (positions in a split), seeded from
    ``seed`` and the index alone: pass the list as a teacher's ``generator`` to draw
    the same random preprocessing for an image in every run and every batch."""
    gens = []
    for i in indices:
        g = torch.Generator(device=device)
        g.manual_seed((int(seed) * 1_000_003 + 7919 * int(i) + 104_729) % (2 ** 32))
        gens.append(g)
    return gens


def _forward(model, x: torch.Tensor, start: int) -> torch.Tensor:
    """``model(x)`` for the images ``start``, ``start + 1``, … of a split; a teacher
    draws its random preprocessing from :func:`image_generators`."""
    if isinstance(model, Teacher):
        return model(x, generator=image_generators(range(start, start + len(x)), x.device))
    return model(x)


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """Logits of ``model`` on ``x`` (a tensor or lazy images), ``batch_size`` images at a
    time; a teacher's random preprocessing is seeded per image (:func:`image_generators`)."""
    model.eval()
    return torch.cat([_forward(model, x[i:i + batch_size].to(device), i).float().cpu()
                      for i in range(0, len(x), batch_size)])


def background_relevance(model, data, batch_size: int = 256, eps: float = 0.01, device="cpu",
                         heatmap_fn=None, return_logits: bool = False):
    """Share of |relevance| on background pixels, over the whole split.

    ``heatmap_fn(x)`` gives the maps to measure; by default the model's LRP-ε map of
    its own top class -- for a :class:`~teakit.teachers.Teacher`, its own heatmap
    (e.g. of its masked input) with the fill seeded per image as in :func:`predict`.
    With ``return_logits`` (a plain model only) returns ``(share, logits)``, the logits
    (as :func:`predict` gives them) from the maps' own forward passes."""
    def top(logits):
        return logits.argmax(1)

    if return_logits and (heatmap_fn is not None or isinstance(model, Teacher)):
        raise ValueError("return_logits is for a plain model explained by its own LRP-ε maps")
    kept = []

    if heatmap_fn is not None:
        def maps(x, start):
            return heatmap_fn(x)
    elif isinstance(model, Teacher):
        model.eval()

        def maps(x, start):
            return model.heatmap(x, top, eps, generator=image_generators(range(start, start + len(x)), x.device))
    else:
        model.eval()

        def maps(x, start):
            R, logits = explain(model, x, top, eps=eps, return_logits=True)
            kept.append(logits.float().cpu())
            return R
    bg, total = 0.0, 0.0
    for i in range(0, len(data), batch_size):
        R = maps(data.x[i:i + batch_size].to(device), i).abs().sum(1, keepdim=True)
        m = data.mask[i:i + batch_size].to(device)
        bg += R[~m].sum().item()
        total += R.sum().item()
    share = bg / max(total, 1e-30)
    return (share, torch.cat(kept)) if return_logits else share


def roc_auc(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """``{"auc": …}`` for two classes (the second class's softmax probability as score),
    ``{"auc_per_class": {class: …}}`` one-vs-rest for more, ``{}`` when ``y`` holds a
    single class (AUC undefined)."""
    from sklearn.metrics import roc_auc_score

    probs = torch.softmax(logits.float(), 1).numpy()
    present = sorted(int(c) for c in y.unique())
    if len(present) < 2:
        return {}
    if logits.shape[1] == 2:
        return {"auc": float(roc_auc_score(y.numpy(), probs[:, 1]))}
    return {"auc_per_class": {str(c): float(roc_auc_score((y == c).numpy(), probs[:, c])) for c in present}}


def source_metrics(logits: torch.Tensor, y: torch.Tensor, sources) -> dict:
    """Accuracy, macro-F1 (over the classes among the source's labels and predictions) and ROC-AUC
    (as :func:`roc_auc`: a float, a per-class dict, or None for a single-class source) of the
    images of each source name in ``sources`` (one per image)."""
    from sklearn.metrics import f1_score

    if len(sources) != len(y):
        raise ValueError(f"{len(sources)} source names for {len(y)} images")
    pred = logits.argmax(1)
    correct = (pred == y).float()
    acc, f1, auc = {}, {}, {}
    for name in sorted(set(sources)):
        sel = torch.tensor([s == name for s in sources])
        acc[name] = correct[sel].mean().item()
        f1[name] = float(f1_score(y[sel].numpy(), pred[sel].numpy(), average="macro", zero_division=0))
        a = roc_auc(logits[sel], y[sel])
        auc[name] = a.get("auc", a.get("auc_per_class"))
    return {"source_accuracy": acc, "source_macro_f1": f1, "source_auc": auc}


def has_foreground_and_background(mask, batch_size: int = 256) -> bool:
    """Whether ``mask`` (a tensor or lazy masks, read ``batch_size`` rows at a time)
    holds both foreground and background pixels."""
    fg = bg = False
    for i in range(0, len(mask), batch_size):
        m = mask[i:i + batch_size]
        fg, bg = fg or bool(m.any()), bg or bool((~m).any())
        if fg and bg:
            return True
    return False


def group_accuracies(correct: torch.Tensor, group: torch.Tensor) -> dict:
    """``{str(group): accuracy}`` of a boolean per-image ``correct`` over the groups of ``group`` (the bias
    attribute; -1, no group, is left out), in increasing group order; empty when no image has a group."""
    correct = correct.float()
    return {str(g): correct[group == g].mean().item() for g in sorted(int(g) for g in group.unique() if g >= 0)}


def group_metrics(logits: torch.Tensor, y: torch.Tensor, group: torch.Tensor,
                  train_groups: torch.Tensor | None = None) -> dict:
    """Macro-F1, one-vs-rest ROC-AUC per class (binary AUC for two classes), accuracy per
    group (bias attribute -1 is left out), worst and average group accuracy, and — given
    the training set's groups — the average weighted by training-group frequency
    (WILDS' "adjusted average" for Waterbirds)."""
    from sklearn.metrics import f1_score

    pred = logits.argmax(1)
    out = {"macro_f1": float(f1_score(y.numpy(), pred.numpy(), average="macro", zero_division=0)),
           **roc_auc(logits, y)}
    acc = group_accuracies(pred == y, group)
    if acc:
        out.update(group_accuracy=acc, worst_group_accuracy=min(acc.values()),
                   average_group_accuracy=sum(acc.values()) / len(acc))
        if train_groups is not None:
            w = {g: (train_groups == int(g)).sum().item() for g in acc}
            if sum(w.values()):
                out["adjusted_average_accuracy"] = sum(acc[g] * w[g] for g in acc) / sum(w.values())
    return out


def balanced_agreement(pred: torch.Tensor, teacher_pred: torch.Tensor) -> float:
    """Class-balanced agreement with a teacher: for each class the teacher predicts, the share of those
    images the student gives the same class, averaged over those classes (each counts once, however
    often the teacher predicts it).  Label-free, like the top-1 agreement, but a rare class weighs as
    much as a common one."""
    if pred.shape != teacher_pred.shape or pred.ndim != 1 or not len(pred):
        raise ValueError(f"balanced_agreement: expected two equal non-empty 1-d tensors, got "
                         f"{tuple(pred.shape)} and {tuple(teacher_pred.shape)}")
    same = (pred == teacher_pred).float()
    return torch.stack([same[teacher_pred == c].mean() for c in teacher_pred.unique()]).mean().item()


def evaluate_splits(model, splits: dict, teacher=None, batch_size: int = 256, device="cpu",
                    relevance: bool = True, train_groups: torch.Tensor | None = None,
                    heatmap_fn=None, sources: dict | None = None, teacher_logits: dict | None = None) -> dict:
    """``{"splits": {name: {"accuracy": …, ["agreement_with_teacher": …], ["background_relevance": …]}}}``;
    ``sources`` maps a split name to the source name of each of its images; ``teacher_logits`` maps a split
    name to the teacher's :func:`predict` logits on it when they are known already
    (:func:`teakit.runs.teacher_eval_logits`), else they are computed."""
    out = {}
    for name, data in splits.items():
        relevant = relevance and has_foreground_and_background(data.mask, batch_size)
        # a plain model's logits come from its maps' forward passes (no second pass over the split)
        own_maps = relevant and heatmap_fn is None and not isinstance(model, Teacher)
        if own_maps:
            share, logits = background_relevance(model, data, batch_size, device=device, return_logits=True)
        else:
            logits = predict(model, data.x, batch_size, device)
        pred = logits.argmax(1)
        res = {"accuracy": (pred == data.y).float().mean().item(), "n": len(data),
               **group_metrics(logits, data.y, data.bias, train_groups)}
        if sources and name in sources:
            res.update(source_metrics(logits, data.y, sources[name]))
        if teacher is not None:
            known = (teacher_logits or {}).get(name)
            t_logits = predict(teacher, data.x, batch_size, device) if known is None else known
            res["agreement_with_teacher"] = (logits.argmax(1) == t_logits.argmax(1)).float().mean().item()
            res["balanced_agreement_with_teacher"] = balanced_agreement(logits.argmax(1), t_logits.argmax(1))
        if relevant:
            res["background_relevance"] = share if own_maps else background_relevance(
                model, data, batch_size, device=device, heatmap_fn=heatmap_fn)
        out[name] = res
    return {"splits": out}
