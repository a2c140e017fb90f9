"""TEA: train the student only to make its LRP-ε heatmaps match the teacher's.

One step, on a batch of images ``x`` (labels are never used):

1. per sample, draw ε = 10^u, u ~ U(eps_log_range), and the class to explain: the
   teacher's top class with probability ``p_top``, else another one
   (:mod:`teakit.objectives.sampling`);
2. the teacher's heatmap ``T`` of that class at that ε, live from the frozen teacher
   or from a heatmap cache (:mod:`teakit.objectives.teacher_maps`);
3. the student's heatmap ``S`` of the same class at the same ε, with a graph;
4. ``loss = heatmap_loss(S, T)`` (:func:`teakit.heatmap_loss`), plus ``feature_weight``
   times the same loss between the relevances of a hidden ReLU layer, which the same
   LRP-ε pass gives (``feature_layer``; several layers: the mean of their losses;
   :mod:`teakit.objectives.hidden_relevance`).  With ``input_map_every`` N > 1, a training step
   matches the input maps only with chance 1/N (then at N times their weight); the other steps
   match the hidden layer alone, and both LRP passes stop at that layer.  With ``hidden_first`` F > 0,
   every training step of the first F of the epochs matches the hidden layer alone; with ``input_map_ramp``
   R > 0, the share of steps with input maps then rises one even step per epoch over the next R of them.

After every epoch the student's head bias is calibrated to a class prior, by
default the teacher's mean prediction on the unlabelled training images
(:mod:`teakit.calibrate`): heatmaps cannot teach per-class logit offsets.  The options and their defaults are
:class:`teakit.config.TEAConfig`'s, the same as `tea distill`'s; ``shift``,
``permute_channels``, ``swap_backgrounds``, ``synthetic_backgrounds``, ``recolour_backgrounds``, ``student_bn``,
``joint_norm``, ``label_weight`` and ``kd_weight`` are extensions and ablations.  The teacher is frozen and in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import TEAConfig
from ..data.augment import NewBackgrounds, permute_channels, random_channel_orders, random_shifts, translate
from ..explain import explain
from ..models.norm import heatmap_statistics
from ..teachers.segmenter import MaskMemo
from .base import Objective, known_masks, output_logs, touch_all_parameters
from .heatmap_loss import heatmap_loss
from .hidden_relevance import hidden_relevance_loss
from .kd import kd_loss
from .sampling import explained_classes, maps_per_image, sample_eps
from .teacher_maps import TeacherMaps, ValidationMemo, cached_maps, live_maps


class TEA(Objective):
    explains = True  # (Objective)
    name = "tea"
    selection_key = "heatmap_loss"
    method = "lrp"  # the explainer of teacher and student (subclasses change it)

    def __init__(self, teacher, num_classes: int, *, config: TEAConfig | None = None, cache=None,
                 cache_logits=None, keep_prior=None, **options):
        """``options`` override fields of ``config`` (default :class:`~teakit.config.TEAConfig`);
        ``cache``/``cache_logits``: a :class:`~teakit.teachers.cache.HeatmapCache` of the teacher's
        input maps and its logits on the training images; ``keep_prior(kind, data, compute)``, if given,
        returns the teacher's class prior ``compute()`` on the training images ``data``, kept where it
        pleases (`tea distill`: in the teacher folder, :func:`teakit.runs.teacher_prior_keeper`)."""
        self.cfg = (config or TEAConfig()).replace(**options)
        self.teacher, self.num_classes = teacher, num_classes
        self.cache, self.cache_logits, self.keep_prior = cache, cache_logits, keep_prior
        if cache is not None and (self.cfg.shift or self.cfg.permute_channels
                                  or self.cfg.synthetic_backgrounds or self.cfg.feature_weight):
            raise ValueError("shift, permute_channels, synthetic_backgrounds and feature_weight need the live "
                             "teacher (a cache holds the input maps of the unchanged images): drop the cache, or "
                             "turn them off")
        if not isinstance(self.cfg.bias_prior, str) and len(self.cfg.bias_prior) != num_classes:
            raise ValueError(f"bias_prior: expected {num_classes} positive class frequencies (one per class), "
                             f"got {len(self.cfg.bias_prior)}")
        self.reps = maps_per_image(self.cfg.classes, num_classes)
        self.val_memo = ValidationMemo()
        self.masks = MaskMemo.of(teacher)  # the segmenter runs once per training image
        for name in ("swap_backgrounds", "recolour_backgrounds"):
            if getattr(self.cfg, name) and (self.masks is None or cache is not None):
                # no mask to cut with, or cached maps of the unchanged images: off (they are defaults, see
                # TEAConfig), and the run's config says so
                self.cfg = self.cfg.replace(**{name: 0.0})
        if self.cfg.synthetic_backgrounds and self.masks is None:
            raise ValueError("synthetic_backgrounds needs a segmenter teacher (its masks cut the foregrounds); "
                             f"this teacher is a {type(teacher).__name__}: set it to 0")
        self.backgrounds = NewBackgrounds(self.cfg.swap_backgrounds, self.cfg.synthetic_backgrounds,
                                          self.cfg.recolour_backgrounds)
        self.input_share = 1.0  # this epoch's share of training steps with input maps (set by before_epoch)

    def before_epoch(self, epoch: int, epochs: int) -> None:
        first, ramp = round(self.cfg.hidden_first * epochs), round(self.cfg.input_map_ramp * epochs)
        if epoch < first:  # the hidden layer alone
            self.input_share = 0.0
        elif epoch < first + ramp:  # 1/(ramp+1), 2/(ramp+1), ...
            self.input_share = (epoch - first + 1) / (ramp + 1)
        else:
            self.input_share = 1.0

    def __getattr__(self, name):  # obj.feature_weight etc.: the configuration's fields
        if name != "cfg" and "cfg" in self.__dict__ and hasattr(self.cfg, name):
            return getattr(self.cfg, name)
        raise AttributeError(name)

    def config(self) -> dict:
        c = self.cfg
        return {"name": self.name, **{k: getattr(c, k) for k in c.__dataclass_fields__},
                "eps_log_range": list(c.eps_log_range), "cache": self.cache is not None,
                "bias_prior": c.bias_prior if isinstance(c.bias_prior, str) else list(c.bias_prior)}

    def after_epoch(self, student, train_data, device) -> dict:
        from ..calibrate import calibrate_to_prior, teacher_decisions, teacher_prior
        prior = self.cfg.bias_prior
        if prior in ("teacher", "teacher-decisions"):  # from the teacher on the same (unlabelled) images, once
            if "_teacher_prior" not in self.__dict__:
                of = teacher_prior if prior == "teacher" else teacher_decisions

                def compute():
                    return of(self.teacher, train_data, device)
                self._teacher_prior = (self.keep_prior(prior, train_data, compute) if self.keep_prior
                                       else compute())
            return calibrate_to_prior(student, train_data, device, self._teacher_prior,
                                      decisions=prior == "teacher-decisions")
        return calibrate_to_prior(student, train_data, device, prior)

    def teacher_maps(self, batch: dict, rng, train: bool = True, keep=None, input_map: bool = True) -> TeacherMaps:
        """The teacher's part of the step: cached or live, and memoised for validation; ``keep``: a
        segmenter teacher's masks of the batch when known; ``input_map=False``: the hidden layer's relevance
        alone (a training step only)."""
        c = self.cfg

        def pick(logits):
            return explained_classes(logits, c.classes, self.num_classes, c.p_top, rng)
        if train and self.cache is not None:
            return cached_maps(self.cache, self.cache_logits, batch, pick, self.reps, rng)

        def live():
            x = batch["x"]
            eps = sample_eps(x.shape[0], rng, c.eps_log_range, x.device)
            return live_maps(self.teacher, x, eps, pick, self.reps, rng, self.method,
                             c.feature_layer if c.feature_weight else None, keep, input_map)
        return live() if train else self.val_memo.get(batch, rng, live)

    def __call__(self, batch, student, rng, train=True):
        c = self.cfg
        changed = c.shift or c.permute_channels  # images the memo's masks no longer describe
        pasted = bool(self.backgrounds)
        keep = known_masks(self.masks, batch, train and (pasted or not changed))
        if train and pasted:  # the teacher's mask still cuts the same foreground
            if keep is None:
                keep = self.teacher.mask(batch["x"])
            batch = {**batch, "x": self.backgrounds(batch["x"], keep, rng)}
            keep = None if changed else keep
        if train and c.shift:  # one offset per image, for teacher and student alike
            shifts = random_shifts(batch["x"].shape[0], c.shift, rng)
            batch = {**batch, "x": translate(batch["x"], shifts.to(batch["x"].device))}
        if train and c.permute_channels:  # one channel order per image, for teacher and student alike
            orders = random_channel_orders(*batch["x"].shape[:2], rng)
            batch = {**batch, "x": permute_channels(batch["x"], orders)}
        x, y, B = batch["x"], batch["y"], batch["x"].shape[0]
        # this step's input maps: always, or (input_map_every N) with chance 1/N at N times the weight; never in
        # the first hidden_first of the training epochs, with chance input_share/N in the input_map_ramp ones
        every = c.input_map_every if train else 1
        share = self.input_share if train else 1.0
        if share == 0.0:
            input_map = False
        elif share < 1.0:
            input_map = float(torch.rand((1,), generator=rng)) < share / every
        else:
            input_map = every == 1 or int(torch.randint(every, (1,), generator=rng)) == 0
        t = self.teacher_maps(batch, rng, train, keep, input_map)
        hidden = c.feature_layer if t.hidden is not None else None
        with heatmap_statistics(student, x, c.student_bn, train):
            S, logits, *S_hidden = explain_student(student, x.repeat(self.reps, 1, 1, 1), t, self.method, train,
                                                   hidden, input_map)
        loss, logs = 0.0, {}
        if input_map:
            hm = heatmap_loss(S, t.maps, kind=c.loss, pyramid=c.pyramid, min_side=c.min_side,
                              joint=self.reps if c.joint_norm else 1)
            loss, logs["heatmap_loss"] = every * hm, hm.detach()
        if hidden is not None:
            fr = hidden_relevance_loss(S_hidden[0], t.hidden, c)
            loss, logs["feature_relevance_loss"] = loss + c.feature_weight * fr, fr.detach()
        if train:
            loss = touch_all_parameters(loss, logits)
        logits = logits[:B]
        if c.label_weight:  # ablations only
            loss = loss + c.label_weight * F.cross_entropy(logits, y)
        if c.kd_weight:
            loss = loss + c.kd_weight * kd_loss(logits, t.logits)
        return loss, {"loss": loss.detach(), **logs, **output_logs(logits, y, t.logits)}


def explain_student(student, x, t: TeacherMaps, method: str, train: bool, layer: int | tuple | None,
                    input_map: bool = True):
    """The student's maps of ``t``'s classes at ``t``'s ε (with a graph when training), its logits and,
    with ``layer``, that hidden layer's relevance; ``input_map=False``: no input maps (None), the
    backward pass stops at ``layer``."""
    try:
        return explain(student, x, t.target, method=method, eps=t.eps, create_graph=train, return_logits=True,
                       feature_layer=layer, input_map=input_map)
    except ValueError as e:
        if layer is None or "feature_layer" not in str(e):
            raise
        raise ValueError(f"the student: {e}; set feature_weight 0 (--feature-weight 0) to match input maps "
                         "only") from e
