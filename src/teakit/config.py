"""The one source of defaults: typed configurations that the command line, the
Python classes and the demo all read.

* :class:`TrainConfig`: how a model is optimised (:func:`teakit.train.fit`).
  Its field defaults are those of `tea train` and `tea train-teacher`;
  :func:`command_train_config` gives any command's (`tea distill` trains
  longer, at another rate, with warm-up, and gives the heatmap objectives' head
  a 10x learning rate).
* :class:`TEAConfig`: the TEA objective's options
  (:class:`teakit.objectives.tea.TEA`); its defaults are `tea distill`'s, so
  ``TEA(teacher, K)`` trains what `tea distill` trains.
* The model the commands build when none is given (:data:`CNN_WIDTH`,
  :data:`CNN_DEPTH`).
* The benchmarks `tea demo` runs by default (:data:`DEMO_BENCHMARKS`).

Each field's help text is the `--help` of its option.  Free of third-party
imports, so that `tea --help` stays fast.  Why each default is what it is:
docs/recipe.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
CLASS_MODES = ("sample", "top", "pair", "all")
LOSS_KINDS = ("l1", "mse", "cosine")
BIAS_PRIORS = ("uniform", "teacher", "teacher-decisions", "none")
FEATURE_MATCHES = ("auto", "channels", "summed")
STUDENT_BN_MODES = ("batch", "running")
STUDENT_INITS = ("own", "shared")
# the `tea distill` objectives trained only by matching the teacher's heatmaps (TEA and the same recipe with
# other explainers); they get HEATMAP_HEAD_LR_SCALE and the head-bias calibration
HEATMAP_OBJECTIVES = ("tea", "gradxinput", "inputgrad", "gradcam")
HEATMAP_HEAD_LR_SCALE = 10.0
CNN_WIDTH = 16
CNN_DEPTH = 6
# the built-in benchmarks `tea demo` runs by default: the two 32-px ones, which fit its 25-minute budget on 2 CPU
# cores; `--benchmarks all` adds the 64-px ones (each one's splits, figures and targets: teakit.methods.BENCHMARKS)
DEMO_BENCHMARKS = ("colored-digits", "digits-on-scenes")
ALL_DEMO_BENCHMARKS = ("colored-digits", "digits-on-scenes", "glyphs-on-places", "phantom-xrays")


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of one run.  Defaults: `tea train` / `tea train-teacher`."""
    epochs: int = _opt(30, "training epochs")
    batch_size: int = _opt(64, "per process")
    optimizer: str = _opt("adam", "adam, adamw or sgd")
    lr: float = _opt(3e-3, "peak learning rate")
    momentum: float = _opt(0.9, "SGD momentum")
    weight_decay: float = _opt(0.0, "weight decay")
    grad_clip: float = _opt(1.0, "max gradient norm, 0 = off")
    schedule: str = _opt("cosine", "constant or cosine (to 0 after the warm-up)")
    warmup_steps: int = _opt(0, "linear warm-up steps")
    seed: int = _opt(0, "training seed (init, order, draws)")
    val_batch_size: int = 256
    head_lr_scale: float = _opt(1.0, "learning rate of the last linear layer = lr x this")
    ema: float = _opt(0.0, "decay of an exponential moving average of the weights (0 = off); the average is what "
                           "is validated and saved as best")
    log_every_epoch: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")
        if self.head_lr_scale <= 0:
            raise ValueError(f"head_lr_scale={self.head_lr_scale} must be positive")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema={self.ema}: the decay must be in [0, 1)")


