"""ImageNet weights for the torchvision ResNets, read only from the local torch hub cache.

``load_imagenet_weights(name)`` returns the state dict of torchvision's
``DEFAULT`` ImageNet weights for ``resnet18`` / ``resnet34`` / ``resnet50``
from ``torch.hub.get_dir()/checkpoints/<file name of the weights' URL>`` (the
file torchvision itself caches there, e.g. ``resnet18-f37072fd.pth``).  It
never downloads: on a machine without the file it raises ``FileNotFoundError``
naming the exact path and how to put the file there.

``apply_imagenet_weights(model, name, ...)`` copies those weights into a
teakit-built ResNet, skipping the keys whose shapes the teakit model changes
(see its docstring).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

IMAGENET_CLASSES = 1000
FC_KEYS = ("fc.weight", "fc.bias")
STEM_KEYS = ("conv1.weight",)

__all__ = ["weights_url", "weights_path", "load_imagenet_weights", "apply_imagenet_weights",
           "skipped_keys"]


def _weights_enum(model_name: str):
    from torchvision.models import get_model_weights

    if model_name not in ("resnet18", "resnet34", "resnet50"):
        raise ValueError(f"no ImageNet weights for model name={model_name!r}; "
                         "expected resnet18, resnet34 or resnet50")
    return get_model_weights(model_name).DEFAULT


def weights_url(model_name: str) -> str:
    """URL of torchvision's ``DEFAULT`` weights of ``model_name``."""
    return _weights_enum(model_name).url


def weights_path(model_name: str) -> Path:
    """Where torchvision caches those weights: ``torch.hub.get_dir()/checkpoints/<file name>``
    (``torch.hub.get_dir()`` follows ``$TORCH_HOME``, default ``~/.cache/torch/hub``)."""
    filename = os.path.basename(urlparse(weights_url(model_name)).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_imagenet_weights(model_name: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of ``model_name`` from the local torch hub cache.

    Never downloads.  Raises ``FileNotFoundError`` naming the expected path when
    the file is absent, and ``ValueError`` naming it when it is not a state dict.
    """
    path = weights_path(model_name)
    if not path.is_file():
        raise FileNotFoundError(
            f"ImageNet weights for {model_name} not found at {path} (teakit never downloads). "
            f"Place the file there: on a machine with internet run "
            f"`python -c \"import torchvision; torchvision.models.{model_name}(weights='DEFAULT')\"`, "
            f"which saves it as <torch hub dir>/checkpoints/{path.name} (see "
            f"`python -c \"import torch; print(torch.hub.get_dir())\"`), or download "
            f"{weights_url(model_name)}, and copy it to {path} here "
            f"(set TORCH_HOME to use another cache directory).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: cannot read ImageNet weights for {model_name} ({err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return state


def skipped_keys(num_classes: int, in_channels: int = 3, small_input: bool = False) -> tuple[str, ...]:
    """The ImageNet keys not loaded into a teakit ResNet: ``fc.weight`` /
    ``fc.bias`` when ``num_classes != 1000``; ``conv1.weight`` when the stem conv
    is replaced (``small_input=True`` or ``in_channels != 3``)."""
    keys: tuple[str, ...] = ()
    if num_classes != IMAGENET_CLASSES:
        keys += FC_KEYS
    if small_input or in_channels != 3:
        keys += STEM_KEYS
    return keys


def apply_imagenet_weights(model: nn.Module, model_name: str, num_classes: int, in_channels: int = 3,
                           small_input: bool = False) -> tuple[str, ...]:
    """Load the ImageNet weights of ``model_name`` into ``model`` in place.

    Every key is loaded except :func:`skipped_keys`: the final ``fc`` (weight and
    bias) when ``num_classes != 1000`` -- it keeps torchvision's random
    initialisation for ``num_classes`` outputs -- and the stem ``conv1.weight``
    when ``small_input=True`` (3x3 stride-1 CIFAR stem) or ``in_channels != 3``,
    which keeps its random initialisation.  ``bn1`` and all residual layers are
    always loaded.  Returns the skipped keys; raises ``ValueError`` naming the
    file when the weights do not fit the model otherwise.
    """
    state = load_imagenet_weights(model_name)
    skip = skipped_keys(num_classes, in_channels, small_input)
    kept = {k: v for k, v in state.items() if k not in skip}
    path = weights_path(model_name)
    own = model.state_dict()
    bad = [k for k, v in kept.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"{path}: shapes do not fit {model_name}: "
                         + ", ".join(f"{k} {tuple(kept[k].shape)} vs {tuple(own[k].shape)}" for k in bad))
    result = model.load_state_dict(kept, strict=False)
    missing = sorted(set(result.missing_keys) - set(skip))
    if missing or result.unexpected_keys:
        raise ValueError(f"{path}: not the {model_name} weights (missing {missing[:5]}, "
                         f"unexpected {list(result.unexpected_keys)[:5]})")
    return skip
