"""TEA: train the student only to match the teacher's LRP-ε heatmaps (DESIGN.md §2).

Per step and per sample: ε = 10^u with u ~ Uniform(eps_log_range) (or a value
from the cache's ε grid), the same for teacher and student; the explained class
is the teacher's top class with probability ``p_top`` and otherwise a uniform
other class (``classes="sample"``), always the top class (``"top"``), the top
class *and* a uniform other class (``"pair"``, the batch replicated twice) or
every class at once (``"all"``, the batch replicated K times).  With
``joint_norm`` ("pair"/"all") the maps of one image share the loss's
normalisation, so their relative sizes must match as well.  The loss is
:func:`teakit.heatmap_loss` between the student's heatmap (with graph) and the
teacher's (without).  No label loss and no output loss unless asked for:
``label_weight`` adds cross-entropy on the labels, ``kd_weight`` adds logit
distillation (T = 3, ×T²) — both off by default, for ablations only.
``feature_weight`` > 0 adds ``feature_weight`` × the same loss (no pyramid)
between the student's and the teacher's relevance of one hidden ReLU layer
(``feature_layer``, an index into the 4-D ReLU outputs in forward order), from
the same LRP-ε pass, explained class and ε: still explanations only, but
channel by channel, so both networks need that layer's shape, and the teacher
must run live (the cache holds input maps).  0 here (the paper's objective);
`tea distill` and the demo use ``teakit.recipe.FEATURE_WEIGHT``.
``bias_prior="uniform"`` (default) calibrates the student's head bias after
every epoch so its mean prediction on the (unlabelled) training images is
uniform over the classes (:mod:`teakit.calibrate`): heatmaps cannot teach the
per-class logit offsets, and without this step students whose maps match
stay far below their teacher.  It uses no labels and no teacher output and
changes no heatmap; ``"none"`` leaves the bias at its initial value, and a
sequence of K positive numbers (class frequencies, normalised to sum 1) is a
prior of your own, for data whose classes are not balanced.  It is
skipped for a head without a bias or a frozen (copied) head.
The teacher is frozen and in eval mode; its heatmaps come live or from a
:class:`teakit.teachers.cache.HeatmapCache`.  ``shift`` > 0 moves each training
image by a random offset of up to ``shift`` pixels, the same for the teacher's
and the student's input.  It needs the live teacher: once a network max-pools,
the heatmap of a moved image is not the moved heatmap, so cached maps cannot
simply be shifted (measured: up to half the map's peak apart).
``student_bn`` is the BatchNorm mode of the student while its training
heatmap is computed: ``"batch"`` (default; the batch's statistics, as in any
training forward pass) or ``"running"`` (its running statistics, as at test
time, so the map trained is the map the student will give; an extra no-grad
forward pass in training mode keeps those statistics up to date).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ..data.augment import random_shifts, translate
from ..explain import explain
from ..recipe import FEATURE_LAYER
from .base import Objective, output_logs, touch_all_parameters
from .heatmap_loss import heatmap_loss

CLASS_MODES = ("sample", "top", "pair", "all")
VAL_MEMO_ELEMENTS = 2 ** 25  # 128 MiB of float32 teacher maps kept for validation
BIAS_PRIORS = ("uniform", "none")
STUDENT_BN_MODES = ("batch", "running")


def sample_eps(batch: int, generator=None, log_range=(-2.0, -1.0), device=None) -> torch.Tensor:
    """Per-sample ε = 10^u, u ~ Uniform(log_range)."""
    lo, hi = log_range
    u = torch.rand(batch, generator=generator) * (hi - lo) + lo
    return (10.0 ** u).to(device) if device is not None else 10.0 ** u


def sample_classes(top: torch.Tensor, num_classes: int, p_top: float = 0.5, generator=None) -> torch.Tensor:
    """Per sample: ``top`` with probability ``p_top``, else a uniformly drawn other class."""
    shift = torch.randint(1, num_classes, top.shape, generator=generator).to(top.device)
    keep = (torch.rand(top.shape, generator=generator) < p_top).to(top.device)
    return torch.where(keep, top, (top + shift) % num_classes)


def _map_elements(teacher_part) -> int:
    """Map elements held by one ``_teacher`` result: the input maps and the hidden-layer ones, if any."""
    return teacher_part[0].numel() + (teacher_part[4].numel() if teacher_part[4] is not None else 0)


def check_prior(bias_prior, num_classes: int):
    """``"uniform"``, ``"none"``, or K positive numbers as a list normalised to sum 1."""
    if isinstance(bias_prior, str):
        if bias_prior not in BIAS_PRIORS:
            raise ValueError(f"bias_prior={bias_prior!r}; expected one of {', '.join(BIAS_PRIORS)} "
                             f"or {num_classes} positive class frequencies")
        return bias_prior
    prior = [float(v) for v in bias_prior]
    if len(prior) != num_classes or not all(v > 0 for v in prior):
        raise ValueError(f"bias_prior: expected {num_classes} positive class frequencies (one per class), "
                         f"got {prior}")
    return [v / sum(prior) for v in prior]


@contextlib.contextmanager
def batchnorm_eval(model: torch.nn.Module):
    """Inside: every BatchNorm layer of ``model`` uses (and does not update) its running statistics."""
    from ..models.cnn import ScaleNorm2d
    norms = (torch.nn.modules.batchnorm._BatchNorm, ScaleNorm2d)
    layers = [m for m in model.modules() if isinstance(m, norms) and m.training]
    for m in layers:
        m.eval()
    try:
        yield
    finally:
        for m in layers:
            m.train()


def kd_loss(student_logits, teacher_logits, temperature: float = 3.0):
    """Hinton et al. logit distillation: KL at temperature T, scaled by T²."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * t * t