# TEA's peak learning rate in `tea distill` and `tea study`: 8x the other students' 2e-3, chosen by the
# leave-one-benchmark-out study on validation agreement (docs/recipe.md "The leave-one-benchmark-out protocol")
TEA_LR = 1.6e-2
# how each command's training differs from TrainConfig's defaults
COMMAND_TRAINING = {
    "train": {},
    "train-teacher": {},
    "distill": {"epochs": 80, "lr": 2e-3, "warmup_steps": 100},
    "study": {"epochs": 40, "lr": 2e-3, "warmup_steps": 100},
}
SEGMENTER_TRAINING = {"epochs": 15, "lr": 3e-3}  # the segmenter teacher's U-Net
# the segmenter teacher's U-Net (teakit.models.UNet): channels at full resolution, doubled at each of `depth`
# halvings (`tea train-teacher --seg-base`, `--seg-depth`; chosen by the U-Net's IoU on foreign scenes:
# docs/recipe.md "A larger U-Net")
SEGMENTER_UNET = {"base": 16, "depth": 2}
# the segmenter teacher's background fill (`tea train-teacher --fill`) and, for the random "noise" fill, over how
# many draws of it the teacher's logits -- its decision -- are averaged (`--fills`): with one draw the decision is
# a random function of the image.  Each heatmap is one draw's (teakit.teachers.segmenter; chosen on validation:
# docs/recipe.md "A teacher that decides alike every time")
TEACHER_FILL = "noise"
TEACHER_FILLS = 16
# the chances that a U-Net training image's foreground is pasted over another image, put on another image's
# background or on a synthetic dead-leaves picture, or has its background recoloured
# (teakit.objectives.segmentation; chosen by the U-Net's IoU on foreign scenes: docs/recipe.md "New backgrounds for
# the U-Net" and "Synthetic backgrounds for the U-Net")
SEGMENTER_BACKGROUNDS = {"paste": 0.0, "swap": 0.5, "synthetic": 0.25, "recolour": 0.5}
# how the segmenter teacher's classifier sees its training images: the background cut by the "true" masks or by
# the trained U-Net's own ("segmenter") masks, after new backgrounds with these chances (teakit.objectives.erm;
# docs/recipe.md "The teacher's classifier on the U-Net's own masks")
TEACHER_CLASSIFIER = {"masks": "true", "swap": 0.0, "recolour": 0.0}
CLASSIFIER_MASKS = ("true", "segmenter")


def command_train_config(command: str, objective: str | None = None, **overrides) -> TrainConfig:
    """The training configuration `tea COMMAND` uses for ``objective`` (heatmap objectives of
    `tea distill` get :data:`HEATMAP_HEAD_LR_SCALE`, TEA :data:`TEA_LR`), with ``overrides`` applied."""
    if command not in COMMAND_TRAINING:
        raise ValueError(f"command={command!r}; expected one of {', '.join(COMMAND_TRAINING)}")
    values = dict(COMMAND_TRAINING[command])
    if command in ("distill", "study") and (objective or "tea") in HEATMAP_OBJECTIVES:
        values["head_lr_scale"] = HEATMAP_HEAD_LR_SCALE
    if command in ("distill", "study") and (objective or "tea") == "tea":
        values["lr"] = TEA_LR
    return TrainConfig(**{**values, **overrides})


def distill_config(objective: str = "tea", **overrides) -> TrainConfig:
    """`tea distill`'s training configuration for ``objective``."""
    return command_train_config("distill", objective, **overrides)


