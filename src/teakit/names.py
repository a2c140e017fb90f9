"""Names the command line offers as choices, kept free of third-party imports so
that ``tea --help`` (and every sub-command's ``--help``) stays fast.

Each list lives here once; the modules that use it import it from here:
``MODEL_NAMES`` (:func:`teakit.models.build_model`), ``FILLS`` and
``HEATMAP_OF`` (:class:`teakit.teachers.SegmenterTeacher`), ``VARIANTS``
(:func:`teakit.study.convergence`).  Dataset names and reading options:
:mod:`teakit.data.names`; training and TEA options: :mod:`teakit.config`.
"""
from __future__ import annotations

from .config import TEAConfig

# the torchvision classifiers are those with ReLU activations only, so that LRP-ε applies (teakit.models)
MODEL_NAMES = ("cnn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
               "densenet121", "densenet161", "densenet169", "densenet201",
               "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "unet")
# the segmenter teacher's background fill, and which heatmap it gives
FILLS = ("noise", "zero", "mean", "blur")
HEATMAP_OF = ("masked", "input")


def _eps_range_shifted(decades: float) -> tuple:
    """TEA's default ε range (``eps_log_range``, in powers of ten) moved by ``decades``."""
    return tuple(u + decades for u in TEAConfig.eps_log_range)


# `tea study convergence`'s variants (teakit.study): one change each from the baseline ("lr-8x+decision-prior":
# the two together); "epochs_scale" keeps costlier variants to a similar wall time; "lr_scale" multiplies the
# baseline's learning rate.
VARIANTS: dict[str, dict] = {
    "default": {},
    "sgd-authors": {"train": {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.99, "warmup_steps": 0}},
    "adam-1e-3": {"train": {"lr": 1e-3, "warmup_steps": 0}},
    "adam-3e-3": {"train": {"lr": 3e-3}},
    "lr-8x": {"lr_scale": 8.0},
    "lr-2x": {"lr_scale": 2.0},
    "lr-0.5x": {"lr_scale": 0.5},
    "adamw": {"train": {"optimizer": "adamw", "weight_decay": 0.05}},
    "constant-lr": {"train": {"schedule": "constant"}},
    "batch-32": {"train": {"batch_size": 32}},
    "head-lr-10x": {"train": {"head_lr_scale": 10.0}},
    "top-class": {"tea": {"classes": "top"}},
    "all-classes": {"tea": {"classes": "all"}, "epochs_scale": 0.125},
    "all-joint": {"tea": {"classes": "all", "joint_norm": True}, "epochs_scale": 0.125},
    "pair": {"tea": {"classes": "pair"}},
    "pair-joint": {"tea": {"classes": "pair", "joint_norm": True}},
    "head-copied": {"copy_head": True},
    "no-bias-prior": {"tea": {"bias_prior": "none"}},
    "decision-prior": {"tea": {"bias_prior": "teacher-decisions"}},
    "lr-8x+decision-prior": {"lr_scale": 8.0, "tea": {"bias_prior": "teacher-decisions"}},
    "fixed-eps": {"tea": {"eps_log_range": (-1.5, -1.5)}},
    "wide-eps": {"tea": {"eps_log_range": (-3.0, 0.0)}},
    # the default's ε range a decade lower, a decade higher and half a decade higher
    "eps-0.1x": {"tea": {"eps_log_range": _eps_range_shifted(-1.0)}},
    "eps-10x": {"tea": {"eps_log_range": _eps_range_shifted(1.0)}},
    "eps-3x": {"tea": {"eps_log_range": _eps_range_shifted(0.5)}},
    "no-pyramid": {"tea": {"pyramid": False}},
    "mse": {"tea": {"loss": "mse"}},
    "cosine": {"tea": {"loss": "cosine"}},
    "width-8": {"spec": {"width": 8}},
    "width-32": {"spec": {"width": 32}, "epochs_scale": 0.5},
    "depth-4": {"spec": {"depth": 4}},
    "no-batchnorm": {"spec": {"batchnorm": False}},
    "bn-running": {"tea": {"student_bn": "running"}},
    "shift-2": {"tea": {"shift": 2}},
    "input-maps-only": {"tea": {"feature_weight": 0.0}},
    "feature-relevance": {"tea": {"feature_weight": TEAConfig.feature_weight,
                                  "feature_layer": TEAConfig.feature_layer}},
    "layers-2-4": {"tea": {"feature_layer": (-2, -4)}},
    "layers-1-2-3": {"tea": {"feature_layer": (-1, -2, -3)}},
    "feature-weight-1": {"tea": {"feature_weight": 1.0}},
    "feature-weight-3": {"tea": {"feature_weight": 3.0}},
    "feature-weight-10": {"tea": {"feature_weight": 10.0}},
    "input-maps-every-2": {"tea": {"input_map_every": 2}},
    "input-maps-every-4": {"tea": {"input_map_every": 4}},
    "hidden-first-quarter": {"tea": {"hidden_first": 0.25}},
    "hidden-first-tenth": {"tea": {"hidden_first": 0.1}},
    "input-maps-ramp-quarter": {"tea": {"input_map_ramp": 0.25}},
    "input-maps-ramp-half": {"tea": {"input_map_ramp": 0.5}},
    # two hidden-layer-only epochs put before the default's twenty (a tenth more, every full epoch kept)
    "hidden-first-two-more-epochs": {"epochs_scale": 1.1, "tea": {"hidden_first": 1 / 11}},
    "twice-longer": {"epochs_scale": 2.0},
    "permute-channels": {"tea": {"permute_channels": True}},
    "twice-longer+permute-channels": {"epochs_scale": 2.0, "tea": {"permute_channels": True}},
    "swap-backgrounds": {"tea": {"swap_backgrounds": 0.5}},
    "no-swap-backgrounds": {"tea": {"swap_backgrounds": 0.0}},
    "twice-longer+no-swap-backgrounds": {"epochs_scale": 2.0, "tea": {"swap_backgrounds": 0.0}},
    "twice-longer+swap-backgrounds": {"epochs_scale": 2.0, "tea": {"swap_backgrounds": 0.5}},
    "twice-longer+swap-always": {"epochs_scale": 2.0, "tea": {"swap_backgrounds": 1.0}},
    "recolour-backgrounds": {"tea": {"recolour_backgrounds": 0.5}},
    "no-recolour-backgrounds": {"tea": {"recolour_backgrounds": 0.0}},
    "twice-longer+recolour-backgrounds": {"epochs_scale": 2.0, "tea": {"recolour_backgrounds": 0.5}},
    "synthetic-backgrounds": {"tea": {"synthetic_backgrounds": 0.5}},
    "twice-longer+synthetic-backgrounds": {"epochs_scale": 2.0, "tea": {"synthetic_backgrounds": 0.5}},
}