class TEA(Objective):
    name = "tea"
    selection_key = "heatmap_loss"
    method = "lrp"  # the explainer for both teacher and student (subclasses change it)

    def __init__(self, teacher, num_classes: int, classes: str = "sample", p_top: float = 0.5,
                 eps_log_range=(-2.0, -1.0), loss: str = "l1", pyramid: bool = True, min_side: int = 8,
                 label_weight: float = 0.0, kd_weight: float = 0.0, cache=None, cache_logits=None,
                 shift: int = 0, joint_norm: bool = False, bias_prior: str = "uniform",
                 student_bn: str = "batch", feature_weight: float = 0.0,
                 feature_layer: int = FEATURE_LAYER):
        if classes not in CLASS_MODES:
            raise ValueError(f"classes={classes!r}; expected one of {', '.join(CLASS_MODES)}")
        self.teacher = teacher
        self.num_classes = num_classes
        self.classes, self.p_top = classes, p_top
        self.eps_log_range = tuple(eps_log_range)
        self.loss, self.pyramid, self.min_side = loss, pyramid, min_side
        self.label_weight, self.kd_weight = label_weight, kd_weight
        self.cache, self.cache_logits = cache, cache_logits
        if shift < 0:
            raise ValueError(f"shift={shift} must be >= 0")
        if shift and cache is not None:
            raise ValueError("shift needs the live teacher: a moved image's heatmap is not the moved cached map "
                             "(max-pooling); drop --cache or --shift")
        self.shift = shift
        if joint_norm and classes not in ("pair", "all"):
            raise ValueError(f"joint_norm needs several maps per image: classes 'pair' or 'all', not {classes!r}")
        self.joint_norm = joint_norm
        self.bias_prior = check_prior(bias_prior, num_classes)
        if student_bn not in STUDENT_BN_MODES:
            raise ValueError(f"student_bn={student_bn!r}; expected one of {', '.join(STUDENT_BN_MODES)}")
        self.student_bn = student_bn
        if feature_weight < 0:
            raise ValueError(f"feature_weight={feature_weight} must be >= 0")
        if feature_weight and cache is not None:
            raise ValueError("feature_weight needs the live teacher (the cache holds input maps only): drop the cache "
                             "or set feature_weight 0")
        self.feature_weight, self.feature_layer = float(feature_weight), int(feature_layer)

    def after_epoch(self, student, train_data, device) -> dict:
        """Head-bias calibration to the class prior (see the module docstring)."""
        from ..calibrate import calibrate_head_bias
        from ..models import get_head

        if self.bias_prior == "none":
            return {}
        try:
            head = get_head(student)
        except TypeError:
            return {}
        if head.bias is None or not head.bias.requires_grad:
            return {}
        prior = None if self.bias_prior == "uniform" else torch.tensor(self.bias_prior)
        return {"bias_shift": calibrate_head_bias(student, train_data, device, prior=prior)}

    def config(self) -> dict:
        return {"name": self.name, "classes": self.classes, "p_top": self.p_top,
                "eps_log_range": list(self.eps_log_range), "loss": self.loss, "pyramid": self.pyramid, "min_side": self.min_side,
                "label_weight": self.label_weight, "kd_weight": self.kd_weight,
                "cache": self.cache is not None, "shift": self.shift,
                "joint_norm": self.joint_norm, "bias_prior": self.bias_prior, "student_bn": self.student_bn,
                "feature_weight": self.feature_weight, "feature_layer": self.feature_layer}

    @property
    def reps(self) -> int:
        """Maps per image: K for "all", 2 for "pair", else 1."""
        return {"all": self.num_classes, "pair": 2}.get(self.classes, 1)

    def _pick(self, teacher_logits, rng):
        """The explained classes, (reps·B,), ordered r·B + b."""
        top = teacher_logits.argmax(1)
        if self.classes == "top":
            return top
        if self.classes == "all":
            return torch.arange(self.num_classes, device=top.device).repeat_interleave(len(top))
        if self.classes == "pair":
            return torch.cat([top, sample_classes(top, self.num_classes, 0.0, rng)])
        return sample_classes(top, self.num_classes, self.p_top, rng)

    def _teacher(self, batch, rng, use_cache):
        """Teacher heatmaps, logits, the explained classes and ε for this batch."""
        x = batch["x"]
        B = x.shape[0]
        if use_cache:
            t_logits = self.cache_logits[batch["index"].cpu()].to(x.device, x.dtype)
            target, index = self._pick(t_logits, rng).cpu(), batch["index"].cpu().repeat(self.reps)
            e_idx = torch.randint(0, len(self.cache.eps_values), (B,), generator=rng).repeat(self.reps)
            T = self.cache.get(index, target, e_idx).to(x.device, x.dtype)
            eps = self.cache.eps_values[e_idx].to(x.device, x.dtype)
            return T, t_logits, target.to(x.device), eps, None
        feat = self.feature_layer if self.feature_weight > 0 else None
        eps = sample_eps(B, rng, self.eps_log_range, x.device)
        xt, gate = self.teacher.explained_input(x, rng)  # once: a segmenter teacher's fill is shared by all classes
        if self.reps > 1:
            R = self.reps
            with torch.no_grad():
                t_logits = self.teacher.classifier(xt)
            target, eps = self._pick(t_logits, rng), eps.repeat(R)
            out = explain(self.teacher.classifier, xt.repeat(R, 1, 1, 1), target, method=self.method, eps=eps,
                          feature_layer=feat)
            T, T_f = out if feat is not None else (out, None)
            return self.teacher.input_relevance(T, gate), t_logits, target, eps, T_f
        chosen = {}

        def pick(logits):
            chosen["target"] = self._pick(logits, rng)
            return chosen["target"]
        T, t_logits, *T_f = explain(self.teacher.classifier, xt, pick, method=self.method, eps=eps,
                                    return_logits=True, feature_layer=feat)
        return self.teacher.input_relevance(T, gate), t_logits, chosen["target"], eps, (T_f[0] if T_f else None)

    def _val_teacher(self, batch, rng):
        """The teacher's part of a validation batch, computed once and then reused.

        Validation draws are fixed (the loop seeds every validation batch the same
        way each epoch), so for the same images and generator state the teacher's
        maps, classes and ε repeat exactly; they are kept in memory, up to
        ``VAL_MEMO_ELEMENTS`` map elements in all."""
        memo = self.__dict__.setdefault("_val_memo", {})
        index = batch.get("index")
        if index is None:
            return self._teacher(batch, rng, use_cache=False)
        key = (rng.get_state().numpy().tobytes(), tuple(index.tolist()), tuple(batch["x"].shape))
        if key not in memo:
            out = self._teacher(batch, rng, use_cache=False)
            if sum(map(_map_elements, memo.values())) + _map_elements(out) > VAL_MEMO_ELEMENTS:
                return out
            memo[key] = out
        return memo[key]

    def __call__(self, batch, student, rng, train=True):
        if train and self.shift:  # one offset per image, for teacher and student alike
            shifts = random_shifts(batch["x"].shape[0], self.shift, rng)
            batch = {**batch, "x": translate(batch["x"], shifts.to(batch["x"].device))}
        x, y = batch["x"], batch["y"]
        B = x.shape[0]
        if train:
            T, t_logits, target, eps, T_f = self._teacher(batch, rng, use_cache=self.cache is not None)
        else:
            T, t_logits, target, eps, T_f = self._val_teacher(batch, rng)
        xs = x.repeat(self.reps, 1, 1, 1) if self.reps > 1 else x
        running = train and self.student_bn == "running"
        if running:
            with torch.no_grad():
                student(x)  # training-mode pass: the running statistics follow the batches as usual
        with batchnorm_eval(student) if running else contextlib.nullcontext():
            try:
                S, logits, *S_f = explain(student, xs, target, method=self.method, eps=eps, create_graph=train,
                                          return_logits=True,
                                          feature_layer=None if T_f is None else self.feature_layer)
            except ValueError as e:
                if T_f is None or "feature_layer" not in str(e):
                    raise
                raise ValueError(f"the student: {e}; set feature_weight 0 (--feature-weight 0) to match "
                                 "input maps only") from e
        hm = heatmap_loss(S, T, kind=self.loss, pyramid=self.pyramid, min_side=self.min_side,
                          joint=self.reps if self.joint_norm else 1)
        loss = hm
        logs = {}
        if T_f is not None:
            if S_f[0].shape != T_f.shape:
                raise ValueError(f"feature_weight: the student's relevance at feature_layer={self.feature_layer} has "
                                 f"shape {tuple(S_f[0].shape)}, the teacher's {tuple(T_f.shape)} (same width and "
                                 "depth needed); set feature_weight 0 (--feature-weight 0) to match input maps only")
            fr = heatmap_loss(S_f[0], T_f, kind=self.loss, pyramid=False)
            loss = loss + self.feature_weight * fr
            logs["feature_relevance_loss"] = fr.detach()
        loss = touch_all_parameters(loss, logits) if train else loss
        logits = logits[:B]
        if self.label_weight:
            loss = loss + self.label_weight * F.cross_entropy(logits, y)
        if self.kd_weight:
            loss = loss + self.kd_weight * kd_loss(logits, t_logits)
        return loss, {"loss": loss.detach(), "heatmap_loss": hm.detach(), **logs,
                      **output_logs(logits, y, t_logits)}