@dataclass(frozen=True)
class TEAConfig:
    """Options of the TEA objective; the defaults are `tea distill`'s."""
    classes: str = _opt("sample", "which class each map explains: sample (the teacher's top class with chance "
                                  "--p-top, else another), top, pair (top and another), all")
    p_top: float = _opt(0.5, "chance of explaining the teacher's top class (classes=sample)")
    eps_log_range: tuple = _opt((-2.0, -1.0), "per-sample epsilon = 10^u, u ~ U(LO, HI)")
    loss: str = _opt("l1", "l1 (the normalised pyramid L1), mse or cosine")
    pyramid: bool = _opt(True, "compare the maps at 2x, 4x, ... average-pooled levels too")
    min_side: int = _opt(8, "smallest pyramid level side")
    bias_prior: object = _opt("teacher-decisions",
                              "after every epoch, set the head bias so the student's predictions on the "
                              "unlabelled training images match a class prior (heatmaps cannot teach per-class "
                              "logit offsets; no labels): teacher-decisions (each class is the student's top "
                              "class as often as the teacher's on those images; assumes the teacher's "
                              "decisions are right in number), teacher (the mean prediction matches the "
                              "teacher's mean predicted distribution; assumes the teacher is right about the "
                              "class frequencies on average), uniform (assumes balanced classes), none (leave "
                              "the bias as initialised), or one frequency per class, e.g. 0.7,0.3 (a prior you know)")
    feature_weight: float = _opt(3.0, "+ w x the same loss (no pyramid) between the student's and the "
                                      "teacher's LRP relevance of a hidden ReLU layer, compared as --feature-match "
                                      "says; needs the live teacher; 0: "
                                      "the input maps alone, the paper's objective")
    feature_layer: int | tuple = _opt(-2, "which 4-D ReLU output --feature-weight matches, in forward order (-2: "
                                          "the second to last); several, comma-separated (--feature-layer=-2,-4): "
                                          "the mean of their losses")
    feature_match: str = _opt("auto", "how the hidden-layer relevances are compared: channels (channel by "
                                      "channel: equal shapes needed), summed (summed over channels, the larger "
                                      "map sum-pooled to the smaller one's side: any two networks), auto "
                                      "(channels where the shapes agree, else summed)")
    input_map_every: int = _opt(1, "match the input maps on one training step in N, drawn at random, at N "
                                   "times their weight (the same objective in expectation); the other steps "
                                   "match the hidden layer's relevance alone, and both LRP passes stop at that "
                                   "layer, which saves about half of a step's arithmetic; needs --feature-weight "
                                   "above 0 (1: every step)")
    hidden_first: float = _opt(0.0, "the first FRACTION of the training epochs match the hidden layer's relevance "
                                    "alone, both LRP passes stopping at that layer (a cheaper step that teaches "
                                    "the teacher's decision first); the later epochs match the input maps too, as "
                                    "--input-map-every says; needs --feature-weight above 0 (0: from the start)")
    input_map_ramp: float = _opt(0.0, "over the next FRACTION of the training epochs (after any --hidden-first "
                                      "ones), the chance that a training step matches the input maps rises from "
                                      "1/(K+1) to K/(K+1) in even steps, one per epoch, K the number of those "
                                      "epochs; the other steps match the hidden layer's relevance alone, the cheaper "
                                      "step, so the input maps' weight grows in expectation instead of switching on "
                                      "at once; needs --feature-weight above 0 (0: no ramp)")
    shift: int = _opt(0, "random translation of up to N pixels, the same for teacher and student (live teacher)")
    permute_channels: bool = _opt(False, "each training image's colour channels in a random order, the same for "
                                         "teacher and student (live teacher), so that a colour that marks a "
                                         "class in the training images marks none; assumes the teacher does not "
                                         "decide by colour")
    swap_backgrounds: float = _opt(0.5, "chance that a training image's foreground, cut by the segmenter "
                                        "teacher's own mask, is put on another image of the batch's background "
                                        "(its object inpainted away), the same image for teacher and student; "
                                        "assumes the mask covers what the teacher decides by.  Applies to a live "
                                        "segmenter teacher only: with any other teacher (no mask to cut with) "
                                        "or a heatmap cache (maps of the unchanged images) it is off, and the "
                                        "run records 0")
    synthetic_backgrounds: float = _opt(0.0, "chance that a training image's foreground, cut by the segmenter "
                                             "teacher's own mask, is put on a synthetic dead-leaves picture "
                                             "(discs of random colours at every scale), the same image for "
                                             "teacher and student (live segmenter teacher); assumes the mask "
                                             "covers what the teacher decides by")
    recolour_backgrounds: float = _opt(0.5, "chance that a training image's background, outside the segmenter "
                                            "teacher's own mask, is recoloured: mirrored within the batch's "
                                            "range with chance 1/2, then its channels in a random order; the "
                                            "same image for teacher and student, after the other background "
                                            "options; assumes the mask covers what the teacher decides by.  "
                                            "Applies to a live segmenter teacher only: with any other teacher "
                                            "or a heatmap cache it is off, and the run records 0")
    joint_norm: bool = _opt(False, "classes pair/all: one loss normalisation per image over its maps")
    student_bn: str = _opt("batch", "BatchNorm statistics while the student's training heatmap is computed: "
                                    "the batch's, or the running ones (as at test time)")
    label_weight: float = _opt(0.0, "ablation only: + w x cross-entropy on the labels")
    kd_weight: float = _opt(0.0, "ablation only: + w x logit distillation (T=3)")

    def __post_init__(self):
        if self.classes not in CLASS_MODES:
            raise ValueError(f"classes={self.classes!r}; expected one of {', '.join(CLASS_MODES)}")
        if self.loss not in LOSS_KINDS:
            raise ValueError(f"loss={self.loss!r}; expected one of {', '.join(LOSS_KINDS)}")
        lo, hi = self.eps_log_range
        if not lo <= hi:
            raise ValueError(f"eps_log_range=({lo}, {hi}): LO must not exceed HI")
        object.__setattr__(self, "eps_log_range", (float(lo), float(hi)))
        for name in ("swap_backgrounds", "synthetic_backgrounds", "recolour_backgrounds"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must lie in [0, 1]")
        if self.shift < 0:
            raise ValueError(f"shift={self.shift} must be >= 0")
        if self.joint_norm and self.classes not in ("pair", "all"):
            raise ValueError(f"joint_norm needs several maps per image: classes 'pair' or 'all', not "
                             f"{self.classes!r}")
        if self.student_bn not in STUDENT_BN_MODES:
            raise ValueError(f"student_bn={self.student_bn!r}; expected one of {', '.join(STUDENT_BN_MODES)}")
        if self.feature_match not in FEATURE_MATCHES:
            raise ValueError(f"feature_match={self.feature_match!r}; expected one of {', '.join(FEATURE_MATCHES)}")
        if self.feature_weight < 0:
            raise ValueError(f"feature_weight={self.feature_weight} must be >= 0")
        object.__setattr__(self, "feature_layer", feature_layers(self.feature_layer))
        if isinstance(self.input_map_every, bool) or int(self.input_map_every) != self.input_map_every \
                or self.input_map_every < 1:
            raise ValueError(f"input_map_every={self.input_map_every} must be a whole number >= 1")
        object.__setattr__(self, "input_map_every", int(self.input_map_every))
        if not 0.0 <= self.hidden_first < 1.0:
            raise ValueError(f"hidden_first={self.hidden_first} must lie in [0, 1): the fraction of the epochs "
                             "before the input maps are matched")
        if not 0.0 <= self.input_map_ramp < 1.0 or self.hidden_first + self.input_map_ramp > 1.0:
            raise ValueError(f"input_map_ramp={self.input_map_ramp} must lie in [0, 1), and with hidden_first="
                             f"{self.hidden_first} add up to at most 1: fractions of the epochs")
        for name, skips_maps in (("input_map_every", self.input_map_every > 1), ("hidden_first", self.hidden_first),
                                 ("input_map_ramp", self.input_map_ramp)):
            if skips_maps and not self.feature_weight:
                raise ValueError(f"{name}={getattr(self, name)} needs feature_weight > 0: the steps without input "
                                 "maps match the hidden layer's relevance alone")
        if isinstance(self.bias_prior, str):
            if self.bias_prior not in BIAS_PRIORS:
                raise ValueError(f"bias_prior={self.bias_prior!r}; expected one of {', '.join(BIAS_PRIORS)} or "
                                 "positive class frequencies")
        else:
            prior = [float(v) for v in self.bias_prior]
            if len(prior) < 2 or not all(v > 0 for v in prior):
                raise ValueError(f"bias_prior: expected positive class frequencies (one per class), got {prior}")
            object.__setattr__(self, "bias_prior", tuple(v / sum(prior) for v in prior))

    def replace(self, **changes) -> TEAConfig:
        return replace(self, **changes)


def feature_layers(value) -> int | tuple:
    """``feature_layer`` as given (an int, a sequence of ints, or text such as ``"-2,-4"``): one int,
    or a tuple of two or more distinct ones (a run's JSON config holds a list)."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    integral = all(isinstance(v, str) or isinstance(v, int) and not isinstance(v, bool) for v in items)
    try:
        layers = tuple(int(v) for v in items) if integral else ()
    except ValueError:  # text that is not an integer
        layers = ()
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"feature_layer={value!r}: expected one ReLU layer index or several distinct ones, "
                         "e.g. -2 or -2,-4")
    return layers[0] if len(layers) == 1 else layers


def option_help(cls, name: str, value=None) -> str:
    """The help text of ``cls``'s field ``name``, with ``value`` (default: the field's default) as the default."""
    f = next(f for f in fields(cls) if f.name == name)
    value = f.default if value is None else value
    shown = " ".join(f"{v:g}" for v in value) if isinstance(value, tuple) else (
        f"{value:g}" if isinstance(value, float) else value)
    return f"{f.metadata.get('help', '')} (default {shown})"
