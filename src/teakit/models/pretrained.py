"""ImageNet weights for the torchvision classifiers, read only from the local torch hub cache.

``load_imagenet_weights(name)`` returns the state dict of torchvision's
``DEFAULT`` ImageNet weights for any torchvision name of
:data:`teakit.models.TORCHVISION_NAMES` (``resnet18``, ``densenet121``, ``vgg16_bn``, …)
from ``torch.hub.get_dir()/checkpoints/<file name of the weights' URL>`` (the
file torchvision itself caches there, e.g. ``resnet18-f37072fd.pth``).  It
never downloads: on a machine without the file it raises ``FileNotFoundError``
naming the exact path and how to put the file there.

``apply_imagenet_weights(model, name, ...)`` copies those weights into a
teakit-built model through :func:`teakit.models.weights.apply_state_dict`,
skipping the keys whose shapes the teakit model changes (see its docstring).
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

    from ..names import MODEL_NAMES

    torchvision_names = [n for n in MODEL_NAMES if n not in ("cnn", "unet")]
    if model_name not in torchvision_names:
        raise ValueError(f"no ImageNet weights for model name={model_name!r}; "
                         f"expected one of {', '.join(torchvision_names)}")
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
    """The ImageNet keys not loaded into a teakit ResNet (other families: the skipped keys
    :func:`apply_imagenet_weights` returns): ``fc.weight`` /
    ``fc.bias`` when ``num_classes != 1000``; ``conv1.weight`` when the stem conv
    is replaced (``small_input=True`` or ``in_channels != 3``)."""
    keys: tuple[str, ...] = ()
    if num_classes != IMAGENET_CLASSES:
        keys += FC_KEYS
    if small_input or in_channels != 3:
        keys += STEM_KEYS
    return keys


def apply_imagenet_weights(model: nn.Module, model_name: str, num_classes: int, in_channels: int = 3,
                           small_input: bool = False, *, stem_replaced: bool | None = None,
                           verbose: bool = True) -> tuple[str, ...]:
    """Load the ImageNet weights of ``model_name`` into ``model`` in place.

    Every key is loaded (:func:`teakit.models.weights.apply_state_dict`) except the
    head (ResNet ``fc``, DenseNet ``classifier``, VGG ``classifier.6``) when
    ``num_classes != 1000`` -- it keeps torchvision's random initialisation for
    ``num_classes`` outputs -- and the stem conv when it was replaced
    (``stem_replaced``, by default ``small_input or in_channels != 3``: the small
    stem's 3x3 stride-1 conv, or other input channels) and its shape differs, which
    keeps its random initialisation.  Everything else (ResNet ``bn1``, all blocks) is
    always loaded.  Returns the skipped keys (printed with ``verbose``); raises
    ``ValueError`` naming the file when the weights do not fit the model otherwise.
    """
    from .weights import apply_state_dict

    state = load_imagenet_weights(model_name)
    if stem_replaced is None:
        stem_replaced = small_input or in_channels != 3
    report = apply_state_dict(model, state, weights_path(model_name), name=model_name, stem_replaced=stem_replaced)
    if verbose:
        print(report.summary(model_name), flush=True)
    return tuple(report.skipped)
